//! `offsite repair`: set the repository right after packs were lost or damaged.
//!
//! `check --read-data` finds damage; `repair` acts on it so the next snapshot
//! heals (see [`crate::ops::snapshot`]): it reads every pack whole and
//! verifies its header and every blob.
//!
//! * A damaged pack is **quarantined, never deleted**: copied to
//!   quarantine first, then removed from the packs. Its blobs that
//!   still verify are first copied into new packs (*salvaged*), so a
//!   recording that is gone from the source but whose chunks survived stays
//!   restorable for the next snapshots.
//! * The index is rebuilt from the packs that verified and the salvage packs;
//!   the old index files are deleted only after the new one is written, and
//!   only because every pack was read. Indexed packs that are missing simply
//!   drop out.
//! * The report lists per snapshot which items reference data that is now
//!   gone ([`crate::ops::damage`]). Those older snapshots stay as they are:
//!   their other items still restore, and deleting them is retention's call.
//!
//! A store error while reading (as opposed to bytes that do not verify)
//! stops the repair: a transient failure must never quarantine a good pack.
//! A repair stopped half-way is safe: packs already quarantined are simply
//! missing, which the old index tolerates.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::damage::{damaged_snapshots, Bad, SnapshotDamage};
use crate::ops::rebuild_index::remove_old_index_files;
use crate::repo::index::Index;
use crate::repo::layout::{index_key, pack_key};
use crate::repo::packs::PackVerdict;
use crate::repo::writer::BlobWriter;
use crate::repo::{Exclusive, Repository};

/// One pack moved out of `packs/`.
#[derive(Serialize, Debug)]
pub struct QuarantinedPack {
    pub pack: String,
    pub quarantined_as: String,
    pub reason: String,
    /// Blobs that verified and were copied into new packs.
    pub blobs_salvaged: usize,
    pub blobs_lost: usize,
}

/// What `repair` did and what is lost.
#[derive(Serialize, Debug, Default)]
pub struct RepairReport {
    pub packs_checked: usize,
    pub packs_ok: usize,
    pub quarantined: Vec<QuarantinedPack>,
    /// Packs the old index listed that are not in the store.
    pub missing_packs: Vec<String>,
    /// New packs holding salvaged blobs.
    pub salvage_packs: usize,
    pub new_index: Option<String>,
    pub old_index_files_removed: usize,
    /// Snapshots that still reference lost data, with the items.
    pub damaged: Vec<SnapshotDamage>,
}

/// Indexed packs that are not in the store (unreadable index files are
/// skipped: they are replaced anyway).
fn missing_indexed(
    repo: &Repository,
    old: &[ObjectId],
    present: &HashSet<ObjectId>,
) -> Vec<String> {
    let mut index = Index::default();
    for id in old {
        match repo.read_index_file(id) {
            Ok(file) => index.add_file(&file),
            Err(e) => tracing::warn!("{e}; it is replaced by the rebuilt index"),
        }
    }
    let mut missing: Vec<String> = index
        .packs
        .keys()
        .filter(|id| !present.contains(*id))
        .map(pack_key)
        .collect();
    missing.sort();
    missing
}

/// Verify every pack, quarantine the damaged ones, rebuild the index, and
/// report what each snapshot has lost.
/// Salvaged blobs are sealed again into new packs of their tenant; a
/// tenant key those need is recorded as created at `now`. A pack of an
/// erased tenant is not damaged: it stays (prune removes it).
pub fn repair(lock: &Exclusive, now: chrono::DateTime<chrono::Utc>) -> Result<RepairReport> {
    let repo = lock.repo();
    let old = repo.list_index_files()?;
    let listed = repo.list_packs()?;
    let present: HashSet<ObjectId> = listed.iter().map(|(id, _)| *id).collect();
    let mut report = RepairReport {
        missing_packs: missing_indexed(repo, &old, &present),
        ..RepairReport::default()
    };
    let salvage = BlobWriter::new(repo, now);
    let mut whole = Vec::new();
    for (id, _) in &listed {
        let key = pack_key(id);
        let bytes = match repo.read_pack(id) {
            Ok(b) => b,
            Err(Error::NotFound { .. }) => continue, // removed meanwhile
            Err(e) => return Err(e),
        };
        report.packs_checked += 1;
        match repo.verify_pack(*id, &bytes)? {
            PackVerdict::Whole(pack) | PackVerdict::Erased { pack, .. } => whole.push(pack),
            PackVerdict::Unverifiable { pack, reason } => {
                tracing::error!(pack = %key, "not verifiable: {reason}; kept");
                whole.push(pack);
            }
            PackVerdict::Damaged { reason, good, lost } => {
                tracing::error!(pack = %key, "damaged: {reason}; quarantined");
                for (kind, location, raw) in &good {
                    salvage.store_copy(*kind, location, None, raw)?;
                }
                let quarantined_as = repo.quarantine_pack(id, bytes)?;
                report.quarantined.push(QuarantinedPack {
                    pack: key,
                    quarantined_as,
                    reason,
                    blobs_salvaged: good.len(),
                    blobs_lost: lost,
                });
            }
        }
    }
    report.packs_ok = whole.len();
    let salvaged = salvage.finish()?;
    report.salvage_packs = salvaged.len();
    whole.extend(salvaged);
    let new_index = if whole.is_empty() {
        None
    } else {
        Some(repo.write_index_file(whole)?)
    };
    report.old_index_files_removed = remove_old_index_files(repo, &old, new_index.as_ref())?;
    report.new_index = new_index.as_ref().map(index_key);
    let now_present: HashSet<ObjectId> = repo.list_packs()?.into_iter().map(|(id, _)| id).collect();
    report.damaged = damaged_snapshots(repo, &now_present, &Bad::default())?;
    Ok(report)
}
