//! `offsite snapshot`: back up one source into a new snapshot.
//!
//! Three phases keep the CPU-bound part parallel and the commit order simple:
//!
//! 1. **Walk** the source (sorted, include/exclude applied) beside the
//!    parent snapshot's trees; a file whose size, mtime and inode match the
//!    parent's entry is reused without being read, if every chunk it names
//!    is still held in an existing pack (see below). `--reread` turns reuse
//!    off: every file is read again.
//! 2. **Store** new and changed files on one worker per core: FastCDC,
//!    SHA-256, zstd where it pays, into packs (see [`crate::repo::writer`]).
//! 3. **Commit**: tree blobs bottom-up, the last packs, the index file, and
//!    the manifest last, create-only.
//!
//! Voice sources carry forward the parent's recordings that are gone from the
//! source until their backup copy expires, and skip expired ones (see
//! [`crate::voice`]), so the newest voice snapshot holds every recording whose
//! backup must still exist.
//!
//! # Lost packs heal here
//!
//! A snapshot never references a blob that the index does not hold in an
//! existing pack. It starts from the trusted index of
//! [`crate::ops::live_index`] (one LIST of `packs/`: packs that are gone are
//! left out, unindexed packs adopted), deduplicates only against it, and
//! re-points a reused entry's chunks at the indexed copies. A reused file
//! with any chunk that is not held anywhere is read again from the source
//! (counted in `reread` and `healed`), so the lost chunks are stored anew and
//! the new snapshot is whole. A parent tree that cannot be read any more
//! (pack gone or damaged) only means the files below it are read again. A
//! carried voice recording (gone from the source) with a lost chunk cannot be
//! healed: it is left out of the new snapshot with a warning each and counted
//! in `lost`, since referencing it would only hide the loss; the older
//! snapshots keep naming it, and `check` lists them as damaged.
//!
//! # Source files that change under the walk
//!
//! Each file is opened by [`crate::source_file::open_seen`]: a file that is
//! no longer the regular file the walk saw (now a symlink, a FIFO, another
//! inode) is a warning and left out, like a file that vanished.
//!
//! # Interrupted snapshots resume
//!
//! A snapshot asked to stop ([`Cancel`]: SIGTERM or SIGINT, in the agent and
//! on the command line) stops within one chunk, writes its open packs and an
//! index file for every pack it wrote (a checkpoint), and commits no
//! manifest ([`Error::Interrupted`]). While it runs it also indexes its packs
//! every few minutes or GiB ([`crate::repo::writer::CHECKPOINT_EVERY`]). The
//! next run deduplicates against those packs, so a first backup of 2 TB
//! stopped at 90 % uploads only the last 10 %; after a crash (SIGKILL) the
//! packs written since the last checkpoint are adopted from their headers
//! ([`crate::ops::live_index`]), so only the packs in flight are lost.
//!
//! A file that vanishes or cannot be read is a warning, counted in the
//! summary; the snapshot still commits. So is a snapshot that finds no file
//! in its source where its parent found at least [`EMPTY_AFTER_ITEMS`]: a
//! mount that vanished looks like an empty directory, and the warning (in
//! the log, the manifest and the activity entry) and the
//! `offsite_snapshot_items` metric make it visible. A repository failure stops the
//! snapshot before its manifest exists, so no partial snapshot is ever listed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cancel::Cancel;
use crate::chunking::{sizes_for, store_open_file, ChunkSizes, StoreFileError};
use crate::config::{Source, SourceClass};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::live_index;
use crate::problems::Problem;
use crate::progress::Progress;
use crate::repo::pack::{BlobKind, BlobRef};
use crate::repo::store::Requests;
use crate::repo::writer::{BlobWriter, Compress, CHECKPOINT_BYTES};
use crate::repo::{Shared, TreeCache};
use crate::snapshot::{Snapshot, Summary, SNAPSHOT_VERSION};
use crate::source_file::open_seen;
use crate::tree::build::{store_chunk_list, Boundary, DirBuilder, Totals};
use crate::tree::{DirEntry, Entry, FileEntry};
use crate::voice::Contracts;

/// At most this many warnings are kept verbatim in the manifest.
const WARNING_SAMPLES: usize = 20;

/// A snapshot that finds no file in its source where its parent found at
/// least this many is warned about (the `OffsiteSnapshotEmpty` alert rule
/// uses the same number). A handful of files may come and go; ten gone at
/// once, all of them, is a mount that vanished or a wrong path.
pub const EMPTY_AFTER_ITEMS: u64 = 10;

/// The warning for a snapshot that found no file where its parent found
/// many (see [`EMPTY_AFTER_ITEMS`]); carried voice recordings do not count,
/// they are not in the source.
fn emptied_warning(parent: Option<&Summary>, summary: &Summary) -> Option<String> {
    let before = parent?.items_from_source();
    (summary.items_from_source() == 0 && before >= EMPTY_AFTER_ITEMS).then(|| {
        format!(
            "the source has no files now where the previous snapshot had {before}: \
             is its mount or path gone?"
        )
    })
}

/// What `snapshot` reports for one source.
#[derive(Serialize, Debug, Clone)]
pub struct SnapshotReport {
    pub id: ObjectId,
    pub time: DateTime<Utc>,
    pub host: String,
    pub source: String,
    pub parent: Option<ObjectId>,
    #[serde(flatten)]
    pub summary: Summary,
    /// Damaged objects this snapshot skipped (parent manifests or trees that
    /// cannot be read, unreadable index files); see [`crate::problems`].
    pub problems: Vec<Problem>,
    /// Requests this snapshot sent to the store, by kind.
    pub requests: Requests,
}

/// How a snapshot treats its parent's entries, and where it shows progress.
#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    /// Read every file again, even when its metadata matches the parent's.
    pub reread: bool,
    /// Files and bytes read, of those to read (set by the job).
    pub progress: Progress,
    /// The promises Object Lock dates follow (set by the job; UTC and the
    /// longest data retention without).
    pub promises: Option<crate::object_lock::Promises>,
}

mod walk;

use walk::{FileJob, Node, Walker, Why};

/// Store the jobs' files on one thread per core. Returns per job the stored
/// entry, or `None` when the file could not be read (warned).
fn store_jobs(
    jobs: &[FileJob],
    expiry_days: &[Option<i64>],
    sizes: ChunkSizes,
    writer: &BlobWriter<'_>,
    warnings: &Mutex<Vec<String>>,
    cancel: &Cancel,
    progress: &Progress,
) -> Result<Vec<Option<FileEntry>>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let fatal: Mutex<Option<Error>> = Mutex::new(None);
    let results: Mutex<Vec<Option<FileEntry>>> = Mutex::new(vec![None; jobs.len()]);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                let job = &jobs[i];
                crate::failpoint::pause_before_read(&job.path, cancel);
                let stored = open_seen(&job.path, job.seen)
                    .map_err(StoreFileError::Source)
                    .and_then(|file| {
                        let tenant = job.entry.tenant.as_deref();
                        writer.with_expiry_day(expiry_days[i], || {
                            store_open_file(
                                file,
                                &job.path,
                                tenant,
                                job.entry.size,
                                sizes,
                                writer,
                                progress,
                            )
                        })
                    });
                progress.advance(1, 0);
                let tenant = job.entry.tenant.as_deref();
                let stored = stored.and_then(|mut content| {
                    let chunks = std::mem::take(&mut content.chunks);
                    let chunks = store_chunk_list(chunks, &mut |bytes| {
                        writer.store(tenant, BlobKind::Tree, bytes, Compress::Try)
                    })
                    .map_err(StoreFileError::Repository)?;
                    Ok((content, chunks))
                });
                match stored {
                    Ok((content, chunks)) => {
                        let entry = FileEntry {
                            sha256: content.sha256,
                            chunks,
                            size: content.bytes_read,
                            ..job.entry.clone()
                        };
                        results.lock().unwrap()[i] = Some(entry);
                    }
                    Err(StoreFileError::Source(message)) => {
                        let message = crate::escape::escaped(&message);
                        tracing::warn!("{message}");
                        warnings.lock().unwrap().push(message);
                    }
                    Err(StoreFileError::Repository(e)) => {
                        failed.store(true, Ordering::Relaxed);
                        fatal.lock().unwrap().get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = fatal.into_inner().unwrap() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap())
}

/// Turn walked nodes into directory pages, bottom-up, each sealed under its
/// directory's tenant key (`tenant`); returns the directory's root page and
/// what it holds.
fn build_tree(
    tenant: Option<&str>,
    nodes: Vec<Node>,
    stored: &mut [Option<FileEntry>],
    writer: &BlobWriter<'_>,
    boundary: &Boundary,
    summary: &mut Summary,
) -> Result<(BlobRef, Totals)> {
    let mut entries = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node {
            Node::Unchanged(f) => {
                summary.files_unchanged += 1;
                summary.items += 1;
                summary.bytes += f.size;
                entries.push(Entry::File(f));
            }
            Node::Job(i) => {
                if let Some(f) = stored[i].take() {
                    summary.items += 1;
                    summary.bytes += f.size;
                    entries.push(Entry::File(f));
                }
            }
            Node::Dir(d) => {
                summary.dirs += 1;
                let (blob, totals) = build_tree(
                    d.tenant.as_deref(),
                    d.entries,
                    stored,
                    writer,
                    boundary,
                    summary,
                )?;
                entries.push(Entry::Dir(DirEntry {
                    name: d.name,
                    mode: d.mode,
                    mtime_ns: d.mtime_ns,
                    tenant: d.tenant,
                    tree: blob,
                    files_below: totals.files,
                    bytes_below: totals.bytes,
                }));
            }
        }
    }
    entries.sort_by(|a, b| a.name().cmp(b.name()));
    let mut builder = DirBuilder::new(boundary.clone());
    let mut store = |bytes: &[u8]| writer.store(tenant, BlobKind::Tree, bytes, Compress::Try);
    for entry in &entries {
        builder.push(entry, &mut store)?;
    }
    builder.finish(&mut store)
}

/// A snapshot that failed with `e`: when it was stopped on request, its
/// open packs are written and every pack it wrote (and adopted) is indexed
/// (a checkpoint), so the next run deduplicates against them and uploads only
/// the rest; [`Error::Interrupted`] says how much was kept. No manifest.
fn interrupted(
    repo: &crate::repo::Repository,
    name: &str,
    writer: BlobWriter<'_>,
    adopted: Vec<crate::repo::index::IndexedPack>,
    e: Error,
) -> Error {
    if !e.is_cancelled() {
        return e;
    }
    let kept = writer.bytes_added();
    let run = writer.run();
    let until = writer.lock_until();
    let checkpoint = writer.finish().and_then(|mut packs| {
        packs.extend(adopted);
        crate::failpoint::hit("snapshot-before-checkpoint");
        match packs.is_empty() {
            true => Ok(()),
            false => repo
                .write_index_file_for(packs, until, run.as_deref())
                .map(drop),
        }
    });
    match checkpoint {
        Ok(()) => Error::Interrupted {
            name: name.to_string(),
            kept,
        },
        Err(e) => e,
    }
}

/// Snapshot `source` into the locked repository as taken at `time` by `host`.
pub fn snapshot_source(
    lock: &Shared,
    host: &str,
    source: &Source,
    contracts: &Contracts,
    time: DateTime<Utc>,
    cancel: &Cancel,
) -> Result<SnapshotReport> {
    let options = SnapshotOptions::default();
    snapshot_source_with(lock, host, source, contracts, time, cancel, options)
}

/// [`snapshot_source`] with options (`--reread`).
pub fn snapshot_source_with(
    lock: &Shared,
    host: &str,
    source: &Source,
    contracts: &Contracts,
    time: DateTime<Utc>,
    cancel: &Cancel,
    options: SnapshotOptions,
) -> Result<SnapshotReport> {
    let repo = lock.repo();
    let started = Instant::now();
    let requests_before = repo.requests();
    let progress = &options.progress;
    progress.phase(&format!("{}: walking", source.name), "files", 0, 0);
    let root_meta = std::fs::metadata(&source.path).map_err(|e| Error::NotFound {
        what: format!(
            "source {:?} directory {} ({e})",
            source.name,
            source.path.display()
        ),
    })?;
    if !root_meta.is_dir() {
        return Err(Error::Usage(format!(
            "source {:?}: {} is not a directory",
            source.name,
            source.path.display()
        )));
    }
    // The parent is the newest snapshot of the group whose manifest reads.
    let (parent, mut problems) = repo.newest_readable_snapshot(host, &source.name)?;
    let (parent_ref, parent) = parent.unzip();
    let live = live_index::load(repo)?;
    problems.extend(live.problems);
    let lock_until = options
        .promises
        .unwrap_or_default()
        .created_until(time, &source.retention);
    let run = crate::snapshot::run_stem(repo.keys().meta(), host, &source.name, &time);
    let writer = BlobWriter::new(repo, time)
        .with_run(run.clone())
        .with_lookup(live.lookup)
        .with_index_every(crate::budget::INDEX_EVERY_PACKS)
        .with_cancel(cancel)
        .with_checkpoints(CHECKPOINT_BYTES)
        .with_lock_until(lock_until);
    let mut walker = Walker {
        trees: TreeCache::new(repo),
        writer: &writer,
        reread: options.reread,
        source,
        contracts: (source.class == SourceClass::Voice).then_some(contracts),
        time,
        cancel,
        jobs: Vec::new(),
        warnings: Vec::new(),
        carried: 0,
        expired: 0,
        lost: 0,
        unreadable_trees: Vec::new(),
        problems: Vec::new(),
        erased: crate::repo::rotate::erased_tenants(repo)?,
        skipped_erased: Default::default(),
    };
    for w in live.warnings {
        walker.warn(w);
    }
    let parent_tree = match &parent {
        Some(p) => walker.parent_tree(&p.tree, &[], false)?,
        None => None,
    };
    let nodes = match walker.walk(&source.path, &mut Vec::new(), parent_tree) {
        Ok(nodes) => nodes,
        Err(e) => {
            drop(walker);
            return Err(interrupted(repo, &source.name, writer, live.adopted, e));
        }
    };
    walker.warn_erased();
    let Walker {
        jobs,
        warnings,
        carried,
        expired,
        lost,
        unreadable_trees,
        problems: tree_problems,
        trees,
        ..
    } = walker;
    problems.extend(tree_problems);
    tracing::info!(source = %source.name, to_read = jobs.len(), "walk done");

    // A damaged tree (any page of it) or chunk list rebuilt byte for byte
    // has the same id: store it again rather than point the new snapshot at
    // the damaged copy.
    for id in unreadable_trees.iter().chain(trees.damaged()) {
        writer.forget(id);
    }
    let warnings = Mutex::new(warnings);
    let sizes = sizes_for(source.class);
    progress.phase(
        &format!("{}: reading", source.name),
        "files",
        jobs.len() as u64,
        jobs.iter()
            .map(|j| j.entry.size)
            .fold(0, u64::saturating_add),
    );
    let expiry_days: Vec<Option<i64>> = jobs
        .iter()
        .map(|j| {
            let voice = source.class == SourceClass::Voice && repo.object_lock().is_some();
            voice.then(|| crate::object_lock::voice_day(contracts, &j.entry, time))
        })
        .collect();
    let stored = store_jobs(
        &jobs,
        &expiry_days,
        sizes,
        &writer,
        &warnings,
        cancel,
        progress,
    );
    let mut stored = match stored {
        Ok(stored) => stored,
        Err(e) => return Err(interrupted(repo, &source.name, writer, live.adopted, e)),
    };
    progress.phase(&format!("{}: committing", source.name), "files", 0, 0);
    let mut summary = Summary {
        carried,
        expired,
        lost,
        ..Summary::default()
    };
    for (job, result) in jobs.iter().zip(&stored) {
        if let Some(f) = result {
            summary.bytes_read += f.size;
            match job.why {
                Why::New => summary.files_new += 1,
                Why::Changed => summary.files_changed += 1,
                Why::Reread | Why::Healed => {
                    summary.files_unchanged += 1;
                    summary.reread += 1;
                    summary.healed += u64::from(job.why == Why::Healed);
                }
            }
        }
    }
    let tree_tenant = source.tenant.tenant_of_dir(&[]);
    let root = match build_tree(
        tree_tenant.as_deref(),
        nodes,
        &mut stored,
        &writer,
        &repo.page_boundary(),
        &mut summary,
    ) {
        Ok((root, _)) => root,
        Err(e) => return Err(interrupted(repo, &source.name, writer, live.adopted, e)),
    };
    let bytes_added = writer.bytes_added();
    let blobs_added = writer.blobs_added();
    let mut packs = writer.finish()?;
    packs.extend(live.adopted);
    crate::failpoint::hit("snapshot-before-index");
    if !packs.is_empty() {
        repo.write_index_file_for(packs, lock_until, Some(&run))?;
    }
    crate::failpoint::hit("snapshot-before-manifest");
    let mut warnings = warnings.into_inner().unwrap();
    if let Some(w) = emptied_warning(parent.as_ref().map(|p| &p.summary), &summary) {
        tracing::warn!(source = %source.name, "{w}");
        warnings.push(w);
    }
    summary.bytes_added = bytes_added;
    summary.blobs_added = blobs_added;
    summary.warnings = warnings.len() as u64;
    summary.warning_samples = warnings.into_iter().take(WARNING_SAMPLES).collect();
    summary.duration_seconds = started.elapsed().as_secs_f64();
    let snap = Snapshot {
        version: SNAPSHOT_VERSION,
        time,
        host: host.to_string(),
        source: source.name.clone(),
        class: source.class,
        path: source.path.display().to_string(),
        parent: parent_ref.as_ref().map(|r| r.id),
        tree: root,
        summary: summary.clone(),
        previous_ids: Vec::new(),
        rewritten_at: None,
        tree_tenant,
    };
    crate::ops::pack_presence::ensure_packs_exist(repo, &source.name, &snap.tree)?;
    let (id, _) = repo.save_snapshot_until(&snap, lock_until)?;
    tracing::info!(source = %source.name, snapshot = %id.short(), items = summary.items, bytes_added, "snapshot committed");
    Ok(SnapshotReport {
        id,
        time,
        host: host.to_string(),
        source: source.name.clone(),
        parent: snap.parent,
        summary,
        problems,
        requests: repo.requests().since(&requests_before),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(items: u64, carried: u64) -> Summary {
        Summary {
            items,
            carried,
            ..Summary::default()
        }
    }

    #[test]
    fn an_empty_snapshot_after_a_full_one_is_warned_about() {
        let warned = |parent: Option<Summary>, now: Summary| {
            emptied_warning(parent.as_ref(), &now).is_some()
        };
        assert!(warned(Some(found(10, 0)), found(0, 0)));
        assert!(warned(Some(found(500, 0)), found(0, 0)));
        // Voice: everything carried forward, nothing found in the source.
        assert!(warned(Some(found(40, 5)), found(35, 35)));
        assert!(
            !warned(Some(found(9, 0)), found(0, 0)),
            "a few files may go"
        );
        assert!(!warned(Some(found(500, 0)), found(1, 0)), "not empty");
        assert!(!warned(None, found(0, 0)), "a first snapshot has no parent");
        assert!(
            !warned(Some(found(40, 35)), found(0, 0)),
            "5 were in the source"
        );
        let text = emptied_warning(Some(&found(12, 0)), &found(0, 0)).unwrap();
        assert!(text.contains("12"), "{text}");
    }
}
