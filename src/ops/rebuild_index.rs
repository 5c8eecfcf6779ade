//! `offsite rebuild-index`: rewrite the index from the packs' own headers.
//!
//! Every pack describes its blobs, so a lost or damaged index is never a lost
//! backup. The new index file is written first; the old index files are
//! deleted only when every pack's header was read, so a read error never
//! costs the information the old index held.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::repo::index::{write_index_file, IndexedPack};
use crate::repo::pack::{parse_header, parse_trailer, TRAILER_LEN};
use crate::repo::Repository;

/// What `rebuild-index` did.
#[derive(Serialize, Debug)]
pub struct RebuildReport {
    pub packs: usize,
    pub blobs: usize,
    pub new_index: Option<String>,
    pub old_index_files_removed: usize,
    pub unreadable_packs: Vec<String>,
}

/// Read one pack's header with two ranged reads (trailer, then header).
pub fn read_pack_header(repo: &Repository, key: &str, size: u64) -> Result<IndexedPack> {
    if size < TRAILER_LEN {
        return Err(Error::corrupt(key, "pack is shorter than its trailer"));
    }
    let trailer = repo.store.get_range(key, size - TRAILER_LEN..size)?;
    let header_len = parse_trailer(key, &trailer)?;
    let start = (size - TRAILER_LEN)
        .checked_sub(header_len)
        .ok_or_else(|| Error::corrupt(key, "pack header length exceeds the pack"))?;
    let header = parse_header(key, &repo.store.get_range(key, start..size - TRAILER_LEN)?)?;
    let id = key
        .rsplit('/')
        .next()
        .and_then(|name| name.parse().ok())
        .ok_or_else(|| Error::corrupt(key, "pack name is not an id"))?;
    Ok(IndexedPack {
        id,
        size,
        blobs: header.blobs,
    })
}

/// The keys of the index files there are now (to remove once replaced).
pub fn index_keys(repo: &Repository) -> Result<Vec<String>> {
    Ok(repo
        .store
        .list("index")?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// Rebuild the index from every pack in the repository.
pub fn rebuild_index(repo: &Repository) -> Result<RebuildReport> {
    let old = index_keys(repo)?;
    let mut packs = Vec::new();
    let mut unreadable = Vec::new();
    for (key, size) in repo.store.list("packs")? {
        match read_pack_header(repo, &key, size) {
            Ok(pack) => packs.push(pack),
            Err(e) => {
                tracing::error!("{e}");
                unreadable.push(format!("{key}: {e}"));
            }
        }
    }
    let blobs = packs.iter().map(|p| p.blobs.len()).sum();
    let count = packs.len();
    let new_index = if packs.is_empty() {
        None
    } else {
        Some(write_index_file(&repo.store, packs)?)
    };
    let removed = if unreadable.is_empty() {
        remove_old_index_files(repo, &old, new_index.as_deref())?
    } else {
        0
    };
    Ok(RebuildReport {
        packs: count,
        blobs,
        new_index,
        old_index_files_removed: removed,
        unreadable_packs: unreadable,
    })
}

/// Delete the index files `old` except `new_index` (written before, so the
/// index is never absent); returns how many were deleted.
pub fn remove_old_index_files(
    repo: &Repository,
    old: &[String],
    new_index: Option<&str>,
) -> Result<usize> {
    let mut removed = 0;
    for key in old.iter().filter(|k| Some(k.as_str()) != new_index) {
        repo.store.delete(key)?;
        removed += 1;
    }
    Ok(removed)
}
