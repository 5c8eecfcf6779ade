//! The walk: the source beside its parent snapshot, deciding per file
//! whether to reuse the parent's entry (metadata unchanged and every chunk
//! still held), read it (new, changed, `--reread`, or healed), or, for voice,
//! carry forward a recording that is gone from the source until it expires.
//! Builds the directory skeleton that [`super`] turns into trees once the
//! files are stored.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::cancel::Cancel;
use crate::config::Source;
use crate::error::{Error, Result};
use crate::escape::Escaped;
use crate::glob::{enter, selected};
use crate::id::ObjectId;
use crate::ops::live_index::relocate;
use crate::problems::{is_object_damage, Problem};
use crate::repo::layout::pack_key;
use crate::repo::pack::{BlobKind, BlobRef};
use crate::repo::writer::{BlobWriter, Compress};
use crate::repo::TreeCache;
use crate::source_file::Seen;
use crate::tree::build::store_chunk_list;
use crate::tree::{ChunkList, Entry, FileEntry, Tree, MAX_TREE_DEPTH};
use crate::voice::Contracts;

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

/// A directory as walked: entries in name order.
pub(super) struct DirNode {
    pub(super) name: String,
    pub(super) mode: u32,
    pub(super) mtime_ns: i64,
    /// Whose key seals its tree ([`crate::config::TenantRule::tenant_of_dir`]).
    pub(super) tenant: Option<String>,
    pub(super) entries: Vec<Node>,
}

pub(super) enum Node {
    /// Reused from the parent snapshot.
    Unchanged(FileEntry),
    /// Index into the job list.
    Job(usize),
    Dir(DirNode),
}

pub(super) struct Walker<'a> {
    /// The parent snapshot's trees, fetched a pack at a time.
    pub(super) trees: TreeCache<'a>,
    /// Deduplicates against the trusted index; says where a blob is held.
    pub(super) writer: &'a BlobWriter<'a>,
    pub(super) reread: bool,
    pub(super) source: &'a Source,
    /// For voice sources: the contracts that decide expiry at `time`.
    pub(super) contracts: Option<&'a Contracts>,
    pub(super) time: DateTime<Utc>,
    pub(super) cancel: &'a Cancel,
    pub(super) jobs: Vec<FileJob>,
    pub(super) warnings: Vec<String>,
    pub(super) carried: u64,
    pub(super) expired: u64,
    /// Carried recordings left out because their backup copy is lost.
    pub(super) lost: u64,
    /// Trees of the parent that could not be read (their files are read again).
    pub(super) unreadable_trees: Vec<ObjectId>,
    pub(super) problems: Vec<Problem>,
    /// Erased tenants ([`crate::ops::erase`]): their files are left out,
    /// counted per tenant here.
    pub(super) erased: std::collections::BTreeMap<String, crate::repo::rotate::ErasedTenant>,
    pub(super) skipped_erased: std::collections::BTreeMap<String, u64>,
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
    /// The erased tenant every file below the directory `parts` belongs
    /// to, if any: the directory is left out unread.
    fn erased_below(&self, parts: &[&str]) -> Option<String> {
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

    /// `chunks` re-pointed at the trusted index, `None` if any is lost (or
    /// a piece of the list is lost or damaged). A list in pieces is read
    /// and stored again: unchanged pieces deduplicate, so this writes
    /// nothing unless a chunk moved. Other errors (the store failing) stop
    /// the snapshot, so a transient failure never drops a carried recording.
    fn relocate(&mut self, tenant: Option<&str>, chunks: &ChunkList) -> Result<Option<ChunkList>> {
        let all = match chunks {
            ChunkList::Inline(c) => return Ok(relocate(c, self.writer).map(ChunkList::Inline)),
            list => match crate::tree::read::all_chunks(&mut self.trees, list) {
                Ok(all) => all,
                Err(e) if is_object_damage(&e) || matches!(e, Error::Erased { .. }) => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            },
        };
        let Some(moved) = relocate(&all, self.writer) else {
            return Ok(None);
        };
        let writer = self.writer;
        let list = store_chunk_list(moved, &mut |bytes| {
            writer.store(tenant, BlobKind::Tree, bytes, Compress::Try)
        })?;
        Ok(Some(list))
    }

    /// A parent tree, or `None` (warned, and reported as a problem) when it
    /// is lost or damaged: then everything below is read again. Other errors
    /// (the store failing) stop the snapshot, so a transient failure never
    /// drops a carried recording.
    pub(super) fn parent_tree(
        &mut self,
        blob: &BlobRef,
        rel: &[String],
        carrying: bool,
    ) -> Result<Option<Tree>> {
        match self.trees.read_tree(blob) {
            Ok(tree) => Ok(Some(tree)),
            // Nobody can read an erased tenant's listing, by design: not
            // damage, its files (if any are left) are simply read again.
            Err(Error::Erased { .. }) => Ok(None),
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

    pub(super) fn walk(
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
                if let Some(t) = self.erased_below(&parts) {
                    *self.skipped_erased.entry(t).or_default() += 1;
                    rel.pop();
                    continue;
                }
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
                    let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
                    nodes.push(Node::Dir(DirNode {
                        name,
                        mode: meta.mode(),
                        mtime_ns: mtime_ns(&meta),
                        tenant: self.source.tenant.tenant_of_dir(&parts),
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
                        chunks: ChunkList::empty(),
                    };
                    if let Some(t) = entry
                        .tenant
                        .as_ref()
                        .filter(|t| self.erased.contains_key(*t))
                    {
                        *self.skipped_erased.entry(t.clone()).or_default() += 1;
                        rel.pop();
                        continue;
                    }
                    if self.contracts.is_some_and(|c| c.expired(&entry, self.time)) {
                        self.expired += 1;
                        rel.pop();
                        continue;
                    }
                    let old = match parent.as_ref().and_then(|t| t.get(&name)) {
                        Some(Entry::File(f)) => Some(f),
                        _ => None,
                    };
                    // A file now of another tenant is read again: its
                    // chunks are sealed under the old tenant's key.
                    let same = old.is_some_and(|f| {
                        f.size == entry.size
                            && f.mtime_ns == entry.mtime_ns
                            && f.inode == entry.inode
                            && f.tenant == entry.tenant
                    });
                    let reused = match old.filter(|_| same && !self.reread) {
                        Some(f) => self
                            .relocate(f.tenant.as_deref(), &f.chunks)?
                            .map(|chunks| (chunks, f.sha256)),
                        None => None,
                    };
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
                            tracing::info!(path = %Escaped(path.display()), "stored chunks lost: read again");
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
    pub(super) fn carry(
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
                    } else if let Some(chunks) = self.relocate(f.tenant.as_deref(), &f.chunks)? {
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
                    let tenant = self.source.tenant.tenant_of_dir(&parts);
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
                            tenant,
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
