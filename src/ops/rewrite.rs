//! Rewriting snapshot trees: dropping items, following moved blobs.
//!
//! Prune changes snapshots in two ways: voice items whose backup copy expired
//! are dropped, and blobs copied out of partly used packs get new locations.
//! Both are one operation here: walk a snapshot's trees, pass every file
//! through a filter, point chunks and subtrees at their new locations, and
//! store a new tree blob only where something changed (memoized per tree, so
//! the trees that snapshots share are rewritten once; keyed by location, so a
//! tree stored twice is rewritten like the plan of [`crate::ops::references`]
//! predicts). The new manifest is written create-only before the old one is
//! deleted, so a crash leaves the old or the new snapshot (or briefly both),
//! never neither.
//!
//! A rewriter may be given the packs a prune plan deletes ([`Rewriter::guard`]):
//! a kept reference into one of them that was not moved out is an error, so a
//! plan that missed a reference stops the prune before anything is deleted.
//!
//! It may also be given erased tenants ([`Rewriter::dropping_tenants`], see
//! [`crate::ops::erase`]): their files and their directories are dropped
//! without reading them (an erased tenant's trees cannot be read), and a
//! filter that judges paths ([`Rewriter::by_path`], `erase --glob`) memoizes
//! a tree per (location, place), since one tree can sit at two paths.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::pack::{BlobKind, BlobRef};
use crate::repo::writer::{BlobWriter, Compress};
use crate::repo::Repository;
use crate::snapshot::{Snapshot, SnapshotRef};
use crate::tree::build::{store_chunk_list, DirBuilder, Totals};
use crate::tree::{check_depth, read, ChunkList, DirEntry, Entry, FileEntry, Tree};

/// Blobs copied out of packs that will be deleted: (old pack, blob) → new location.
pub type Moved = HashMap<(ObjectId, ObjectId), BlobRef>;

/// A tree's memo key: its location, and its place when the filter judges paths.
type MemoKey = (ObjectId, ObjectId, String);

/// Picks directories to leave as they are, unread: (path, entry) → leave?
pub type Leave<'a> = &'a dyn Fn(&str, &DirEntry) -> bool;

/// Rewrites trees with a file filter and a moved-blob map.
pub struct Rewriter<'a, 'r, F: FnMut(&str, &FileEntry) -> bool> {
    repo: &'a Repository,
    writer: &'a BlobWriter<'r>,
    moved: &'a Moved,
    /// Keep the file at this path (relative to the source)? (false drops it)
    keep: F,
    /// Rewritten trees by their old location (pack, blob) and place.
    memo: HashMap<MemoKey, Rewritten>,
    /// Packs that go away: a kept reference into one must have been moved.
    going: Option<&'a HashSet<ObjectId>>,
    /// Tenants whose files and directories are dropped unread.
    erased: Option<&'a BTreeMap<String, crate::repo::rotate::ErasedTenant>>,
    /// The filter judges paths: memoize per place.
    by_path: bool,
    /// Directories left as they are, unread (path, entry).
    leave: Option<Leave<'a>>,
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
    /// Files left anywhere below it, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

impl<'a, 'r, F: FnMut(&str, &FileEntry) -> bool> Rewriter<'a, 'r, F> {
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
            going: None,
            erased: None,
            by_path: false,
            leave: None,
        }
    }

    /// Leave the directories `leave` picks as they are, without reading
    /// them (`erase --item` touches only the trees on its path).
    pub fn leaving(mut self, leave: Leave<'a>) -> Self {
        self.leave = Some(leave);
        self
    }

    /// Drop every file and directory of the tenants in `erased`.
    pub fn dropping_tenants(
        mut self,
        erased: &'a BTreeMap<String, crate::repo::rotate::ErasedTenant>,
    ) -> Self {
        self.erased = Some(erased);
        self
    }

    /// The filter judges paths, not only entries: a tree is rewritten once
    /// per place it sits at.
    pub fn by_path(mut self) -> Self {
        self.by_path = true;
        self
    }

    fn erased(&self, tenant: Option<&String>) -> bool {
        matches!((self.erased, tenant), (Some(e), Some(t)) if e.contains_key(t))
    }

    fn memo_key(&self, blob: &BlobRef, place: &str) -> MemoKey {
        let place = if self.by_path { place } else { "" };
        (blob.pack, blob.id, place.to_string())
    }

    /// Refuse (with [`crate::Error::Conflict`]) to keep a reference into one
    /// of `going` that was not moved out.
    pub fn guard(mut self, going: &'a HashSet<ObjectId>) -> Self {
        self.going = Some(going);
        self
    }

    /// Is `blob` copied out of, or in, a pack that goes away?
    fn moves(&self, blob: &BlobRef) -> bool {
        self.moved.contains_key(&(blob.pack, blob.id))
            || self.going.is_some_and(|g| g.contains(&blob.pack))
    }

    /// A kept file's chunk list with every chunk relocated; a list in
    /// pieces is stored anew when a chunk or one of its pieces moves.
    fn relocate_list(&self, f: &FileEntry) -> Result<ChunkList> {
        if let ChunkList::Inline(chunks) = &f.chunks {
            let chunks = chunks
                .iter()
                .map(|c| self.relocate(c))
                .collect::<Result<_>>()?;
            return Ok(ChunkList::Inline(chunks));
        }
        let pieces = read::list_blobs(self.repo, &f.chunks)?;
        let chunks = self.repo.all_chunks(&f.chunks)?;
        if !pieces.iter().chain(&chunks).any(|b| self.moves(b)) {
            return Ok(f.chunks.clone());
        }
        let chunks = chunks
            .iter()
            .map(|c| self.relocate(c))
            .collect::<Result<_>>()?;
        store_chunk_list(chunks, &mut |bytes| {
            self.writer
                .store(f.tenant.as_deref(), BlobKind::Tree, bytes, Compress::Try)
        })
    }

    fn relocate(&self, blob: &BlobRef) -> Result<BlobRef> {
        if let Some(to) = self.moved.get(&(blob.pack, blob.id)) {
            return Ok(to.clone());
        }
        if self.going.is_some_and(|g| g.contains(&blob.pack)) {
            return Err(crate::Error::Conflict(format!(
                "prune plan no longer holds: blob {} in pack {} is still referenced but the plan deletes that pack; nothing was deleted because of it, run prune again",
                blob.id.short(),
                blob.pack.short()
            )));
        }
        Ok(blob.clone())
    }

    /// Rewrite the tree at `root`. A directory emptied by dropped files is
    /// dropped too. Iterative and depth limited (see [`crate::tree`]): the
    /// directories above the one being rewritten wait on an explicit stack.
    pub fn rewrite(&mut self, root: &BlobRef) -> Result<Rewritten> {
        if let Some(done) = self.memo.get(&self.memo_key(root, "")) {
            return Ok(done.clone());
        }
        // Each parent with the entry of the directory being rewritten below it.
        let mut parents: Vec<(Frame, DirEntry)> = Vec::new();
        let (tree, pages) = read::read_dir(self.repo, root)?;
        let mut current = Frame::new(root.clone(), String::new(), tree, pages);
        loop {
            match current.next_entry() {
                Some(Entry::File(f)) => {
                    let path = current.path_of(&f.name);
                    if !self.erased(f.tenant.as_ref()) && (self.keep)(&path, &f) {
                        let chunks = self.relocate_list(&f)?;
                        current
                            .new
                            .entries
                            .push(Entry::File(FileEntry { chunks, ..f }));
                    } else {
                        current.dropped += 1;
                        current.dropped_bytes += f.size;
                    }
                }
                Some(Entry::Dir(d)) if self.erased(d.tenant.as_ref()) => {
                    // Unread: counted as one dropped item of unknown size.
                    current.dropped += 1;
                }
                Some(Entry::Dir(d)) => {
                    let path = current.path_of(&d.name);
                    if self.leave.is_some_and(|leave| leave(&path, &d)) {
                        // Left unread: its pages are kept as they are.
                        let tree = self.relocate(&d.tree)?;
                        current.new.entries.push(Entry::Dir(DirEntry { tree, ..d }));
                        continue;
                    }
                    match self.memo.get(&self.memo_key(&d.tree, &path)) {
                        Some(done) => current.add_dir(d, done.clone()),
                        None => {
                            check_depth(parents.len() + 1, &d.tree)?;
                            let (tree, pages) = read::read_dir(self.repo, &d.tree)?;
                            let child = Frame::new(d.tree.clone(), path, tree, pages);
                            parents.push((std::mem::replace(&mut current, child), d));
                        }
                    }
                }
                None => {
                    let done = self.finish(current)?;
                    match parents.pop() {
                        Some((mut parent, d)) => {
                            parent.add_dir(d, done);
                            current = parent;
                        }
                        None => return Ok(done),
                    }
                }
            }
        }
    }

    /// Store the rewritten tree of `frame` (unless nothing changed) and
    /// memoize; sealed under its directory's tenant key, as the old one was.
    fn finish(&mut self, frame: Frame) -> Result<Rewritten> {
        let unchanged = frame.new == frame.old && !frame.pages.iter().any(|p| self.moves(p));
        let (result, totals) = if unchanged {
            (self.relocate(&frame.tree)?, totals_of(&frame.new))
        } else {
            let tenant = frame.tree.tenant.as_deref();
            let mut store = |bytes: &[u8]| {
                self.writer
                    .store(tenant, BlobKind::Tree, bytes, Compress::Try)
            };
            let mut builder = DirBuilder::new(self.repo.page_boundary());
            for entry in &frame.new.entries {
                builder.push(entry, &mut store)?;
            }
            builder.finish(&mut store)?
        };
        let done = Rewritten {
            tree: result,
            dropped: frame.dropped,
            dropped_bytes: frame.dropped_bytes,
            empty: frame.new.entries.is_empty(),
            files: totals.files,
            bytes: totals.bytes,
        };
        let key = self.memo_key(&frame.tree, &frame.path);
        self.memo.insert(key, done.clone());
        Ok(done)
    }
}

/// What `tree`'s entries hold (as [`DirBuilder`] would count it).
fn totals_of(tree: &Tree) -> Totals {
    let mut t = Totals::default();
    for entry in &tree.entries {
        t.entries += 1;
        let (files, bytes) = match entry {
            Entry::File(f) => (1, f.size),
            Entry::Dir(d) => (d.files_below, d.bytes_below),
        };
        t.files = t.files.saturating_add(files);
        t.bytes = t.bytes.saturating_add(bytes);
    }
    t
}

/// One tree being rewritten: the old entries, how far they are done, the
/// new entries so far.
struct Frame {
    tree: BlobRef,
    /// The directory's path relative to the source ("" for the root).
    path: String,
    old: Tree,
    /// Every page `old` was read from.
    pages: Vec<BlobRef>,
    next: usize,
    new: Tree,
    dropped: u64,
    dropped_bytes: u64,
}

impl Frame {
    fn new(tree: BlobRef, path: String, old: Tree, pages: Vec<BlobRef>) -> Self {
        Frame {
            tree,
            path,
            old,
            pages,
            next: 0,
            new: Tree::default(),
            dropped: 0,
            dropped_bytes: 0,
        }
    }

    /// The path of the entry `name` in this directory.
    fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.path)
        }
    }

    /// The next old entry to rewrite.
    fn next_entry(&mut self) -> Option<Entry> {
        let entry = self.old.entries.get(self.next).cloned()?;
        self.next += 1;
        Some(entry)
    }

    /// Add `sub`, the rewritten content of the old entry `dir`; a directory
    /// emptied by dropped files is dropped.
    fn add_dir(&mut self, dir: DirEntry, sub: Rewritten) {
        self.dropped += sub.dropped;
        self.dropped_bytes += sub.dropped_bytes;
        if !(sub.empty && sub.dropped > 0) {
            // An unchanged directory keeps its entry as recorded.
            let (files_below, bytes_below) = if sub.tree == dir.tree {
                (dir.files_below, dir.bytes_below)
            } else {
                (sub.files, sub.bytes)
            };
            self.new.entries.push(Entry::Dir(DirEntry {
                tree: sub.tree,
                files_below,
                bytes_below,
                ..dir
            }));
        }
    }
}

/// Replace `old` (read from `old_ref`) by a manifest with tree `tree`,
/// rewritten at `at`:
/// create-only write of the new one, then delete the old one. The new
/// manifest keeps the snapshot's identity (its time and, in `previous_ids`,
/// every id it had), so a crash between the two steps leaves a duplicate
/// that retention counts once and the next prune deletes.
pub fn replace_manifest(
    repo: &Repository,
    old_ref: &SnapshotRef,
    old: &Snapshot,
    new: &Rewritten,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<ObjectId> {
    let mut snap = old.rewritten(old_ref.id, at);
    snap.tree = new.tree.clone();
    snap.summary.items = snap.summary.items.saturating_sub(new.dropped);
    snap.summary.bytes = snap.summary.bytes.saturating_sub(new.dropped_bytes);
    let id = repo.replace_snapshot(old_ref, &snap)?;
    tracing::info!(old = %old_ref.id.short(), new = %id.short(), source = %crate::escape::escaped(&old.source), "snapshot rewritten");
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
