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
//!   same place takes the matches from memory without a read.
//!
//! # Memory bound
//!
//! The memo holds at most [`MEMO_MAX_TREES`] trees and [`MEMO_MAX_ITEMS`]
//! remembered matches in all (a match is a path and a few fields, about
//! 150 bytes: some 40 MiB at the limit). Past either limit new trees are
//! walked but not remembered; subtrees are remembered before their parents,
//! so the small, shared subtrees stay in memory and only the big roots are
//! read again. The walk itself uses an explicit stack, never recursion,
//! bounded by [`crate::tree::MAX_TREE_DEPTH`].

use std::collections::HashMap;
use std::rc::Rc;

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
}

/// Finds the files matching one pattern below snapshot roots, remembering
/// what it found per tree (see the module docs).
pub struct MatchWalker<'r> {
    repo: &'r Repository,
    pattern: Pattern,
    memo: HashMap<(ObjectId, String), Rc<[Item]>>,
    memo_items: usize,
    trees_read: u64,
}

impl<'r> MatchWalker<'r> {
    pub fn new(repo: &'r Repository, pattern: Pattern) -> Self {
        MatchWalker {
            repo,
            pattern,
            memo: HashMap::new(),
            memo_items: 0,
            trees_read: 0,
        }
    }

    /// Tree blobs read from the repository so far.
    pub fn trees_read(&self) -> u64 {
        self.trees_read
    }

    /// The files below the root tree `root` that match, in name order.
    pub fn matches(&mut self, root: &BlobRef) -> Result<Rc<[Item]>> {
        if let Some(hit) = self.memo.get(&(root.id, String::new())) {
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
                    if !self.pattern.may_match_below(&parts) {
                        continue;
                    }
                    if let Some(hit) = self.memo.get(&(d.tree.id, parts.join("/"))) {
                        top.found.extend(hit.iter().cloned());
                        continue;
                    }
                    check_depth(dir.len(), &d.tree)?;
                    let frame = self.open(&d.tree, dir)?;
                    stack.push(frame);
                }
                None => {
                    let done = stack.pop().expect("the loop holds a frame");
                    let found: Rc<[Item]> = done.found.into();
                    self.remember(done.key, found.clone());
                    match stack.last_mut() {
                        Some(parent) => parent.found.extend(found.iter().cloned()),
                        None => return Ok(found),
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
        })
    }

    /// Remember the matches below one tree, within the memo's bounds.
    fn remember(&mut self, key: (ObjectId, String), found: Rc<[Item]>) {
        let items = self.memo_items.saturating_add(found.len());
        if self.memo.len() < MEMO_MAX_TREES && items <= MEMO_MAX_ITEMS {
            self.memo_items = items;
            self.memo.insert(key, found);
        }
    }
}
