//! The output half of the walk: each directory's entries go into its pages
//! ([`DirBuilder`]) in name order as soon as the entries before them are
//! known, so a snapshot never holds the source's skeleton.
//!
//! # Pending entries, one budget for the whole walk
//!
//! An entry whose file is still being stored ([`super::workers`]) cannot
//! go into its page yet, nor can anything after it. So each open directory
//! ([`OpenDir`]) keeps a queue of pending entries: reused files, finished
//! subdirectories, files in the workers' hands. The queue's front goes into
//! the pages as soon as it is ready; an entry added to an empty queue that
//! needs nothing goes straight in (an unchanged tree never queues at all).
//!
//! A directory whose walk ends while some of its files are still being
//! stored is not waited for: it becomes one pending entry of its parent,
//! whole (its open pages and its own queue), and the walk goes on. So the
//! workers always have files from many directories, and a tree of many
//! small directories reads as fast as a flat one. What is pending across
//! all directories is counted against one budget, [`PENDING`] entries (an
//! ended directory counts the entries of its open pages too):
//! when it is reached the walk settles everything (waits for the files in
//! flight and pushes every pending entry, finishing the ended directories
//! inside them bottom-up, with an explicit stack, never recursion), and
//! the count starts again from zero.
//!
//! Memory is therefore O(depth × open page + [`PENDING`] entries): ~1 KiB a
//! pending entry (a file's path and entry), ~16 MiB at most; an open page
//! is at most [`crate::tree::build::MAX_PAGE_BYTES`] per level of a
//! directory's B-tree, and only directories with many entries have big
//! open pages.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::error::Result;
use crate::repo::pack::{BlobKind, BlobRef};
use crate::repo::writer::Compress;
use crate::tree::build::{DirBuilder, Totals};
use crate::tree::{DirEntry, Entry, FileEntry};

use super::walk::{Walker, Why};
use super::workers::Slot;

/// Entries pending across all directories before the walk settles them.
pub(super) const PENDING: usize = 16 << 10;

/// One entry of a directory that is not in its pages yet.
// Most pending entries are files (ready or being stored): boxing the big
// variant would only add an allocation to each.
#[allow(clippy::large_enum_variant)]
pub(super) enum Pending {
    /// A reused (or carried) file, or a finished subdirectory.
    Ready(Entry),
    /// A file the workers are storing.
    Job { slot: Arc<Slot>, why: Why },
    /// A subdirectory whose walk ended before its files were all stored.
    Dir(Box<OpenDir>),
}

/// The entry a directory gets in its parent.
pub(super) struct DirMeta {
    pub(super) name: String,
    pub(super) mode: u32,
    pub(super) mtime_ns: i64,
    /// Left out of its parent when it ends up holding nothing (a carried
    /// directory, or any directory when includes or excludes apply).
    pub(super) drop_if_empty: bool,
}

/// A directory being written: its pages so far and its pending entries.
pub(super) struct OpenDir {
    builder: DirBuilder,
    /// Whose key seals its pages.
    tenant: Option<String>,
    pending: VecDeque<Pending>,
    /// `None` for the snapshot's root.
    meta: Option<DirMeta>,
}

impl OpenDir {
    pub(super) fn new(walker: &Walker<'_>, tenant: Option<String>, meta: Option<DirMeta>) -> Self {
        OpenDir {
            builder: DirBuilder::new(walker.boundary.clone()),
            tenant,
            pending: VecDeque::new(),
            meta,
        }
    }
}

/// The directory on top of `subs`, or `root` when none is.
fn top<'d>(root: &'d mut OpenDir, subs: &'d mut [Box<OpenDir>]) -> &'d mut OpenDir {
    match subs.last_mut() {
        Some(sub) => sub,
        None => root,
    }
}

impl Walker<'_> {
    /// Put `entry` into `dir`'s pages (counted in the summary).
    fn push_entry(&mut self, dir: &mut OpenDir, entry: Entry) -> Result<()> {
        match &entry {
            Entry::File(f) => {
                self.summary.items += 1;
                self.summary.bytes = self.summary.bytes.saturating_add(f.size);
            }
            Entry::Dir(_) => self.summary.dirs += 1,
        }
        let writer = self.writer;
        let tenant = dir.tenant.as_deref();
        dir.builder.push(&entry, &mut |bytes| {
            writer.store(tenant, BlobKind::Tree, bytes, Compress::Try)
        })
    }

    /// A stored file's entry, counted by why it was read; `None` when it
    /// could not be read (warned by its worker).
    fn stored(&mut self, outcome: Option<FileEntry>, why: Why) -> Option<Entry> {
        let f = outcome?;
        let s = &mut self.summary;
        s.bytes_read = s.bytes_read.saturating_add(f.size);
        match why {
            Why::New => s.files_new += 1,
            Why::Changed => s.files_changed += 1,
            Why::Reread | Why::Healed => {
                s.files_unchanged += 1;
                s.reread += 1;
                s.healed += u64::from(why == Why::Healed);
            }
        }
        Some(Entry::File(f))
    }

    /// Add the next entry (in name order) to `dir`.
    pub(super) fn add(&mut self, dir: &mut OpenDir, pending: Pending) -> Result<()> {
        match pending {
            Pending::Ready(entry) if dir.pending.is_empty() => self.push_entry(dir, entry),
            pending => {
                dir.pending.push_back(pending);
                self.held += 1;
                Ok(())
            }
        }
    }

    /// Push `dir`'s pending entries that are ready, in order, without
    /// waiting; stops at a file still being stored or an ended
    /// subdirectory (those wait for [`Self::settle`]).
    fn drain(&mut self, dir: &mut OpenDir) -> Result<()> {
        while let Some(front) = dir.pending.pop_front() {
            let entry = match front {
                Pending::Ready(entry) => Some(entry),
                Pending::Job { slot, why } => match slot.try_take() {
                    Some(outcome) => self.stored(outcome, why),
                    None => {
                        dir.pending.push_front(Pending::Job { slot, why });
                        return Ok(());
                    }
                },
                dir_pending @ Pending::Dir(_) => {
                    dir.pending.push_front(dir_pending);
                    return Ok(());
                }
            };
            self.held = self.held.saturating_sub(1);
            if let Some(entry) = entry {
                self.push_entry(dir, entry)?;
            }
        }
        Ok(())
    }

    /// Push every pending entry of `root`, waiting for files in flight and
    /// finishing the ended subdirectories inside it, deepest first.
    pub(super) fn settle(&mut self, root: &mut OpenDir) -> Result<()> {
        let mut subs: Vec<Box<OpenDir>> = Vec::new();
        loop {
            let dir = top(root, &mut subs);
            match dir.pending.pop_front() {
                Some(Pending::Dir(sub)) => subs.push(sub),
                Some(Pending::Ready(entry)) => self.push_entry(dir, entry)?,
                Some(Pending::Job { slot, why }) => {
                    if let Some(entry) = self.stored(slot.wait(), why) {
                        self.push_entry(dir, entry)?;
                    }
                }
                None => {
                    let Some(done) = subs.pop() else {
                        return Ok(());
                    };
                    if let Some(entry) = self.finish_sub(*done)? {
                        self.push_entry(top(root, &mut subs), entry)?;
                    }
                }
            }
        }
    }

    /// A directory whose walk ended: its entry for `parent` now when all
    /// its entries are ready, else it waits inside `parent`.
    pub(super) fn ended(&mut self, mut dir: OpenDir, parent: &mut OpenDir) -> Result<()> {
        self.drain(&mut dir)?;
        if !dir.pending.is_empty() {
            // Its open pages wait with it: they count against the budget
            // too, so many such directories make the walk settle sooner.
            self.held = self.held.saturating_add(dir.builder.open_entries());
            return self.add(parent, Pending::Dir(Box::new(dir)));
        }
        match self.finish_sub(dir)? {
            Some(entry) => self.add(parent, Pending::Ready(entry)),
            None => Ok(()),
        }
    }

    /// Store the last pages of `dir` (its queue empty): its root page and
    /// what it holds.
    pub(super) fn close(&mut self, dir: OpenDir) -> Result<(BlobRef, Totals, Option<DirMeta>)> {
        let writer = self.writer;
        let tenant = dir.tenant;
        let (tree, totals) = dir.builder.finish(&mut |bytes| {
            writer.store(tenant.as_deref(), BlobKind::Tree, bytes, Compress::Try)
        })?;
        Ok((tree, totals, dir.meta))
    }

    /// The entry of the finished subdirectory `dir`, `None` when it is
    /// left out (empty, and dropped when empty).
    fn finish_sub(&mut self, dir: OpenDir) -> Result<Option<Entry>> {
        let tenant = dir.tenant.clone();
        let (tree, totals, meta) = self.close(dir)?;
        let Some(meta) = meta else {
            return Ok(None);
        };
        if meta.drop_if_empty && totals.entries == 0 {
            return Ok(None);
        }
        Ok(Some(Entry::Dir(DirEntry {
            name: meta.name,
            mode: meta.mode,
            mtime_ns: meta.mtime_ns,
            tenant,
            tree,
            files_below: totals.files,
            bytes_below: totals.bytes,
        })))
    }
}
