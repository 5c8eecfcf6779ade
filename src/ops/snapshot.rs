//! `offsite snapshot`: back up one source into a new snapshot.
//!
//! Three phases keep the CPU-bound part parallel and the commit order simple:
//!
//! 1. **Walk** the source (sorted, include/exclude applied) beside the
//!    parent snapshot's trees; a file whose size, mtime and inode match the
//!    parent's entry is reused without being read.
//! 2. **Store** new and changed files on one worker per core: FastCDC,
//!    SHA-256, zstd where it pays, into packs (see [`crate::writer`]).
//! 3. **Commit**: tree blobs bottom-up, the last packs, the index file, and
//!    the manifest last, create-only.
//!
//! Voice sources carry forward the parent's recordings that are gone from the
//! source until their backup copy expires, and skip expired ones (see
//! [`crate::voice`]), so the newest voice snapshot holds every recording whose
//! backup must still exist.
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
use crate::chunking::{sizes_for, store_file, ChunkSizes, StoreFileError};
use crate::config::{Source, SourceClass};
use crate::error::{Error, Result};
use crate::glob::{enter, selected};
use crate::id::ObjectId;
use crate::index::{write_index_file, Index};
use crate::pack::{BlobKind, BlobRef};
use crate::repo::{Repository, TreeCache};
use crate::snapshot::{Snapshot, Summary, SNAPSHOT_VERSION};
use crate::store::Requests;
use crate::tree::{DirEntry, Entry, FileEntry, Tree};
use crate::voice::Contracts;
use crate::writer::{BlobWriter, Compress};

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
    /// Requests this snapshot sent to the store, by kind.
    pub requests: Requests,
}

/// A file the walk found that must be read.
struct FileJob {
    path: PathBuf,
    entry: FileEntry,
    changed: bool,
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
    source: &'a Source,
    /// For voice sources: the contracts that decide expiry at `time`.
    contracts: Option<&'a Contracts>,
    time: DateTime<Utc>,
    cancel: &'a Cancel,
    jobs: Vec<FileJob>,
    warnings: Vec<String>,
    carried: u64,
    expired: u64,
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
                    Some(Entry::Dir(d)) => Some(self.trees.read_tree(&d.tree)?),
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
                    match old {
                        Some(f)
                            if f.size == entry.size
                                && f.mtime_ns == entry.mtime_ns
                                && f.inode == entry.inode =>
                        {
                            nodes.push(Node::Unchanged(FileEntry {
                                chunks: f.chunks.clone(),
                                sha256: f.sha256,
                                ..entry
                            }));
                        }
                        _ => {
                            self.jobs.push(FileJob {
                                path,
                                entry,
                                changed: old.is_some(),
                            });
                            nodes.push(Node::Job(self.jobs.len() - 1));
                        }
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
                    } else {
                        self.carried += 1;
                        nodes.push(Node::Unchanged(FileEntry { carried: true, ..f }));
                    }
                }
                Entry::Dir(d) if enter(&self.source.include, &parts) => {
                    let subtree = self.trees.read_tree(&d.tree)?;
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

/// Store the jobs' files on one thread per core. Returns per job the stored
/// entry, or `None` when the file could not be read (warned).
fn store_jobs(
    jobs: &[FileJob],
    sizes: ChunkSizes,
    writer: &BlobWriter<'_>,
    warnings: &Mutex<Vec<String>>,
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
                match store_file(&job.path, job.entry.size, sizes, writer) {
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

/// Snapshot `source` into `repo` as taken at `time` by `host`.
pub fn snapshot_source(
    repo: &Repository,
    host: &str,
    source: &Source,
    contracts: &Contracts,
    time: DateTime<Utc>,
    cancel: &Cancel,
) -> Result<SnapshotReport> {
    let started = Instant::now();
    let requests_before = repo.store.requests();
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
    let parent_ref = repo
        .list_snapshots(Some(host), Some(&source.name))?
        .into_iter()
        .next();
    let parent = match &parent_ref {
        Some(r) => Some(repo.load_snapshot(r)?),
        None => None,
    };
    let parent_tree = match &parent {
        Some(p) => Some(repo.read_tree(&p.tree)?),
        None => None,
    };
    let mut walker = Walker {
        trees: TreeCache::new(repo),
        source,
        contracts: (source.class == SourceClass::Voice).then_some(contracts),
        time,
        cancel,
        jobs: Vec::new(),
        warnings: Vec::new(),
        carried: 0,
        expired: 0,
    };
    let nodes = walker.walk(&source.path, &mut Vec::new(), parent_tree)?;
    let Walker {
        jobs,
        warnings,
        carried,
        expired,
        ..
    } = walker;
    tracing::info!(source = %source.name, to_read = jobs.len(), "walk done");

    let writer = BlobWriter::new(repo, Index::load(&repo.store)?).with_cancel(cancel);
    let warnings = Mutex::new(warnings);
    let mut stored = store_jobs(&jobs, sizes_for(source.class), &writer, &warnings)?;
    let mut summary = Summary {
        carried,
        expired,
        ..Summary::default()
    };
    for (job, result) in jobs.iter().zip(&stored) {
        if let Some(f) = result {
            summary.bytes_read += f.size;
            if job.changed {
                summary.files_changed += 1;
            } else {
                summary.files_new += 1;
            }
        }
    }
    let root = build_tree(nodes, &mut stored, &writer, &mut summary)?;
    let bytes_added = writer.bytes_added();
    let packs = writer.finish()?;
    crate::failpoint::hit("snapshot-before-index");
    if !packs.is_empty() {
        write_index_file(&repo.store, packs)?;
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
    };
    let (id, _) = repo.save_snapshot(&snap)?;
    tracing::info!(source = %source.name, snapshot = %id.short(), items = summary.items, bytes_added, "snapshot committed");
    Ok(SnapshotReport {
        id,
        time,
        host: host.to_string(),
        source: source.name.clone(),
        parent: snap.parent,
        summary,
        requests: repo.store.requests().since(&requests_before),
    })
}
