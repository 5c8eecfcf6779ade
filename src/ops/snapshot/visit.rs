//! Visiting one name of the walk: a source file reused from the parent or
//! handed to the workers, a source directory entered, or (voice) a parent
//! entry gone from the source carried forward.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::escape::Escaped;
use crate::glob::{enter, selected};
use crate::id::ObjectId;
use crate::source_file::Seen;
use crate::tree::{ChunkList, Entry, FileEntry, MAX_TREE_DEPTH};

use super::dir_out::{DirMeta, OpenDir, Pending};
use super::names::Names;
use super::walk::{FileJob, Frame, Walker, Why};
use super::workers::{Job, Slot};

/// The mtime in nanoseconds, clamped to what an `i64` holds (1677..2262):
/// a later one keeps the recording longest, an earlier one is long expired.
fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    let saturated = if meta.mtime() < 0 { i64::MIN } else { i64::MAX };
    meta.mtime()
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(meta.mtime_nsec()))
        .unwrap_or(saturated)
}

fn parts(rel: &[String]) -> Vec<&str> {
    rel.iter().map(String::as_str).collect()
}

impl<'a> Walker<'a> {
    /// The source's `dir/name`: a file goes into `out` (reused or to read),
    /// a directory is entered (its frame returned).
    pub(super) fn visit(
        &mut self,
        dir: &Path,
        name: String,
        old: Option<Entry>,
        rel: &mut Vec<String>,
        out: &mut OpenDir,
    ) -> Result<Option<Frame<'a>>> {
        let path = dir.join(&name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("{}: {e}", path.display()));
                return Ok(None);
            }
        };
        rel.push(name);
        let mut frame = None;
        if meta.is_dir() {
            frame = self.enter_dir(path, &meta, old, rel)?;
        } else if meta.is_file() {
            self.file(path, &meta, old, rel, out)?;
        } else {
            self.warn(format!(
                "{}: not a regular file or directory, skipped",
                path.display()
            ));
        }
        if frame.is_none() {
            rel.pop();
        }
        Ok(frame)
    }

    /// The frame of the source directory `path` (at `rel`), unless it is
    /// left out.
    fn enter_dir(
        &mut self,
        path: PathBuf,
        meta: &std::fs::Metadata,
        old: Option<Entry>,
        rel: &[String],
    ) -> Result<Option<Frame<'a>>> {
        let parts = parts(rel);
        if let Some(t) = self.erased_below(&parts) {
            *self.skipped_erased.entry(t).or_default() += 1;
            return Ok(None);
        }
        if !enter(&self.source.include, &parts) {
            return Ok(None);
        }
        let tenant = self.source.tenant.tenant_of_dir(&parts);
        let filtering = !self.source.include.is_empty() || !self.source.exclude.is_empty();
        let dir_meta = DirMeta {
            name: rel.last().cloned().unwrap_or_default(),
            mode: meta.mode(),
            mtime_ns: mtime_ns(meta),
            drop_if_empty: filtering,
        };
        let (names, parent) = match self.names(&path) {
            Ok(names) => {
                let parent = match &old {
                    Some(Entry::Dir(d)) => self.parent_dir(&d.tree, rel, false)?,
                    _ => None,
                };
                (names, parent)
            }
            Err(e) => {
                self.warn(format!("{}: {e}", path.display()));
                (Names::default(), None)
            }
        };
        Ok(Some(Frame {
            out: OpenDir::new(self, tenant, Some(dir_meta)),
            source: Some((path, names)),
            parent,
        }))
    }

    /// The regular file `path` (at `rel`), the parent's entry `old` of that
    /// name: reused into `out`, or handed to the workers.
    fn file(
        &mut self,
        path: PathBuf,
        meta: &std::fs::Metadata,
        old: Option<Entry>,
        rel: &[String],
        out: &mut OpenDir,
    ) -> Result<()> {
        let parts = parts(rel);
        if !selected(&self.source.include, &self.source.exclude, &parts) {
            return Ok(());
        }
        let entry = FileEntry {
            carried: false,
            name: rel.last().cloned().unwrap_or_default(),
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            mode: meta.mode(),
            inode: meta.ino(),
            tenant: self.source.tenant.tenant_of(&parts),
            sha256: ObjectId::default(),
            chunks: ChunkList::empty(),
        };
        if let Some(t) = entry
            .tenant
            .as_ref()
            .filter(|t| self.erased.contains_key(*t))
        {
            *self.skipped_erased.entry(t.clone()).or_default() += 1;
            return Ok(());
        }
        if self.contracts.is_some_and(|c| c.expired(&entry, self.time)) {
            self.expired += 1;
            return Ok(());
        }
        let old = match old {
            Some(Entry::File(f)) => Some(f),
            _ => None,
        };
        // A file now of another tenant is read again: its chunks are
        // sealed under the old tenant's key.
        let same = old.as_ref().is_some_and(|f| {
            f.size == entry.size
                && f.mtime_ns == entry.mtime_ns
                && f.inode == entry.inode
                && f.tenant == entry.tenant
        });
        let reused = match old.as_ref().filter(|_| same && !self.reread) {
            Some(f) => self
                .relocate(f.tenant.as_deref(), &f.chunks)?
                .map(|chunks| (chunks, f.sha256)),
            None => None,
        };
        if let Some((chunks, sha256)) = reused {
            self.summary.files_unchanged += 1;
            let entry = FileEntry {
                chunks,
                sha256,
                ..entry
            };
            return self.add(out, Pending::Ready(Entry::File(entry)));
        }
        let why = match old {
            None => Why::New,
            Some(_) if !same => Why::Changed,
            Some(_) if self.reread => Why::Reread,
            Some(_) => Why::Healed,
        };
        if why == Why::Healed {
            tracing::info!(path = %Escaped(path.display()), "stored chunks lost: read again");
        }
        let seen = Seen {
            dev: meta.dev(),
            inode: meta.ino(),
        };
        self.submit(
            FileJob {
                path,
                entry,
                seen,
                why,
            },
            out,
        )
    }

    /// Hand `job` to the workers; its entry waits in `out`.
    fn submit(&mut self, job: FileJob, out: &mut OpenDir) -> Result<()> {
        let size = job.entry.size;
        if self.reading {
            self.progress.add_total(1, size);
        } else {
            self.reading = true;
            let phase = format!("{}: reading", self.source.name);
            self.progress.phase(&phase, "files", 1, size);
        }
        let expiry_day = match self.contracts.filter(|_| self.voice_days) {
            Some(contracts) => Some(crate::object_lock::voice_day(
                contracts, &job.entry, self.time,
            )),
            None => None,
        };
        let slot = Arc::new(Slot::default());
        let why = job.why;
        let job = Job {
            file: job,
            expiry_day,
            slot: slot.clone(),
        };
        let sent = self.queue.as_ref().is_some_and(|q| q.send(job).is_ok());
        if !sent {
            self.shared.check()?;
            return Err(Error::Cancelled);
        }
        self.add(out, Pending::Job { slot, why })
    }

    /// Carry forward the parent's `entry`, gone from the source (voice
    /// only): a file still selected and not expired at the snapshot's time
    /// goes into `out`; a directory is entered (its frame returned).
    pub(super) fn carry(
        &mut self,
        entry: Entry,
        rel: &mut Vec<String>,
        out: &mut OpenDir,
    ) -> Result<Option<Frame<'a>>> {
        let Some(contracts) = self.contracts else {
            return Ok(None);
        };
        rel.push(entry.name().to_string());
        let parts = parts(rel);
        let mut frame = None;
        match entry {
            Entry::File(f) if selected(&self.source.include, &self.source.exclude, &parts) => {
                if contracts.expired(&f, self.time) {
                    self.expired += 1;
                } else if let Some(chunks) = self.relocate(f.tenant.as_deref(), &f.chunks)? {
                    self.carried += 1;
                    self.summary.files_unchanged += 1;
                    let entry = FileEntry {
                        carried: true,
                        chunks,
                        ..f
                    };
                    self.add(out, Pending::Ready(Entry::File(entry)))?;
                } else {
                    self.lost += 1;
                    self.warn(format!(
                        "{}: recording gone from the source and its backup copy is lost (a pack is missing); left out of this snapshot",
                        rel.join("/")
                    ));
                }
            }
            Entry::Dir(d) if enter(&self.source.include, &parts) => {
                let tenant = self.source.tenant.tenant_of_dir(&parts);
                if rel.len() > MAX_TREE_DEPTH {
                    // Only a forged parent nests this deep.
                    self.warn(format!(
                        "{}...: the previous snapshot nests more than {MAX_TREE_DEPTH} directories; nothing below is carried",
                        rel.iter().take(8).cloned().collect::<Vec<_>>().join("/")
                    ));
                } else if let Some(parent) = self.parent_dir(&d.tree, rel, true)? {
                    let meta = DirMeta {
                        name: d.name,
                        mode: d.mode,
                        mtime_ns: d.mtime_ns,
                        drop_if_empty: true,
                    };
                    frame = Some(Frame {
                        out: OpenDir::new(self, tenant, Some(meta)),
                        source: None,
                        parent: Some(parent),
                    });
                }
            }
            _ => {}
        }
        if frame.is_none() {
            rel.pop();
        }
        Ok(frame)
    }
}
