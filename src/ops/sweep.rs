//! The sweep: which packs a prune deletes or repacks, and the steps that do it.
//!
//! **The plan is exact.** [`plan`] decides over the blobs the repository
//! will reference once the prune's forgets and rewrites are committed
//! ([`crate::ops::references`]), not over what it references now. Repacking
//! moves blobs, which changes the trees above them, whose old blobs then drop
//! out too and may leave further packs unused; so the plan iterates to a
//! fixed point: start with no pack going, decide, assume the decided packs
//! go, decide again, until the set of packs going stops growing (it only
//! grows: a pack going only removes references). The real run then deletes
//! and repacks exactly these packs and leaves nothing for the next prune to
//! collect: the dry run is what happens.
//!
//! * a pack with no blob referenced afterwards is deleted: **unreferenced**
//!   when no kept snapshot references it even now (deleted first, before
//!   anything is written), **superseded** when only the blobs the rewrites
//!   leave behind keep it (expired recordings, replaced trees; deleted after
//!   the new manifests);
//! * a pack whose unreferenced share afterwards is above
//!   [`REPACK_THRESHOLD`] is repacked: its referenced blobs are copied into
//!   new packs, then it is deleted.
//!
//! **Grace period.** A pack that no index file lists and that is younger
//! than [`PACK_GRACE`] (by the store's last-modified time, against the wall
//! clock, never `--now`) is never deleted: it may belong to a snapshot that
//! is still running (its index and manifest come later). This is the second
//! line of defence behind the repository lock. Older unindexed packs are the
//! leftovers of crashed snapshots and are collected.
//!
//! **Resume grace.** A snapshot tags every index file it writes with the
//! stem of the manifest key it is going to write ([`IndexFile::run`]). An
//! index file whose source has no manifest as recent as the run belongs to
//! a snapshot that was interrupted (SIGTERM, a crash after a checkpoint):
//! its packs are what the next run of that source deduplicates against, so
//! a 2 TB first backup stopped at 90 % does not start again from zero
//! because a prune ran in between. Such a file is kept as it is, with its
//! packs, while it is younger than [`RESUME_GRACE`] (by the store's time on
//! the real clock), none of its packs is referenced by a kept snapshot, and
//! none belongs to an erased tenant (its ciphertext is useless to any run).
//! Once a later run of the source finished (it reused what it needed), or
//! for a snapshot that finished and was then forgotten (its source has a
//! manifest as recent: its own, or the newer ones retention keeps), the
//! rule keeps nothing.
//!
//! [`IndexFile::run`]: crate::repo::index::IndexFile::run
//!
//! The steps ([`reclaim`], [`copy_live`], [`commit`]) are called by
//! [`crate::ops::prune`] in its commit order: deletions of unreferenced packs
//! first, so a prune frees space even on a store too full to take one more
//! pack (nothing new but one index file is written before); repacked and
//! superseded packs last, after a consolidated index no longer lists them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::id::ObjectId;
use crate::ops::references::{Loc, Outcome, TreeGraph};
use crate::ops::rewrite::Moved;
use crate::repo::index::IndexedPack;
use crate::repo::layout::pack_key;
use crate::repo::pack::{decode_stored, open_blob, BlobRef};
use crate::repo::writer::BlobWriter;
use crate::repo::{ListedPack, Repository};

/// Repack a pack when more than this share of it is unreferenced.
pub const REPACK_THRESHOLD: f64 = 0.10;

/// A pack no index lists is kept at least this long after it was written.
pub const PACK_GRACE: chrono::Duration = chrono::Duration::hours(2);

/// The index files of a snapshot that never finished are kept this long
/// after they were written (see the module doc): a week of failed nights.
pub const RESUME_GRACE: chrono::Duration = chrono::Duration::days(7);

/// Why a pack is deleted.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// No kept snapshot references it: deleted before anything is written.
    Unreferenced,
    /// Only blobs the rewrites leave behind (expired recordings, replaced
    /// trees) keep it: deleted after the new manifests.
    Superseded,
}

/// Why a pack is repacked.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RepackReason {
    /// More than [`REPACK_THRESHOLD`] of it is unreferenced afterwards.
    MostlyUnused,
    /// The fixed point needs its blobs moved (a safety net: the set of packs
    /// going only grows, so this should not occur).
    Moving,
}

/// A pack the sweep deletes.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PackDeletion {
    pub pack: ObjectId,
    pub bytes: u64,
    pub reason: DeleteReason,
}

/// A pack the sweep repacks.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PackRepack {
    pub pack: ObjectId,
    pub bytes: u64,
    /// Bytes of its blobs nothing references afterwards (freed).
    pub unused_bytes: u64,
    /// Blobs copied into new packs.
    pub blobs_kept: usize,
    pub reason: RepackReason,
}

/// What the sweep will do.
#[derive(Serialize, Debug, Clone, Default)]
pub struct SweepPlan {
    /// Sorted by pack id.
    pub delete: Vec<PackDeletion>,
    /// Sorted by pack id.
    pub repack: Vec<PackRepack>,
    /// Unreferenced packs no index lists, kept for the grace period.
    pub in_grace: Vec<ObjectId>,
    /// Packs of a snapshot that never finished, kept for [`RESUME_GRACE`].
    pub kept_for_resume: Vec<ObjectId>,
    /// Their index files, left as they are.
    #[serde(skip)]
    resume_files: HashSet<ObjectId>,
    pub bytes_freed: u64,
    /// Every indexed pack at planning time.
    #[serde(skip)]
    index: HashMap<ObjectId, IndexedPack>,
    /// Blobs referenced afterwards (what repacking copies).
    #[serde(skip)]
    live: HashSet<Loc>,
}

impl SweepPlan {
    /// Does the sweep delete or repack anything?
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.repack.is_empty()
    }

    /// Every pack that goes away (deleted or repacked).
    pub fn going(&self) -> HashSet<ObjectId> {
        self.delete
            .iter()
            .map(|d| d.pack)
            .chain(self.repack.iter().map(|r| r.pack))
            .collect()
    }

    fn deleted(&self, reason: DeleteReason) -> impl Iterator<Item = ObjectId> + '_ {
        self.delete
            .iter()
            .filter(move |d| d.reason == reason)
            .map(|d| d.pack)
    }
}

/// Plan the sweep over the trees in `graph` (the kept snapshots); `wall` is
/// the real time, for the grace period. Also returns what the rewrite pass
/// does with the planned packs going.
pub fn plan(
    repo: &Repository,
    graph: &TreeGraph,
    wall: DateTime<Utc>,
    runs: &FinishedRuns,
) -> Result<(SweepPlan, Outcome)> {
    let written = repo.index_file_times()?;
    let mut index: HashMap<ObjectId, IndexedPack> = HashMap::new();
    let mut unfinished = Vec::new();
    for (file_id, file) in repo.read_all_index_files()? {
        if runs.is_unfinished(&file, written.get(&file_id), wall) {
            unfinished.push((file_id, file.packs.iter().map(|p| p.id).collect()));
        }
        for pack in file.packs {
            index.insert(pack.id, pack);
        }
    }
    let listed = repo.list_packs_with_times()?;
    let now = graph.packs_referenced_now();
    let mut going = HashSet::new();
    loop {
        let outcome = graph.outcome(&going);
        let live_in: HashSet<ObjectId> = outcome.live.keys().map(|(pack, _)| *pack).collect();
        let resume = resumable(&unfinished, &live_in, &now);
        let mut plan = classify(&listed, &index, &outcome.live, &now, &going, wall, &resume);
        let next = plan.going();
        if next.is_subset(&going) {
            plan.index = index;
            plan.live = outcome.live.keys().copied().collect();
            if !plan.kept_for_resume.is_empty() {
                tracing::info!(
                    packs = plan.kept_for_resume.len(),
                    "packs of an unfinished snapshot kept for the next run"
                );
            }
            if !plan.in_grace.is_empty() {
                tracing::info!(
                    packs = plan.in_grace.len(),
                    "unindexed packs younger than the grace period kept"
                );
            }
            return Ok((plan, outcome));
        }
        going.extend(next);
    }
}

/// What tells an index file of an unfinished snapshot
/// ([`IndexFile::run`]): per host and source (the manifest key's
/// `snapshots/<htag>/<stag>` part), the time of its newest listed manifest,
/// readable or not; and the erased tenants. A run is finished when its
/// source has a manifest at or after the run's time: its own, or a later
/// run's, which reused whatever it needed of the run's packs.
///
/// [`IndexFile::run`]: crate::repo::index::IndexFile::run
#[derive(Default)]
pub struct FinishedRuns {
    newest: HashMap<String, String>,
    pub erased_tenants: HashSet<String>,
}

/// A manifest stem split into its source part and its time stamp (fixed
/// width: [`crate::repo::layout::snapshot_stem`]).
fn split_stem(stem: &str) -> Option<(&str, &str)> {
    stem.rsplit_once('/')
}

impl FinishedRuns {
    /// Note the manifest stem of a listed snapshot.
    pub fn add_manifest(&mut self, stem: &str) {
        let Some((source, stamp)) = split_stem(stem) else {
            return;
        };
        let newest = self.newest.entry(source.to_string()).or_default();
        if stamp > newest.as_str() {
            *newest = stamp.to_string();
        }
    }

    /// Has the source of `run` a manifest at or after the run's time? Stamps
    /// of another width are not compared (toward keeping).
    fn finished(&self, run: &str) -> bool {
        let Some((source, stamp)) = split_stem(run) else {
            return false;
        };
        self.newest
            .get(source)
            .is_some_and(|newest| newest.len() == stamp.len() && newest.as_str() >= stamp)
    }

    /// Was `file` written by a snapshot whose source has no manifest as
    /// recent, less than [`RESUME_GRACE`] before `wall` (a file the listing
    /// did not date, or dated in the future, is young), with no pack of an
    /// erased tenant?
    fn is_unfinished(
        &self,
        file: &crate::repo::index::IndexFile,
        written: Option<&DateTime<Utc>>,
        wall: DateTime<Utc>,
    ) -> bool {
        let Some(run) = &file.run else {
            return false;
        };
        let young = written.is_none_or(|t| wall.signed_duration_since(*t) < RESUME_GRACE);
        let erased = |p: &IndexedPack| {
            p.tenant
                .as_ref()
                .is_some_and(|t| self.erased_tenants.contains(t))
        };
        young && !self.finished(run) && !file.packs.iter().any(erased)
    }
}

/// The index files (and their packs) kept for the resume grace: those of an
/// unfinished snapshot none of whose packs a kept snapshot references.
struct Resume {
    files: HashSet<ObjectId>,
    packs: HashSet<ObjectId>,
}

fn resumable(
    unfinished: &[(ObjectId, Vec<ObjectId>)],
    live_in: &HashSet<ObjectId>,
    now: &HashSet<ObjectId>,
) -> Resume {
    let mut resume = Resume {
        files: HashSet::new(),
        packs: HashSet::new(),
    };
    for (file, packs) in unfinished {
        if packs
            .iter()
            .all(|p| !live_in.contains(p) && !now.contains(p))
        {
            resume.files.insert(*file);
            resume.packs.extend(packs.iter().copied());
        }
    }
    resume
}

/// Decide per listed pack, given the blobs referenced afterwards (`live`),
/// the packs referenced now, the packs assumed `going` and those kept for
/// the next run (`resume`).
fn classify(
    listed: &[ListedPack],
    index: &HashMap<ObjectId, IndexedPack>,
    live: &HashMap<Loc, u32>,
    now: &HashSet<ObjectId>,
    going: &HashSet<ObjectId>,
    wall: DateTime<Utc>,
    resume: &Resume,
) -> SweepPlan {
    let mut live_in: HashSet<ObjectId> = HashSet::new();
    live_in.extend(live.keys().map(|(pack, _)| *pack));
    let mut plan = SweepPlan {
        resume_files: resume.files.clone(),
        ..SweepPlan::default()
    };
    for &ListedPack { id, size, modified } in listed {
        if resume.packs.contains(&id) {
            plan.kept_for_resume.push(id);
            continue;
        }
        if !live_in.contains(&id) {
            // Saturates toward keeping: a time in the future is young.
            if !index.contains_key(&id) && wall.signed_duration_since(modified) < PACK_GRACE {
                plan.in_grace.push(id);
                continue;
            }
            let reason = if now.contains(&id) {
                DeleteReason::Superseded
            } else {
                DeleteReason::Unreferenced
            };
            plan.delete.push(PackDeletion {
                pack: id,
                bytes: size,
                reason,
            });
            plan.bytes_freed = plan.bytes_freed.saturating_add(size);
            continue;
        }
        let blobs = index
            .get(&id)
            .map(|p| p.blobs.as_slice())
            .unwrap_or_default();
        let (kept, unused): (Vec<_>, Vec<_>) =
            blobs.iter().partition(|b| live.contains_key(&(id, b.id)));
        let unused: u64 = unused.iter().map(|b| u64::from(b.length)).sum();
        let reason = if unused as f64 > REPACK_THRESHOLD * size as f64 {
            RepackReason::MostlyUnused
        } else if going.contains(&id) {
            RepackReason::Moving
        } else {
            continue;
        };
        plan.repack.push(PackRepack {
            pack: id,
            bytes: size,
            unused_bytes: unused,
            blobs_kept: kept.len(),
            reason,
        });
        plan.bytes_freed = plan.bytes_freed.saturating_add(unused);
    }
    plan.delete.sort_by_key(|d| d.pack);
    plan.repack.sort_by_key(|r| r.pack);
    plan.in_grace.sort();
    plan.kept_for_resume.sort();
    plan
}

/// Write the consolidated index of `surviving` packs, in files of at most
/// [`INDEX_FILE_PACKS`] packs (so a snapshot reading them back holds one
/// small file at a time), and delete every other index file.
fn consolidate(
    repo: &Repository,
    plan: &SweepPlan,
    mut surviving: Vec<IndexedPack>,
    point: &str,
) -> Result<()> {
    // The files kept for the resume grace stay as they are, their packs in them.
    surviving.retain(|p| plan.kept_for_resume.binary_search(&p.id).is_err());
    surviving.sort_by_key(|p| p.id);
    let mut consolidated = plan.resume_files.clone();
    while !surviving.is_empty() {
        let rest = surviving.split_off(surviving.len().min(INDEX_FILE_PACKS));
        consolidated.insert(repo.write_index_file(std::mem::replace(&mut surviving, rest))?);
    }
    crate::failpoint::hit(point);
    for id in repo.list_index_files()? {
        if !consolidated.contains(&id) {
            repo.delete_index_file(&id)?;
        }
    }
    Ok(())
}

/// Packs per consolidated index file: 256 packs of 8 KiB chunks are ~250 000
/// blobs, ~20 MiB to hold while one file is read.
const INDEX_FILE_PACKS: usize = 256;

fn delete_packs(repo: &Repository, packs: &[ObjectId], mid_point: &str) -> Result<()> {
    for (i, id) in packs.iter().enumerate() {
        repo.delete_pack(id)?;
        if i == packs.len() / 2 {
            crate::failpoint::hit(mid_point);
        }
    }
    Ok(())
}

/// Step one: the index without the unreferenced packs, then delete them.
/// Nothing a kept snapshot references is touched; one index file is written.
pub fn reclaim(repo: &Repository, plan: &SweepPlan) -> Result<usize> {
    let doomed: Vec<ObjectId> = plan.deleted(DeleteReason::Unreferenced).collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let surviving = plan
        .index
        .values()
        .filter(|p| !doomed.contains(&p.id))
        .cloned()
        .collect();
    consolidate(repo, plan, surviving, "prune-reclaim-after-index")?;
    crate::failpoint::hit("prune-reclaim-before-pack-deletion");
    delete_packs(repo, &doomed, "prune-reclaim-mid-pack-deletion")?;
    Ok(doomed.len())
}

/// Step two: copy the blobs referenced afterwards out of the packs to
/// repack into `writer`, each verified first (a read error stops the prune
/// before anything is deleted because of it) and sealed again into a new
/// pack of the same tenant (a blob compressed with its old pack's
/// dictionary is compressed again, see [`BlobWriter::store_copy`]).
/// Returns where each went.
pub fn copy_live(repo: &Repository, plan: &SweepPlan, writer: &BlobWriter) -> Result<Moved> {
    let mut moved: Moved = HashMap::new();
    for r in &plan.repack {
        let key = pack_key(&r.pack);
        let bytes = repo.read_pack(&r.pack)?;
        let Some(pack) = plan.index.get(&r.pack) else {
            continue;
        };
        let tenant: Option<std::sync::Arc<str>> = pack.tenant.as_deref().map(Into::into);
        let mut keys = None;
        for blob in &pack.blobs {
            if !plan.live.contains(&(r.pack, blob.id)) {
                continue;
            }
            let (data_key, seal) = match &keys {
                Some(k) => k,
                None => {
                    let k = repo.data_key(pack.tenant.as_deref())?;
                    let seal = k.pack_key(&r.pack);
                    keys.insert((k, seal))
                }
            };
            let location = BlobRef::new(r.pack, blob, tenant.as_ref());
            let sealed = bytes
                .get(location.offset as usize..location.range().end as usize)
                .ok_or_else(|| {
                    crate::Error::corrupt(&key, format!("blob {} lies beyond the pack", blob.id))
                })?;
            let stored = open_blob(sealed, &location, seal)?;
            let dictionary = repo.pack_dictionary(&location, seal, Some(&bytes))?;
            let raw = decode_stored(stored.clone(), &location, data_key, dictionary.as_ref())?;
            moved.insert(
                (r.pack, blob.id),
                writer.store_copy(blob.kind, &location, Some(&stored), &raw)?,
            );
        }
    }
    Ok(moved)
}

/// Last step, after every new manifest is written: one consolidated index of
/// the surviving packs and the `new` ones, then the repacked and superseded
/// packs are deleted (nothing listed reaches them any more).
pub fn commit(repo: &Repository, plan: &SweepPlan, new: Vec<IndexedPack>) -> Result<()> {
    let going = plan.going();
    crate::failpoint::hit("sweep-before-index");
    let mut surviving: Vec<IndexedPack> = plan
        .index
        .values()
        .filter(|p| !going.contains(&p.id))
        .cloned()
        .collect();
    surviving.extend(new);
    consolidate(repo, plan, surviving, "sweep-after-new-index")?;
    crate::failpoint::hit("sweep-before-pack-deletion");
    let last: Vec<ObjectId> = plan
        .deleted(DeleteReason::Superseded)
        .chain(plan.repack.iter().map(|r| r.pack))
        .collect();
    delete_packs(repo, &last, "sweep-mid-pack-deletion")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_finished_by_a_manifest_of_its_source_as_recent() {
        let mut runs = FinishedRuns::default();
        runs.add_manifest("snapshots/h1/s1/20261120T020000.000Z");
        runs.add_manifest("snapshots/h1/s1/20261118T020000.000Z");
        let finished = |run: &str| runs.finished(run);
        assert!(finished("snapshots/h1/s1/20261120T020000.000Z"), "its own");
        assert!(
            finished("snapshots/h1/s1/20261119T020000.000Z"),
            "a later run's"
        );
        assert!(
            !finished("snapshots/h1/s1/20261121T020000.000Z"),
            "only older ones"
        );
        assert!(
            !finished("snapshots/h1/s2/20261101T020000.000Z"),
            "another source"
        );
        assert!(
            !finished("snapshots/h2/s1/20261101T020000.000Z"),
            "another host"
        );
        assert!(
            !finished("snapshots/h1/s1/+120261101T020000.000Z"),
            "another width"
        );
        assert!(!finished("no-slash"));
    }
}
