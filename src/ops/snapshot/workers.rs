//! The workers that read and store files, shared by the whole walk.
//!
//! The walk hands every file it must read to one bounded queue
//! ([`QUEUE`] jobs), served by one worker per core (at most 8) for the whole
//! snapshot: files of different directories are read at the same time, so a
//! tree of many small directories keeps every worker as busy as one flat
//! directory does. Each job carries a [`Slot`] that the walk keeps in its
//! directory's pending entries ([`super::dir_out`]); the worker fills it
//! with the stored entry, or with nothing when the file could not be read
//! (a warning) or the snapshot is failing. A slot is always filled, even if
//! storing panics, so the walk never waits forever.
//!
//! A repository failure (or a stop on request) is kept as the snapshot's
//! error; the workers then drain the queue without reading, and the walk
//! returns the error at its next step.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};

use crate::cancel::Cancel;
use crate::chunking::{store_open_file, ChunkSizes, StoreFileError};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repo::writer::BlobWriter;
use crate::source_file::open_seen;
use crate::tree::FileEntry;

use super::walk::FileJob;

/// Jobs queued for the workers at most; the walk waits when it is full.
pub(super) const QUEUE: usize = 256;

/// Where a worker leaves one file's outcome.
#[derive(Default)]
pub(super) struct Slot {
    /// `None` until filled; then the stored entry, or `None` (not stored).
    outcome: Mutex<Option<Option<FileEntry>>>,
    filled: Condvar,
}

impl Slot {
    fn fill(&self, outcome: Option<FileEntry>) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        self.filled.notify_all();
    }

    /// The outcome if the worker is done with the file.
    pub(super) fn try_take(&self) -> Option<Option<FileEntry>> {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Wait for the outcome.
    pub(super) fn wait(&self) -> Option<FileEntry> {
        let mut outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(done) = outcome.take() {
                return done;
            }
            outcome = self.filled.wait(outcome).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A file to read, with where its outcome goes.
pub(super) struct Job {
    pub(super) file: FileJob,
    /// The Object Lock expiry day of a voice recording's packs.
    pub(super) expiry_day: Option<i64>,
    pub(super) slot: Arc<Slot>,
}

/// What the workers share with the walk.
#[derive(Default)]
pub(super) struct Shared {
    failed: AtomicBool,
    fatal: Mutex<Option<Error>>,
    /// Warnings about files that could not be read.
    pub(super) warnings: Mutex<Vec<String>>,
}

impl Shared {
    /// Stop reading: the snapshot is failing.
    pub(super) fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    fn fatal(&self, e: Error) {
        self.fail();
        self.fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    }

    /// The error that stopped a worker, if any.
    pub(super) fn check(&self) -> Result<()> {
        if !self.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e),
            None => Err(Error::Cancelled),
        }
    }
}

/// What every worker needs to store a file.
pub(super) struct Context<'a> {
    pub(super) sizes: ChunkSizes,
    pub(super) writer: &'a BlobWriter<'a>,
    pub(super) cancel: &'a Cancel,
    pub(super) progress: &'a Progress,
    pub(super) shared: &'a Shared,
}

/// Serve the queue until the walk closes it.
pub(super) fn work(queue: &Mutex<Receiver<Job>>, cx: &Context<'_>) {
    loop {
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if cx.shared.failed.load(Ordering::Relaxed) {
            job.slot.fill(None);
            continue;
        }
        crate::failpoint::pause_before_read(&job.file.path, cx.cancel);
        let stored = std::panic::catch_unwind(AssertUnwindSafe(|| store(&job, cx)));
        cx.progress.advance(1, 0);
        let outcome = match stored {
            Ok(Ok(entry)) => Some(entry),
            Ok(Err(StoreFileError::Source(message))) => {
                let message = crate::escape::escaped(&message);
                tracing::warn!("{message}");
                cx.shared
                    .warnings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(message);
                None
            }
            Ok(Err(StoreFileError::Repository(e))) => {
                cx.shared.fatal(e);
                None
            }
            Err(_) => {
                cx.shared.fatal(Error::Usage(format!(
                    "storing {} failed unexpectedly (a bug; see the log)",
                    crate::escape::Escaped(job.file.path.display())
                )));
                None
            }
        };
        job.slot.fill(outcome);
    }
}

/// Read and store one file: its entry as stored.
fn store(job: &Job, cx: &Context<'_>) -> std::result::Result<FileEntry, StoreFileError> {
    let file = &job.file;
    let tenant = file.entry.tenant.as_deref();
    let opened = open_seen(&file.path, file.seen).map_err(StoreFileError::Source)?;
    let content = cx.writer.with_expiry_day(job.expiry_day, || {
        store_open_file(
            opened,
            &file.path,
            tenant,
            file.entry.size,
            cx.sizes,
            cx.writer,
            cx.progress,
        )
    })?;
    Ok(FileEntry {
        sha256: content.sha256,
        chunks: content.chunks,
        size: content.bytes_read,
        ..file.entry.clone()
    })
}
