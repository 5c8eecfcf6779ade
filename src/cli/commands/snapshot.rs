//! Snapshotting: `snapshot` and `snapshots`.

use super::Invocation;
use crate::cli::args::{SnapshotArgs, SnapshotsArgs};
use crate::cli::output;
use crate::error::Result;
use crate::jobs;
use crate::ops::snapshot::SnapshotOptions;

/// Snapshot the selected sources; with several, one failing source does not
/// stop the others, and the exit code is 1 if any failed. SIGTERM or SIGINT
/// stops the snapshot cleanly: what it uploaded is indexed (the next run
/// resumes from it), one line says so, no manifest, exit 1.
pub(in crate::cli) fn snapshot(inv: &Invocation, args: &SnapshotArgs) -> Result<i32> {
    let repo = inv.open()?;
    let sources = inv.config.selected_sources(args.source.as_deref())?;
    let several = sources.len() > 1;
    let mut failures = 0;
    let options = SnapshotOptions {
        reread: args.reread,
        ..SnapshotOptions::default()
    };
    let ctx = inv.context_showing(&repo, None, "snapshot");
    ctx.cancel.on_signals()?;
    jobs::snapshot(&ctx, &sources, args.time, options, &mut |src, result| {
        ctx.progress.clear();
        if let Ok(report) = &result {
            crate::problems::warn(&report.problems);
        }
        match result {
            Ok(report) if inv.json => inv.print_json(&report),
            Ok(report) => output::snapshot(&report),
            Err(e) if e.is_cancelled() => Err(e),
            Err(e) if several => {
                eprintln!("offsite: error: source {}: {e}", src.name);
                failures += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    })?;
    Ok(if failures > 0 { 1 } else { 0 })
}

pub(in crate::cli) fn snapshots(inv: &Invocation, args: &SnapshotsArgs) -> Result<i32> {
    let repo = inv.open()?;
    let host = match args.host.as_deref() {
        Some("all") => None,
        Some(h) => Some(h.to_string()),
        None => Some(inv.config.host.clone()),
    };
    let listing = repo.load_snapshots_tolerant(host.as_deref(), args.source.as_deref())?;
    let problems = listing.problems();
    crate::problems::warn(&problems);
    let rows: Vec<serde_json::Value> = listing
        .readable
        .iter()
        .map(|(r, snap)| {
            serde_json::json!({
                "id": r.id, "time": output::time(&snap.time), "source": snap.source, "host": snap.host,
                "class": snap.class, "items": snap.summary.items, "bytes": snap.summary.bytes,
                "bytes_added": snap.summary.bytes_added, "parent": snap.parent,
            })
        })
        .collect();
    if inv.json {
        inv.print_json(&serde_json::json!({ "snapshots": rows, "problems": problems }))?;
    } else {
        output::snapshots(&rows, problems.len())?;
    }
    Ok(0)
}
