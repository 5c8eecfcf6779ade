//! The jobs only the operator runs: check, repair, rebuild-index, unlock and
//! restore (one file, a directory, a glob, a tenant or a whole source).

use std::path::PathBuf;

use crate::activity::{Activity, Operation, Outcome};
use crate::error::Error;
use crate::error::Result;
use crate::glob::Pattern;
use crate::ops::check::CheckReport;
use crate::ops::check_data::Subset;
use crate::ops::rebuild_index::RebuildReport;
use crate::ops::repair::RepairReport;
use crate::ops::restore::{FoundItem, RestoreOptions, RestoreReport};
use crate::ops::restore_plan::{self, Filter, Found, PlannedFile, Selection, SourcePlan};
use crate::ops::restore_run::{self, RestoreProgress, RestoreSummary};
use crate::ops::{
    check as check_op, rebuild_index as rebuild_op, repair as repair_op, restore as restore_op,
};
use crate::problems::Problem;
use crate::repo::lock::UnlockReport;
use crate::tree::item_components;
use serde::Serialize;

use super::{whole, JobContext};

/// Verify the repository under a shared lock; logged with its counts.
pub fn check(ctx: &JobContext<'_>, read_data: Option<Subset>) -> Result<CheckReport> {
    let lock = ctx.shared(Operation::Check)?;
    let result = check_op::check_with(&lock, read_data, &ctx.progress).and_then(|mut r| {
        r.object_lock =
            crate::ops::lock_extend::audit(lock.repo(), ctx.config, ctx.retention_time())?;
        for finding in &r.object_lock {
            tracing::warn!("object lock: {finding}");
        }
        Ok(r)
    });
    let read_data = read_data.is_some();
    ctx.record(Operation::Check, &result, |r| {
        serde_json::json!({"read_data": read_data, "subset": r.subset, "snapshots": r.snapshots, "files": r.files, "problems": r.problems.len()})
    });
    result
}

/// Read every pack, quarantine damaged ones, rebuild the index; under the
/// exclusive lock, logged with its counts.
pub fn repair(ctx: &JobContext<'_>) -> Result<RepairReport> {
    let lock = ctx.exclusive(Operation::Repair)?;
    let result = repair_op::repair(&lock, ctx.clock.now());
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

/// What `offsite restore` asks for: `item`, `glob`, or neither (a whole
/// source, or with `tenant` a whole tenant).
pub struct RestoreRequest<'r> {
    /// `--item`: a file, or a directory (always one when it ends in `/`).
    pub item: Option<&'r str>,
    /// `--glob`: every file whose path matches.
    pub glob: Option<&'r str>,
    /// `--tenant`: only this tenant's files.
    pub tenant: Option<&'r str>,
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
    /// Told about each file of a restore of many (a terminal's progress).
    pub progress: &'r dyn RestoreProgress,
}

impl RestoreRequest<'_> {
    /// What was asked for, as the activity log records it.
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "item": self.item, "glob": self.glob, "tenant": self.tenant,
            "sources": self.sources, "snapshot": self.snapshot, "host": self.host,
        })
    }

    /// The selection, checked (an item path that would leave the source, a
    /// bad glob, nothing named at all are usage errors).
    fn filter(&self) -> Result<Filter> {
        let selection = match (self.item, self.glob) {
            (Some(item), None) => Selection::Path {
                components: item_components(item)?,
                dir_only: item.ends_with('/'),
            },
            (None, Some(glob)) => Selection::Glob(Pattern::parse(glob).map_err(Error::Usage)?),
            (None, None) => Selection::Whole,
            (Some(_), Some(_)) => {
                return Err(Error::Usage("--item and --glob exclude each other".into()))
            }
        };
        Ok(Filter {
            selection,
            tenant: self.tenant.map(String::from),
        })
    }
}

/// What a restore did: one file (as `restore --item FILE` always reported)
/// or many.
#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum RestoreOutcome {
    Item(RestoreReport),
    Tree(RestoreSummary),
}

/// Restore what `request` asks for. Snapshots skipped on the way (a manifest
/// or tree that cannot be read) are warned about on stderr when something is
/// restored, else named in the "not found" error. Logged with the request, the reason and the
/// summary, whether it succeeded or not.
pub fn restore(ctx: &JobContext<'_>, request: &RestoreRequest<'_>) -> Result<RestoreOutcome> {
    let r = request;
    let result = restore_unlogged(ctx, r);
    ctx.log(restore_entry(ctx, r, &result));
    result
}

/// A restore's activity entry: what was asked for (`request`, and `item`
/// when one was named), the `reason` and whether it was `forced`,
/// as fields whatever the outcome, with the report (`restore`), the summary
/// (`summary`) or the `error`. Kept for the audit past `activity_log_days`
/// ([`crate::activity::AUDIT_OPERATIONS`]).
fn restore_entry(
    ctx: &JobContext<'_>,
    r: &RestoreRequest<'_>,
    result: &Result<RestoreOutcome>,
) -> Activity {
    let mut details = serde_json::json!({
        "request": r.describe(), "reason": r.reason, "forced": r.force,
    });
    if let Some(item) = r.item {
        details["item"] = item.into();
    }
    let outcome = match result {
        Ok(RestoreOutcome::Item(report)) => {
            details["restore"] = serde_json::to_value(report).unwrap_or_default();
            Outcome::Ok
        }
        Ok(RestoreOutcome::Tree(summary)) => {
            details["summary"] = serde_json::to_value(summary).unwrap_or_default();
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

fn restore_unlogged(ctx: &JobContext<'_>, r: &RestoreRequest<'_>) -> Result<RestoreOutcome> {
    let filter = r.filter()?;
    let search = restore_plan::plan(ctx.repo, r.host, &r.sources, &filter, r.snapshot)?;
    // When nothing is found, the error names what was skipped (one line).
    if !search.hits.is_empty() {
        crate::problems::warn(&search.skipped);
    }
    // `--now` may only make restore stricter: an item past its retention by
    // the clock is not restorable by naming an earlier time (that is what
    // `--force` is for, and `--force` is logged).
    let now = ctx.retention_time().max(ctx.clock.now());
    let mut files = Vec::new();
    let mut plans = Vec::new();
    for hit in search.hits {
        match hit.found {
            Found::File(entry) => files.push((hit.source, hit.snapshot, entry)),
            Found::Tree(plan) => plans.push(SourcePlan {
                source: hit.source,
                snapshot: hit.snapshot,
                plan,
            }),
        }
    }
    let shown = || match (&filter.selection, r.item) {
        (Selection::Path { components, .. }, _) => components.join("/"),
        (_, _) => r.glob.unwrap_or("").to_string(),
    };
    if !files.is_empty() && files.len() + plans.len() > 1 {
        let sources = files.iter().map(|f| f.0.as_str());
        let sources: Vec<&str> = sources
            .chain(plans.iter().map(|p| p.source.as_str()))
            .collect();
        return Err(restore_op::in_several_sources(
            &shown(),
            sources.into_iter(),
        ));
    }
    if let Some((source, snapshot, entry)) = files.pop() {
        let found = FoundItem {
            snapshot,
            source,
            path: shown(),
            entry,
            problems: Vec::new(),
        };
        if !r.force {
            restore_op::check_retention(ctx.config, &found, now)?;
        }
        return restore_op::restore_item(ctx.repo, &found, &r.to, r.options, r.progress)
            .map(RestoreOutcome::Item);
    }
    if plans.is_empty() {
        return Err(nothing_found(r, &filter, &search.skipped, &shown()));
    }
    let check = |source: &str, file: &PlannedFile| {
        if r.force {
            return Ok(());
        }
        let path = file.path.join("/");
        restore_op::check_entry_retention(ctx.config, source, &path, &file.entry, now)
    };
    restore_run::restore_plans(ctx.repo, &plans, &r.to, r.options, &check, r.progress)
        .map(RestoreOutcome::Tree)
}

/// Why nothing was restored: the item (or what the glob or tenant names) is
/// in no snapshot.
fn nothing_found(
    r: &RestoreRequest<'_>,
    filter: &Filter,
    skipped: &[Problem],
    shown: &str,
) -> Error {
    let what = match (&filter.selection, r.tenant) {
        // `--item PATH/` asks for a directory: a file at PATH is not it.
        (Selection::Path { dir_only: true, .. }, None) => {
            format!("directory {:?}", format!("{shown}/"))
        }
        (Selection::Path { .. }, None) => format!("item {shown:?}"),
        (Selection::Path { .. }, Some(t)) => format!("files of tenant {t:?} below {shown:?}"),
        (Selection::Glob(_), None) => format!("files matching {shown:?}"),
        (Selection::Glob(_), Some(t)) => format!("files of tenant {t:?} matching {shown:?}"),
        (Selection::Whole, Some(t)) => format!("files of tenant {t:?}"),
        (Selection::Whole, None) if skipped.is_empty() => {
            return crate::ops::restore_find::no_snapshots(r.host, &r.sources)
        }
        (Selection::Whole, None) => "anything".to_string(),
    };
    restore_op::not_found(&what, r.host, &r.sources, skipped)
}
