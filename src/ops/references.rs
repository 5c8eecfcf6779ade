//! What the kept snapshots reference now, and what they will reference once
//! a prune's rewrites are committed: the ground truth of the sweep plan.
//!
//! A prune rewrites trees for two reasons (see [`crate::ops::rewrite`]):
//! expired voice recordings are dropped from voice snapshots, and blobs
//! copied out of repacked packs get new locations, which changes every tree
//! above them. Both happen in one rewrite pass whose new trees go to new
//! packs only (its writer does not deduplicate against the repository), so
//! which **existing** blobs stay referenced afterwards depends only on the
//! trees that exist now and on which packs go away; the ids of the new
//! blobs do not matter. This module loads every distinct tree reachable from
//! the kept snapshots once ([`TreeGraph`]) and answers, in memory, for a set
//! of packs that go away ([`TreeGraph::outcome`]):
//!
//! * which trees the rewrite pass changes (exactly the rule of
//!   [`crate::ops::rewrite::Rewriter`]: a tree changes when it drops a file
//!   or the directory of an erased tenant (never read: its key is gone),
//!   when one of its kept chunks or subtrees moves, or when a subtree
//!   changes; a directory emptied by dropped files is dropped);
//! * the blobs referenced afterwards: every chunk of every kept file, and
//!   every tree that does not change (a changed tree is replaced by a new
//!   blob, so its old blob drops out);
//! * which snapshots get a new manifest.
//!
//! Trees are keyed by location (pack, blob), as the rewriter memoizes them.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::pack::BlobRef;
use crate::repo::rotate::ErasedTenant;
use crate::repo::{Repository, TreeCache};
use crate::tree::{check_depth, read, ChunkList, Entry, FileEntry, Tree};

/// A blob's location: (pack, blob id).
pub type Loc = (ObjectId, ObjectId);

/// Every distinct tree reachable from the kept snapshots, children before
/// their parents.
pub struct TreeGraph {
    nodes: Vec<Node>,
    roots: Vec<Root>,
    /// Per context (0: erased tenants only, 1: with the voice filter too)
    /// and node: the filter drops something below it.
    filtered: [Vec<bool>; 2],
    /// Per context and node: the filter empties it (it drops something and
    /// keeps nothing), so its parent leaves it out.
    omitted: [Vec<bool>; 2],
}

/// One snapshot's root tree.
#[derive(Clone, Copy, Debug)]
pub struct Root {
    node: usize,
    /// Expired voice recordings are dropped below it.
    voice: bool,
}

struct Node {
    blob: (Loc, u32),
    /// The directory's other pages (the rewrite writes them all anew).
    pages: Vec<(Loc, u32)>,
    dirs: Vec<usize>,
    files: Vec<FileRefs>,
    /// Directories of erased tenants: dropped unread in every context.
    erased_dirs: usize,
}

struct FileRefs {
    chunks: Vec<(Loc, u32)>,
    /// The blobs its chunk list is stored in (stored anew when one of its
    /// chunks or these moves).
    lists: Vec<(Loc, u32)>,
    /// Dropped from voice snapshots: its backup copy expired.
    expired: bool,
    /// Dropped everywhere: its tenant was erased.
    erased: bool,
}

impl FileRefs {
    fn moves(&self, moves: &dyn Fn(&(Loc, u32)) -> bool) -> bool {
        self.chunks.iter().chain(&self.lists).any(moves)
    }

    fn dropped(&self, voice: bool) -> bool {
        self.erased || (voice && self.expired)
    }
}

/// What the rewrite pass does when the packs in `going` go away.
pub struct Outcome {
    /// Existing blobs referenced once the rewrites are committed, with their
    /// stored length.
    pub live: HashMap<Loc, u32>,
    /// Per root (in the order given to [`TreeGraph::load`]): its snapshot
    /// gets a new manifest.
    pub rewritten: Vec<bool>,
}

fn loc(b: &BlobRef) -> (Loc, u32) {
    ((b.pack, b.id), b.length)
}

/// A tree whose subdirectories are being loaded.
struct Frame {
    blob: BlobRef,
    tree: Tree,
    pages: Vec<BlobRef>,
    next: usize,
    dirs: Vec<usize>,
    erased_dirs: usize,
}

/// What is dropped: files the voice filter drops (`expired`, in voice
/// snapshots), and everything of the `erased` tenants (in every snapshot).
pub struct Drops<'a> {
    pub expired: &'a dyn Fn(&FileEntry) -> bool,
    pub erased: &'a BTreeMap<String, ErasedTenant>,
}

impl Drops<'_> {
    fn erased(&self, tenant: Option<&String>) -> bool {
        tenant.is_some_and(|t| self.erased.contains_key(t))
    }
}

impl TreeGraph {
    /// Load the trees below `roots` (each with whether the voice filter
    /// applies to it); `drops` says which files and directories go.
    pub fn load(repo: &Repository, roots: &[(BlobRef, bool)], drops: &Drops<'_>) -> Result<Self> {
        let mut cache = TreeCache::new(repo);
        let mut known: HashMap<Loc, usize> = HashMap::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut out = Vec::new();
        for (root, voice) in roots {
            let node = match known.get(&(root.pack, root.id)) {
                Some(&i) => i,
                None => add(&mut cache, root, &mut known, &mut nodes, drops)?,
            };
            out.push(Root {
                node,
                voice: *voice,
            });
        }
        let mut filtered = [vec![false; nodes.len()], vec![false; nodes.len()]];
        let mut omitted = [vec![false; nodes.len()], vec![false; nodes.len()]];
        for (ctx, voice) in [(0, false), (1, true)] {
            // Children come first, so one pass in order sees them decided.
            for (i, n) in nodes.iter().enumerate() {
                let kept_dirs = n.dirs.iter().filter(|&&c| !omitted[ctx][c]).count();
                let kept_files = n.files.iter().filter(|f| !f.dropped(voice)).count();
                filtered[ctx][i] = kept_files < n.files.len()
                    || n.erased_dirs > 0
                    || n.dirs.iter().any(|&c| filtered[ctx][c]);
                omitted[ctx][i] = filtered[ctx][i] && kept_dirs == 0 && kept_files == 0;
            }
        }
        Ok(TreeGraph {
            nodes,
            roots: out,
            filtered,
            omitted,
        })
    }

    /// Packs holding a blob that a kept snapshot references now.
    pub fn packs_referenced_now(&self) -> HashSet<ObjectId> {
        let mut packs = HashSet::new();
        for n in &self.nodes {
            packs.insert(n.blob.0 .0);
            packs.extend(n.pages.iter().map(|p| p.0 .0));
            for f in &n.files {
                packs.extend(f.chunks.iter().chain(&f.lists).map(|c| c.0 .0));
            }
        }
        packs
    }

    /// Does the voice filter or an erasure drop anything from the snapshot
    /// of root `i`?
    pub fn drops_below(&self, i: usize) -> bool {
        let r = self.roots[i];
        self.filtered[usize::from(r.voice)][r.node]
    }

    /// Does an erased tenant drop anything from the snapshot of root `i`?
    pub fn erased_below(&self, i: usize) -> bool {
        self.filtered[0][self.roots[i].node]
    }

    /// What the rewrite pass does when the packs in `going` go away.
    pub fn outcome(&self, going: &HashSet<ObjectId>) -> Outcome {
        let moves = |l: &(Loc, u32)| going.contains(&l.0 .0);
        // changed[ctx][node], ctx 0 without and 1 with the voice filter.
        let mut changed = [vec![false; self.nodes.len()], vec![false; self.nodes.len()]];
        for (i, n) in self.nodes.iter().enumerate() {
            for (ctx, voice) in [(0, false), (1, true)] {
                let kept_file = |f: &&FileRefs| !f.dropped(voice);
                let kept_dir = |c: &&usize| !self.omitted[ctx][**c];
                changed[ctx][i] = self.filtered[ctx][i]
                    || n.files.iter().filter(kept_file).any(|f| f.moves(&moves))
                    || n.pages.iter().any(moves)
                    || n.dirs
                        .iter()
                        .filter(kept_dir)
                        .any(|&c| changed[ctx][c] || moves(&self.nodes[c].blob));
            }
        }
        let mut live = HashMap::new();
        let mut seen = [vec![false; self.nodes.len()], vec![false; self.nodes.len()]];
        let mut rewritten = Vec::with_capacity(self.roots.len());
        for root in &self.roots {
            let ctx = usize::from(root.voice);
            rewritten.push(changed[ctx][root.node] || moves(&self.nodes[root.node].blob));
            let mut stack = vec![root.node];
            while let Some(i) = stack.pop() {
                if std::mem::replace(&mut seen[ctx][i], true) {
                    continue;
                }
                let n = &self.nodes[i];
                if !changed[ctx][i] {
                    live.insert(n.blob.0, n.blob.1);
                    live.extend(n.pages.iter().copied());
                }
                for f in n.files.iter().filter(|f| !f.dropped(root.voice)) {
                    live.extend(f.chunks.iter().copied());
                    if !f.moves(&moves) {
                        live.extend(f.lists.iter().copied());
                    }
                }
                stack.extend(n.dirs.iter().filter(|&&c| !self.omitted[ctx][c]));
            }
        }
        Outcome { live, rewritten }
    }
}

/// Add the tree at `root` and every tree below it not known yet; its node.
/// Iterative and depth limited: a hostile tree cannot overflow the stack.
fn add(
    cache: &mut TreeCache,
    root: &BlobRef,
    known: &mut HashMap<Loc, usize>,
    nodes: &mut Vec<Node>,
    drops: &Drops<'_>,
) -> Result<usize> {
    let (tree, pages) = cache.read_tree_pages(root)?;
    let mut stack = vec![Frame {
        blob: root.clone(),
        tree,
        pages,
        next: 0,
        dirs: Vec::new(),
        erased_dirs: 0,
    }];
    while let Some(top) = stack.last_mut() {
        let next_dir = top.tree.entries[top.next..]
            .iter()
            .position(|e| matches!(e, Entry::Dir(_)));
        match next_dir.map(|at| top.next + at) {
            Some(at) => {
                top.next = at + 1;
                let Entry::Dir(d) = &top.tree.entries[at] else {
                    continue;
                };
                if drops.erased(d.tenant.as_ref()) {
                    top.erased_dirs += 1;
                    continue;
                }
                if let Some(&i) = known.get(&(d.tree.pack, d.tree.id)) {
                    top.dirs.push(i);
                    continue;
                }
                let blob = d.tree.clone();
                check_depth(stack.len(), &blob)?;
                let (tree, pages) = cache.read_tree_pages(&blob)?;
                stack.push(Frame {
                    blob,
                    tree,
                    pages,
                    next: 0,
                    dirs: Vec::new(),
                    erased_dirs: 0,
                });
            }
            None => {
                let Some(frame) = stack.pop() else { break };
                let mut files = Vec::new();
                for entry in &frame.tree.entries {
                    let Entry::File(f) = entry else { continue };
                    let erased = drops.erased(f.tenant.as_ref());
                    // An erased tenant's list cannot be read (its key is
                    // gone); the file is dropped, its list with it.
                    let (lists, chunks) = match (&f.chunks, erased) {
                        (ChunkList::Inline(c), _) => (Vec::new(), c.iter().map(loc).collect()),
                        (_, true) => (Vec::new(), Vec::new()),
                        (list, false) => (
                            read::list_blobs(&mut *cache, list)?
                                .iter()
                                .map(loc)
                                .collect(),
                            read::all_chunks(&mut *cache, list)?
                                .iter()
                                .map(loc)
                                .collect(),
                        ),
                    };
                    files.push(FileRefs {
                        chunks,
                        lists,
                        expired: (drops.expired)(f),
                        erased,
                    });
                }
                let i = nodes.len();
                nodes.push(Node {
                    blob: loc(&frame.blob),
                    pages: frame.pages.iter().skip(1).map(loc).collect(),
                    dirs: frame.dirs,
                    files,
                    erased_dirs: frame.erased_dirs,
                });
                known.insert((frame.blob.pack, frame.blob.id), i);
                match stack.last_mut() {
                    Some(parent) => parent.dirs.push(i),
                    None => return Ok(i),
                }
            }
        }
    }
    // The loop returns when the root is done; an empty stack is unreachable.
    Err(crate::Error::corrupt(
        crate::repo::layout::pack_key(&root.pack),
        format!("tree blob {}: walk ended early", root.id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::rewrite::{Moved, Rewriter};
    use crate::repo::pack::BlobKind;
    use crate::repo::writer::{BlobWriter, Compress};
    use crate::tree::DirEntry;

    fn file(name: &str, chunk: &BlobRef) -> Entry {
        Entry::File(FileEntry {
            name: name.into(),
            size: 4,
            mtime_ns: 0,
            mode: 0o100644,
            inode: 0,
            tenant: None,
            sha256: ObjectId::default(),
            chunks: ChunkList::Inline(vec![chunk.clone()]),
            carried: false,
        })
    }

    /// root/{b (expires), s/a}: returns (root, s, a's chunk, b's chunk).
    fn small_repo(repo: &Repository) -> (BlobRef, BlobRef, BlobRef, BlobRef) {
        let w = BlobWriter::new(repo, chrono::DateTime::UNIX_EPOCH);
        let a = w
            .store(None, BlobKind::Data, b"aaaa", Compress::Never)
            .unwrap();
        let b = w
            .store(None, BlobKind::Data, b"bbbb", Compress::Never)
            .unwrap();
        let sub = Tree {
            entries: vec![file("a", &a)],
        };
        let s = w
            .store(None, BlobKind::Tree, &sub.to_bytes(), Compress::Try)
            .unwrap();
        let root = Tree {
            entries: vec![
                file("b", &b),
                Entry::Dir(DirEntry {
                    name: "s".into(),
                    mode: 0o40755,
                    mtime_ns: 0,
                    tenant: None,
                    tree: s.clone(),
                    files_below: 0,
                    bytes_below: 0,
                }),
            ],
        };
        let r = w
            .store(None, BlobKind::Tree, &root.to_bytes(), Compress::Try)
            .unwrap();
        w.finish().unwrap();
        (r, s, a, b)
    }

    /// A new repository in a temporary directory (kept while the first lives).
    fn scratch_repo() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(
            &crate::repo::Location::Local(dir.path().join("r")),
            chrono::DateTime::UNIX_EPOCH,
            &crate::repo::MasterKey::generate(),
        )
        .unwrap();
        (dir, repo)
    }

    fn key(b: &BlobRef) -> Loc {
        (b.pack, b.id)
    }

    #[test]
    fn live_set_follows_the_rewrites_the_prune_will_commit() {
        let (_dir, repo) = scratch_repo();
        let (r, s, a, b) = small_repo(&repo);
        let expired = |f: &FileEntry| f.name == "b";
        let none = BTreeMap::new();
        let expired = Drops {
            expired: &expired,
            erased: &none,
        };
        let graph =
            TreeGraph::load(&repo, &[(r.clone(), true), (r.clone(), false)], &expired).unwrap();
        assert!(graph.drops_below(0) && !graph.drops_below(1));

        // Nothing moves: the voice snapshot drops b, so its root is replaced;
        // the plain snapshot keeps every blob as it is.
        let voice_only = TreeGraph::load(&repo, &[(r.clone(), true)], &expired).unwrap();
        let out = voice_only.outcome(&HashSet::new());
        let live: HashSet<Loc> = out.live.keys().copied().collect();
        assert_eq!(live, HashSet::from([key(&s), key(&a)]));
        assert_eq!(out.rewritten, vec![true]);
        let out = graph.outcome(&HashSet::new());
        assert_eq!(out.live.len(), 4);
        assert_eq!(out.rewritten, vec![true, false]);

        // a's pack goes: every tree above a changes, so only the data stays live.
        let plain = TreeGraph::load(&repo, &[(r.clone(), false)], &expired).unwrap();
        let out = plain.outcome(&HashSet::from([a.pack]));
        let live: HashSet<Loc> = out.live.keys().copied().collect();
        assert_eq!(live, HashSet::from([key(&a), key(&b)]));
        assert_eq!(out.rewritten, vec![true]);
    }

    #[test]
    fn a_rewrite_keeping_a_reference_into_a_pack_the_plan_deletes_stops() {
        let (_dir, repo) = scratch_repo();
        let (r, _, a, _) = small_repo(&repo);
        let writer = BlobWriter::new(&repo, chrono::DateTime::UNIX_EPOCH);
        let moved = Moved::new();
        let going = HashSet::from([a.pack]);
        let err = Rewriter::new(&repo, &writer, &moved, |_, _| true)
            .guard(&going)
            .rewrite(&r)
            .unwrap_err();
        assert!(matches!(err, crate::Error::Conflict(_)), "{err}");
        // Without the guard the same rewrite keeps the reference unchanged.
        let same = Rewriter::new(&repo, &writer, &moved, |_, _| true)
            .rewrite(&r)
            .unwrap();
        assert_eq!(same.tree, r);
    }

    #[test]
    fn an_erased_tenants_directory_is_left_unread_by_the_graph_the_rewriter_and_find() {
        let (_dir, repo) = scratch_repo();
        let w = BlobWriter::new(&repo, chrono::DateTime::UNIX_EPOCH);
        let b = w
            .store(None, BlobKind::Data, b"bbbb", Compress::Never)
            .unwrap();
        // acme's tree sits in a pack that does not exist: reading it fails.
        let unreadable = BlobRef {
            pack: ObjectId::hash(b"no such pack"),
            ..b.clone()
        };
        let root = Tree {
            entries: vec![
                Entry::Dir(DirEntry {
                    name: "acme".into(),
                    mode: 0o40755,
                    mtime_ns: 0,
                    tenant: Some("acme".into()),
                    tree: unreadable,
                    files_below: 0,
                    bytes_below: 0,
                }),
                file("b", &b),
            ],
        };
        let r = w
            .store(None, BlobKind::Tree, &root.to_bytes(), Compress::Try)
            .unwrap();
        w.finish().unwrap();
        let none = BTreeMap::new();
        let keep_all = |_: &FileEntry| false;
        let drops = |erased| Drops {
            expired: &keep_all,
            erased,
        };
        assert!(TreeGraph::load(&repo, &[(r.clone(), false)], &drops(&none)).is_err());
        let erased = BTreeMap::from([(
            "acme".to_string(),
            ErasedTenant {
                at: chrono::DateTime::UNIX_EPOCH,
                reason: "gone".into(),
            },
        )]);
        let graph = TreeGraph::load(&repo, &[(r.clone(), false)], &drops(&erased)).unwrap();
        assert!(graph.erased_below(0) && graph.drops_below(0));
        let out = graph.outcome(&HashSet::new());
        assert_eq!(out.rewritten, vec![true]);
        let live: HashSet<Loc> = out.live.keys().copied().collect();
        assert_eq!(live, HashSet::from([key(&b)]));

        let writer = BlobWriter::new(&repo, chrono::DateTime::UNIX_EPOCH);
        let moved = Moved::new();
        let new = Rewriter::new(&repo, &writer, &moved, |_, _| true)
            .dropping_tenants(&erased)
            .rewrite(&r)
            .unwrap();
        writer.finish().unwrap();
        assert_eq!(new.dropped, 1);
        let tree = repo.read_tree(&new.tree).unwrap();
        assert_eq!(tree.entries, vec![file("b", &b)]);

        use crate::ops::find::walk::{MatchWalker, Seen};
        let all = crate::glob::Pattern::parse("**").unwrap();
        let mut find = MatchWalker::new(&repo, all.clone());
        assert!(find.matches(&r, &mut Seen::new()).is_err());
        let mut find = MatchWalker::new(&repo, all).skipping(erased.clone());
        let found = find.matches(&r, &mut Seen::new()).unwrap();
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["b"]);
    }
}
