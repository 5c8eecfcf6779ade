//! Before a snapshot commits, prove that every pack it references exists.
//!
//! A manifest is the promise that a snapshot is complete. The lock keeps a
//! prune away from a running snapshot, but a lock can be broken (a clock far
//! off, a host that shares our name, an operator's `unlock --force`), and a
//! blob the snapshot reused from the index may sit in a pack some prune just
//! deleted. So the last step before the manifest is cheap and certain: walk
//! the new snapshot's trees (a few tree packs, read whole), collect the packs
//! they name, and list the packs once. A pack that is gone fails the snapshot
//! loudly, naming the pack; no manifest is written, so nothing unrestorable
//! is ever listed, and the next snapshot stores the data again.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::layout::pack_key;
use crate::repo::pack::BlobRef;
use crate::repo::{Repository, TreeCache};
use crate::tree::read::{list_blobs, ChunkIter, DirIter};
use crate::tree::Entry;

/// The packs the trees below `root` (and `root` itself) reference that are
/// not in `present`, sorted. A tree in a missing pack is not read (its
/// subtrees cannot be known, and one missing pack is enough to refuse).
pub fn missing_packs(
    repo: &Repository,
    root: &BlobRef,
    present: &HashSet<ObjectId>,
) -> Result<Vec<String>> {
    let mut trees = TreeCache::new(repo);
    let mut missing = HashSet::new();
    let mut seen = HashSet::new();
    let mut todo = vec![root.clone()];
    let note = |pack: &ObjectId, missing: &mut HashSet<String>| {
        let found = present.contains(pack);
        if !found {
            missing.insert(pack_key(pack));
        }
        found
    };
    while let Some(tree) = todo.pop() {
        if !seen.insert(tree.id) || !note(&tree.pack, &mut missing) {
            continue;
        }
        // Page by page and chunk by chunk: a directory of a million files
        // or a file of millions of chunks is never held whole.
        let mut dir = DirIter::new(&mut trees, &tree)?;
        while let Some(entry) = dir.next() {
            match entry? {
                Entry::Dir(d) => todo.push(d.tree),
                Entry::File(f) => {
                    let source = dir.source();
                    for c in &list_blobs(&mut *source, &f.chunks)? {
                        note(&c.pack, &mut missing);
                    }
                    for c in ChunkIter::new(&mut *source, &f.chunks)? {
                        note(&c?.pack, &mut missing);
                    }
                }
            }
        }
        for page in dir.pages() {
            note(&page.pack, &mut missing);
        }
    }
    let mut missing: Vec<String> = missing.into_iter().collect();
    missing.sort();
    Ok(missing)
}

/// Fail, naming the first missing pack, unless every pack the snapshot of
/// `source` with tree `root` references is listed in the store.
pub fn ensure_packs_exist(repo: &Repository, source: &str, root: &BlobRef) -> Result<()> {
    let present: HashSet<ObjectId> = repo.list_packs()?.into_iter().map(|(id, _)| id).collect();
    let missing = missing_packs(repo, root, &present)?;
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(Error::Conflict(format!(
            "snapshot of source {source:?} not committed: {} pack(s) it references are gone, \
             first {first} (deleted by a prune that ignored this snapshot's lock?); \
             run the snapshot again",
            missing.len()
        ))),
    }
}
