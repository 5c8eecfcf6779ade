//! `offsite prune [--dry-run]`: keep the retention promises, reclaim space.
//!
//! Plan, then apply (the plan is what `--dry-run` prints):
//!
//! * **Snapshots** of this host are grouped by source and decided by the
//!   source's policy ([`crate::retention`]); a source no longer configured
//!   keeps all its snapshots (a config mistake must not delete backups).
//! * **Voice items** whose backup copy expired at `now` under the contracts
//!   in force ([`crate::voice`]) are dropped from every kept voice snapshot.
//! * **Activity-log** entries older than `activity_log_days` are deleted.
//! * **Duplicate manifests** of one logical snapshot (a prune killed between
//!   writing a rewrite and deleting the original leaves both) count once:
//!   retention decides on the newest rewrite, and the older copies are
//!   deleted ([`crate::snapshot::split_duplicates`]).
//! * The **sweep** ([`crate::ops::sweep`]) deletes or repacks packs: wholly
//!   unreferenced packs first, so a full store gets space back before
//!   anything new is written; unindexed young packs are kept for the grace
//!   period.
//!
//! Damaged objects make prune conservative, never destructive: a source with
//! a manifest that cannot be read forgets nothing, and while any manifest or
//! index file of the repository cannot be read the sweep deletes and repacks
//! no pack (either might reference or describe any pack); the report lists
//! the `problems` and says why in `sweep_held_back`.
//!
//! Apply holds the exclusive repository lock, so no snapshot runs meanwhile.
//! Order: forgotten manifests and duplicate copies are deleted; voice snapshots are rewritten
//! (new trees and index, then the new manifest before the old one goes); the
//! sweep runs last. A prune killed at any step leaves every kept snapshot
//! restorable; the next prune finishes the job.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cancel::Cancel;
use crate::config::{Config, SourceClass};
use crate::error::Result;
use crate::id::ObjectId;
use crate::ops::rewrite::{replace_manifest, Moved, Rewriter};
use crate::ops::sweep::{self, SweepReport};
use crate::problems::Problem;
use crate::repo::writer::BlobWriter;
use crate::repo::{Exclusive, Repository, SnapshotListing};
use crate::retention::{apply, Decision};
use crate::snapshot::{split_duplicates, Duplicate, Snapshot, SnapshotRef};
use crate::tree::FileEntry;
use crate::voice::{recorded_at, Contracts};

/// One snapshot's line in the plan.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDecision {
    pub id: ObjectId,
    pub time: DateTime<Utc>,
    pub source: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

/// A voice recording whose backup copy has expired.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpiredItem {
    pub source: String,
    pub path: String,
    pub tenant: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What prune decided and did.
#[derive(Serialize, Debug, Default)]
pub struct PruneReport {
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    pub snapshots: Vec<SnapshotDecision>,
    pub expired_items: Vec<ExpiredItem>,
    pub snapshots_removed: usize,
    /// Older copies of rewritten snapshots (counted once by retention).
    pub duplicates: Vec<Duplicate>,
    pub snapshots_rewritten: usize,
    pub log_entries_deleted: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub bytes_freed: u64,
    /// Manifests and index files that cannot be read (see [`crate::problems`]).
    pub problems: Vec<Problem>,
    /// Why no pack was deleted or repacked, when the sweep was held back.
    pub sweep_held_back: Option<String>,
}

/// Decide per group of this host's snapshots.
fn decide(config: &Config, refs: &[SnapshotRef]) -> Vec<SnapshotDecision> {
    let mut groups: BTreeMap<&str, Vec<(ObjectId, DateTime<Utc>)>> = BTreeMap::new();
    for r in refs {
        groups
            .entry(r.source.as_str())
            .or_default()
            .push((r.id, r.time));
    }
    let mut out = Vec::new();
    for (source, snaps) in groups {
        let decisions: Vec<Decision> = match config.sources.iter().find(|s| s.name == source) {
            Some(s) => apply(&snaps, &s.retention, config.timezone),
            None => snaps
                .iter()
                .map(|(id, time)| Decision {
                    id: *id,
                    time: *time,
                    keep: true,
                    reasons: vec!["source not configured".into()],
                })
                .collect(),
        };
        out.extend(decisions.into_iter().map(|d| SnapshotDecision {
            id: d.id,
            time: d.time,
            source: source.to_string(),
            keep: d.keep,
            reasons: d.reasons,
        }));
    }
    out
}

/// The expired items of one snapshot, with their paths.
fn expired_in(
    repo: &Repository,
    snap: &Snapshot,
    contracts: &Contracts,
    now: DateTime<Utc>,
    out: &mut Vec<ExpiredItem>,
) -> Result<()> {
    repo.for_each_file(&snap.tree, &mut |path, f| {
        if contracts.expired(&f, now) {
            out.push(ExpiredItem {
                source: snap.source.clone(),
                path,
                tenant: f.tenant.clone(),
                recorded_at: recorded_at(&f),
                expires_at: contracts.expires_at(&f),
            });
        }
    })
}

/// Sweeps per prune at most.
const MAX_SWEEPS: usize = 3;

/// Every snapshot of every host, with its manifest; unreadable ones apart.
fn load_all(repo: &Repository) -> Result<SnapshotListing> {
    repo.load_snapshots_tolerant(None, None)
}

/// A source with a manifest that cannot be read forgets nothing: retention
/// cannot be judged over snapshots it cannot see.
fn hold_damaged_groups(decisions: &mut [SnapshotDecision], unreadable: &[&SnapshotRef]) {
    for d in decisions.iter_mut() {
        if unreadable.iter().any(|r| r.id == d.id) {
            d.keep = true;
            d.reasons = vec!["manifest unreadable".into()];
        } else if !d.keep && unreadable.iter().any(|r| r.source == d.source) {
            d.keep = true;
            d.reasons = vec!["held: a manifest of this source is unreadable".into()];
        }
    }
}

/// Why the sweep must not run: a pack may be referenced by a manifest that
/// cannot be read, or described only by an index file that cannot be read.
fn sweep_hold(problems: &[Problem]) -> Option<String> {
    let first = problems.first()?;
    Some(format!(
        "{} unreadable object(s) (first {}): no pack is deleted or repacked until they are repaired or removed (`offsite check` names them)",
        problems.len(),
        first.object
    ))
}

fn is_voice(config: &Config, snap: &Snapshot) -> bool {
    snap.host == config.host && snap.class == SourceClass::Voice
}

/// Delete the older copies of rewritten snapshots; the newest copy of each
/// was written (complete) before them, so nothing is lost.
fn delete_duplicates(repo: &Repository, duplicates: &[Duplicate]) -> Result<()> {
    for d in duplicates {
        tracing::info!(duplicate = %d.id.short(), kept = %d.kept.short(), "deleting an older copy of a rewritten snapshot");
        repo.delete_snapshot(&d.manifest)?;
    }
    Ok(())
}

/// Plan and apply a prune as of `now`, alone in the repository.
pub fn prune(
    lock: &Exclusive,
    config: &Config,
    now: DateTime<Utc>,
    cancel: &Cancel,
) -> Result<PruneReport> {
    run(lock.repo(), config, now, false, cancel)
}

/// The plan of a prune as of `now`, without applying it (`--dry-run`): it
/// only reads, so it takes no lock.
pub fn dry_run(repo: &Repository, config: &Config, now: DateTime<Utc>) -> Result<PruneReport> {
    run(repo, config, now, true, &Cancel::new())
}

/// Plan and (unless `dry_run`) apply a prune as of `now`.
fn run(
    repo: &Repository,
    config: &Config,
    now: DateTime<Utc>,
    dry_run: bool,
    cancel: &Cancel,
) -> Result<PruneReport> {
    let contracts = config.contracts();
    let mut listing = load_all(repo)?;
    let (readable, duplicates) = split_duplicates(std::mem::take(&mut listing.readable));
    listing.readable = readable;
    let mut problems = listing.problems();
    problems.extend(repo.unreadable_index_files()?);
    let unreadable_own: Vec<&SnapshotRef> = listing
        .unreadable
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.host == config.host)
        .collect();
    let own: Vec<SnapshotRef> = listing
        .readable
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.host == config.host)
        .chain(unreadable_own.iter().copied())
        .cloned()
        .collect();
    let mut decisions = decide(config, &own);
    hold_damaged_groups(&mut decisions, &unreadable_own);
    let all = listing.readable;
    let removed: std::collections::HashSet<ObjectId> =
        decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
    let kept: Vec<(SnapshotRef, Snapshot)> = all
        .into_iter()
        .filter(|(r, _)| !removed.contains(&r.id))
        .collect();
    let mut expired = Vec::new();
    for (_, snap) in kept.iter().filter(|(_, s)| is_voice(config, s)) {
        expired_in(repo, snap, &contracts, now, &mut expired)?;
    }
    expired.sort();
    expired.dedup_by(|a, b| a.source == b.source && a.path == b.path);
    let log_keys = repo.expired_activity(now, config.activity_log_days)?;
    let mut report = PruneReport {
        dry_run,
        now,
        snapshots: decisions,
        snapshots_removed: removed.len(),
        duplicates,
        log_entries_deleted: log_keys.len(),
        sweep_held_back: sweep_hold(&problems),
        problems,
        ..PruneReport::default()
    };

    let drops =
        |snap: &Snapshot, f: &FileEntry| is_voice(config, snap) && contracts.expired(f, now);
    // The grace period of unindexed packs protects operations running now:
    // it is measured on the wall clock, never on `--now`.
    let wall = Utc::now();
    if dry_run && report.sweep_held_back.is_some() {
        report.expired_items = expired;
        return Ok(report);
    }
    if dry_run {
        let plan = sweep::analyze(repo, &kept, &mut |s, f| drops(s, f), wall)?;
        report.packs_deleted = plan.doomed.len();
        report.packs_repacked = plan.repack.len();
        report.bytes_freed = plan.bytes_freed;
        report.expired_items = expired;
        return Ok(report);
    }

    for (r, _) in own
        .iter()
        .map(|r| (r, ()))
        .filter(|(r, _)| removed.contains(&r.id))
    {
        repo.delete_snapshot(r)?;
    }
    delete_duplicates(repo, &report.duplicates)?;
    crate::failpoint::hit("prune-after-forget");
    cancel.check()?;
    if !expired.is_empty() {
        let writer = BlobWriter::new(repo, repo.load_index_tolerant()?.0);
        let no_moves = Moved::new();
        let mut rewriter = Rewriter::new(repo, &writer, &no_moves, |f| !contracts.expired(f, now));
        let mut replacements = Vec::new();
        for (r, snap) in kept.iter().filter(|(_, s)| is_voice(config, s)) {
            let new = rewriter.rewrite(&snap.tree)?;
            if new.dropped > 0 {
                replacements.push((r, snap, new));
            }
        }
        let packs = writer.finish()?;
        if !packs.is_empty() {
            repo.write_index_file(packs)?;
        }
        crate::failpoint::hit("prune-before-voice-manifests");
        for (r, snap, new) in &replacements {
            replace_manifest(repo, r, snap, new)?;
            crate::failpoint::hit("prune-after-one-voice-manifest");
        }
        report.snapshots_rewritten = replacements.len();
    }
    report.expired_items = expired;
    let remaining = load_all(repo)?;
    crate::failpoint::hit("prune-before-sweep");
    cancel.check()?;
    // Repacking rewrites trees, which leaves the old tree blobs unreferenced:
    // sweep again until nothing is left to collect (twice is usually enough).
    // Held back (no pack deleted or repacked) while any manifest or index
    // file is unreadable: it may reference or describe any pack.
    let mut remaining = remaining;
    for _ in 0..MAX_SWEEPS {
        if report.sweep_held_back.is_some() {
            break;
        }
        if let Some(why) = sweep_hold(&remaining.problems()) {
            report.problems.extend(remaining.problems());
            report.sweep_held_back = Some(why);
            break;
        }
        let plan = sweep::analyze(repo, &remaining.readable, &mut |_, _| false, wall)?;
        if plan.doomed.is_empty() && plan.repack.is_empty() {
            break;
        }
        let SweepReport {
            packs_deleted,
            packs_repacked,
            bytes_freed,
            ..
        } = sweep::apply(repo, plan, &remaining.readable)?;
        report.packs_deleted += packs_deleted;
        report.packs_repacked += packs_repacked;
        report.bytes_freed += bytes_freed;
        remaining = load_all(repo)?;
        cancel.check()?;
    }
    crate::failpoint::hit("prune-before-log-cleanup");
    for entry in &log_keys {
        repo.delete_activity(entry)?;
    }
    Ok(report)
}
