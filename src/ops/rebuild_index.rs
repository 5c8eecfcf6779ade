//! `offsite rebuild-index`: rewrite the index from the packs' own headers.
//!
//! Every pack describes its blobs, so a lost or damaged index is never a lost
//! backup. The new index file is written first; the old index files are
//! deleted only when every pack's header was read, so a read error never
//! costs the information the old index held.

use serde::Serialize;

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::layout::{index_key, pack_key};
use crate::repo::{Exclusive, Repository};

/// What `rebuild-index` did.
#[derive(Serialize, Debug)]
pub struct RebuildReport {
    pub packs: usize,
    pub blobs: usize,
    pub new_index: Option<String>,
    pub old_index_files_removed: usize,
    pub unreadable_packs: Vec<String>,
}

/// Rebuild the index from every pack in the repository, alone in it.
pub fn rebuild_index(lock: &Exclusive) -> Result<RebuildReport> {
    let repo = lock.repo();
    let old = repo.list_index_files()?;
    let mut packs = Vec::new();
    let mut unreadable = Vec::new();
    for (id, size) in repo.list_packs()? {
        match repo.read_pack_header(&id, size) {
            Ok(pack) => packs.push(pack),
            Err(e) => {
                tracing::error!("{e}");
                unreadable.push(format!("{}: {e}", pack_key(&id)));
            }
        }
    }
    let blobs = packs.iter().map(|p| p.blobs.len()).sum();
    let count = packs.len();
    let new_index = if packs.is_empty() {
        None
    } else {
        Some(repo.write_index_file(packs)?)
    };
    let removed = if unreadable.is_empty() {
        remove_old_index_files(repo, &old, new_index.as_ref())?
    } else {
        0
    };
    Ok(RebuildReport {
        packs: count,
        blobs,
        new_index: new_index.as_ref().map(index_key),
        old_index_files_removed: removed,
        unreadable_packs: unreadable,
    })
}

/// Delete the index files `old` except `new_index` (written before, so the
/// index is never absent); returns how many were deleted.
pub fn remove_old_index_files(
    repo: &Repository,
    old: &[ObjectId],
    new_index: Option<&ObjectId>,
) -> Result<usize> {
    let mut removed = 0;
    for id in old.iter().filter(|id| Some(*id) != new_index) {
        repo.delete_index_file(id)?;
        removed += 1;
    }
    Ok(removed)
}
