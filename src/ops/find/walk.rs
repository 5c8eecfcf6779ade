//! The matching walk: the files below a snapshot's root tree whose path a
//! glob matches, reading only the trees the glob can reach and each
//! (tree, place) once per run.
//!
//! Two things keep it cheap on a large repository:
//!
//! * **The glob's literal prefix narrows the walk.** A directory is entered
//!   only when the pattern may match below it ([`Pattern::may_match_below`]),
//!   so `acme/voice/2026/10/07/**` reads the root, `acme`, `acme/voice`, … and
//!   the trees below `07`, never `acme/emails` or another tenant.
//! * **Unchanged directories are read once.** A directory that did not change
//!   between snapshots serializes to the same tree blob (see
//!   [`crate::tree`]), so the matches below a tree are remembered by (tree
//!   blob id, directory path): the path is part of the key because the glob
//!   judges full paths. The next snapshot that holds the same tree at the
//!   same place takes the matches from memory without a read; within one
//!   (host, source) group, walked newest first, a (tree, place) already
//!   reported is skipped altogether (its items already have a newer
//!   snapshot holding them), so an unchanged subtree costs nothing at all.
//!
//! # Memory bound
//!
//! The memo holds at most [`MEMO_MAX_TREES`] trees and [`MEMO_MAX_ITEMS`]
//! remembered matches in all (a match is a path and a few fields, about
//! 150 bytes: some 40 MiB at the limit). Past either limit new trees are
//! walked but not remembered; subtrees are remembered before their parents,
//! so the small, shared subtrees stay in memory and only the big roots are
//! read again. The set of (tree, place) already reported holds at most
//! [`MEMO_MAX_TREES`] entries too. The walk itself uses an explicit stack, never recursion,
//! bounded by [`crate::tree::MAX_TREE_DEPTH`].

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::Result;
use crate::glob::Pattern;
use crate::id::ObjectId;
use crate::repo::pack::BlobRef;
use crate::repo::Repository;
use crate::tree::{check_depth, Entry, FileEntry};

/// Trees the memo remembers at most (see the module docs).
pub const MEMO_MAX_TREES: usize = 250_000;

/// Matches the memo remembers at most, summed over its trees.
pub const MEMO_MAX_ITEMS: usize = 250_000;

/// A file as `find` and `ls` report it: where it is and which version.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Path relative to the snapshot's source.
    pub path: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub mode: u32,
    pub tenant: Option<String>,
    /// The version: SHA-256 of the whole content.
    pub sha256: ObjectId,
    /// A voice recording gone from the source, carried forward.
    pub carried: bool,
}

impl Item {
    /// The item at `path` described by `entry`.
    pub fn new(path: String, entry: &FileEntry) -> Self {
        Item {
            path,
            size: entry.size,
            mtime_ns: entry.mtime_ns,
            mode: entry.mode,
            tenant: entry.tenant.clone(),
            sha256: entry.sha256,
            carried: entry.carried,
        }
    }
}

/// A directory being walked: its entries still to visit and the matches
/// found below it so far.
struct Frame {
    key: (ObjectId, String),
    dir: Vec<String>,
    entries: std::vec::IntoIter<Entry>,
    found: Vec<Item>,
    /// Something below was left out (in `seen`): not a whole answer to remember.
    partial: bool,
}

/// (tree, place) pairs whose matches the caller has had (see [`MatchWalker::matches`]).
pub type Seen = HashSet<(ObjectId, String)>;

/// Finds the files matching one pattern below snapshot roots, remembering
/// what it found per tree (see the module docs).
pub struct MatchWalker<'r> {
    repo: &'r Repository,
    pattern: Pattern,
    memo: HashMap<(ObjectId, String), Vec<Item>>,
    memo_items: usize,
    trees_read: u64,
    /// Tenants whose directories are not entered (their key is erased).
    erased: std::collections::BTreeMap<String, crate::repo::rotate::ErasedTenant>,
}

impl<'r> MatchWalker<'r> {
    pub fn new(repo: &'r Repository, pattern: Pattern) -> Self {
        MatchWalker {
            repo,
            pattern,
            memo: HashMap::new(),
            memo_items: 0,
            trees_read: 0,
            erased: Default::default(),
        }
    }

    /// Do not enter the directories of the `erased` tenants: their trees
    /// cannot be read (until prune removes them, `find` shows the rest).
    pub fn skipping(
        mut self,
        erased: std::collections::BTreeMap<String, crate::repo::rotate::ErasedTenant>,
    ) -> Self {
        self.erased = erased;
        self
    }

    /// Tree blobs read from the repository so far.
    pub fn trees_read(&self) -> u64 {
        self.trees_read
    }

    /// The files below the root tree `root` that match, in name order,
    /// leaving out what lies below a (tree, place) in `seen`: the caller
    /// has had those already (an older snapshot of the same group holding
    /// an unchanged directory adds nothing to `find`'s rows). Every
    /// (tree, place) reported adds itself to `seen`, up to
    /// [`MEMO_MAX_TREES`] of them.
    pub fn matches(&mut self, root: &BlobRef, seen: &mut Seen) -> Result<Vec<Item>> {
        let mut reported = Vec::new();
        let found = self.walk(root, seen, &mut reported)?;
        // Only a walk that succeeded has reported what it marks.
        for key in reported {
            if seen.len() < MEMO_MAX_TREES {
                seen.insert(key);
            }
        }
        Ok(found)
    }

    fn walk(
        &mut self,
        root: &BlobRef,
        seen: &Seen,
        reported: &mut Vec<(ObjectId, String)>,
    ) -> Result<Vec<Item>> {
        let root_key = (root.id, String::new());
        if seen.contains(&root_key) {
            return Ok(Vec::new());
        }
        if let Some(hit) = self.memo.get(&root_key) {
            reported.push(root_key);
            return Ok(hit.clone());
        }
        let mut stack = vec![self.open(root, Vec::new())?];
        while let Some(top) = stack.last_mut() {
            match top.entries.next() {
                Some(Entry::File(f)) => {
                    let mut parts: Vec<&str> = top.dir.iter().map(String::as_str).collect();
                    parts.push(&f.name);
                    if self.pattern.matches(&parts) {
                        top.found.push(Item::new(parts.join("/"), &f));
                    }
                }
                Some(Entry::Dir(d)) => {
                    let mut dir = top.dir.clone();
                    dir.push(d.name);
                    let parts: Vec<&str> = dir.iter().map(String::as_str).collect();
                    let erased = d
                        .tenant
                        .as_ref()
                        .is_some_and(|t| self.erased.contains_key(t));
                    if erased || !self.pattern.may_match_below(&parts) {
                        continue;
                    }
                    let key = (d.tree.id, parts.join("/"));
                    if seen.contains(&key) {
                        top.partial = true;
                        continue;
                    }
                    if let Some(hit) = self.memo.get(&key) {
                        top.found.extend(hit.iter().cloned());
                        reported.push(key);
                        continue;
                    }
                    check_depth(dir.len(), &d.tree)?;
                    let frame = self.open(&d.tree, dir)?;
                    stack.push(frame);
                }
                None => {
                    let done = stack.pop().expect("the loop holds a frame");
                    if !done.partial && self.fits(done.found.len()) {
                        self.memo_items += done.found.len();
                        self.memo.insert(done.key.clone(), done.found.clone());
                    }
                    reported.push(done.key);
                    match stack.last_mut() {
                        Some(parent) => {
                            parent.partial |= done.partial;
                            parent.found.extend(done.found);
                        }
                        None => return Ok(done.found),
                    }
                }
            }
        }
        unreachable!("the root frame returns when it is done")
    }

    /// Read the tree `blob` at `dir` and start walking it.
    fn open(&mut self, blob: &BlobRef, dir: Vec<String>) -> Result<Frame> {
        let tree = self.repo.read_tree(blob)?;
        self.trees_read += 1;
        Ok(Frame {
            key: (blob.id, dir.join("/")),
            dir,
            entries: tree.entries.into_iter(),
            found: Vec::new(),
            partial: false,
        })
    }

    /// Does one more tree with `items` matches fit in the memo's bounds?
    fn fits(&self, items: usize) -> bool {
        self.memo.len() < MEMO_MAX_TREES && self.memo_items.saturating_add(items) <= MEMO_MAX_ITEMS
    }
}
