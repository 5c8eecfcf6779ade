//! Human-readable output of each command (`--json` prints the reports as is).
//! Every printer returns the first error writing to stdout (a closed pipe),
//! for the command to stop and return it once its lock is released. Names
//! from the repository or the source tree are printed [`Escaped`].

use chrono::SecondsFormat;

mod log;

use crate::error::Result;
use crate::escape::Escaped;
use crate::jobs::RestoreOutcome;
use crate::ops::check::CheckReport;
use crate::ops::prune::PruneReport;
use crate::ops::rebuild_index::RebuildReport;
use crate::ops::restore_run::RestoreSummary;
use crate::ops::restore_test::RestoreTestReport;
use crate::ops::snapshot::SnapshotReport;
use crate::ops::sweep::DeleteReason;
pub use log::log;

/// Bytes for people: 1.23 GiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// RFC 3339 in UTC, as short as exact.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn snapshot(r: &SnapshotReport) -> Result<()> {
    let s = &r.summary;
    say!(
        "snapshot {} of {} (host {}) at {}",
        r.id.short(),
        r.source,
        r.host,
        time(&r.time)
    );
    say!(
        "  items {} (new {}, changed {}, unchanged {}), dirs {}, {}",
        s.items,
        s.files_new,
        s.files_changed,
        s.files_unchanged,
        s.dirs,
        human_bytes(s.bytes)
    );
    if s.reread > 0 || s.lost > 0 {
        say!(
            "  read again {} unchanged files ({} because their stored chunks were lost); {} carried recordings lost",
            s.reread,
            s.healed,
            s.lost
        );
    }
    if s.carried > 0 || s.expired > 0 {
        say!(
            "  voice: {} recordings carried forward, {} expired and left out",
            s.carried,
            s.expired
        );
    }
    say!(
        "  read {}, added {} to the repository, {} warnings, {:.2} s",
        human_bytes(s.bytes_read),
        human_bytes(s.bytes_added),
        s.warnings,
        s.duration_seconds
    );
    let q = &r.requests;
    say!(
        "  requests: {} PUT, {} GET, {} LIST, {} DELETE, {} HEAD",
        q.put,
        q.get,
        q.list,
        q.delete,
        q.head
    );
    for w in &s.warning_samples {
        say!("  warning: {}", Escaped(w));
    }
    Ok(())
}

pub fn snapshots(rows: &[serde_json::Value], unreadable: usize) -> Result<()> {
    say!(
        "{:<10} {:<24} {:<16} {:<16} {:>9} {:>12}",
        "id",
        "time",
        "host",
        "source",
        "items",
        "size"
    );
    for row in rows {
        say!(
            "{:<10} {:<24} {:<16} {:<16} {:>9} {:>12}",
            &row["id"].as_str().unwrap_or("")[..8.min(row["id"].as_str().unwrap_or("").len())],
            row["time"].as_str().unwrap_or(""),
            row["host"].as_str().unwrap_or(""),
            row["source"].as_str().unwrap_or(""),
            row["items"].as_u64().unwrap_or(0),
            human_bytes(row["bytes"].as_u64().unwrap_or(0))
        );
    }
    if unreadable > 0 {
        say!(
            "{} snapshots, and {unreadable} whose manifest cannot be read (named above on stderr)",
            rows.len()
        );
    } else {
        say!("{} snapshots", rows.len());
    }
    Ok(())
}

pub fn restore(outcome: &RestoreOutcome) -> Result<()> {
    match outcome {
        RestoreOutcome::Item(r) => say!(
            "restored {} from snapshot {} ({}) to {}: {}, sha256 {}",
            Escaped(&r.item),
            r.snapshot.short(),
            time(&r.snapshot_time),
            Escaped(r.written_to.display()),
            human_bytes(r.bytes),
            r.sha256
        ),
        RestoreOutcome::Tree(s) => restore_summary(s)?,
    }
    Ok(())
}

/// A restore of many files: where from, then one line of counts.
fn restore_summary(s: &RestoreSummary) -> Result<()> {
    for from in &s.from {
        say!(
            "from {} snapshot {} ({})",
            from.source,
            from.snapshot.short(),
            time(&from.snapshot_time)
        );
    }
    for sample in &s.samples {
        say!("  {}", Escaped(sample));
    }
    let troubles = s.skipped.saturating_add(s.refused).saturating_add(s.failed);
    if troubles > s.samples.len() as u64 {
        say!("  … and {} more", troubles - s.samples.len() as u64);
    }
    say!(
        "restored {} files ({}) and {} directories to {} in {:.1} s on {} threads; {} kept, {} refused, {} failed",
        s.files,
        human_bytes(s.bytes),
        s.dirs,
        Escaped(s.to.display()),
        s.duration_seconds,
        s.threads,
        s.skipped,
        s.refused,
        s.failed
    );
    Ok(())
}

pub fn restore_test(r: &RestoreTestReport) -> Result<()> {
    let what = match (&r.source, &r.item) {
        (Some(s), Some(i)) => format!("{}:{}", Escaped(s), Escaped(i)),
        _ => "nothing".into(),
    };
    say!(
        "restore test {}: {what} (tenant {}, snapshot {}{}), {}, {:.3} s",
        r.result,
        Escaped(r.tenant.as_deref().unwrap_or("-")),
        r.snapshot.map(|s| s.short()).unwrap_or_else(|| "-".into()),
        if r.carried { ", carried forward" } else { "" },
        human_bytes(r.bytes),
        r.duration_seconds
    );
    if let Some(e) = &r.error {
        say!("  error: {}", Escaped(e));
    }
    Ok(())
}

pub fn check(r: &CheckReport, read_data: bool) -> Result<()> {
    say!(
        "checked {} snapshots, {} packs, {} trees, {} distinct files",
        r.snapshots,
        r.packs,
        r.trees,
        r.files
    );
    if read_data {
        if let Some(subset) = &r.subset {
            say!("read-data subset {subset}");
        }
        say!(
            "read back {} packs, {} ({} blobs); {} files whole",
            r.packs_verified,
            human_bytes(r.bytes_verified),
            r.blobs_verified,
            r.files_verified
        );
        if r.unindexed_packs > 0 || r.unreferenced_packs > 0 {
            say!(
                "{} packs not in the index (the next snapshot adopts them), {} referenced by no snapshot (the next prune removes them)",
                r.unindexed_packs,
                r.unreferenced_packs
            );
        }
    }
    for n in &r.not_verifiable {
        say!("not verifiable: {n} (its data cannot be read by anyone, by design)");
    }
    for p in &r.problems {
        say!("problem: {}", Escaped(p));
    }
    damaged(&r.damaged)?;
    Ok(())
}

/// Per snapshot, the first items it can no longer restore.
fn damaged(list: &[crate::ops::damage::SnapshotDamage]) -> Result<()> {
    use crate::ops::damage::SHOWN_PER_SNAPSHOT;
    for d in list {
        say!(
            "damaged snapshot {} of {} (host {}) at {}: {} item(s)",
            d.snapshot.short(),
            d.source,
            d.host,
            time(&d.time),
            d.items_damaged
        );
        for item in d.items.iter().take(SHOWN_PER_SNAPSHOT) {
            say!("  damaged item: {}", Escaped(item));
        }
        if d.items_damaged > SHOWN_PER_SNAPSHOT {
            say!(
                "  … and {} more (all with --json)",
                d.items_damaged - SHOWN_PER_SNAPSHOT
            );
        }
    }
    Ok(())
}

pub fn repair(r: &crate::ops::repair::RepairReport) -> Result<()> {
    say!(
        "read {} packs: {} whole, {} quarantined; {} salvage packs; removed {} old index files",
        r.packs_checked,
        r.packs_ok,
        r.quarantined.len(),
        r.salvage_packs,
        r.old_index_files_removed
    );
    for q in &r.quarantined {
        say!(
            "quarantined {} as {} ({} blobs salvaged, {} lost): {}",
            q.pack,
            q.quarantined_as,
            q.blobs_salvaged,
            q.blobs_lost,
            q.reason
        );
    }
    for m in &r.missing_packs {
        say!("missing: {m} (was indexed)");
    }
    damaged(&r.damaged)?;
    if r.damaged.is_empty() {
        say!("no snapshot references lost data");
    }
    Ok(())
}

pub fn rebuild(r: &RebuildReport) -> Result<()> {
    say!(
        "indexed {} blobs in {} packs; removed {} old index files",
        r.blobs,
        r.packs,
        r.old_index_files_removed
    );
    for p in &r.unreadable_packs {
        say!("unreadable: {p}");
    }
    Ok(())
}

pub fn prune(r: &PruneReport) -> Result<()> {
    let verb = if r.dry_run { "would" } else { "did" };
    say!(
        "prune as of {}{}",
        time(&r.now),
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    for d in &r.snapshots {
        say!(
            "{:<6} {} {:<24} {:<16} {}",
            if d.keep { "keep" } else { "remove" },
            d.id.short(),
            time(&d.time),
            d.source,
            d.reasons.join(", ")
        );
    }
    for d in &r.duplicates {
        say!(
            "{verb} delete {}: an older copy of snapshot {} (rewritten), counted once",
            d.id.short(),
            d.kept.short()
        );
    }
    prune_plan(&r.plan, verb)?;
    say!(
        "{verb} remove {} snapshots, rewrite {} voice snapshots, delete {} packs, repack {}, free {}, delete {} activity-log entries",
        r.snapshots_removed,
        r.snapshots_rewritten,
        r.packs_deleted,
        r.packs_repacked,
        human_bytes(r.bytes_freed),
        r.log_entries_deleted
    );
    if let Some(why) = &r.sweep_held_back {
        say!("packs: none deleted or repacked: {why}");
    }
    Ok(())
}

/// The plan's rewrites and pack actions, one line each.
fn prune_plan(plan: &crate::ops::prune_plan::PrunePlan, verb: &str) -> Result<()> {
    for w in &plan.rewrite {
        say!(
            "{verb} rewrite {} {:<24} {:<16} without {} expired recording(s)",
            w.id.short(),
            time(&w.time),
            w.source,
            w.expired.len()
        );
        for item in &w.expired {
            say!(
                "    expired {} (recorded {}, copy expired {})",
                Escaped(&item.path),
                time(&item.recorded_at),
                time(&item.expires_at)
            );
        }
    }
    for p in &plan.repoint {
        say!(
            "{verb} rewrite {} {:<24} {:<16} to follow its repacked blobs",
            p.id.short(),
            time(&p.time),
            p.source
        );
    }
    for d in &plan.sweep.delete {
        let why = match d.reason {
            DeleteReason::Unreferenced => "unreferenced",
            DeleteReason::Superseded => "only what the rewrites drop or replace",
        };
        say!(
            "{verb} delete pack {} {:>10}: {why}",
            d.pack.short(),
            human_bytes(d.bytes)
        );
    }
    for p in &plan.sweep.repack {
        say!(
            "{verb} repack pack {} {:>10}: {} unused, {} blob(s) kept",
            p.pack.short(),
            human_bytes(p.bytes),
            human_bytes(p.unused_bytes),
            p.blobs_kept
        );
    }
    for id in &plan.sweep.kept_for_resume {
        say!(
            "keep pack {}: written by a snapshot that did not finish, for its next run",
            id.short()
        );
    }
    for id in &plan.sweep.in_grace {
        say!(
            "keep pack {}: unindexed and younger than the grace period",
            id.short()
        );
    }
    Ok(())
}

pub fn unlock(r: &crate::repo::lock::UnlockReport) -> Result<()> {
    let describe = |l: &crate::repo::lock::LockSummary| {
        format!(
            "{} ({} on {}, pid {}, refreshed {}, {})",
            l.key,
            l.operation.as_deref().unwrap_or("unreadable lock"),
            l.host.as_deref().unwrap_or("?"),
            l.pid.map_or("?".to_string(), |p| p.to_string()),
            time(&l.refreshed),
            l.state
        )
    };
    for l in &r.removed {
        say!("removed {}", describe(l));
    }
    for l in &r.kept {
        say!("kept    {}", describe(l));
    }
    if !r.kept.is_empty() {
        say!("{} live lock(s) kept; `offsite unlock --force` removes them (only if their holders are gone)", r.kept.len());
    } else if r.removed.is_empty() {
        say!("no locks");
    }
    Ok(())
}
