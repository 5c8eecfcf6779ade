//! `offsite check [--read-data]`: prove the repository is whole, delete nothing.
//!
//! Structure: every index file parses, every indexed pack exists with its
//! indexed size, every snapshot manifest matches its id, every tree reads back,
//! and every chunk a file names is indexed at the location the tree records.
//! With `--read-data` (or a `--read-data-subset`), every pack is read once,
//! whole, on several threads (its sealed header, then every blob decrypted
//! under the key of the header's tenant, decompressed and checked against
//! its keyed id; see [`crate::ops::check_data`]). Blobs of an erased tenant cannot be read by anyone,
//! by design: they are listed as not verifiable (`not_verifiable`), not as
//! problems. Each problem names the object; the
//! check goes on after a problem so one run lists them all. When there are
//! problems, `damaged` lists per snapshot the items that can no longer be
//! restored (see [`crate::ops::damage`]).
//!
//! **Memory.** The walk keeps one entry per directory version (by location:
//! an unchanged directory shared by many snapshots is walked once) and one
//! per chunk-list piece it checked (a 100 GB dump unchanged or changed in a
//! few places costs only its new pieces each day), never a list of files or
//! chunks; the index is the on-disk lookup. With `--read-data` the packs are
//! read first, so each file is counted as verified while it is walked.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::check_data::{self, Subset};
use crate::ops::damage::{damaged_snapshots, Bad, SnapshotDamage};
use crate::progress::Progress;
use crate::repo::layout::{index_key, pack_key};
use crate::repo::lookup::{BlobLookup, LookupBuilder};
use crate::repo::pack::BlobRef;
use crate::repo::{Repository, Shared};
use crate::tree::page::PieceRef;
use crate::tree::read::{DirIter, PageSource};
use crate::tree::{check_depth, ChunkList, Entry};

/// What `check` found.
#[derive(Serialize, Debug, Default)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    pub trees: usize,
    pub files: usize,
    /// `--read-data`: files whose every chunk lies in a pack read and
    /// verified whole.
    pub files_verified: usize,
    /// `--read-data`: packs read, the blobs in them verified, their bytes.
    pub packs_verified: u64,
    pub blobs_verified: u64,
    pub bytes_verified: u64,
    /// `--read-data-subset`: which packs were read ("1/7", "10% (seed S)").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// `--read-data`: packs no index lists (an interrupted snapshot's; the
    /// next snapshot adopts them) and packs no snapshot references (the next
    /// prune's). Not problems.
    pub unindexed_packs: u64,
    pub unreferenced_packs: u64,
    pub problems: Vec<String>,
    /// What could not be verified because its tenant was erased, one line
    /// per tenant ("tenant T erased").
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub not_verifiable: BTreeSet<String>,
    /// Snapshots referencing missing or damaged packs, with the items hit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<SnapshotDamage>,
    /// Object Lock findings (see [`crate::ops::lock_extend::audit`]):
    /// warnings, not problems (the data is whole).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub object_lock: Vec<String>,
}

struct Checker<'a> {
    repo: &'a Repository,
    /// Every indexed copy of every blob, on disk (see
    /// [`crate::repo::lookup`]): RAM holds a few bits per blob.
    index: BlobLookup,
    present: HashMap<ObjectId, u64>,
    /// Trees walked, by location: the same tree stored twice (a damaged copy
    /// and the copy a later snapshot stored again) is checked at each place.
    seen_trees: HashSet<Loc>,
    /// Chunk-list blobs and pieces checked, by location, and whether every
    /// blob below lies in a pack read whole: a big file unchanged in many
    /// snapshots, and the unchanged pieces of a changed one, are checked
    /// once. One entry per piece (16–1024 chunks), so memory stays well
    /// under a byte per chunk; no entry per file or per chunk is kept.
    seen_lists: HashMap<Loc, bool>,
    /// Packs holding a blob some snapshot references.
    referenced: HashSet<ObjectId>,
    /// `--read-data`: the packs read whole and verified.
    whole: Option<HashSet<ObjectId>>,
    report: CheckReport,
}

/// A blob's location: pack, id, offset.
type Loc = (ObjectId, ObjectId, u64);

fn loc(blob: &BlobRef) -> Loc {
    (blob.pack, blob.id, blob.offset)
}

impl<'a> Checker<'a> {
    fn problem(&mut self, message: String) {
        // Names in it come from the repository: one line, escaped.
        let message = crate::escape::escaped(&message);
        tracing::error!("{message}");
        self.report.problems.push(message);
    }

    fn erased(&mut self, tenant: &str) {
        let line = format!("tenant {} erased", crate::escape::escaped(tenant));
        self.report.not_verifiable.insert(line);
    }

    fn check_blob(&mut self, blob: &BlobRef, what: &str) {
        let key = pack_key(&blob.pack);
        self.referenced.insert(blob.pack);
        // A blob may be stored twice (a repack copied it, the old pack is not
        // deleted yet): any indexed copy at the place the tree says is right.
        let copies = match self.index.copies(&blob.id) {
            Ok(copies) => copies,
            Err(e) => {
                self.problem(format!("{what}: blob {}: {e}", blob.id));
                return;
            }
        };
        let at_tree_location = copies
            .iter()
            .any(|c| c.pack == blob.pack && c.offset == blob.offset);
        match copies.first() {
            None => self.problem(format!(
                "{what}: blob {} (in {key}) is not in the index",
                blob.id
            )),
            Some(indexed) if !at_tree_location => self.problem(format!(
                "{what}: blob {} is indexed in {} but the tree says {key}",
                blob.id,
                pack_key(&indexed.pack)
            )),
            Some(_) => {}
        }
        if !self.present.contains_key(&blob.pack) {
            self.problem(format!("{what}: pack {key} is missing"));
        }
    }

    /// Check every tree and file below `root`, iteratively and depth
    /// limited ([`check_depth`]): a hostile tree cannot overflow the stack.
    /// Each directory on the path is read a page at a time ([`DirIter`]),
    /// so memory does not grow with the size of a directory.
    fn walk(&mut self, root: &BlobRef, snapshot: &str) {
        let mut open: Vec<OpenDir<'a>> = Vec::new();
        open.extend(self.enter_tree(root, "", snapshot));
        while let Some(top) = open.last_mut() {
            let entry = match top.entries.next() {
                Some(Ok(entry)) => entry,
                Some(Err(e)) => {
                    self.problem(format!("snapshot {snapshot} tree /{}: {e}", top.path));
                    let done = open.pop().expect("the top");
                    self.leave_tree(&done);
                    continue;
                }
                None => {
                    let done = open.pop().expect("the top");
                    self.leave_tree(&done);
                    continue;
                }
            };
            let child = match top.path.as_str() {
                "" => entry.name().to_string(),
                dir => format!("{dir}/{}", entry.name()),
            };
            match entry {
                Entry::Dir(d) => {
                    if let Err(e) = check_depth(open.len(), &d.tree) {
                        self.problem(format!("snapshot {snapshot} tree /{child}: {e}"));
                    } else {
                        open.extend(self.enter_tree(&d.tree, &child, snapshot));
                    }
                }
                Entry::File(f) => {
                    self.report.files += 1;
                    let what = format!("snapshot {snapshot} file {child}");
                    if self.check_chunks(&f.chunks, &what) && self.whole.is_some() {
                        self.report.files_verified += 1;
                    }
                }
            }
        }
    }

    /// Is `blob` in a pack read whole (`--read-data`)?
    fn in_whole(&self, blob: &BlobRef) -> bool {
        self.whole.as_ref().is_some_and(|w| w.contains(&blob.pack))
    }

    /// Check every chunk of a file and the pieces its list is stored in;
    /// true when every one of them lies in a pack read whole.
    fn check_chunks(&mut self, list: &ChunkList, what: &str) -> bool {
        let (list_blob, chunks) = match list {
            ChunkList::Inline(chunks) => return self.check_all(chunks, what),
            ChunkList::Pieces { list, chunks } => (list, *chunks),
        };
        self.once_per_location(list_blob, what, |checker| {
            let mut source = checker.repo;
            match source.piece_list(list_blob, chunks) {
                Ok(pieces) => {
                    let mut whole = checker.in_whole(list_blob);
                    for piece in pieces {
                        whole &= checker.check_piece(&piece, what);
                    }
                    whole
                }
                Err(e) => {
                    checker.unreadable(e, what);
                    false
                }
            }
        })
    }

    /// Check one piece of a chunk list and its chunks, once per location.
    fn check_piece(&mut self, piece: &PieceRef, what: &str) -> bool {
        let blob = &piece.piece;
        self.once_per_location(blob, what, |checker| {
            let mut source = checker.repo;
            match source.piece(blob) {
                Ok(chunks) if chunks.len() as u64 == piece.chunks => {
                    checker.in_whole(blob) & checker.check_all(&chunks, what)
                }
                Ok(chunks) => {
                    checker.problem(format!(
                        "{what}: chunk-list piece {} in {} holds {} chunks, its list says {}",
                        blob.id,
                        pack_key(&blob.pack),
                        chunks.len(),
                        piece.chunks
                    ));
                    false
                }
                Err(e) => {
                    checker.unreadable(e, what);
                    false
                }
            }
        })
    }

    /// Check the chunk-list blob or piece `blob` (its location, then its
    /// content with `check`) once per location, remembering whether all it
    /// names lies in packs read whole.
    fn once_per_location(
        &mut self,
        blob: &BlobRef,
        what: &str,
        check: impl FnOnce(&mut Self) -> bool,
    ) -> bool {
        if let Some(&whole) = self.seen_lists.get(&loc(blob)) {
            return whole;
        }
        self.check_blob(blob, what);
        let whole = check(self);
        self.seen_lists.insert(loc(blob), whole);
        whole
    }

    /// Check each of `chunks`; true when all lie in packs read whole.
    fn check_all(&mut self, chunks: &[BlobRef], what: &str) -> bool {
        let mut whole = true;
        for chunk in chunks {
            self.check_blob(chunk, what);
            whole &= self.in_whole(chunk);
        }
        whole
    }

    /// A chunk list that does not read: not verifiable when its tenant was
    /// erased, a problem otherwise.
    fn unreadable(&mut self, e: Error, what: &str) {
        match e {
            Error::Erased { tenant, .. } => self.erased(&tenant),
            e => self.problem(format!("{what}: {e}")),
        }
    }

    /// Check and read a tree not seen before (problems are reported).
    fn enter_tree(
        &mut self,
        tree_ref: &BlobRef,
        path: &str,
        snapshot: &str,
    ) -> Option<OpenDir<'a>> {
        if !self.seen_trees.insert(loc(tree_ref)) {
            return None;
        }
        let what = format!("snapshot {snapshot} tree /{path}");
        self.check_blob(tree_ref, &what);
        match DirIter::new(self.repo, tree_ref) {
            Ok(entries) => {
                self.report.trees += 1;
                Some(OpenDir {
                    entries,
                    path: path.to_string(),
                    what,
                })
            }
            Err(Error::Erased { tenant, .. }) => {
                self.erased(&tenant);
                None
            }
            Err(e) => {
                self.problem(format!("{what}: {e}"));
                None
            }
        }
    }

    /// Check the pages of a directory read to its end (or to an error),
    /// past its root page (checked when it was entered).
    fn leave_tree(&mut self, dir: &OpenDir<'_>) {
        for page in dir.entries.pages().iter().skip(1) {
            self.check_blob(page, &dir.what);
        }
    }
}

/// A directory being walked: its entries, read a page at a time, and its
/// path below the snapshot's root.
struct OpenDir<'a> {
    entries: DirIter<&'a Repository>,
    path: String,
    what: String,
}

/// Check the repository. Problems go into the report's `problems` (and
/// `damaged`) and the check goes on, so the result is `Ok` whatever it
/// found; `Err` only when the store itself fails (listing the repository,
/// or reading what the damage report needs). The CLI turns a report with
/// problems into `Error::CheckFailed` (exit 1).
pub fn check(lock: &Shared, read_data: bool) -> Result<CheckReport> {
    let subset = read_data.then_some(Subset::All);
    check_with(lock, subset, &Progress::hidden())
}

/// [`check`], reading the packs `read_data` selects (`None`: none), showing
/// snapshots walked and packs and bytes verified on `progress`.
pub fn check_with(
    lock: &Shared,
    read_data: Option<Subset>,
    progress: &Progress,
) -> Result<CheckReport> {
    let repo = lock.repo();
    let mut checker = Checker {
        repo,
        index: BlobLookup::default(),
        present: repo.list_packs()?.into_iter().collect(),
        seen_trees: HashSet::new(),
        seen_lists: HashMap::new(),
        referenced: HashSet::new(),
        whole: None,
        report: CheckReport::default(),
    };
    checker.report.packs = checker.present.len();
    let scratch = std::env::temp_dir();
    let mut index = LookupBuilder::new(&scratch).with_copies();
    for id in repo.list_index_files()? {
        match repo.read_index_file(&id) {
            Ok(file) => {
                for pack in &file.packs {
                    index.add_pack(pack)?;
                }
            }
            Err(e) => checker.problem(format!("index {}: {e}", index_key(&id))),
        }
    }
    checker.index = index.finish()?;
    let mut indexed: Vec<(ObjectId, u64)> = checker.index.packs().map(|(k, v)| (*k, v)).collect();
    indexed.sort();
    for (pack, size) in indexed {
        let key = pack_key(&pack);
        match checker.present.get(&pack) {
            None => checker.problem(format!("pack {key} is listed in the index but missing")),
            Some(&actual) if actual != size => checker.problem(format!(
                "pack {key} has {actual} bytes, the index says {size}"
            )),
            Some(_) => {}
        }
    }
    let mut packs: Vec<(ObjectId, u64)> = checker.present.iter().map(|(k, v)| (*k, *v)).collect();
    packs.sort();
    // The packs are read first, so the walk knows which files lie in packs
    // read whole without holding any list of files.
    let mut read = match read_data {
        Some(subset) => Some((
            subset,
            check_data::read_packs(repo, &packs, subset, progress)?,
        )),
        None => None,
    };
    if let Some((_, read)) = &mut read {
        for tenant in &read.erased {
            checker.erased(tenant);
        }
        for p in &read.problems {
            checker.problem(p.clone());
        }
        checker.whole = Some(std::mem::take(&mut read.whole));
    }
    let snapshots = repo.list_snapshots(None, None)?;
    progress.phase("walking snapshots", "snapshots", snapshots.len() as u64, 0);
    for snap_ref in snapshots {
        progress.advance(1, 0);
        checker.report.snapshots += 1;
        match repo.load_snapshot(&snap_ref) {
            Ok(snap) => checker.walk(&snap.tree, &snap_ref.id.short()),
            Err(e) => checker.problem(format!("snapshot {}: {e}", snap_ref.key)),
        }
    }
    let Some((subset, read)) = read else {
        checker.report.damaged = damage(&checker, Bad::default())?;
        return Ok(checker.report);
    };
    let r = &mut checker.report;
    r.subset = subset.describe();
    r.packs_verified = read.packs_read;
    r.blobs_verified = read.blobs_verified;
    r.bytes_verified = read.bytes_read;
    r.unindexed_packs = packs
        .iter()
        .filter(|(id, _)| !checker.index.holds_pack(id))
        .count() as u64;
    r.unreferenced_packs = packs
        .iter()
        .filter(|(id, _)| !checker.referenced.contains(id))
        .count() as u64;
    let bad = Bad {
        packs: read.bad_packs,
        blobs: read.bad_blobs,
    };
    checker.report.damaged = damage(&checker, bad)?;
    Ok(checker.report)
}

/// The damaged snapshots, when there are problems: packs missing, of the
/// wrong size, or chunks found `corrupt` by reading.
fn damage(checker: &Checker<'_>, mut bad: Bad) -> Result<Vec<SnapshotDamage>> {
    if checker.report.problems.is_empty() {
        return Ok(Vec::new());
    }
    let packs = checker.index.packs().filter_map(|(id, size)| {
        let actual = checker.present.get(id)?;
        (*actual != size).then_some(*id)
    });
    bad.packs.extend(packs);
    let present: HashSet<ObjectId> = checker.present.keys().copied().collect();
    damaged_snapshots(checker.repo, &present, &bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::keys::Wrap;
    use crate::repo::pack::BlobKind;
    use crate::repo::writer::{BlobWriter, Compress};
    use crate::repo::{Location, MasterKey};
    use crate::snapshot::{Snapshot, Summary, SNAPSHOT_VERSION};
    use crate::tree::Tree;
    use crate::tree::{DirEntry, FileEntry};
    use chrono::DateTime;

    fn file(name: &str, tenant: Option<&str>, content: &[u8], chunk: BlobRef) -> Entry {
        Entry::File(FileEntry {
            name: name.into(),
            size: content.len() as u64,
            mtime_ns: 0,
            mode: 0o100644,
            inode: 0,
            tenant: tenant.map(String::from),
            sha256: ObjectId::hash(content),
            chunks: ChunkList::Inline(vec![chunk]),
            carried: false,
        })
    }

    /// A snapshot with a file of tenant `gone` (below `gone/`) and one of no
    /// tenant; then `gone`'s key is replaced by a tombstone. `check
    /// --read-data` is clean and says what it could not verify.
    #[test]
    fn an_erased_tenant_is_not_verifiable_and_not_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let location = Location::Local(root.clone());
        let master = MasterKey::generate();
        let t0 = DateTime::UNIX_EPOCH;
        let repo = Repository::init(&location, t0, &master).unwrap();
        let w = BlobWriter::new(&repo, t0);
        let store = |tenant, kind, bytes: &[u8]| w.store(tenant, kind, bytes, Compress::Never);
        let old = store(Some("gone"), BlobKind::Data, b"old data").unwrap();
        let sub = Tree {
            entries: vec![file("a", Some("gone"), b"old data", old)],
        };
        let sub = store(Some("gone"), BlobKind::Tree, &sub.to_bytes()).unwrap();
        let kept = store(None, BlobKind::Data, b"kept").unwrap();
        let top = Tree {
            entries: vec![
                Entry::Dir(DirEntry {
                    name: "gone".into(),
                    mode: 0o40755,
                    mtime_ns: 0,
                    tenant: Some("gone".into()),
                    tree: sub,
                    files_below: 0,
                    bytes_below: 0,
                }),
                file("k", None, b"kept", kept),
            ],
        };
        let top = store(None, BlobKind::Tree, &top.to_bytes()).unwrap();
        repo.write_index_file(w.finish().unwrap()).unwrap();
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            time: t0,
            host: "h1".into(),
            source: "data".into(),
            class: crate::config::SourceClass::ClientData,
            path: "/src".into(),
            parent: None,
            tree: top,
            summary: Summary::default(),
            previous_ids: Vec::new(),
            rewritten_at: None,
            tree_tenant: None,
        };
        repo.save_snapshot(&snap).unwrap();
        let tombstone = Wrap::Erased {
            name: "gone".into(),
            erased_at: t0,
            reason: "contract ended".into(),
        };
        let wrap = root.join(master.wrap_key("tenant", "gone"));
        std::fs::write(wrap, master.seal_json("wrap", &tombstone)).unwrap();

        let repo = Repository::open(&location, &master).unwrap();
        let clock = crate::clock::ManualClock::new(t0);
        let lock = repo.shared("h1", "check", &clock).unwrap();
        let report = check(&lock, true).unwrap();
        assert_eq!(report.problems, Vec::<String>::new());
        assert_eq!(
            report.not_verifiable.iter().collect::<Vec<_>>(),
            ["tenant gone erased"]
        );
        assert_eq!(report.files_verified, 1, "the other tenant's file is read");
    }
}
