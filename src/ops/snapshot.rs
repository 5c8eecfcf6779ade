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
//! A snapshot asked to stop ([`Cancel`]) stops within one chunk and commits
//! nothing.
//!
//! A file that vanishes or cannot be read is a warning, counted in the
//! summary; the snapshot still commits. A repository failure stops the
//! snapshot before its manifest exists, so no partial snapshot is ever listed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cancel::Cancel;
use crate::chunking::{sizes_for, store_open_file, ChunkSizes, StoreFileError};
use crate::config::{Source, SourceClass};
use crate::error::{Error, Result};
use crate::glob::{enter, selected};
use crate::id::ObjectId;
use crate::ops::live_index::{self, relocate};
use crate::problems::{is_object_damage, Problem};
use crate::repo::layout::pack_key;
use crate::repo::pack::{BlobKind, BlobRef};
use crate::repo::store::Requests;
use crate::repo::writer::{BlobWriter, Compress};
use crate::repo::{Shared, TreeCache};
use crate::snapshot::{Snapshot, Summary, SNAPSHOT_VERSION};
use crate::source_file::{open_seen, Seen};
use crate::tree::{DirEntry, Entry, FileEntry, Tree, MAX_TREE_DEPTH};
use crate::voice::Contracts;

/// At most this many warnings are kept verbatim in the manifest.
const WARNING_SAMPLES: usize = 20;

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

/// How a snapshot treats its parent's entries.
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotOptions {
    /// Read every file again, even when its metadata matches the parent's.
    pub reread: bool,
}

/// Why the walk wants a file read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    New,
    Changed,
    /// Metadata unchanged, read again on request (`--reread`).
    Reread,
    /// Metadata unchanged, but a chunk it had is no longer in the repository.
    Healed,
}

/// A file the walk found that must be read.
struct FileJob {
    path: PathBuf,
    entry: FileEntry,
    seen: Seen,
    why: Why,
}

/// A directory as walked: entries in name order.
struct DirNode {
    name: String,
    mode: u32,
    mtime_ns: i64,
    entries: Vec<Node>,
}

enum Node {
    /// Reused from the parent snapshot.
    Unchanged(FileEntry),
    /// Index into the job list.
    Job(usize),
    Dir(DirNode),
}

struct Walker<'a> {
    /// The parent snapshot's trees, fetched a pack at a time.
    trees: TreeCache<'a>,
    /// Deduplicates against the trusted index; says where a blob is held.
    writer: &'a BlobWriter<'a>,
    reread: bool,
    source: &'a Source,
    /// For voice sources: the contracts that decide expiry at `time`.
    contracts: Option<&'a Contracts>,
    time: DateTime<Utc>,
    cancel: &'a Cancel,
    jobs: Vec<FileJob>,
    warnings: Vec<String>,
    carried: u64,
    expired: u64,
    /// Carried recordings left out because their backup copy is lost.
    lost: u64,
    /// Trees of the parent that could not be read (their files are read again).
    unreadable_trees: Vec<ObjectId>,
    problems: Vec<Problem>,
}

/// The mtime in nanoseconds, clamped to what an `i64` holds (1677..2262):
/// a later one keeps the recording longest, an earlier one is long expired.
fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    let saturated = if meta.mtime() < 0 { i64::MIN } else { i64::MAX };
    meta.mtime()
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(meta.mtime_nsec()))
        .unwrap_or(saturated)
}

impl Walker<'_> {
    fn warn(&mut self, message: String) {
        tracing::warn!(source = %self.source.name, "{message}");
        self.warnings.push(message);
    }

    /// `chunks` re-pointed at the trusted index, `None` if any is lost.
    fn relocate(&self, chunks: &[BlobRef]) -> Option<Vec<BlobRef>> {
        relocate(chunks, &|id| self.writer.locate(id))
    }

    /// A parent tree, or `None` (warned, and reported as a problem) when it
    /// is lost or damaged: then everything below is read again. Other errors
    /// (the store failing) stop the snapshot, so a transient failure never
    /// drops a carried recording.
    fn parent_tree(
        &mut self,
        blob: &BlobRef,
        rel: &[String],
        carrying: bool,
    ) -> Result<Option<Tree>> {
        match self.trees.read_tree(blob) {
            Ok(tree) => Ok(Some(tree)),
            Err(e) if is_object_damage(&e) => {
                if carrying {
                    self.warn(format!("{}: the previous snapshot's listing is lost ({e}); recordings carried below it are lost", rel.join("/")));
                }
                self.unreadable_trees.push(blob.id);
                self.problems.push(unreadable_parent_tree(blob, rel, &e));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn walk(
        &mut self,
        dir: &Path,
        rel: &mut Vec<String>,
        parent: Option<Tree>,
    ) -> Result<Vec<Node>> {
        self.cancel.check()?;
        let reader = match std::fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) if rel.is_empty() => return Err(Error::io(dir, e)),
            Err(e) => {
                self.warn(format!("{}: {e}", dir.display()));
                return Ok(Vec::new());
            }
        };
        let mut names: Vec<(String, std::fs::DirEntry)> = Vec::new();
        for item in reader {
            match item {
                Ok(entry) => match entry.file_name().into_string() {
                    Ok(name) => names.push((name, entry)),
                    Err(raw) => self.warn(format!(
                        "{}: name {raw:?} is not UTF-8, skipped",
                        dir.display()
                    )),
                },
                Err(e) => self.warn(format!("{}: {e}", dir.display())),
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut nodes = Vec::with_capacity(names.len());
        if let (Some(contracts), Some(parent)) = (self.contracts, parent.as_ref()) {
            let present: std::collections::HashSet<&str> =
                names.iter().map(|(n, _)| n.as_str()).collect();
            let gone: Vec<Entry> = parent
                .entries
                .iter()
                .filter(|e| !present.contains(e.name()))
                .cloned()
                .collect();
            self.carry(gone, rel, contracts, &mut nodes)?;
        }
        for (name, entry) in names {
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) => {
                    self.warn(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            rel.push(name.clone());
            let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
            if meta.is_dir() {
                if !enter(&self.source.include, &parts) {
                    rel.pop();
                    continue;
                }
                let sub_parent = match parent.as_ref().and_then(|t| t.get(&name)) {
                    Some(Entry::Dir(d)) => self.parent_tree(&d.tree, rel, false)?,
                    _ => None,
                };
                let entries = self.walk(&path, rel, sub_parent)?;
                let filtering = !self.source.include.is_empty() || !self.source.exclude.is_empty();
                if !(filtering && entries.is_empty()) {
                    nodes.push(Node::Dir(DirNode {
                        name,
                        mode: meta.mode(),
                        mtime_ns: mtime_ns(&meta),
                        entries,
                    }));
                }
            } else if meta.is_file() {
                if selected(&self.source.include, &self.source.exclude, &parts) {
                    let entry = FileEntry {
                        carried: false,
                        name: name.clone(),
                        size: meta.len(),
                        mtime_ns: mtime_ns(&meta),
                        mode: meta.mode(),
                        inode: meta.ino(),
                        tenant: self.source.tenant.tenant_of(&parts),
                        sha256: ObjectId::default(),
                        chunks: Vec::new(),
                    };
                    if self.contracts.is_some_and(|c| c.expired(&entry, self.time)) {
                        self.expired += 1;
                        rel.pop();
                        continue;
                    }
                    let old = match parent.as_ref().and_then(|t| t.get(&name)) {
                        Some(Entry::File(f)) => Some(f),
                        _ => None,
                    };
                    let same = old.is_some_and(|f| {
                        f.size == entry.size
                            && f.mtime_ns == entry.mtime_ns
                            && f.inode == entry.inode
                    });
                    let reused = old
                        .filter(|_| same && !self.reread)
                        .and_then(|f| Some((self.relocate(&f.chunks)?, f.sha256)));
                    if let Some((chunks, sha256)) = reused {
                        nodes.push(Node::Unchanged(FileEntry {
                            chunks,
                            sha256,
                            ..entry
                        }));
                    } else {
                        let why = match old {
                            None => Why::New,
                            Some(_) if !same => Why::Changed,
                            Some(_) if self.reread => Why::Reread,
                            Some(_) => Why::Healed,
                        };
                        if why == Why::Healed {
                            tracing::info!(path = %path.display(), "stored chunks lost: read again");
                        }
                        self.jobs.push(FileJob {
                            path,
                            entry,
                            seen: Seen {
                                dev: meta.dev(),
                                inode: meta.ino(),
                            },
                            why,
                        });
                        nodes.push(Node::Job(self.jobs.len() - 1));
                    }
                }
            } else {
                self.warn(format!(
                    "{}: not a regular file or directory, skipped",
                    path.display()
                ));
            }
            rel.pop();
        }
        Ok(nodes)
    }
}

impl Walker<'_> {
    /// Carry forward `gone` entries of the parent snapshot (voice only): every
    /// file still selected and not expired at the snapshot's time.
    fn carry(
        &mut self,
        gone: Vec<Entry>,
        rel: &mut Vec<String>,
        contracts: &Contracts,
        nodes: &mut Vec<Node>,
    ) -> Result<()> {
        for entry in gone {
            rel.push(entry.name().to_string());
            let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
            match entry {
                Entry::File(f) if selected(&self.source.include, &self.source.exclude, &parts) => {
                    if contracts.expired(&f, self.time) {
                        self.expired += 1;
                    } else if let Some(chunks) = self.relocate(&f.chunks) {
                        self.carried += 1;
                        nodes.push(Node::Unchanged(FileEntry {
                            carried: true,
                            chunks,
                            ..f
                        }));
                    } else {
                        self.lost += 1;
                        self.warn(format!(
                            "{}: recording gone from the source and its backup copy is lost (a pack is missing); left out of this snapshot",
                            rel.join("/")
                        ));
                    }
                }
                Entry::Dir(d) if enter(&self.source.include, &parts) => {
                    if rel.len() > MAX_TREE_DEPTH {
                        // Only a forged parent nests this deep; it also
                        // bounds this recursion.
                        self.warn(format!(
                            "{}...: the previous snapshot nests more than {MAX_TREE_DEPTH} directories; nothing below is carried",
                            rel.iter().take(8).cloned().collect::<Vec<_>>().join("/")
                        ));
                        rel.pop();
                        continue;
                    }
                    let Some(subtree) = self.parent_tree(&d.tree, rel, true)? else {
                        rel.pop();
                        continue;
                    };
                    let mut entries = Vec::new();
                    self.carry(subtree.entries, rel, contracts, &mut entries)?;
                    if !entries.is_empty() {
                        nodes.push(Node::Dir(DirNode {
                            name: d.name,
                            mode: d.mode,
                            mtime_ns: d.mtime_ns,
                            entries,
                        }));
                    }
                }
                _ => {}
            }
            rel.pop();
        }
        Ok(())
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

/// Store the jobs' files on one thread per core. Returns per job the stored
/// entry, or `None` when the file could not be read (warned).
fn store_jobs(
    jobs: &[FileJob],
    sizes: ChunkSizes,
    writer: &BlobWriter<'_>,
    warnings: &Mutex<Vec<String>>,
    cancel: &Cancel,
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
                        store_open_file(file, &job.path, job.entry.size, sizes, writer)
                    });
                match stored {
                    Ok(content) => {
                        let entry = FileEntry {
                            sha256: content.sha256,
                            chunks: content.chunks,
                            size: content.bytes_read,
                            ..job.entry.clone()
                        };
                        results.lock().unwrap()[i] = Some(entry);
                    }
                    Err(StoreFileError::Source(message)) => {
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

/// Turn walked nodes into tree blobs, bottom-up; returns the tree's location.
fn build_tree(
    nodes: Vec<Node>,
    stored: &mut [Option<FileEntry>],
    writer: &BlobWriter<'_>,
    summary: &mut Summary,
) -> Result<BlobRef> {
    let mut tree = Tree::default();
    for node in nodes {
        match node {
            Node::Unchanged(f) => {
                summary.files_unchanged += 1;
                summary.items += 1;
                summary.bytes += f.size;
                tree.entries.push(Entry::File(f));
            }
            Node::Job(i) => {
                if let Some(f) = stored[i].take() {
                    summary.items += 1;
                    summary.bytes += f.size;
                    tree.entries.push(Entry::File(f));
                }
            }
            Node::Dir(d) => {
                summary.dirs += 1;
                let blob = build_tree(d.entries, stored, writer, summary)?;
                tree.entries.push(Entry::Dir(DirEntry {
                    name: d.name,
                    mode: d.mode,
                    mtime_ns: d.mtime_ns,
                    tree: blob,
                }));
            }
        }
    }
    tree.sort();
    writer.store(BlobKind::Tree, &tree.to_bytes(), Compress::Try)
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
    let writer = BlobWriter::new(repo, live.index).with_cancel(cancel);
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
    };
    for w in live.warnings {
        walker.warn(w);
    }
    let parent_tree = match &parent {
        Some(p) => walker.parent_tree(&p.tree, &[], false)?,
        None => None,
    };
    let nodes = walker.walk(&source.path, &mut Vec::new(), parent_tree)?;
    let Walker {
        jobs,
        warnings,
        carried,
        expired,
        lost,
        unreadable_trees,
        problems: tree_problems,
        ..
    } = walker;
    problems.extend(tree_problems);
    tracing::info!(source = %source.name, to_read = jobs.len(), "walk done");

    // A damaged tree rebuilt byte for byte has the same id: store it again
    // rather than point the new snapshot at the damaged copy.
    for id in &unreadable_trees {
        writer.forget(id);
    }
    let warnings = Mutex::new(warnings);
    let sizes = sizes_for(source.class);
    let mut stored = store_jobs(&jobs, sizes, &writer, &warnings, cancel)?;
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
    let root = build_tree(nodes, &mut stored, &writer, &mut summary)?;
    let bytes_added = writer.bytes_added();
    let mut packs = writer.finish()?;
    packs.extend(live.adopted);
    crate::failpoint::hit("snapshot-before-index");
    if !packs.is_empty() {
        repo.write_index_file(packs)?;
    }
    crate::failpoint::hit("snapshot-before-manifest");
    let warnings = warnings.into_inner().unwrap();
    summary.bytes_added = bytes_added;
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
    };
    crate::ops::pack_presence::ensure_packs_exist(repo, &source.name, &snap.tree)?;
    let (id, _) = repo.save_snapshot(&snap)?;
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
