//! The Object Lock step of prune: extend the locks of promoted snapshots,
//! then remove the old versions whose locks have ended.
//!
//! After prune has executed its plan, retention is applied again to this
//! host's snapshots as they now are (rewritten manifests included). Every
//! kept snapshot has its manifest and every pack it references locked until
//! the later of its creation lock and what its rules now guarantee
//! ([`crate::object_lock::snapshot_until`]: weekly, monthly, yearly once the
//! period has ended, `keep_within`); a voice snapshot only its manifest and
//! tree packs (its recordings keep the lock of their expiry day). Packs
//! shared by several snapshots get the latest date, so a pack an older
//! snapshot wrote is held as long as the newest that reuses it. Each object
//! costs one HEAD per prune, and a PutObjectRetention only when its lock ends
//! earlier, so a pack gets at most one retention request per promotion
//! (`offsite_s3_requests_total{op="retention"}`).
//!
//! Repack output and rewritten manifests are written unlocked and locked
//! here, in the same prune, for exactly as long as their snapshots need.
//!
//! Then the version sweep: a delete on a versioned bucket only adds a delete
//! marker, so prune deletes, by version id, every old version whose lock has
//! ended and the markers of keys with no version left; the bucket shrinks
//! as locks end. A version still locked is counted and left for the next
//! prune.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, SourceClass};
use crate::error::Result;
use crate::id::ObjectId;
use crate::object_lock::{created_until, snapshot_until};
use crate::repo::pack::BlobRef;
use crate::repo::{LoadedSnapshot, Repository};
use crate::retention::apply;
use crate::tree::{Entry, TreeWalk};

/// What the Object Lock step did.
#[derive(Serialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct LockReport {
    /// Objects whose lock was checked for an extension.
    pub checked: u64,
    /// Objects whose lock was extended (one PutObjectRetention each).
    pub extended: u64,
    /// Old versions and delete markers deleted.
    pub versions_deleted: u64,
    /// Bytes those versions held.
    pub version_bytes_freed: u64,
    /// Old versions still locked (left for a later prune).
    pub versions_locked: u64,
}

/// Extend and sweep (see the module docs); nothing without `object_lock`.
pub fn run(repo: &Repository, config: &Config, now: DateTime<Utc>) -> Result<LockReport> {
    let mut report = LockReport::default();
    if repo.object_lock().is_none() {
        return Ok(report);
    }
    let listing = repo.load_snapshots_tolerant(Some(&config.host), None)?;
    let targets = promoted(config, &listing.readable, now);
    let mut packs: HashMap<ObjectId, DateTime<Utc>> = HashMap::new();
    let mut visited: HashSet<(ObjectId, bool)> = HashSet::new();
    for (until, (r, snap), with_data) in &targets {
        report.checked += 1;
        report.extended += u64::from(repo.extend_manifest_lock(r, *until)?);
        let mut found = HashSet::new();
        packs_below(repo, &snap.tree, *with_data, &mut visited, &mut found)?;
        for pack in found {
            packs.entry(pack).or_insert(*until);
        }
    }
    for (pack, until) in &packs {
        report.checked += 1;
        report.extended += u64::from(repo.extend_pack_lock(pack, *until)?);
    }
    let swept = repo.sweep_versions()?;
    report.versions_deleted = swept.deleted;
    report.version_bytes_freed = swept.bytes;
    report.versions_locked = swept.locked;
    Ok(report)
}

/// This host's kept snapshots with the date they must stay locked until
/// (the later of their creation lock and what retention promotes them to),
/// latest first, with whether their data packs follow (client data) or not
/// (voice). Packs an older snapshot wrote and a newer one reuses get the
/// newer one's date here.
fn promoted<'a>(
    config: &Config,
    snapshots: &'a [LoadedSnapshot],
    now: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, &'a LoadedSnapshot, bool)> {
    let mut groups: BTreeMap<&str, Vec<&LoadedSnapshot>> = BTreeMap::new();
    for loaded in snapshots {
        groups
            .entry(loaded.1.source.as_str())
            .or_default()
            .push(loaded);
    }
    let (tz, months) = (config.timezone, config.data_retention_months);
    let mut out = Vec::new();
    for (name, group) in groups {
        let Some(source) = config.sources.iter().find(|s| s.name == name) else {
            continue; // not configured: its policy is unknown, nothing to extend to
        };
        let times: Vec<(ObjectId, DateTime<Utc>)> =
            group.iter().map(|(r, _)| (r.id, r.time)).collect();
        for d in apply(&times, &source.retention, tz)
            .into_iter()
            .filter(|d| d.keep)
        {
            let promoted = snapshot_until(&d.reasons, d.time, &source.retention, tz, months, now);
            let created = created_until(d.time, &source.retention, tz, months);
            let Some(until) = promoted.max(created) else {
                continue;
            };
            if let Some(loaded) = group.iter().find(|(r, _)| r.id == d.id) {
                out.push((until, *loaded, source.class == SourceClass::ClientData));
            }
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0));
    out
}

/// The packs holding the trees below `root` and, `with_data`, the chunks
/// of its files. Trees already visited (by a snapshot with a later or equal
/// date: callers go latest first) are skipped.
fn packs_below(
    repo: &Repository,
    root: &BlobRef,
    with_data: bool,
    visited: &mut HashSet<(ObjectId, bool)>,
    found: &mut HashSet<ObjectId>,
) -> Result<()> {
    if !visited.insert((root.id, with_data)) {
        return Ok(());
    }
    found.insert(root.pack);
    let mut walk = TreeWalk::new(repo.read_tree(root)?);
    while let Some(entry) = walk.next_entry() {
        match entry {
            Entry::Dir(d) => {
                if visited.insert((d.tree.id, with_data)) {
                    found.insert(d.tree.pack);
                    walk.descend(&d, repo.read_tree(&d.tree)?)?;
                }
            }
            Entry::File(f) if with_data => found.extend(f.chunks.iter().map(|c| c.pack)),
            Entry::File(_) => {}
        }
    }
    Ok(())
}
