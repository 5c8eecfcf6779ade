//! The walk: the source beside its parent snapshot, deciding per file
//! whether to reuse the parent's entry (metadata unchanged and every chunk
//! still held), read it (new, changed, `--reread`, or healed), or, for voice,
//! carry forward a recording that is gone from the source until it expires
//! (each name: [`super::visit`]).
//!
//! The walk is iterative, depth first, with an explicit stack of open
//! directories ([`Frame`]), so no nesting of the source or of a (forged)
//! parent can overflow the thread's stack. Each frame holds the source
//! directory's sorted names ([`super::names`]), the parent's listing of the
//! same directory read page by page beside them ([`DirIter`], one page at a
//! time, never the whole directory), and the directory's output
//! ([`super::dir_out`]). Files to read go to the workers
//! ([`super::workers`]) as they are found.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

use chrono::{DateTime, Utc};

use crate::cancel::Cancel;
use crate::config::Source;
use crate::error::{Error, Result};
use crate::problems::{is_object_damage, Problem};
use crate::progress::Progress;
use crate::repo::layout::pack_key;
use crate::repo::pack::BlobRef;
use crate::repo::writer::BlobWriter;
use crate::repo::TreeCache;
use crate::snapshot::Summary;
use crate::source_file::Seen;
use crate::tree::build::Boundary;
use crate::tree::page::{Page, PieceRef};
use crate::tree::read::{DirIter, PageSource};
use crate::tree::{Entry, FileEntry};
use crate::voice::Contracts;

use super::dir_out::{OpenDir, PENDING};
use super::names::Names;
use super::workers::{Job, Shared};

/// Why the walk wants a file read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    New,
    Changed,
    /// Metadata unchanged, read again on request (`--reread`).
    Reread,
    /// Metadata unchanged, but a chunk it had is no longer in the repository.
    Healed,
}

/// A file the walk found that must be read.
pub(super) struct FileJob {
    pub(super) path: PathBuf,
    pub(super) entry: FileEntry,
    pub(super) seen: Seen,
    pub(super) why: Why,
}

/// Reads the parent's pages through the walk's one [`TreeCache`].
#[derive(Clone, Copy)]
pub(super) struct Cached<'a>(pub(super) &'a RefCell<TreeCache<'a>>);

impl PageSource for Cached<'_> {
    fn page(&mut self, blob: &BlobRef) -> Result<Page> {
        self.0.borrow_mut().page(blob)
    }
    fn piece(&mut self, blob: &BlobRef) -> Result<Vec<BlobRef>> {
        self.0.borrow_mut().piece(blob)
    }
    fn piece_list(&mut self, blob: &BlobRef, chunks: u64) -> Result<Vec<PieceRef>> {
        self.0.borrow_mut().piece_list(blob, chunks)
    }
}

/// The parent snapshot's listing of one directory, read page by page.
pub(super) struct ParentDir<'a> {
    iter: DirIter<Cached<'a>>,
    /// The next entry, read but not used yet.
    peeked: Option<Entry>,
    /// The directory's root page (named when a later page fails).
    blob: BlobRef,
}

/// One open directory of the walk.
pub(super) struct Frame<'a> {
    pub(super) out: OpenDir,
    /// The source directory and its names still to visit; `None` for a
    /// directory only the parent has (voice recordings carried forward).
    pub(super) source: Option<(PathBuf, Names)>,
    pub(super) parent: Option<ParentDir<'a>>,
}

/// What comes next in a directory.
enum Step {
    /// A name of the source, with the parent's entry of that name.
    Name(String, Option<Entry>),
    /// An entry of the parent gone from the source (voice only).
    Gone(Entry),
    End,
}

pub(super) struct Walker<'a> {
    /// The parent snapshot's trees, fetched a pack at a time.
    pub(super) trees: &'a RefCell<TreeCache<'a>>,
    /// How many of `trees`' damaged blobs the writer forgot already.
    pub(super) forgotten: usize,
    /// Deduplicates against the trusted index; says where a blob is held.
    pub(super) writer: &'a BlobWriter<'a>,
    pub(super) reread: bool,
    pub(super) source: &'a Source,
    /// For voice sources: the contracts that decide expiry at `time`.
    pub(super) contracts: Option<&'a Contracts>,
    /// Voice packs carry their recordings' expiry day (Object Lock).
    pub(super) voice_days: bool,
    pub(super) time: DateTime<Utc>,
    pub(super) cancel: &'a Cancel,
    pub(super) progress: &'a Progress,
    /// Where directory pages end.
    pub(super) boundary: Boundary,
    /// Files to read go here; `None` once the walk is over.
    pub(super) queue: Option<SyncSender<Job>>,
    pub(super) shared: &'a Shared,
    /// Entries pending across all open directories (see [`super::dir_out`]).
    pub(super) held: usize,
    /// The progress line shows the reading phase.
    pub(super) reading: bool,
    /// What went into the pages (carried, expired and lost apart).
    pub(super) summary: Summary,
    pub(super) warnings: Vec<String>,
    pub(super) carried: u64,
    pub(super) expired: u64,
    /// Carried recordings left out because their backup copy is lost.
    pub(super) lost: u64,
    pub(super) problems: Vec<Problem>,
    /// Erased tenants ([`crate::ops::erase`]): their files are left out,
    /// counted per tenant here.
    pub(super) erased: std::collections::BTreeMap<String, crate::repo::rotate::ErasedTenant>,
    pub(super) skipped_erased: std::collections::BTreeMap<String, u64>,
}

impl<'a> Walker<'a> {
    /// The erased tenant every file below the directory `parts` belongs
    /// to, if any: the directory is left out unread.
    pub(super) fn erased_below(&self, parts: &[&str]) -> Option<String> {
        let tenant = self.source.tenant.tenant_of_dir(parts)?;
        self.erased.contains_key(&tenant).then_some(tenant)
    }

    /// One warning per erased tenant whose files were left out.
    pub(super) fn warn_erased(&mut self) {
        for (tenant, n) in std::mem::take(&mut self.skipped_erased) {
            let Some(e) = self.erased.get(&tenant) else {
                continue;
            };
            let message = format!(
                "tenant {tenant} was erased at {}: its files are not backed up ({n} file(s) or directories left out; {})",
                e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                e.reason
            );
            self.warn(message);
        }
    }

    /// A warning about the source: one line, names escaped.
    pub(super) fn warn(&mut self, message: String) {
        let message = crate::escape::escaped(&message);
        tracing::warn!(source = %self.source.name, "{message}");
        self.warnings.push(message);
    }

    /// Forget every page, piece and piece list found damaged so far: a
    /// page rebuilt byte for byte has the same id, and must be stored again
    /// rather than point at the damaged copy. Done as soon as the damage is
    /// seen, before the walk builds anything below it.
    pub(super) fn forget_damaged(&mut self) {
        let trees = self.trees.borrow();
        let damaged = trees.damaged();
        for id in damaged.get(self.forgotten..).unwrap_or_default() {
            self.writer.forget(id);
        }
        self.forgotten = damaged.len();
    }

    /// The parent's listing of a directory (root page `blob`), or `None`
    /// when it cannot be read: then everything below is read again.
    pub(super) fn parent_dir(
        &mut self,
        blob: &BlobRef,
        rel: &[String],
        carrying: bool,
    ) -> Result<Option<ParentDir<'a>>> {
        let opened = DirIter::new(Cached(self.trees), blob);
        self.forget_damaged();
        match opened {
            Ok(iter) => Ok(Some(ParentDir {
                iter,
                peeked: None,
                blob: blob.clone(),
            })),
            Err(e) => self.parent_failed(blob, rel, carrying, e).map(|()| None),
        }
    }

    /// A parent listing that failed with `e`: lost or damaged (warned, and
    /// reported as a problem) or erased is no error, the files below are
    /// read again. Other errors (the store failing) stop the snapshot, so
    /// a transient failure never drops a carried recording.
    fn parent_failed(
        &mut self,
        blob: &BlobRef,
        rel: &[String],
        carrying: bool,
        e: Error,
    ) -> Result<()> {
        match e {
            // Nobody can read an erased tenant's listing, by design: not
            // damage, its files (if any are left) are simply read again.
            Error::Erased { .. } => Ok(()),
            e if is_object_damage(&e) => {
                if carrying {
                    self.warn(format!("{}: the previous snapshot's listing is lost ({e}); recordings carried below it are lost", rel.join("/")));
                }
                self.writer.forget(&blob.id);
                self.problems.push(unreadable_parent_tree(blob, rel, &e));
                Ok(())
            }
            e => Err(e),
        }
    }

    /// Make sure the parent's next entry is read (the listing ends at a
    /// page that cannot be read).
    fn fill_peek(
        &mut self,
        slot: &mut Option<ParentDir<'a>>,
        rel: &[String],
        carrying: bool,
    ) -> Result<()> {
        let Some(parent) = slot else { return Ok(()) };
        if parent.peeked.is_some() {
            return Ok(());
        }
        let next = parent.iter.next();
        self.forget_damaged();
        match next {
            Some(Ok(entry)) => parent.peeked = Some(entry),
            None => *slot = None,
            Some(Err(e)) => {
                let blob = parent.blob.clone();
                *slot = None;
                self.parent_failed(&blob, rel, carrying, e)?;
            }
        }
        Ok(())
    }

    /// The next thing to do in `frame`: source names and the parent's
    /// entries merged by name.
    fn next_step(&mut self, frame: &mut Frame<'a>, rel: &[String]) -> Result<Step> {
        let carrying = frame.source.is_none();
        let voice = self.contracts.is_some();
        loop {
            let name = frame.source.as_ref().and_then(|(_, n)| n.peek());
            if name.is_none() && !voice {
                return Ok(Step::End);
            }
            self.fill_peek(&mut frame.parent, rel, carrying)?;
            let name = frame.source.as_mut().and_then(|(_, n)| {
                let name = n.peek().map(str::to_string);
                name.map(|name| (name, n))
            });
            let old = frame.parent.as_mut().and_then(|p| p.peeked.take());
            match (name, old) {
                (None, None) => return Ok(Step::End),
                (Some((name, names)), old)
                    if old.as_ref().is_none_or(|o| o.name() >= name.as_str()) =>
                {
                    names.advance();
                    let (same, later) = match old {
                        Some(o) if o.name() == name => (Some(o), None),
                        other => (None, other),
                    };
                    if let (Some(parent), Some(later)) = (frame.parent.as_mut(), later) {
                        parent.peeked = Some(later);
                    }
                    return Ok(Step::Name(name, same));
                }
                (_, Some(gone)) if voice => return Ok(Step::Gone(gone)),
                // Gone from a data source: nothing to carry.
                (_, _) => {}
            }
        }
    }

    /// Walk the source at `root` beside the parent's tree `parent`; the new
    /// snapshot's root page.
    pub(super) fn walk(
        &mut self,
        root: &Path,
        parent: Option<&BlobRef>,
        tenant: Option<String>,
    ) -> Result<BlobRef> {
        self.cancel.check()?;
        let names = self.names(root).map_err(|e| Error::io(root, e))?;
        let parent = match parent {
            Some(blob) => self.parent_dir(blob, &[], false)?,
            None => None,
        };
        let mut stack = vec![Frame {
            out: OpenDir::new(self, tenant, None),
            source: Some((root.to_path_buf(), names)),
            parent,
        }];
        let mut rel: Vec<String> = Vec::new();
        loop {
            self.cancel.check()?;
            self.shared.check()?;
            if self.held >= PENDING {
                for frame in &mut stack {
                    self.settle(&mut frame.out)?;
                }
                self.held = 0;
            }
            let Some(frame) = stack.last_mut() else {
                unreachable!("the root frame returns");
            };
            let sub = match self.next_step(frame, &rel)? {
                Step::Name(name, old) => {
                    let Frame { out, source, .. } = frame;
                    let dir = source.as_ref().map(|(p, _)| p.as_path()).unwrap_or(root);
                    self.visit(dir, name, old, &mut rel, out)?
                }
                Step::Gone(entry) => self.carry(entry, &mut rel, &mut frame.out)?,
                Step::End => {
                    let Some(done) = stack.pop() else {
                        unreachable!()
                    };
                    match stack.last_mut() {
                        Some(up) => {
                            rel.pop();
                            self.ended(done.out, &mut up.out)?;
                        }
                        None => {
                            let mut out = done.out;
                            self.settle(&mut out)?;
                            // A file a worker failed on is missing from
                            // the pages: the snapshot must not commit.
                            self.shared.check()?;
                            self.cancel.check()?;
                            return Ok(self.close(out)?.0);
                        }
                    }
                    None
                }
            };
            stack.extend(sub);
        }
    }

    /// The sorted names of the source directory `dir`.
    pub(super) fn names(&mut self, dir: &Path) -> std::io::Result<Names> {
        let mut warnings = Vec::new();
        let names = Names::read(dir, &mut |w| warnings.push(w));
        for w in warnings {
            self.warn(w);
        }
        names
    }
}

/// The problem of a parent tree that cannot be read, at `rel` below the source.
fn unreadable_parent_tree(blob: &BlobRef, rel: &[String], error: &Error) -> Problem {
    let mut problem = Problem::new(&pack_key(&blob.pack), error);
    problem.what = format!(
        "tree /{} of the parent snapshot: {}; not reused, its files are read again",
        rel.join("/"),
        problem.what
    );
    problem
}
