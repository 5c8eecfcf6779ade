//! The repository: format, commit order, and typed access to its objects.
//!
//! # Format (version 1)
//!
//! | key | content | written |
//! |---|---|---|
//! | `config` | JSON [`RepoConfig`]: format version, repository id, encryption scheme (`none`) | once, create-only, by `init` |
//! | `packs/<hh>/<id>` | blobs + self-describing header (see [`crate::pack`]) | by snapshot (and prune), never modified |
//! | `index/<sha256>` | zstd JSON list of packs and their blobs (see [`crate::index`]) | after the packs it lists |
//! | `snapshots/<host>/<source>/<YYYYMMDDTHHMMSS.mmmZ>-<id>` | JSON manifest (see [`crate::snapshot`]); `id` = SHA-256 of the bytes | last, create-only |
//! | `quarantine/packs/<hh>/<id>` | a damaged pack, byte for byte | by `repair`, before it removes the pack from `packs/` |
//!
//! Blobs are named by the SHA-256 of their content and stored once per
//! repository. File content is cut by FastCDC (sizes per class of data, see
//! [`crate::chunking`]) and compressed with zstd where it pays. Directory trees
//! are blobs too (see [`crate::tree`]) and record the pack location of every
//! chunk, so reading one item needs only the trees on its path.
//!
//! # Commit order and who may delete what
//!
//! | step | writer | a crash after this step leaves |
//! |---|---|---|
//! | 1. data and tree packs | snapshot | packs nobody references: garbage, collected by prune |
//! | 2. index file | snapshot | indexed but unreferenced blobs: reused by the next snapshot, or collected |
//! | 3. manifest (create-only) | snapshot | a complete snapshot |
//!
//! A manifest is only ever written after everything it references, so every
//! listed snapshot is complete. Nothing but prune deletes objects, and it
//! never deletes because a read failed; `repair` only moves a pack whose
//! bytes do not verify to `quarantine/` (see [`crate::ops::repair`]). `check`
//! and `restore` only read. A manifest that cannot be read is skipped and
//! reported, not fatal ([`Repository::load_snapshots_tolerant`],
//! [`crate::problems`]).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::{decode_blob, pack_key, BlobRef};
use crate::problems::{is_object_damage, Problem};
use crate::snapshot::{Snapshot, SnapshotRef};
use crate::store::{Location, Store};
use crate::tree::{check_depth, Entry, FileEntry, Tree, TreeWalk};

/// Reads many trees with few requests: the first tree read from a pack
/// fetches the whole pack (tree packs hold only trees, a few MiB), later ones
/// come from memory. For walks over a whole snapshot (the parent of an
/// incremental snapshot); a single restore reads its few trees directly.
pub struct TreeCache<'r> {
    repo: &'r Repository,
    packs: std::collections::HashMap<ObjectId, Bytes>,
    held: usize,
}

/// Memory the cache may hold before it starts over.
const TREE_CACHE_BYTES: usize = 64 << 20;

impl<'r> TreeCache<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        TreeCache {
            repo,
            packs: std::collections::HashMap::new(),
            held: 0,
        }
    }

    /// Read one tree, verified like every blob.
    pub fn read_tree(&mut self, blob: &BlobRef) -> Result<Tree> {
        let key = pack_key(&blob.pack);
        if !self.packs.contains_key(&blob.pack) {
            if self.held > TREE_CACHE_BYTES {
                self.packs.clear();
                self.held = 0;
            }
            let bytes = self.repo.store.get(&key)?;
            self.held += bytes.len();
            self.packs.insert(blob.pack, bytes);
        }
        let pack = &self.packs[&blob.pack];
        let stored = pack
            .get(blob.offset as usize..blob.range().end as usize)
            .ok_or_else(|| {
                Error::corrupt(&key, format!("blob {} lies beyond the pack", blob.id))
            })?;
        Tree::from_bytes(blob, &decode_blob(stored, blob)?)
    }
}

/// A snapshot with its manifest.
pub type LoadedSnapshot = (SnapshotRef, Snapshot);

/// Snapshots with their manifests, and those whose manifest cannot be read.
#[derive(Debug, Default)]
pub struct SnapshotListing {
    /// Newest first.
    pub readable: Vec<LoadedSnapshot>,
    /// Newest first, each with what is wrong with its manifest.
    pub unreadable: Vec<(SnapshotRef, Problem)>,
}

impl SnapshotListing {
    /// The unreadable manifests as problems.
    pub fn problems(&self) -> Vec<Problem> {
        self.unreadable.iter().map(|(_, p)| p.clone()).collect()
    }
}

/// Repository format version.
pub const REPO_VERSION: u32 = 1;

/// The `config` object.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RepoConfig {
    pub version: u32,
    pub id: ObjectId,
    pub created: DateTime<Utc>,
    /// Encryption scheme of packs and metadata; `none` in version 1.
    pub encryption: String,
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    pub store: Store,
    pub config: RepoConfig,
}

impl Repository {
    /// Create a new repository; refuses when one exists there already.
    pub fn init(location: &Location) -> Result<Self> {
        let store = Store::connect(location, true)?;
        let config = RepoConfig {
            version: REPO_VERSION,
            id: ObjectId::random(),
            created: Utc::now(),
            encryption: "none".into(),
        };
        let bytes = serde_json::to_vec_pretty(&config).expect("config serializes");
        match store.put_new("config", Bytes::from(bytes)) {
            Err(Error::AlreadyExists { .. }) => Err(Error::AlreadyExists {
                what: format!("a repository already exists at {}", store.describe()),
            }),
            other => other.map(|()| Repository { store, config }),
        }
    }

    /// Open an existing repository.
    pub fn open(location: &Location) -> Result<Self> {
        let store = Store::connect(location, false)?;
        let bytes = store.get("config").map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: format!(
                    "repository at {} (run `offsite init` first)",
                    store.describe()
                ),
            },
            other => other,
        })?;
        let config: RepoConfig = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt_by("config", "does not parse", e))?;
        if config.version != REPO_VERSION {
            return Err(Error::corrupt(
                "config",
                format!(
                    "repository format {} is not supported (this offsite reads {REPO_VERSION})",
                    config.version
                ),
            ));
        }
        Ok(Repository { store, config })
    }

    /// Read one blob and verify it.
    pub fn read_blob(&self, blob: &BlobRef) -> Result<Vec<u8>> {
        let stored = self.store.get_range(&pack_key(&blob.pack), blob.range())?;
        decode_blob(&stored, blob)
    }

    /// Read `blobs` in order, verified, handing each to `sink`. Runs of blobs
    /// that lie back to back in one pack (as a file's chunks usually do) are
    /// fetched with one ranged read of up to 16 MiB, so restoring a file
    /// costs about one request per pack it touches, not one per chunk.
    pub fn read_blobs(
        &self,
        blobs: &[BlobRef],
        sink: &mut dyn FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        const MAX_SPAN: u64 = 16 << 20;
        let mut i = 0;
        while i < blobs.len() {
            let first = &blobs[i];
            let mut end = i + 1;
            while end < blobs.len()
                && blobs[end].pack == first.pack
                && blobs[end].offset == blobs[end - 1].range().end
                && blobs[end].range().end - first.offset <= MAX_SPAN
            {
                end += 1;
            }
            let span = first.offset..blobs[end - 1].range().end;
            let bytes = self.store.get_range(&pack_key(&first.pack), span.clone())?;
            for blob in &blobs[i..end] {
                let at = (blob.offset - span.start) as usize;
                sink(decode_blob(&bytes[at..at + blob.length as usize], blob)?)?;
            }
            i = end;
        }
        Ok(())
    }

    /// Read one tree blob.
    pub fn read_tree(&self, blob: &BlobRef) -> Result<Tree> {
        let bytes = self.read_blob(blob)?;
        Tree::from_bytes(blob, &bytes)
    }

    /// Snapshots, newest first, optionally of one host and/or source.
    pub fn list_snapshots(
        &self,
        host: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<SnapshotRef>> {
        let prefix = match (host, source) {
            (Some(h), Some(s)) => format!("snapshots/{h}/{s}"),
            (Some(h), None) => format!("snapshots/{h}"),
            _ => "snapshots".to_string(),
        };
        let mut out: Vec<SnapshotRef> = self
            .store
            .list(&prefix)?
            .into_iter()
            .filter_map(|(key, _)| SnapshotRef::parse(&key))
            .filter(|r| source.is_none_or(|s| r.source == s))
            .collect();
        out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.key.cmp(&a.key)));
        Ok(out)
    }

    /// Read and verify a manifest.
    pub fn load_snapshot(&self, r: &SnapshotRef) -> Result<Snapshot> {
        let bytes = self.store.get(&r.key)?;
        r.decode(&bytes)
    }

    /// Snapshots, newest first, with their manifests; a manifest that cannot
    /// be read is reported in `unreadable` and skipped, so one damaged
    /// manifest does not hide the others. A manifest gone since the listing
    /// (a concurrent prune) is left out silently. Errors of the store itself
    /// (unreachable, denied) still fail.
    pub fn load_snapshots_tolerant(
        &self,
        host: Option<&str>,
        source: Option<&str>,
    ) -> Result<SnapshotListing> {
        let mut listing = SnapshotListing::default();
        for r in self.list_snapshots(host, source)? {
            match self.load_snapshot(&r) {
                Ok(snap) => listing.readable.push((r, snap)),
                Err(Error::NotFound { .. }) => {}
                Err(e) if is_object_damage(&e) => {
                    let problem = Problem::new(&r.key, &e);
                    listing.unreadable.push((r, problem));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(listing)
    }

    /// The newest snapshot of a group whose manifest reads, reading manifests
    /// newest first and only as far as needed; the unreadable ones on the way
    /// are returned as problems.
    pub fn newest_readable_snapshot(
        &self,
        host: &str,
        source: &str,
    ) -> Result<(Option<LoadedSnapshot>, Vec<Problem>)> {
        let mut problems = Vec::new();
        for r in self.list_snapshots(Some(host), Some(source))? {
            match self.load_snapshot(&r) {
                Ok(snap) => return Ok((Some((r, snap)), problems)),
                Err(Error::NotFound { .. }) => {}
                Err(e) if is_object_damage(&e) => problems.push(Problem::new(&r.key, &e)),
                Err(e) => return Err(e),
            }
        }
        Ok((None, problems))
    }

    /// Pick a snapshot from `candidates` (newest first) by id prefix or `latest`.
    pub fn select_snapshot<'a>(
        candidates: &'a [SnapshotRef],
        selector: &str,
    ) -> Result<&'a SnapshotRef> {
        if selector == "latest" {
            return candidates.first().ok_or_else(|| Error::NotFound {
                what: "any snapshot".into(),
            });
        }
        let matching: Vec<&SnapshotRef> = candidates
            .iter()
            .filter(|r| r.id.to_hex().starts_with(selector))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::NotFound {
                what: format!("snapshot {selector}"),
            }),
            _ => Err(Error::Usage(format!(
                "snapshot id {selector:?} is ambiguous; give more digits"
            ))),
        }
    }

    /// Write a manifest (create-only); returns its id and key.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<(ObjectId, String)> {
        let bytes = snap.to_bytes();
        let id = ObjectId::hash(&bytes);
        let key = snap.key(&id);
        self.store.put_new(&key, Bytes::from(bytes))?;
        Ok((id, key))
    }

    /// Visit every file below the tree `root` with its path (relative to the
    /// snapshot's source), depth first in name order. Iterative and depth
    /// limited ([`TreeWalk`]): a hostile tree cannot overflow the stack.
    pub fn for_each_file(
        &self,
        root: &BlobRef,
        visit: &mut dyn FnMut(String, FileEntry),
    ) -> Result<()> {
        let mut walk = TreeWalk::new(self.read_tree(root)?);
        while let Some(entry) = walk.next_entry() {
            match entry {
                Entry::Dir(d) => walk.descend(&d, self.read_tree(&d.tree)?)?,
                Entry::File(f) => visit(walk.path_of(&f.name), f),
            }
        }
        Ok(())
    }

    /// The file at `components` below the tree `root`, if the snapshot has it.
    pub fn lookup_file(&self, root: &BlobRef, components: &[String]) -> Result<Option<FileEntry>> {
        let mut tree = self.read_tree(root)?;
        for (i, name) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            match tree.get(name) {
                Some(Entry::File(f)) if last => return Ok(Some(f.clone())),
                Some(Entry::Dir(d)) if !last => {
                    let next = d.tree.clone();
                    check_depth(i + 1, &next)?;
                    tree = self.read_tree(&next)?;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}
