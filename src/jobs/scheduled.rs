//! The jobs the agent schedules, which the operator can also run by hand:
//! snapshot, prune, restore-test.

use chrono::{DateTime, Utc};

use crate::activity::{Activity, Operation};
use crate::config::Source;
use crate::error::Result;
use crate::metrics::Rechecked;
use crate::ops::prune::PruneReport;
use crate::ops::restore_test::{RestoreTestReport, Rng};
use crate::ops::snapshot::{SnapshotOptions, SnapshotReport};
use crate::ops::{prune as prune_op, restore_test as restore_test_op, snapshot as snapshot_op};
use crate::repo::layout::ObjectKind;

use super::{whole, JobContext};

/// Snapshot `sources` one after the other under one shared lock, all as
/// taken at `time` (default: the clock's now when the lock is held). Each
/// source's result is logged, recorded in metrics when it succeeded, and
/// handed to `each` while the lock is still held; an error `each` returns
/// stops the job (and releases the lock) and is returned.
pub fn snapshot(
    ctx: &JobContext<'_>,
    sources: &[&Source],
    time: Option<DateTime<Utc>>,
    options: SnapshotOptions,
    each: &mut dyn FnMut(&Source, Result<SnapshotReport>) -> Result<()>,
) -> Result<()> {
    let lock = ctx.shared(Operation::Snapshot)?;
    let time = crate::snapshot::truncate_to_millis(time.unwrap_or_else(|| ctx.clock.now()));
    let contracts = ctx.config.contracts();
    for source in sources {
        let result = snapshot_op::snapshot_source_with(
            &lock,
            &ctx.config.host,
            source,
            &contracts,
            time,
            &ctx.cancel,
            SnapshotOptions {
                progress: ctx.progress.clone(),
                promises: Some(ctx.config.promises()),
                ..options.clone()
            },
        );
        ctx.record(Operation::Snapshot, &result, whole);
        if let (Ok(report), Some(metrics)) = (&result, ctx.metrics) {
            metrics.record_snapshot(&report.source, report.time, &report.summary);
            let rechecked = [Rechecked::All(ObjectKind::Index)];
            metrics.record_problems(&rechecked, &report.problems);
        }
        each(source, result)?;
    }
    Ok(())
}

/// Prune as of the context's retention time; unless `dry_run`, under the
/// exclusive lock, logged ([`prune_summary`]) and recorded in metrics.
pub fn prune(ctx: &JobContext<'_>, dry_run: bool) -> Result<PruneReport> {
    let (now, wall) = (ctx.retention_time(), ctx.clock.now());
    if dry_run {
        return prune_op::dry_run(ctx.repo, ctx.config, now, wall);
    }
    // A prune locked out is a failed prune, logged as one.
    let result = ctx.exclusive(Operation::Prune).and_then(|lock| {
        prune_op::prune_with(&lock, ctx.config, now, wall, &ctx.cancel, &ctx.progress)
    });
    ctx.record(Operation::Prune, &result, prune_summary);
    let report = result?;
    if let Some(metrics) = ctx.metrics {
        let rechecked = [
            Rechecked::All(ObjectKind::Snapshot),
            Rechecked::All(ObjectKind::Index),
        ];
        metrics.record_problems(&rechecked, &report.problems);
        metrics.record_prune(ctx.clock.now());
    }
    Ok(report)
}

/// The prune's key figures for the activity log (not every decision).
pub fn prune_summary(r: &PruneReport) -> serde_json::Value {
    serde_json::json!({
        "now": r.now, "snapshots_removed": r.snapshots_removed, "snapshots_rewritten": r.snapshots_rewritten,
        "expired_items": r.expired_items.len(), "packs_deleted": r.packs_deleted, "packs_repacked": r.packs_repacked,
        "bytes_freed": r.bytes_freed, "log_entries_deleted": r.log_entries_deleted,
        "problems": r.problems, "sweep_held_back": r.sweep_held_back,
        "forgotten": r.snapshots.iter().filter(|d| !d.keep).map(|d| serde_json::json!({
            "id": d.id, "source": d.source, "time": d.time,
        })).collect::<Vec<_>>(),
        "expired_recordings": r.expired_items.iter().map(|e| serde_json::json!({
            "source": e.source, "path": e.path, "tenant": e.tenant, "expires_at": e.expires_at,
        })).collect::<Vec<_>>(),
    })
}

/// Restore one random item of `sources` and verify it. A failed test is a
/// report, not an error ([`RestoreTestReport::failure`] makes it one); it is
/// logged with the whole report as details, and recorded in metrics.
pub fn restore_test(ctx: &JobContext<'_>, sources: &[&Source], rng: &mut Rng) -> RestoreTestReport {
    let report = restore_test_op::restore_test(ctx.repo, ctx.config, sources, rng, ctx.clock.now());
    ctx.log(Activity {
        time: ctx.clock.now(),
        host: ctx.config.host.clone(),
        operation: Operation::RestoreTest,
        outcome: report.result,
        details: serde_json::to_value(&report).unwrap_or_default(),
    });
    if let Some(metrics) = ctx.metrics {
        metrics.record_restore_test(&report);
    }
    report
}
