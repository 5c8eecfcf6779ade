//! The prune plan: everything one prune will do, as one value.
//!
//! [`plan`] reads the repository and decides; it changes nothing. `prune
//! --dry-run` prints the plan; the real run computes it the same way (same
//! function, same inputs, under the exclusive lock) and then executes it
//! step by step ([`crate::ops::prune`]), never deciding anything new. The
//! plan holds:
//!
//! * **forget**: this host's snapshots that retention drops, with the
//!   decision's reasons. Snapshots are grouped by source and decided by the
//!   source's policy ([`crate::retention`]); a source no longer configured
//!   keeps all its snapshots (a config mistake must not delete backups); a
//!   source with a manifest that cannot be read forgets nothing.
//! * **delete_duplicates**: older copies of one logical snapshot (a prune
//!   killed between writing a rewrite and deleting the original leaves
//!   both); retention decides on the newest ([`crate::snapshot::split_duplicates`]).
//! * **rewrite**: this host's kept voice snapshots that lose recordings whose
//!   backup copy expired at `now` under the contracts in force
//!   ([`crate::voice`]), with the items each loses.
//! * **repoint**: other kept snapshots that get a new manifest only because
//!   blobs they reference move out of repacked packs.
//! * **erase**: the snapshots of every host that hold files or directories
//!   of an erased tenant (`erased_tenants`, [`crate::ops::erase`]): rewritten
//!   without them (their trees are never read: the key is gone), or deleted
//!   when the whole snapshot is the tenant's (`whole`). Their packs are then
//!   unreferenced and swept like any other.
//! * **log_entries**: activity-log entries older than `activity_log_days`;
//!   restore and erase entries only after `audit_log_days`
//!   ([`crate::activity::AUDIT_OPERATIONS`]).
//! * **sweep** ([`crate::ops::sweep`]): the packs deleted and repacked, each
//!   with its reason and bytes, decided over what the repository references
//!   **after** the forgets and rewrites above (computed in memory,
//!   [`crate::ops::references`]), so the plan is exact: the real run deletes
//!   and repacks exactly these packs and leaves nothing behind for the next
//!   prune.
//! * **problems** and **sweep_held_back**: while any manifest or index file
//!   cannot be read, the sweep is empty (either might reference or describe
//!   any pack), and the plan says why.
//!
//! Every list is in a deterministic order, so the same repository gives the
//! same plan, byte for byte, in a dry run and in the real run.

use std::collections::{BTreeMap, HashSet};

use crate::ops::erase::{for_each_file_but, is_erased};
use crate::repo::rotate::{erased_tenants, ErasedTenant};
use crate::tree::DirEntry;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, SourceClass};
use crate::error::Result;
use crate::id::ObjectId;
use crate::ops::references::{Drops, TreeGraph};
use crate::ops::sweep::{self, SweepPlan};
use crate::problems::Problem;
use crate::repo::log::LogEntryRef;
use crate::repo::{LoadedSnapshot, Repository};
use crate::retention::{apply, Decision};
use crate::snapshot::{host_tag, source_tag, split_duplicates, Duplicate, Snapshot, SnapshotRef};
use crate::tree::FileEntry;
use crate::voice::{recorded_at, Contracts};

/// One snapshot's retention decision.
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

/// A voice snapshot rewritten without its expired recordings.
#[derive(Serialize, Debug, Clone)]
pub struct VoiceRewrite {
    pub id: ObjectId,
    pub source: String,
    pub time: DateTime<Utc>,
    pub expired: Vec<ExpiredItem>,
}

/// A snapshot whose trees are rewritten to follow blobs that move.
#[derive(Serialize, Debug, Clone)]
pub struct Repoint {
    pub id: ObjectId,
    pub source: String,
    pub time: DateTime<Utc>,
}

/// A snapshot that loses an erased tenant's items.
#[derive(Serialize, Debug, Clone)]
pub struct ErasedFrom {
    pub id: ObjectId,
    pub host: String,
    pub source: String,
    pub time: DateTime<Utc>,
    /// The whole snapshot is the tenant's: it is deleted.
    pub whole: bool,
}

/// Everything one prune does (see the module docs).
#[derive(Serialize, Debug, Clone, Default)]
pub struct PrunePlan {
    /// Every retention decision of this host's snapshots, kept ones too
    /// (the report prints them; the plan's action is `forget`).
    #[serde(skip)]
    pub decisions: Vec<SnapshotDecision>,
    pub forget: Vec<SnapshotDecision>,
    pub delete_duplicates: Vec<Duplicate>,
    pub rewrite: Vec<VoiceRewrite>,
    pub repoint: Vec<Repoint>,
    /// Tenants erased (`offsite erase --tenant`), and the snapshots they leave.
    pub erased_tenants: BTreeMap<String, ErasedTenant>,
    pub erase: Vec<ErasedFrom>,
    pub log_entries: Vec<String>,
    pub sweep: SweepPlan,
    /// Manifests and index files that cannot be read (see [`crate::problems`]).
    pub problems: Vec<Problem>,
    /// Why no pack is deleted or repacked, when the sweep is held back.
    pub sweep_held_back: Option<String>,
    /// What execution needs beyond what is printed.
    #[serde(skip)]
    pub(crate) steps: Steps,
}

/// The objects the plan acts on, for [`crate::ops::prune`] to execute.
#[derive(Debug, Clone, Default)]
pub(crate) struct Steps {
    /// The snapshots to forget.
    pub forget: Vec<SnapshotRef>,
    /// The activity-log entries to delete.
    pub log: Vec<LogEntryRef>,
    /// Every snapshot that stays (all hosts), with its manifest.
    pub kept: Vec<LoadedSnapshot>,
    /// Snapshots wholly of an erased tenant (all hosts): deleted.
    pub erased_whole: Vec<SnapshotRef>,
}

impl PrunePlan {
    /// Expired items across all rewrites, one per (source, path).
    pub fn expired_items(&self) -> Vec<ExpiredItem> {
        let mut items: Vec<ExpiredItem> = self
            .rewrite
            .iter()
            .flat_map(|r| r.expired.clone())
            .collect();
        items.sort();
        items.dedup_by(|a, b| a.source == b.source && a.path == b.path);
        items
    }

    /// Is `id` a snapshot the plan gives a new manifest?
    pub fn rewrites(&self, id: &ObjectId) -> bool {
        self.rewrite.iter().any(|r| r.id == *id)
            || self.repoint.iter().any(|r| r.id == *id)
            || self.erase.iter().any(|r| r.id == *id && !r.whole)
    }
}

/// One of this host's snapshots with the name of its source.
type Own<'a> = (String, &'a SnapshotRef);

/// Decide per group of this host's snapshots.
fn decide(config: &Config, refs: &[Own]) -> Vec<SnapshotDecision> {
    let mut groups: BTreeMap<&str, Vec<(ObjectId, DateTime<Utc>)>> = BTreeMap::new();
    for (source, r) in refs {
        groups
            .entry(source.as_str())
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

/// The expired items of one snapshot, with their paths, sorted. Items of
/// erased tenants are not listed (they go anyway) and their directories
/// not read.
fn expired_in(
    repo: &Repository,
    snap: &Snapshot,
    contracts: &Contracts,
    now: DateTime<Utc>,
    erased: &BTreeMap<String, ErasedTenant>,
) -> Result<Vec<ExpiredItem>> {
    let mut out = Vec::new();
    let leave = |_: &str, d: &DirEntry| is_erased(erased, d.tenant.as_ref());
    for_each_file_but(repo, &snap.tree, &leave, &mut |path, f| {
        if !is_erased(erased, f.tenant.as_ref()) && contracts.expired(&f, now) {
            out.push(ExpiredItem {
                source: snap.source.clone(),
                path,
                tenant: f.tenant.clone(),
                recorded_at: recorded_at(&f),
                expires_at: contracts.expires_at(&f),
            });
        }
    })?;
    out.sort();
    Ok(out)
}

/// A source with a manifest that cannot be read forgets nothing: retention
/// cannot be judged over snapshots it cannot see.
fn hold_damaged_groups(decisions: &mut [SnapshotDecision], unreadable: &[Own]) {
    for d in decisions.iter_mut() {
        if unreadable.iter().any(|(_, r)| r.id == d.id) {
            d.keep = true;
            d.reasons = vec!["manifest unreadable".into()];
        } else if !d.keep && unreadable.iter().any(|(source, _)| *source == d.source) {
            d.keep = true;
            d.reasons = vec!["held: a manifest of this source is unreadable".into()];
        }
    }
}

/// Why the sweep must not run: a pack may be referenced by a manifest that
/// cannot be read, or described only by an index file that cannot be read.
pub fn sweep_hold(problems: &[Problem]) -> Option<String> {
    let first = problems.first()?;
    Some(format!(
        "{} unreadable object(s) (first {}): no pack is deleted or repacked until they are repaired or removed (`offsite check` names them)",
        problems.len(),
        first.object
    ))
}

/// This host's snapshots whose manifests read, and those whose manifests do
/// not: known only by the tags of their key, so named by the configured
/// source with that tag (or, for a source no longer configured, by the tag).
fn own_snapshots<'a>(
    repo: &Repository,
    config: &Config,
    readable: &'a [LoadedSnapshot],
    unreadable: &'a [(SnapshotRef, Problem)],
) -> (Vec<Own<'a>>, Vec<Own<'a>>) {
    let meta = repo.keys().meta();
    let host = host_tag(meta, &config.host);
    let unreadable: Vec<Own> = unreadable
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.host_tag == host)
        .map(|r| {
            let name = config
                .sources
                .iter()
                .find(|s| source_tag(meta, &config.host, &s.name) == r.source_tag)
                .map_or_else(|| format!("(source {})", r.source_tag), |s| s.name.clone());
            (name, r)
        })
        .collect();
    let own = readable
        .iter()
        .filter(|(_, s)| s.host == config.host)
        .map(|(r, s)| (s.source.clone(), r))
        .chain(unreadable.iter().cloned())
        .collect();
    (own, unreadable)
}

/// Is `snap` one of this host's voice snapshots (the ones expiry rewrites)?
pub fn is_voice(config: &Config, snap: &Snapshot) -> bool {
    snap.host == config.host && snap.class == SourceClass::Voice
}

/// The plan of a prune as of `now` (retention and expiry); `wall` is the
/// real time, for the grace period of unindexed packs.
pub fn plan(
    repo: &Repository,
    config: &Config,
    now: DateTime<Utc>,
    wall: DateTime<Utc>,
) -> Result<PrunePlan> {
    let contracts = config.contracts();
    let listing = repo.load_snapshots_tolerant(None, None)?;
    let mut runs = sweep::FinishedRuns::default();
    let listed_refs = listing.readable.iter().map(|(r, _)| r);
    for r in listed_refs.chain(listing.unreadable.iter().map(|(r, _)| r)) {
        if let Some(stem) = crate::repo::layout::snapshot_key_stem(&r.key) {
            runs.add_manifest(stem);
        }
    }
    let mut problems = listing.problems();
    problems.extend(repo.unreadable_index_files()?);
    let (readable, duplicates) = split_duplicates(listing.readable);
    let (own, unreadable_own) = own_snapshots(repo, config, &readable, &listing.unreadable);
    let mut decisions = decide(config, &own);
    hold_damaged_groups(&mut decisions, &unreadable_own);
    let removed: HashSet<ObjectId> = decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
    let forget = own
        .iter()
        .filter(|(_, r)| removed.contains(&r.id))
        .map(|(_, r)| (*r).clone())
        .collect();
    let erased = erased_tenants(repo)?;
    let whole = |s: &Snapshot| is_erased(&erased, s.tree_tenant.as_ref());
    let (erased_whole, kept): (Vec<LoadedSnapshot>, Vec<LoadedSnapshot>) = readable
        .into_iter()
        .filter(|(r, _)| !removed.contains(&r.id))
        .partition(|(_, s)| whole(s));
    let mut erase: Vec<ErasedFrom> = erased_whole
        .iter()
        .map(|(r, snap)| ErasedFrom {
            id: r.id,
            host: snap.host.clone(),
            source: snap.source.clone(),
            time: r.time,
            whole: true,
        })
        .collect();
    let mut rewrite = Vec::new();
    for (r, snap) in kept.iter().filter(|(_, s)| is_voice(config, s)) {
        let expired = expired_in(repo, snap, &contracts, now, &erased)?;
        if !expired.is_empty() {
            rewrite.push(VoiceRewrite {
                id: r.id,
                source: snap.source.clone(),
                time: r.time,
                expired,
            });
        }
    }
    rewrite.sort_by_key(|r| r.id);
    let mut log = repo.expired_activity(now, config.activity_log_days, config.audit_log_days)?;
    log.sort_by(|a, b| a.name().cmp(b.name()));
    let log_entries = log.iter().map(|e| e.name().to_string()).collect();
    let sweep_held_back = sweep_hold(&problems);
    let mut plan = PrunePlan {
        forget: decisions.iter().filter(|d| !d.keep).cloned().collect(),
        decisions,
        delete_duplicates: duplicates,
        rewrite,
        log_entries,
        problems,
        ..PrunePlan::default()
    };
    if sweep_held_back.is_none() {
        let roots: Vec<_> = kept
            .iter()
            .map(|(_, s)| (s.tree.clone(), is_voice(config, s)))
            .collect();
        let expired = |f: &FileEntry| contracts.expired(f, now);
        let drops = Drops {
            expired: &expired,
            erased: &erased,
        };
        let graph = TreeGraph::load(repo, &roots, &drops)?;
        runs.erased_tenants = erased.keys().cloned().collect();
        let (sweep, outcome) = sweep::plan(repo, &graph, wall, &runs)?;
        for (i, (r, snap)) in kept.iter().enumerate() {
            if graph.erased_below(i) {
                erase.push(ErasedFrom {
                    id: r.id,
                    host: snap.host.clone(),
                    source: snap.source.clone(),
                    time: r.time,
                    whole: false,
                });
            }
            if outcome.rewritten[i] && !graph.drops_below(i) {
                plan.repoint.push(Repoint {
                    id: r.id,
                    source: snap.source.clone(),
                    time: r.time,
                });
            }
        }
        plan.repoint.sort_by_key(|r| r.id);
        plan.sweep = sweep;
    }
    erase.sort_by_key(|e| e.id);
    plan.erase = erase;
    plan.erased_tenants = erased;
    plan.sweep_held_back = sweep_held_back;
    plan.steps = Steps {
        forget,
        kept,
        log,
        erased_whole: erased_whole.into_iter().map(|(r, _)| r).collect(),
    };
    Ok(plan)
}
