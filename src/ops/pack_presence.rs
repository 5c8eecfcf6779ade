//! Before a snapshot commits, prove that every pack it references exists.
//!
//! A manifest is the promise that a snapshot is complete. The lock keeps a
//! prune away from a running snapshot, but a lock can be broken (a clock far
//! off, a host that shares our name, an operator's `unlock --force`), and a
//! blob the snapshot reused from the index may sit in a pack some prune just
//! deleted. So the last step before the manifest is cheap and certain: walk
//! the new snapshot's trees (a few tree packs, read whole), collect the packs
//! they name, and list `packs/` once. A pack that is gone fails the snapshot
//! loudly, naming the pack; no manifest is written, so nothing unrestorable
//! is ever listed, and the next snapshot stores the data again.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::{pack_key, BlobRef};
use crate::repo::{Repository, TreeCache};
use crate::tree::Entry;

/// Every pack the trees below `root` (and `root` itself) reference.
pub fn referenced_packs(repo: &Repository, root: &BlobRef) -> Result<HashSet<ObjectId>> {
    let mut trees = TreeCache::new(repo);
    let mut packs = HashSet::new();
    let mut seen = HashSet::new();
    let mut todo = vec![root.clone()];
    while let Some(tree) = todo.pop() {
        if !seen.insert(tree.id) {
            continue;
        }
        packs.insert(tree.pack);
        for entry in trees.read_tree(&tree)?.entries {
            match entry {
                Entry::Dir(d) => todo.push(d.tree),
                Entry::File(f) => packs.extend(f.chunks.iter().map(|c| c.pack)),
            }
        }
    }
    Ok(packs)
}

/// Fail, naming the first missing pack, unless every pack the snapshot of
/// `source` with tree `root` references is listed in the store.
pub fn ensure_packs_exist(repo: &Repository, source: &str, root: &BlobRef) -> Result<()> {
    let needed = referenced_packs(repo, root)?;
    let present: HashSet<String> = repo
        .store
        .list("packs")?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let mut missing: Vec<String> = needed
        .iter()
        .map(pack_key)
        .filter(|key| !present.contains(key))
        .collect();
    missing.sort();
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
