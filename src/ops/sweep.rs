//! The sweep: after snapshots were forgotten or rewritten, reclaim space.
//!
//! Plan first ([`analyze`], pure over what the trees reference): a pack that
//! no snapshot references is deleted; a pack whose unreferenced share is above
//! [`REPACK_THRESHOLD`] is repacked (its live blobs copied into new packs).
//!
//! **Grace period.** A pack that no index file lists and that is younger
//! than [`PACK_GRACE`] (by the store's last-modified time, against the wall
//! clock, never `--now`) is never deleted: it may belong to a snapshot that
//! is still running (its index and manifest come later). This is the second
//! line of defence behind the repository lock. Older unindexed packs are the
//! leftovers of crashed snapshots and are collected.
//!
//! Then apply, in two phases, so that a prune frees space even on a store
//! too full to take one more pack:
//!
//! * **Reclaim** (only deletions): write one consolidated index without the
//!   packs nothing references, delete the old index files, then delete those
//!   packs. Nothing new but one index is written.
//! * **Repack**, in the order that keeps every step crash safe:
//!   1. copy live blobs out of the packs to repack (each verified first: a
//!      read error stops the prune, and nothing is deleted because of it),
//!   2. rewrite the trees that point at copied blobs, write the new packs and
//!      an index file for them, then the new manifests (each before its old
//!      one is deleted),
//!   3. write one consolidated index of the surviving packs, delete the old
//!      index files,
//!   4. delete the repacked packs, last.
//!
//! A crash between any two steps leaves every listed snapshot complete: packs
//! are deleted only after nothing listed can reach them, and only after no
//! index lists them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::id::ObjectId;
use crate::ops::rewrite::{referenced_blobs, replace_manifest, Moved, Rewriter};
use crate::repo::index::IndexedPack;
use crate::repo::layout::pack_key;
use crate::repo::pack::{decode_blob, BlobRef};
use crate::repo::writer::BlobWriter;
use crate::repo::ListedPack;
use crate::repo::Repository;
use crate::snapshot::{Snapshot, SnapshotRef};
use crate::tree::FileEntry;

/// Repack a pack when more than this share of it is unreferenced.
pub const REPACK_THRESHOLD: f64 = 0.10;

/// A pack no index lists is kept at least this long after it was written.
pub const PACK_GRACE: chrono::Duration = chrono::Duration::hours(2);

/// What the sweep will do.
#[derive(Debug, Default, Serialize)]
pub struct SweepPlan {
    /// Packs nothing references: (id, size).
    pub doomed: Vec<(ObjectId, u64)>,
    /// Packs to repack: (id, size, unreferenced bytes).
    pub repack: Vec<(ObjectId, u64, u64)>,
    pub bytes_freed: u64,
    /// Unreferenced packs no index lists, kept for the grace period.
    pub in_grace: Vec<ObjectId>,
    #[serde(skip)]
    live: HashMap<(ObjectId, ObjectId), u32>,
    #[serde(skip)]
    index: HashMap<ObjectId, IndexedPack>,
    #[serde(skip)]
    index_files: Vec<ObjectId>,
}

/// Decide what to delete and repack, given the snapshots that stay and, per
/// snapshot, which files will be dropped (`drops`); `wall` is the real time,
/// for the grace period.
pub fn analyze(
    repo: &Repository,
    snapshots: &[(SnapshotRef, Snapshot)],
    drops: &mut dyn FnMut(&Snapshot, &FileEntry) -> bool,
    wall: DateTime<Utc>,
) -> Result<SweepPlan> {
    let mut live = HashMap::new();
    for (_, snap) in snapshots {
        let mut seen = HashSet::new();
        referenced_blobs(repo, &snap.tree, &mut seen, &mut live, &mut |f| {
            drops(snap, f)
        })?;
    }
    let mut live_by_pack: HashMap<ObjectId, u64> = HashMap::new();
    for ((pack, _), len) in &live {
        *live_by_pack.entry(*pack).or_default() += u64::from(*len);
    }
    let files = repo.read_all_index_files()?;
    let index_files = files.iter().map(|(id, _)| *id).collect();
    let mut index: HashMap<ObjectId, IndexedPack> = HashMap::new();
    for (_, file) in files {
        for pack in file.packs {
            index.insert(pack.id, pack);
        }
    }
    let mut plan = SweepPlan {
        live,
        index_files,
        ..SweepPlan::default()
    };
    for ListedPack { id, size, modified } in repo.list_packs_with_times()? {
        match live_by_pack.get(&id) {
            // Saturates toward keeping: a time in the future is young.
            None if !index.contains_key(&id)
                && wall.signed_duration_since(modified) < PACK_GRACE =>
            {
                plan.in_grace.push(id);
            }
            None => {
                plan.doomed.push((id, size));
                plan.bytes_freed += size;
            }
            Some(_) => {
                let unused: u64 = index.get(&id).map_or(0, |p| {
                    p.blobs
                        .iter()
                        .filter(|b| !plan.live.contains_key(&(id, b.id)))
                        .map(|b| u64::from(b.length))
                        .sum()
                });
                if unused as f64 > REPACK_THRESHOLD * size as f64 {
                    plan.repack.push((id, size, unused));
                    plan.bytes_freed += unused;
                }
            }
        }
    }
    if !plan.in_grace.is_empty() {
        tracing::info!(
            packs = plan.in_grace.len(),
            "unindexed packs younger than the grace period kept"
        );
    }
    plan.index = index;
    Ok(plan)
}

impl SweepPlan {
    /// Split into a plan that only deletes (first) and one that repacks the
    /// rest, so that space is freed before anything new is written.
    fn reclaim_first(self) -> Vec<SweepPlan> {
        if self.doomed.is_empty() || self.repack.is_empty() {
            return vec![self];
        }
        let doomed_bytes: u64 = self.doomed.iter().map(|d| d.1).sum();
        let gone: HashSet<ObjectId> = self.doomed.iter().map(|d| d.0).collect();
        let reclaim = SweepPlan {
            doomed: self.doomed,
            bytes_freed: doomed_bytes,
            index: self.index.clone(),
            index_files: self.index_files.clone(),
            ..SweepPlan::default()
        };
        let repack = SweepPlan {
            repack: self.repack,
            bytes_freed: self.bytes_freed.saturating_sub(doomed_bytes),
            live: self.live,
            index: self
                .index
                .into_iter()
                .filter(|(id, _)| !gone.contains(id))
                .collect(),
            index_files: self.index_files,
            ..SweepPlan::default()
        };
        vec![reclaim, repack]
    }
}

/// What the sweep did.
#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct SweepReport {
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_written: usize,
    pub bytes_freed: u64,
}

/// Carry out `plan` over the snapshots in `snapshots` (all that remain):
/// deletions first, then repacking.
pub fn apply(
    repo: &Repository,
    plan: SweepPlan,
    snapshots: &[(SnapshotRef, Snapshot)],
) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    for phase in plan.reclaim_first() {
        let done = apply_phase(repo, phase, snapshots)?;
        report.packs_deleted += done.packs_deleted;
        report.packs_repacked += done.packs_repacked;
        report.packs_written += done.packs_written;
        report.bytes_freed += done.bytes_freed;
    }
    Ok(report)
}

fn apply_phase(
    repo: &Repository,
    plan: SweepPlan,
    snapshots: &[(SnapshotRef, Snapshot)],
) -> Result<SweepReport> {
    let writer = BlobWriter::new(repo, crate::repo::index::Index::default());
    let mut moved: Moved = HashMap::new();
    for (pack, _, _) in &plan.repack {
        let bytes = repo.read_pack(pack)?;
        for blob in plan
            .index
            .get(pack)
            .map(|p| p.blobs.as_slice())
            .unwrap_or_default()
        {
            if !plan.live.contains_key(&(*pack, blob.id)) {
                continue;
            }
            let location = BlobRef::new(*pack, blob);
            let stored = bytes
                .get(location.offset as usize..location.range().end as usize)
                .ok_or_else(|| {
                    crate::Error::corrupt(
                        pack_key(pack),
                        format!("blob {} lies beyond the pack", blob.id),
                    )
                })?;
            decode_blob(stored, &location)?;
            moved.insert(
                (*pack, blob.id),
                writer.store_copy(blob.kind, &location, stored)?,
            );
        }
    }
    let mut replacements = Vec::new();
    if !moved.is_empty() {
        let mut rewriter = Rewriter::new(repo, &writer, &moved, |_| true);
        for (r, snap) in snapshots {
            let new = rewriter.rewrite(&snap.tree)?;
            if new.tree != snap.tree {
                replacements.push((r, snap, new));
            }
        }
    }
    let new_packs = writer.finish()?;
    let packs_written = new_packs.len();
    if !new_packs.is_empty() {
        repo.write_index_file(new_packs.clone())?;
    }
    crate::failpoint::hit("sweep-before-manifests");
    for (r, snap, new) in &replacements {
        replace_manifest(repo, r, snap, new)?;
        crate::failpoint::hit("sweep-after-one-manifest");
    }
    crate::failpoint::hit("sweep-before-index");
    let gone: HashSet<ObjectId> = plan
        .doomed
        .iter()
        .map(|d| d.0)
        .chain(plan.repack.iter().map(|r| r.0))
        .collect();
    if !gone.is_empty() || plan.index_files.len() > 1 {
        let mut surviving: Vec<IndexedPack> = plan
            .index
            .into_values()
            .filter(|p| !gone.contains(&p.id))
            .collect();
        surviving.extend(new_packs);
        surviving.sort_by_key(|p| p.id);
        let consolidated = if surviving.is_empty() {
            None
        } else {
            Some(repo.write_index_file(surviving)?)
        };
        crate::failpoint::hit("sweep-after-new-index");
        for id in repo.list_index_files()? {
            if Some(id) != consolidated {
                repo.delete_index_file(&id)?;
            }
        }
    }
    crate::failpoint::hit("sweep-before-pack-deletion");
    for (i, id) in gone.iter().enumerate() {
        repo.delete_pack(id)?;
        if i == gone.len() / 2 {
            crate::failpoint::hit("sweep-mid-pack-deletion");
        }
    }
    Ok(SweepReport {
        packs_deleted: plan.doomed.len(),
        packs_repacked: plan.repack.len(),
        packs_written,
        bytes_freed: plan.bytes_freed,
    })
}
