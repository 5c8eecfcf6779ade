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
//! Rewritten trees and manifests are written unlocked and locked here, in
//! the same prune, for exactly as long as their snapshots need. Repack
//! copies are written locked as the packs they come from
//! ([`crate::ops::sweep::copy_live`]: voice data keeps its expiry day) and
//! extended here like any pack.
//!
//! Then the version sweep: a delete on a versioned bucket only adds a delete
//! marker, so prune deletes, by version id, every old version whose lock has
//! ended and the markers of keys with no version left; the bucket shrinks
//! as locks end. A version still locked is counted and left for the next
//! prune.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, SourceClass};
use crate::error::Result;
use crate::id::ObjectId;
use crate::object_lock::{created_until, expiry_day, snapshot_until, voice_until};
use crate::repo::pack::BlobRef;
use crate::repo::TreeCache;
use crate::repo::{LoadedSnapshot, Repository};
use crate::retention::apply;
use crate::snapshot::SnapshotRef;
use crate::tree::{check_depth, read, Entry};

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

/// The dates the kept snapshots' manifests and packs must stay locked
/// until (simulated time).
struct Wanted {
    manifests: Vec<(SnapshotRef, DateTime<Utc>)>,
    packs: HashMap<ObjectId, DateTime<Utc>>,
    /// Voice snapshots, for [`audit`].
    voice: Vec<LoadedSnapshot>,
}

fn wanted(repo: &Repository, config: &Config, now: DateTime<Utc>) -> Result<Wanted> {
    let listing = repo.load_snapshots_tolerant(Some(&config.host), None)?;
    let targets = promoted(config, &listing.readable, now);
    let mut packs: HashMap<ObjectId, DateTime<Utc>> = HashMap::new();
    let mut visited: HashSet<(ObjectId, bool)> = HashSet::new();
    let mut manifests = Vec::new();
    for (until, (r, snap), with_data) in &targets {
        manifests.push((r.clone(), *until));
        let mut found = HashSet::new();
        packs_below(repo, &snap.tree, *with_data, &mut visited, &mut found)?;
        for pack in found {
            packs.entry(pack).or_insert(*until);
        }
    }
    let voice = targets
        .iter()
        .filter(|(_, _, with_data)| !with_data)
        .map(|(_, loaded, _)| (*loaded).clone())
        .collect();
    Ok(Wanted {
        manifests,
        packs,
        voice,
    })
}

/// Extend and sweep (see the module docs); nothing without `object_lock`.
pub fn run(repo: &Repository, config: &Config, now: DateTime<Utc>) -> Result<LockReport> {
    let mut report = LockReport::default();
    if repo.object_lock().is_none() {
        return Ok(report);
    }
    let wanted = wanted(repo, config, now)?;
    for (r, until) in &wanted.manifests {
        report.checked += 1;
        report.extended += u64::from(repo.extend_manifest_lock(r, *until)?);
    }
    for (pack, until) in &wanted.packs {
        report.checked += 1;
        report.extended += u64::from(repo.extend_pack_lock(pack, *until)?);
    }
    let swept = repo.sweep_versions()?;
    report.versions_deleted = swept.deleted;
    report.version_bytes_freed = swept.bytes;
    report.versions_locked = swept.locked;
    Ok(report)
}

/// For `check`: objects locked for less than their promise (a manifest or
/// pack of a kept snapshot, a voice pack short of its recordings' expiry
/// day) and voice packs locked past the expiry of a recording they hold.
/// One line each; empty without `object_lock`. Reads one HEAD per object.
pub fn audit(repo: &Repository, config: &Config, now: DateTime<Utc>) -> Result<Vec<String>> {
    let Some(lock) = repo.object_lock().cloned() else {
        return Ok(Vec::new());
    };
    let wanted = wanted(repo, config, now)?;
    let mut findings = Vec::new();
    let real_now = SystemClock.now();
    let short = |what: String, have: Option<DateTime<Utc>>, want: DateTime<Utc>| {
        let want = lock.to_real(want);
        (want > real_now && have.is_none_or(|h| h < want)).then(|| {
            let have =
                have.map_or_else(|| "not locked".to_string(), |h| format!("locked until {h}"));
            format!("{what} is {have}, shorter than its promise ({want})")
        })
    };
    for (r, until) in &wanted.manifests {
        findings.extend(short(
            format!("manifest {}", r.key),
            repo.manifest_retain_until(r)?,
            *until,
        ));
    }
    for (pack, until) in &wanted.packs {
        findings.extend(short(
            format!("pack {}", pack.short()),
            repo.pack_retain_until(pack)?,
            *until,
        ));
    }
    let contracts = config.contracts();
    let mut expiries: HashMap<ObjectId, (DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
    let mut chunks = Vec::new();
    for (_, snap) in &wanted.voice {
        repo.for_each_file(&snap.tree, &mut |_, f| {
            let expires = contracts.expires_at(&f);
            chunks.push((expires, f.chunks));
        })?;
        for (expires, list) in chunks.drain(..) {
            for c in repo.all_chunks(&list)? {
                let e = expiries.entry(c.pack).or_insert((expires, expires));
                *e = (e.0.min(expires), e.1.max(expires));
            }
        }
    }
    for (pack, (first, last)) in &expiries {
        let have = repo.pack_retain_until(pack)?;
        findings.extend(short(
            format!("voice pack {}", pack.short()),
            have,
            voice_until(expiry_day(*last)),
        ));
        if let Some(h) = have.filter(|h| *h > lock.to_real(*first)) {
            findings.push(format!(
                "voice pack {} is locked until {h}, past the expiry of a recording it holds ({})",
                pack.short(),
                lock.to_real(*first)
            ));
        }
    }
    findings.sort();
    Ok(findings)
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
    out.sort_by_key(|t| std::cmp::Reverse(t.0));
    out
}

/// The packs holding the directory pages and the chunk lists below `root`
/// and, `with_data`, the chunks of its files. Directories already visited
/// (by a snapshot with a later or equal date: callers go latest first) are
/// skipped.
fn packs_below(
    repo: &Repository,
    root: &BlobRef,
    with_data: bool,
    visited: &mut HashSet<(ObjectId, bool)>,
    found: &mut HashSet<ObjectId>,
) -> Result<()> {
    let mut cache = TreeCache::new(repo);
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if !visited.insert((dir.id, with_data)) {
            continue;
        }
        check_depth(depth, &dir)?;
        let (tree, pages) = cache.read_tree_pages(&dir)?;
        found.extend(pages.iter().map(|p| p.pack));
        for entry in tree.entries {
            match entry {
                Entry::Dir(d) => stack.push((d.tree, depth + 1)),
                Entry::File(f) if with_data => {
                    let blobs = read::file_blobs(&mut cache, &f.chunks)?;
                    found.extend(blobs.iter().map(|c| c.pack));
                }
                // Without the data (voice: locked to its expiry day when
                // written), a big file's chunk list is still metadata of this
                // snapshot, in tree packs, and follows its promotions.
                Entry::File(f) => {
                    let lists = read::list_blobs(&mut cache, &f.chunks)?;
                    found.extend(lists.iter().map(|c| c.pack));
                }
            }
        }
    }
    Ok(())
}
