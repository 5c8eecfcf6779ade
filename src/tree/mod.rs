//! Directory trees: the metadata of one snapshot (repository format 3).
//!
//! A file entry carries everything a restore needs: size, times, mode,
//! tenant, whole-content SHA-256 and the location of every chunk. A directory
//! entry points at its own directory, which is stored as **pages**:
//!
//! * A directory is a content-defined B-tree of pages ([`page`] encodes and
//!   decodes them, [`build`] cuts them, [`read`] walks them). Leaf pages hold
//!   entries sorted by name; a leaf ends after an entry whose keyed hash of
//!   the name hits a boundary (1 in 256), at least [`build::MIN_PAGE_ENTRIES`]
//!   entries and at most [`build::MAX_PAGE_ENTRIES`] entries or
//!   [`build::MAX_PAGE_BYTES`] bytes. Internal pages hold, per child, its
//!   first name, its location and what lies below it (entries, files,
//!   bytes), and split by the same rule with a per-level salt. Boundaries
//!   depend on names only, so an unchanged directory is the same pages (and
//!   stored once), and changing one file rewrites one leaf plus the path to
//!   the root. A directory of up to a few hundred entries is one page. One
//!   name is found by reading one page per level: a directory of 1 000 000
//!   entries is three levels, ~4 000 leaves of ~25 KB.
//! * The encoding is the canonical binary one of [`crate::codec`]: names
//!   prefix-coded against the previous name in the page, a blob reference
//!   ~70 bytes (JSON with hex ids was ~200).
//! * The chunk list of a file with more than [`build::INLINE_CHUNKS`] chunks
//!   is stored in **pieces** ([`build::store_chunk_list`]): a piece ends after
//!   a chunk whose id hits a boundary (1 in 128, at least 16 and at most 1024
//!   chunks), so an unchanged region of a changed 100 GB dump keeps its
//!   piece ids and is not stored again; a small list blob names the pieces
//!   with their chunk and byte counts, so a reader can seek by offset.
//!   (Two levels: the list of a 100 GB file is ~95 000 pieces, ~7 MB, still
//!   rewritten each day; a third level is the next step if that matters.)
//!
//! Every page and piece is a blob sealed under its directory's (or file's)
//! tenant key like any other, so a bucket writer without the key cannot
//! forge one.
//!
//! # Pages come from an untrusted bucket
//!
//! A host that holds the key (compromised, or running a buggy version)
//! still can, so every page is checked in one place, [`page::decode`], before
//! anything uses it (restore, restore-test, check and prune all read pages
//! through it and see the same verdict): each name must be a safe single path
//! component ([`check_name`]: not empty, not `.` or `..`, no `/`, no NUL, at
//! most 255 bytes, the most any Linux file system holds), the entries must be
//! strictly sorted by name (so no name repeats and lookups by binary search
//! are right; the readers also check the order across pages), every blob
//! location must fit in 64 bits, every count is bounded, and a child page
//! must be exactly one level below its parent (so a walk down a directory
//! ends). A page that fails is [`Error::Corrupt`] naming its pack and blob.
//! The snapshot writer only ever stores names read from a directory, which
//! satisfy all of this.
//!
//! Nesting is bounded too: walks over trees ([`TreeWalk`], and the rewrite
//! in prune) use an explicit stack, never recursion, so no nesting can
//! overflow the stack, and a directory more than [`MAX_TREE_DEPTH`] levels below
//! its snapshot's root is corrupt. No real source can be that deep: the
//! snapshot reads every file by its full path, which Linux limits to 4096
//! bytes (PATH_MAX), so at most 2048 levels.

pub mod build;
pub mod page;
pub mod read;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::layout::pack_key;
use crate::repo::pack::BlobRef;

/// Directory levels below a snapshot's root tree that a walk follows; a tree
/// deeper than this is corrupt (see the module docs).
pub const MAX_TREE_DEPTH: usize = 4096;

/// The longest name a tree entry may have, in bytes (Linux's NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;

/// One directory's entries, sorted by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

/// A file or a subdirectory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    File(FileEntry),
    Dir(DirEntry),
}

impl Entry {
    /// The entry's name inside its directory.
    pub fn name(&self) -> &str {
        match self {
            Entry::File(f) => &f.name,
            Entry::Dir(d) => &d.name,
        }
    }
}

/// A regular file as backed up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub mode: u32,
    pub inode: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// SHA-256 of the whole content.
    pub sha256: ObjectId,
    /// Where the content's chunks are (read them with
    /// [`crate::repo::Repository::file_chunks`]).
    pub chunks: ChunkList,
    /// A voice recording gone from the source, carried forward from the
    /// previous snapshot until its backup copy expires.
    #[serde(default, skip_serializing_if = "is_false")]
    pub carried: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A subdirectory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub mode: u32,
    pub mtime_ns: i64,
    /// The tenant whose key seals `tree` (`None`: the shared key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub tree: BlobRef,
    /// Files anywhere below this directory.
    #[serde(default)]
    pub files_below: u64,
    /// Bytes of the files anywhere below this directory.
    #[serde(default)]
    pub bytes_below: u64,
}

/// The chunks of a file's content, in order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChunkList {
    /// Listed in the entry itself (at most [`build::INLINE_CHUNKS`]).
    Inline(Vec<BlobRef>),
    /// In pieces (see the module docs): `list` names them; `chunks` in all.
    Pieces { list: BlobRef, chunks: u64 },
}

impl ChunkList {
    /// No chunks (an empty file).
    pub fn empty() -> Self {
        ChunkList::Inline(Vec::new())
    }

    /// The number of chunks.
    pub fn len(&self) -> u64 {
        match self {
            ChunkList::Inline(c) => c.len() as u64,
            ChunkList::Pieces { chunks, .. } => *chunks,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks, when they are listed inline.
    pub fn inline(&self) -> Option<&[BlobRef]> {
        match self {
            ChunkList::Inline(c) => Some(c),
            ChunkList::Pieces { .. } => None,
        }
    }
}

impl Default for ChunkList {
    fn default() -> Self {
        Self::empty()
    }
}

impl Tree {
    /// The directory as one leaf page (see [`page`]; entries must already
    /// be sorted): what small directories are, and what tests store.
    pub fn to_bytes(&self) -> Vec<u8> {
        page::encode_leaf(&self.entries)
    }

    /// The entry called `name`, by binary search.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Sort entries by name (call before serializing).
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.name().cmp(b.name()));
    }
}

/// A depth-first walk over a snapshot's trees in name order, with an
/// explicit stack instead of recursion (see the module docs). The caller
/// reads trees (so it may cache them, skip some, or go on after an error):
///
/// ```text
/// let mut walk = TreeWalk::new(root_tree);
/// while let Some(entry) = walk.next_entry() {
///     match entry {
///         Entry::File(f) => visit(walk.path_of(&f.name), f),
///         Entry::Dir(d) => walk.descend(&d, read(&d.tree)?)?,
///     }
/// }
/// ```
pub struct TreeWalk {
    /// Entries still to visit (the next one last), with their depth.
    pending: Vec<(usize, Entry)>,
    /// Names of the directories that hold the entry returned last.
    dirs: Vec<String>,
}

impl TreeWalk {
    /// A walk over the entries of `root` (a snapshot's root tree).
    pub fn new(root: Tree) -> Self {
        let mut walk = TreeWalk {
            pending: Vec::new(),
            dirs: Vec::new(),
        };
        walk.push(0, root);
        walk
    }

    fn push(&mut self, depth: usize, tree: Tree) {
        self.pending
            .extend(tree.entries.into_iter().rev().map(|e| (depth, e)));
    }

    /// The next entry in depth-first name order.
    pub fn next_entry(&mut self) -> Option<Entry> {
        let (depth, entry) = self.pending.pop()?;
        self.dirs.truncate(depth);
        Some(entry)
    }

    /// The path (relative to the snapshot's root) of `name` in the directory
    /// of the entry returned last.
    pub fn path_of(&self, name: &str) -> String {
        let mut path = String::new();
        for dir in &self.dirs {
            path.push_str(dir);
            path.push('/');
        }
        path.push_str(name);
        path
    }

    /// Visit `tree`, the content of `dir` (the entry returned last), before
    /// the rest of `dir`'s siblings. Corrupt when that is deeper than
    /// [`MAX_TREE_DEPTH`].
    pub fn descend(&mut self, dir: &DirEntry, tree: Tree) -> Result<()> {
        check_depth(self.dirs.len() + 1, &dir.tree)?;
        self.dirs.push(dir.name.clone());
        self.push(self.dirs.len(), tree);
        Ok(())
    }
}

/// `Corrupt` when the tree `blob` sits `depth` levels below its snapshot's
/// root and that is more than [`MAX_TREE_DEPTH`].
pub fn check_depth(depth: usize, blob: &BlobRef) -> Result<()> {
    if depth > MAX_TREE_DEPTH {
        return Err(Error::corrupt(
            pack_key(&blob.pack),
            format!(
                "tree blob {} is nested more than {MAX_TREE_DEPTH} directories deep; no source path can be that deep",
                blob.id
            ),
        ));
    }
    Ok(())
}

/// Is `name` safe as one path component below a restore target? The reason
/// when not.
pub fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        Err("the name is empty")
    } else if name == "." || name == ".." {
        Err("the name is `.` or `..`")
    } else if name.contains('/') {
        Err("the name contains '/'")
    } else if name.contains('\0') {
        Err("the name contains a NUL byte")
    } else if name.len() > MAX_NAME_BYTES {
        Err("the name is longer than 255 bytes")
    } else {
        Ok(())
    }
}

/// A name from the repository as an error message shows it: quoted, escaped,
/// at most 64 characters.
pub(crate) fn shown(name: &str) -> String {
    let cut: String = name.chars().take(64).collect();
    if cut.len() < name.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Split an item path given by a person into safe components: no absolute
/// paths, no `..`, no empty names. `.` and repeated slashes are dropped.
pub fn item_components(path: &str) -> Result<Vec<String>> {
    if path.starts_with('/') {
        return Err(Error::Usage(format!(
            "item path {path:?} must be relative to the source (like tenant/voice/2026/11/01/x.opus)"
        )));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => {
                return Err(Error::Usage(format!(
                    "item path {path:?} contains '..'; items are named relative to the source and cannot leave it"
                )))
            }
            p if p.contains('\0') => {
                return Err(Error::Usage(format!("item path {path:?} contains a NUL byte")))
            }
            p => parts.push(p.to_string()),
        }
    }
    if parts.is_empty() {
        return Err(Error::Usage(format!("item path {path:?} names no file")));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> BlobRef {
        BlobRef {
            id: ObjectId([n; 32]),
            pack: ObjectId([0xAB; 32]),
            offset: 0,
            length: 10,
            raw_length: 10,
            compression: Default::default(),
            tenant: None,
        }
    }

    fn file(name: &str) -> Entry {
        Entry::File(FileEntry {
            name: name.into(),
            size: 0,
            mtime_ns: 0,
            mode: 0o100644,
            inode: 0,
            tenant: None,
            sha256: ObjectId::default(),
            chunks: ChunkList::Inline(vec![blob(9)]),
            carried: false,
        })
    }

    fn dir(name: &str, n: u8) -> Entry {
        Entry::Dir(DirEntry {
            name: name.into(),
            mode: 0o40755,
            mtime_ns: 0,
            tenant: None,
            tree: blob(n),
            files_below: 0,
            bytes_below: 0,
        })
    }

    fn parse(entries: Vec<Entry>) -> Result<Tree> {
        match page::decode(&blob(1), &Tree { entries }.to_bytes())? {
            page::Page::Leaf(entries) => Ok(Tree { entries }),
            other => panic!("a leaf encoded as {other:?}"),
        }
    }

    #[test]
    fn names_that_are_not_one_safe_component_are_refused() {
        let long = "é".repeat(128);
        for bad in [
            "",
            ".",
            "..",
            "/",
            "/../x",
            "a/b",
            "a/",
            "a\0b",
            "\0",
            long.as_str(),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        let longest = format!("{}x", "é".repeat(127));
        assert_eq!(longest.len(), 255);
        for good in [
            "a",
            "...",
            ".hidden",
            "a..b",
            "x y",
            "é",
            "\\",
            longest.as_str(),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?} refused");
        }
    }

    #[test]
    fn a_tree_with_a_bad_name_is_corrupt_naming_pack_and_blob() {
        for bad in [file(".."), dir("a/b", 2), file("")] {
            let err = parse(vec![bad, file("ok")]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("corrupt object {}", pack_key(&blob(1).pack))),
                "{err}"
            );
            assert!(
                err.contains(&format!("tree blob {}: entry ", blob(1).id)),
                "{err}"
            );
        }
        let huge = "x".repeat(10_000);
        let err = parse(vec![file(&huge)]).unwrap_err().to_string();
        assert!(err.len() < 400, "the name is cut in the message: {err}");
    }

    #[test]
    fn entries_must_be_strictly_sorted() {
        assert!(parse(vec![file("a"), dir("b", 2), file("c")]).is_ok());
        assert!(parse(vec![file("b"), file("a")]).is_err());
        assert!(parse(vec![file("a"), dir("a", 2)]).is_err());
    }

    #[test]
    fn locations_past_any_pack_are_refused() {
        let mut far = blob(2);
        far.offset = u64::MAX - 3;
        let entry = Entry::Dir(DirEntry {
            name: "d".into(),
            mode: 0,
            mtime_ns: 0,
            tenant: None,
            tree: far,
            files_below: 0,
            bytes_below: 0,
        });
        assert!(parse(vec![entry]).is_err());
    }

    #[test]
    fn walk_visits_in_name_order_with_paths() {
        // root: a.txt, d/ (x.txt, e/ (y.txt)), z.txt
        let trees = std::collections::HashMap::from([
            (
                2u8,
                Tree {
                    entries: vec![file("x.txt"), dir("e", 3)],
                },
            ),
            (
                3u8,
                Tree {
                    entries: vec![file("y.txt")],
                },
            ),
        ]);
        let root = Tree {
            entries: vec![file("a.txt"), dir("d", 2), file("z.txt")],
        };
        let mut walk = TreeWalk::new(root);
        let mut seen = Vec::new();
        while let Some(entry) = walk.next_entry() {
            seen.push(walk.path_of(entry.name()));
            if let Entry::Dir(d) = entry {
                walk.descend(&d, trees[&d.tree.id.0[0]].clone()).unwrap();
            }
        }
        assert_eq!(seen, ["a.txt", "d", "d/x.txt", "d/e", "d/e/y.txt", "z.txt"]);
    }

    #[test]
    fn walk_refuses_trees_deeper_than_the_limit() {
        let chain = || Tree {
            entries: vec![dir("d", 2)],
        };
        let mut walk = TreeWalk::new(chain());
        let mut levels = 0;
        let err = loop {
            let Some(Entry::Dir(d)) = walk.next_entry() else {
                panic!("the chain ended");
            };
            match walk.descend(&d, chain()) {
                Ok(()) => levels += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(levels, MAX_TREE_DEPTH);
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(check_depth(MAX_TREE_DEPTH, &blob(1)).is_ok());
    }

    #[test]
    fn item_paths_that_escape_are_refused() {
        assert!(item_components("../../etc/passwd").is_err());
        assert!(item_components("a/../../b").is_err());
        assert!(item_components("/etc/passwd").is_err());
        assert!(item_components("").is_err());
        assert_eq!(
            item_components("./a//b/c.txt").unwrap(),
            vec!["a", "b", "c.txt"]
        );
    }
}
