//! `offsite prune [--dry-run]`: keep the retention promises, reclaim space.
//!
//! Plan, then execute. [`crate::ops::prune_plan::plan`] computes one
//! [`PrunePlan`] (what it holds and why it is exact is documented there);
//! `--dry-run` prints it, and the real run computes it the same way and then
//! executes exactly that plan, step by step, deciding nothing new:
//!
//! 1. **Forget**: delete the manifests of forgotten snapshots, of snapshots
//!    wholly of an erased tenant, and the older copies of rewritten ones.
//! 2. **Reclaim**: write one index without the unreferenced packs (no kept
//!    snapshot references them), delete the other index files, then those
//!    packs. Nothing else is written before, so a full store gets space back.
//! 3. **Rewrite**, one pass for both reasons a tree changes: copy the live
//!    blobs out of the packs to repack (each verified), rewrite the voice
//!    snapshots without their expired recordings, every snapshot without
//!    the items of erased tenants, and the snapshots whose blobs moved, write the new packs and an index file for them, then each
//!    new manifest before its old one is deleted. One pass, not a voice pass
//!    followed by a repack pass: a second pass would rewrite the first one's
//!    new trees again and leave them behind in packs no plan could name
//!    beforehand.
//! 4. **Commit the sweep**: one consolidated index of the surviving and new
//!    packs, the other index files deleted, then the superseded and repacked
//!    packs deleted, last.
//! 5. **Activity log**: delete the entries older than `activity_log_days`
//!    (restore and erase entries: `audit_log_days`).
//! 6. **Object Lock** (with `object_lock` only): extend the locks of the kept
//!    snapshots and their packs, then delete the old versions whose locks
//!    have ended ([`crate::ops::lock_extend`]).
//!
//! Execution requires the exclusive repository lock ([`Exclusive`]), so no snapshot runs
//! meanwhile. It checks the plan still holds as it goes: a kept reference
//! into a pack the plan deletes that was not moved out, or a snapshot that
//! changes when the plan said it would not (or the other way round), stops
//! the prune with [`crate::Error::Conflict`] before any pack is deleted
//! because of it; an object that cannot be read stops it too. It never
//! deletes more than the plan says. Cancellation is honoured between steps.
//! A prune killed at any step leaves every kept snapshot restorable; the
//! next prune finishes the job.
//!
//! Damaged objects make prune conservative, never destructive: see
//! [`crate::ops::prune_plan`] (`problems`, `sweep_held_back`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ops::lock_extend::LockReport;
use crate::ops::prune_plan::{is_voice, plan, PrunePlan};
use crate::ops::rewrite::{replace_manifest, Rewriter};
use crate::ops::sweep;
use crate::problems::Problem;
use crate::progress::Progress;
use crate::repo::index::IndexedPack;
use crate::repo::writer::BlobWriter;
use crate::repo::{Exclusive, Repository};
use crate::snapshot::Duplicate;

pub use crate::ops::prune_plan::{ExpiredItem, SnapshotDecision};

/// What prune decided (the plan) and, unless a dry run, did: a real run
/// that returns a report executed its plan completely.
///
/// The fields beside `plan` summarise it, for scripts and the text output.
#[derive(Serialize, Debug)]
pub struct PruneReport {
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    pub plan: PrunePlan,
    /// Every retention decision of this host's snapshots, kept ones too.
    pub snapshots: Vec<SnapshotDecision>,
    /// The expired recordings, one per (source, path).
    pub expired_items: Vec<ExpiredItem>,
    pub snapshots_removed: usize,
    /// Older copies of rewritten snapshots (counted once by retention).
    pub duplicates: Vec<Duplicate>,
    /// Voice snapshots rewritten without expired recordings.
    pub snapshots_rewritten: usize,
    pub log_entries_deleted: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub bytes_freed: u64,
    /// Manifests and index files that cannot be read (see [`crate::problems`]).
    pub problems: Vec<Problem>,
    /// Why no pack was deleted or repacked, when the sweep was held back.
    pub sweep_held_back: Option<String>,
    /// The Object Lock step (with `object_lock`; empty on a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<LockReport>,
}

impl PruneReport {
    fn new(dry_run: bool, now: DateTime<Utc>, plan: PrunePlan) -> Self {
        PruneReport {
            dry_run,
            now,
            snapshots: plan.decisions.clone(),
            expired_items: plan.expired_items(),
            snapshots_removed: plan.forget.len(),
            duplicates: plan.delete_duplicates.clone(),
            snapshots_rewritten: plan.rewrite.len(),
            log_entries_deleted: plan.log_entries.len(),
            packs_deleted: plan.sweep.delete.len(),
            packs_repacked: plan.sweep.repack.len(),
            bytes_freed: plan.sweep.bytes_freed,
            problems: plan.problems.clone(),
            sweep_held_back: plan.sweep_held_back.clone(),
            object_lock: None,
            plan,
        }
    }
}

/// Plan and execute a prune as of `now` (retention and expiry), alone in
/// the repository; `wall` is the real time (grace periods, rewrite times).
pub fn prune(
    lock: &Exclusive,
    config: &Config,
    now: DateTime<Utc>,
    wall: DateTime<Utc>,
    cancel: &Cancel,
) -> Result<PruneReport> {
    prune_with(lock, config, now, wall, cancel, &Progress::hidden())
}

/// [`prune`], showing each step of the execution on `progress`.
pub fn prune_with(
    lock: &Exclusive,
    config: &Config,
    now: DateTime<Utc>,
    wall: DateTime<Utc>,
    cancel: &Cancel,
    progress: &Progress,
) -> Result<PruneReport> {
    let plan = plan(lock.repo(), config, now, wall)?;
    execute(lock.repo(), config, &plan, now, wall, cancel, progress)?;
    cancel.check()?;
    let locks = crate::ops::lock_extend::run(lock.repo(), config, now)?;
    let mut report = PruneReport::new(false, now, plan);
    report.object_lock = lock.repo().object_lock().map(|_| locks);
    Ok(report)
}

/// The plan of a prune as of `now`, without executing it (`--dry-run`): it
/// only reads, so it takes no lock.
pub fn dry_run(
    repo: &Repository,
    config: &Config,
    now: DateTime<Utc>,
    wall: DateTime<Utc>,
) -> Result<PruneReport> {
    Ok(PruneReport::new(true, now, plan(repo, config, now, wall)?))
}

/// Carry out `plan` in the commit order of the module docs.
fn execute(
    repo: &Repository,
    config: &Config,
    plan: &PrunePlan,
    now: DateTime<Utc>,
    wall: DateTime<Utc>,
    cancel: &Cancel,
    progress: &Progress,
) -> Result<()> {
    let steps = |name: &str, count: usize| progress.phase(name, "steps", count as u64, 0);
    steps("forgetting snapshots", plan.steps.forget.len());
    for r in &plan.steps.forget {
        repo.delete_snapshot(r)?;
        progress.advance(1, 0);
    }
    for r in &plan.steps.erased_whole {
        tracing::info!(snapshot = %r.id.short(), "deleting a snapshot wholly of an erased tenant");
        repo.delete_snapshot(r)?;
    }
    for d in &plan.delete_duplicates {
        tracing::info!(duplicate = %d.id.short(), kept = %d.kept.short(), "deleting an older copy of a rewritten snapshot");
        repo.delete_snapshot(&d.manifest)?;
    }
    crate::failpoint::hit("prune-after-forget");
    cancel.check()?;
    steps("reclaiming packs", 0);
    sweep::reclaim(repo, &plan.sweep)?;
    cancel.check()?;
    steps("rewriting snapshots", plan.rewrite.len());
    let new_packs = rewrite(repo, config, plan, now, wall, progress)?;
    cancel.check()?;
    if !plan.sweep.is_empty() {
        steps("deleting packs", 0);
        sweep::commit(repo, &plan.sweep, new_packs)?;
    }
    crate::failpoint::hit("prune-before-log-cleanup");
    steps("expiring the activity log", plan.steps.log.len());
    for entry in &plan.steps.log {
        repo.delete_activity(entry)?;
        progress.advance(1, 0);
    }
    Ok(())
}

/// Step 3: the rewrite pass. Returns the packs it wrote.
fn rewrite(
    repo: &Repository,
    config: &Config,
    plan: &PrunePlan,
    now: DateTime<Utc>,
    wall: DateTime<Utc>,
    progress: &Progress,
) -> Result<Vec<IndexedPack>> {
    let going = plan.sweep.going();
    if plan.rewrite.is_empty() && going.is_empty() {
        return Ok(Vec::new());
    }
    let contracts = config.contracts();
    // Not deduplicated against the repository: new trees go to new packs,
    // as the plan assumes (see crate::ops::references).
    let writer = BlobWriter::new(repo, wall);
    let moved = sweep::copy_live(repo, &plan.sweep, &writer)?;
    let mut voice = Rewriter::new(repo, &writer, &moved, |_, f| !contracts.expired(f, now))
        .guard(&going)
        .dropping_tenants(&plan.erased_tenants);
    let mut plain = Rewriter::new(repo, &writer, &moved, |_, _| true)
        .guard(&going)
        .dropping_tenants(&plan.erased_tenants);
    let mut replacements = Vec::new();
    for (r, snap) in &plan.steps.kept {
        let planned = plan.rewrites(&r.id);
        // With no pack going, only the planned snapshots can change.
        if going.is_empty() && !planned {
            continue;
        }
        let new = if is_voice(config, snap) {
            voice.rewrite(&snap.tree)?
        } else {
            plain.rewrite(&snap.tree)?
        };
        let changed = new.tree != snap.tree;
        if changed != planned {
            return Err(Error::Conflict(format!(
                "prune plan no longer holds: snapshot {} {} rewritten; nothing was deleted because of it, run prune again",
                r.id.short(),
                if changed { "would be" } else { "would not be" }
            )));
        }
        if changed {
            replacements.push((r, snap, new));
        }
    }
    let packs = writer.finish()?;
    if !packs.is_empty() {
        repo.write_index_file(packs.clone())?;
    }
    crate::failpoint::hit("prune-before-manifests");
    for (r, snap, new) in &replacements {
        replace_manifest(repo, r, snap, new, wall)?;
        progress.advance(1, 0);
        crate::failpoint::hit("prune-after-one-manifest");
    }
    Ok(packs)
}
