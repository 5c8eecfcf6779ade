//! The jobs only the operator runs: check, repair, rebuild-index, unlock and
//! single-item restore.

use std::path::PathBuf;

use crate::activity::{Activity, Operation, Outcome};
use crate::error::Result;
use crate::ops::check::CheckReport;
use crate::ops::rebuild_index::RebuildReport;
use crate::ops::repair::RepairReport;
use crate::ops::restore::{RestoreOptions, RestoreReport};
use crate::ops::{
    check as check_op, rebuild_index as rebuild_op, repair as repair_op, restore as restore_op,
};
use crate::repo::lock::UnlockReport;

use super::{whole, JobContext};

/// Verify the repository under a shared lock; logged with its counts.
pub fn check(ctx: &JobContext<'_>, read_data: bool) -> Result<CheckReport> {
    let lock = ctx.shared(Operation::Check)?;
    let result = check_op::check_with(&lock, read_data, &ctx.progress);
    ctx.record(Operation::Check, &result, |r| {
        serde_json::json!({"read_data": read_data, "snapshots": r.snapshots, "files": r.files, "problems": r.problems.len()})
    });
    result
}

/// Read every pack, quarantine damaged ones, rebuild the index; under the
/// exclusive lock, logged with its counts.
pub fn repair(ctx: &JobContext<'_>) -> Result<RepairReport> {
    let lock = ctx.exclusive(Operation::Repair)?;
    let result = repair_op::repair(&lock);
    ctx.record(Operation::Repair, &result, |r| {
        serde_json::json!({"packs_checked": r.packs_checked, "quarantined": r.quarantined.len(), "damaged_snapshots": r.damaged.len()})
    });
    result
}

/// Rewrite the index from the packs' headers under the exclusive lock;
/// logged with its report.
pub fn rebuild_index(ctx: &JobContext<'_>) -> Result<RebuildReport> {
    let lock = ctx.exclusive(Operation::RebuildIndex)?;
    let result = rebuild_op::rebuild_index(&lock);
    ctx.record(Operation::RebuildIndex, &result, whole);
    result
}

/// Remove stale locks (with `force`, every lock), judged by the wall clock;
/// logged with its report.
pub fn unlock(ctx: &JobContext<'_>, force: bool) -> Result<UnlockReport> {
    let result = ctx.repo.unlock(&ctx.config.host, force, ctx.clock.now());
    ctx.record(Operation::Unlock, &result, whole);
    result
}

/// What `offsite restore` asks for.
pub struct RestoreRequest<'r> {
    pub item: &'r str,
    /// The sources to search.
    pub sources: Vec<&'r str>,
    /// Snapshot id (or prefix) or `latest`; `None`: the newest holding the item.
    pub snapshot: Option<&'r str>,
    /// Whose snapshots.
    pub host: &'r str,
    pub to: PathBuf,
    pub options: RestoreOptions,
    /// Restore even past the data retention or the voice contract.
    pub force: bool,
    /// Why (logged).
    pub reason: Option<String>,
}

/// Restore one item. Unreadable manifests skipped on the way are warned
/// about on stderr. Logged with the reason, whether it succeeded or not.
pub fn restore(ctx: &JobContext<'_>, request: &RestoreRequest<'_>) -> Result<RestoreReport> {
    let r = request;
    let result =
        restore_op::find_item(ctx.repo, r.host, &r.sources, r.item, r.snapshot).and_then(|found| {
            crate::problems::warn(&found.problems);
            if !r.force {
                restore_op::check_retention(ctx.config, &found, ctx.retention_time())?;
            }
            let options = RestoreOptions {
                progress: ctx.progress.clone(),
                ..r.options.clone()
            };
            restore_op::restore_item(ctx.repo, &found, &r.to, options)
        });
    ctx.log(restore_entry(ctx, request, &result));
    result
}

/// A restore's activity entry: the item, the reason and whether it was
/// forced as fields whatever the outcome, with the report (`restore`) or the
/// error (`error`). Kept for the audit past `activity_log_days`
/// ([`crate::activity::AUDIT_OPERATIONS`]).
fn restore_entry(
    ctx: &JobContext<'_>,
    r: &RestoreRequest<'_>,
    result: &Result<RestoreReport>,
) -> Activity {
    let mut details = serde_json::json!({ "item": r.item, "reason": r.reason, "forced": r.force });
    let outcome = match result {
        Ok(report) => {
            details["restore"] = serde_json::to_value(report).unwrap_or_default();
            Outcome::Ok
        }
        Err(e) => {
            details["error"] = e.to_string().into();
            Outcome::Failed
        }
    };
    Activity {
        time: ctx.clock.now(),
        host: ctx.config.host.clone(),
        operation: Operation::Restore,
        outcome,
        details,
    }
}
