//! Rewriting snapshot trees: dropping items, following moved blobs.
//!
//! Prune changes snapshots in two ways: voice items whose backup copy expired
//! are dropped, and blobs copied out of partly used packs get new locations.
//! Both are one operation here: walk a snapshot's trees, pass every file
//! through a filter, point chunks and subtrees at their new locations, and
//! store a new tree blob only where something changed (memoized per tree, so
//! the trees that snapshots share are rewritten once). The new manifest is
//! written create-only before the old one is deleted, so a crash leaves the
//! old or the new snapshot (or briefly both), never neither.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::id::ObjectId;
use crate::pack::{BlobKind, BlobRef};
use crate::repo::Repository;
use crate::snapshot::{Snapshot, SnapshotRef};
use crate::tree::{DirEntry, Entry, FileEntry, Tree};
use crate::writer::{BlobWriter, Compress};

/// Blobs copied out of packs that will be deleted: (old pack, blob) → new location.
pub type Moved = HashMap<(ObjectId, ObjectId), BlobRef>;

/// Rewrites trees with a file filter and a moved-blob map.
pub struct Rewriter<'a, 'r, F: FnMut(&FileEntry) -> bool> {
    repo: &'a Repository,
    writer: &'a BlobWriter<'r>,
    moved: &'a Moved,
    /// Keep a file? (false drops it)
    keep: F,
    memo: HashMap<ObjectId, Rewritten>,
}

/// A rewritten tree.
#[derive(Clone, Debug)]
pub struct Rewritten {
    pub tree: BlobRef,
    /// Files dropped below it, and their bytes.
    pub dropped: u64,
    pub dropped_bytes: u64,
    /// True when nothing is left in it.
    pub empty: bool,
}

impl<'a, 'r, F: FnMut(&FileEntry) -> bool> Rewriter<'a, 'r, F> {
    pub fn new(
        repo: &'a Repository,
        writer: &'a BlobWriter<'r>,
        moved: &'a Moved,
        keep: F,
    ) -> Self {
        Rewriter {
            repo,
            writer,
            moved,
            keep,
            memo: HashMap::new(),
        }
    }

    fn relocate(&self, blob: &BlobRef) -> BlobRef {
        self.moved
            .get(&(blob.pack, blob.id))
            .cloned()
            .unwrap_or_else(|| blob.clone())
    }

    /// Rewrite the tree at `tree`. A directory emptied by dropped files is
    /// dropped too.
    pub fn rewrite(&mut self, tree: &BlobRef) -> Result<Rewritten> {
        if let Some(done) = self.memo.get(&tree.id) {
            return Ok(done.clone());
        }
        let old = self.repo.read_tree(tree)?;
        let mut new = Tree::default();
        let (mut dropped, mut dropped_bytes) = (0, 0);
        for entry in &old.entries {
            match entry {
                Entry::File(f) => {
                    if !(self.keep)(f) {
                        dropped += 1;
                        dropped_bytes += f.size;
                        continue;
                    }
                    let chunks = f.chunks.iter().map(|c| self.relocate(c)).collect();
                    new.entries.push(Entry::File(FileEntry {
                        chunks,
                        ..f.clone()
                    }));
                }
                Entry::Dir(d) => {
                    let sub = self.rewrite(&d.tree)?;
                    dropped += sub.dropped;
                    dropped_bytes += sub.dropped_bytes;
                    if !(sub.empty && sub.dropped > 0) {
                        new.entries.push(Entry::Dir(DirEntry {
                            tree: sub.tree,
                            ..d.clone()
                        }));
                    }
                }
            }
        }
        let result = if new == old {
            self.relocate(tree)
        } else {
            self.writer
                .store(BlobKind::Tree, &new.to_bytes(), Compress::Try)?
        };
        let done = Rewritten {
            tree: result,
            dropped,
            dropped_bytes,
            empty: new.entries.is_empty(),
        };
        self.memo.insert(tree.id, done.clone());
        Ok(done)
    }
}

/// Replace `old` (read from `old_ref`) by a manifest with tree `tree`:
/// create-only write of the new one, then delete the old one. The new
/// manifest keeps the snapshot's identity (its time and, in `previous_ids`,
/// every id it had), so a crash between the two steps leaves a duplicate
/// that retention counts once and the next prune deletes.
pub fn replace_manifest(
    repo: &Repository,
    old_ref: &SnapshotRef,
    old: &Snapshot,
    new: &Rewritten,
) -> Result<ObjectId> {
    let mut snap = old.rewritten(old_ref.id, chrono::Utc::now());
    snap.tree = new.tree.clone();
    snap.summary.items = snap.summary.items.saturating_sub(new.dropped);
    snap.summary.bytes = snap.summary.bytes.saturating_sub(new.dropped_bytes);
    let (id, _) = repo.save_snapshot(&snap)?;
    crate::failpoint::hit("rewrite-after-new-manifest");
    repo.store.delete(&old_ref.key)?;
    tracing::info!(old = %old_ref.id.short(), new = %id.short(), source = %old_ref.source, "snapshot rewritten");
    Ok(id)
}

/// The snapshot among `candidates` (newest first) that was once known by an
/// id starting with `selector` and was rewritten since: the newest rewrite
/// of it. Reads the candidates' manifests, so call it only when no current
/// id matches. Two different logical snapshots matching is ambiguous.
pub fn find_rewrite<'a>(
    repo: &Repository,
    candidates: &'a [SnapshotRef],
    selector: &str,
) -> Result<Option<&'a SnapshotRef>> {
    if selector.is_empty() || selector == "latest" {
        return Ok(None);
    }
    let mut best: Option<(&SnapshotRef, Snapshot)> = None;
    for r in candidates {
        let snap = repo.load_snapshot(r)?;
        if !snap.was_known_as(selector) {
            continue;
        }
        match &best {
            Some((b, s)) if s.logical_id(b.id) != snap.logical_id(r.id) => {
                return Err(crate::Error::Usage(format!(
                    "snapshot id {selector:?} is ambiguous; give more digits"
                )));
            }
            Some((_, s))
                if (s.rewritten_at, s.previous_ids.len())
                    >= (snap.rewritten_at, snap.previous_ids.len()) => {}
            _ => best = Some((r, snap)),
        }
    }
    if let Some((r, snap)) = &best {
        tracing::info!(
            selector,
            now = %r.id.short(),
            rewritten_at = ?snap.rewritten_at,
            "snapshot {selector} was rewritten by prune as {}",
            r.id.short()
        );
    }
    Ok(best.map(|(r, _)| r))
}

/// Every (pack, blob) a snapshot's trees reference, with the stored length.
pub fn referenced_blobs(
    repo: &Repository,
    tree: &BlobRef,
    seen_trees: &mut HashSet<ObjectId>,
    out: &mut HashMap<(ObjectId, ObjectId), u32>,
    skip: &mut dyn FnMut(&FileEntry) -> bool,
) -> Result<()> {
    if !seen_trees.insert(tree.id) {
        return Ok(());
    }
    out.insert((tree.pack, tree.id), tree.length);
    for entry in repo.read_tree(tree)?.entries {
        match entry {
            Entry::Dir(d) => referenced_blobs(repo, &d.tree, seen_trees, out, skip)?,
            Entry::File(f) if !skip(&f) => {
                for c in &f.chunks {
                    out.insert((c.pack, c.id), c.length);
                }
            }
            Entry::File(_) => {}
        }
    }
    Ok(())
}
