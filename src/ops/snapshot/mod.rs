//! `offsite snapshot`: back up one source into a new snapshot.
//!
//! The walk streams, so memory does not grow with the source (see
//! [`dir_out`] for the bound):
//!
//! 1. **Walk** the source (sorted, include/exclude applied) beside the
//!    parent snapshot's trees, depth first ([`walk`]); a file whose size,
//!    mtime and inode match the parent's entry is reused without being
//!    read, if every chunk it names is still held in an existing pack (see
//!    below and [`reuse`]). `--reread` turns reuse off: every file is read
//!    again.
//! 2. **Store** new and changed files as the walk finds them, on one worker
//!    per core for the whole walk ([`workers`]): FastCDC, SHA-256, zstd
//!    where it pays, into packs (see [`crate::repo::writer`]).
//! 3. **Write pages** as entries are known: each directory's entries go into
//!    its pages in name order, and a directory's last pages are stored when
//!    its walk ends and its files are stored ([`dir_out`]), bottom-up.
//! 4. **Commit**: the last packs, the index file, and the manifest last,
//!    create-only.
//!
//! Voice sources carry forward the parent's recordings that are gone from the
//! source until their backup copy expires, and skip expired ones (see
//! [`crate::voice`]), so the newest voice snapshot holds every recording whose
//! backup must still exist.
//!
//! # Memory
//!
//! A snapshot's memory does not grow with the number of files. The walk
//! holds the directories open on its path (each: its sorted names, ~30 B a
//! name, see [`names`]; the parent's page being read; the pages being
//! built, O(depth × page)), at most [`dir_out::PENDING`] pending entries
//! and [`workers::QUEUE`] queued files; the rest are the fixed parts of
//! [`crate::budget`]. An unchanged big file costs one piece of its chunk
//! list at a time ([`reuse`]). Measured (debug build,
//! `tests/scale_metadata.rs`): see the figures in that test's docs. The
//! commit's pack presence check ([`crate::ops::pack_presence`]) reads the
//! new snapshot page by page, through a tree cache of whole packs (capped).
//! A first snapshot's peak still grows a little with the files below its
//! caps (37 MiB at 100 000 files, 50 MiB at 400 000, in directories of
//! 1 000; the incremental one stays at 17–18 MiB); where from is not
//! pinned down yet (a 1 MiB tree cache moved it by ~6 MiB; the allocator's
//! per-thread arenas are the next suspect).
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

use std::cell::RefCell;
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cancel::Cancel;
use crate::chunking::sizes_for;
use crate::config::{Source, SourceClass};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::live_index;
use crate::problems::Problem;
use crate::progress::Progress;
use crate::repo::store::Requests;
use crate::repo::writer::{BlobWriter, CHECKPOINT_BYTES};
use crate::repo::{Shared, TreeCache};
use crate::snapshot::{Snapshot, Summary, SNAPSHOT_VERSION};
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

mod dir_out;
mod names;
mod reuse;
mod visit;
mod walk;
mod workers;

use walk::Walker;

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
    let checkpoint = writer.finish().and_then(|mut packs| {
        packs.extend(adopted);
        crate::failpoint::hit("snapshot-before-checkpoint");
        match packs.is_empty() {
            true => Ok(()),
            false => repo
                .write_index_file_for(packs, None, run.as_deref())
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
    let trees = RefCell::new(TreeCache::new(repo));
    let shared = workers::Shared::default();
    let mut walker = Walker {
        trees: &trees,
        forgotten: 0,
        writer: &writer,
        reread: options.reread,
        source,
        contracts: (source.class == SourceClass::Voice).then_some(contracts),
        voice_days: source.class == SourceClass::Voice && repo.object_lock().is_some(),
        time,
        cancel,
        progress,
        boundary: repo.page_boundary(),
        queue: None,
        shared: &shared,
        held: 0,
        reading: false,
        summary: Summary::default(),
        warnings: Vec::new(),
        carried: 0,
        expired: 0,
        lost: 0,
        problems: Vec::new(),
        erased: crate::repo::rotate::erased_tenants(repo)?,
        skipped_erased: Default::default(),
    };
    for w in live.warnings {
        walker.warn(w);
    }
    let tree_tenant = source.tenant.tenant_of_dir(&[]);
    let cx = workers::Context {
        sizes: sizes_for(source.class),
        writer: &writer,
        cancel,
        progress,
        shared: &shared,
    };
    let (queue, jobs) = std::sync::mpsc::sync_channel(workers::QUEUE);
    let jobs = Mutex::new(jobs);
    let walked = std::thread::scope(|scope| {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8);
        for _ in 0..threads {
            scope.spawn(|| workers::work(&jobs, &cx));
        }
        walker.queue = Some(queue);
        let root = walker.walk(
            &source.path,
            parent.as_ref().map(|p| &p.tree),
            tree_tenant.clone(),
        );
        if root.is_err() {
            shared.fail();
        }
        // Closing the queue lets the workers end.
        walker.queue = None;
        root
    });
    let root = match walked {
        Ok(root) => root,
        Err(e) => {
            drop(walker);
            return Err(interrupted(repo, &source.name, writer, live.adopted, e));
        }
    };
    walker.warn_erased();
    let Walker {
        mut warnings,
        carried,
        expired,
        lost,
        problems: tree_problems,
        summary: walked,
        ..
    } = walker;
    problems.extend(tree_problems);
    warnings.extend(shared.warnings.into_inner().unwrap_or_default());
    progress.phase(&format!("{}: committing", source.name), "files", 0, 0);
    let mut summary = Summary {
        carried,
        expired,
        lost,
        ..walked
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
