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
//!   [`crate::ops::rewrite::Rewriter`]: a tree changes when it drops a file,
//!   when one of its kept chunks or subtrees moves, or when a subtree
//!   changes; a directory emptied by dropped files is dropped);
//! * the blobs referenced afterwards: every chunk of every kept file, and
//!   every tree that does not change (a changed tree is replaced by a new
//!   blob, so its old blob drops out);
//! * which snapshots get a new manifest.
//!
//! Trees are keyed by location (pack, blob), as the rewriter memoizes them.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::pack::BlobRef;
use crate::repo::{Repository, TreeCache};
use crate::tree::{check_depth, Entry, FileEntry, Tree};

/// A blob's location: (pack, blob id).
pub type Loc = (ObjectId, ObjectId);

/// Every distinct tree reachable from the kept snapshots, children before
/// their parents.
pub struct TreeGraph {
    nodes: Vec<Node>,
    roots: Vec<Root>,
    /// Per node: the voice filter drops something below it.
    voice_changed: Vec<bool>,
    /// Per node: the voice filter empties it (it drops files and keeps
    /// nothing), so its parent leaves it out.
    voice_omitted: Vec<bool>,
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
    dirs: Vec<usize>,
    files: Vec<FileRefs>,
}

struct FileRefs {
    chunks: Vec<(Loc, u32)>,
    /// Dropped from voice snapshots: its backup copy expired.
    expired: bool,
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
    next: usize,
    dirs: Vec<usize>,
}

impl TreeGraph {
    /// Load the trees below `roots` (each with whether the voice filter
    /// applies to it); `expired` says which files the voice filter drops.
    pub fn load(
        repo: &Repository,
        roots: &[(BlobRef, bool)],
        expired: &dyn Fn(&FileEntry) -> bool,
    ) -> Result<Self> {
        let mut cache = TreeCache::new(repo);
        let mut known: HashMap<Loc, usize> = HashMap::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut out = Vec::new();
        for (root, voice) in roots {
            let node = match known.get(&(root.pack, root.id)) {
                Some(&i) => i,
                None => add(&mut cache, root, &mut known, &mut nodes, expired)?,
            };
            out.push(Root {
                node,
                voice: *voice,
            });
        }
        let mut voice_changed = vec![false; nodes.len()];
        let mut voice_omitted = vec![false; nodes.len()];
        // Children come first, so one pass in order sees them decided.
        for (i, n) in nodes.iter().enumerate() {
            let kept_dirs = n.dirs.iter().filter(|&&c| !voice_omitted[c]).count();
            let kept_files = n.files.iter().filter(|f| !f.expired).count();
            voice_changed[i] =
                kept_files < n.files.len() || n.dirs.iter().any(|&c| voice_changed[c]);
            voice_omitted[i] = voice_changed[i] && kept_dirs == 0 && kept_files == 0;
        }
        Ok(TreeGraph {
            nodes,
            roots: out,
            voice_changed,
            voice_omitted,
        })
    }

    /// Packs holding a blob that a kept snapshot references now.
    pub fn packs_referenced_now(&self) -> HashSet<ObjectId> {
        let mut packs = HashSet::new();
        for n in &self.nodes {
            packs.insert(n.blob.0 .0);
            for f in &n.files {
                packs.extend(f.chunks.iter().map(|c| c.0 .0));
            }
        }
        packs
    }

    /// Does the voice filter drop anything from the snapshot of root `i`?
    pub fn drops_below(&self, i: usize) -> bool {
        let r = self.roots[i];
        r.voice && self.voice_changed[r.node]
    }

    /// What the rewrite pass does when the packs in `going` go away.
    pub fn outcome(&self, going: &HashSet<ObjectId>) -> Outcome {
        let moves = |l: &(Loc, u32)| going.contains(&l.0 .0);
        // changed[ctx][node], ctx 0 without and 1 with the voice filter.
        let mut changed = [vec![false; self.nodes.len()], vec![false; self.nodes.len()]];
        for (i, n) in self.nodes.iter().enumerate() {
            for (ctx, voice) in [(0, false), (1, true)] {
                let kept_file = |f: &&FileRefs| !(voice && f.expired);
                let kept_dir = |c: &&usize| !(voice && self.voice_omitted[**c]);
                changed[ctx][i] = (voice && self.voice_changed[i])
                    || n.files
                        .iter()
                        .filter(kept_file)
                        .any(|f| f.chunks.iter().any(moves))
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
                }
                for f in n.files.iter().filter(|f| !(root.voice && f.expired)) {
                    live.extend(f.chunks.iter().copied());
                }
                stack.extend(
                    n.dirs
                        .iter()
                        .filter(|&&c| !(root.voice && self.voice_omitted[c])),
                );
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
    expired: &dyn Fn(&FileEntry) -> bool,
) -> Result<usize> {
    let mut stack = vec![Frame {
        blob: root.clone(),
        tree: cache.read_tree(root)?,
        next: 0,
        dirs: Vec::new(),
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
                if let Some(&i) = known.get(&(d.tree.pack, d.tree.id)) {
                    top.dirs.push(i);
                    continue;
                }
                let blob = d.tree.clone();
                check_depth(stack.len(), &blob)?;
                let tree = cache.read_tree(&blob)?;
                stack.push(Frame {
                    blob,
                    tree,
                    next: 0,
                    dirs: Vec::new(),
                });
            }
            None => {
                let Some(frame) = stack.pop() else { break };
                let files = frame
                    .tree
                    .entries
                    .iter()
                    .filter_map(|e| match e {
                        Entry::File(f) => Some(FileRefs {
                            chunks: f.chunks.iter().map(loc).collect(),
                            expired: expired(f),
                        }),
                        Entry::Dir(_) => None,
                    })
                    .collect();
                let i = nodes.len();
                nodes.push(Node {
                    blob: loc(&frame.blob),
                    dirs: frame.dirs,
                    files,
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
    use crate::repo::index::Index;
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
            chunks: vec![chunk.clone()],
            carried: false,
        })
    }

    /// root/{b (expires), s/a}: returns (root, s, a's chunk, b's chunk).
    fn small_repo(repo: &Repository) -> (BlobRef, BlobRef, BlobRef, BlobRef) {
        let w = BlobWriter::new(repo, Index::default(), chrono::DateTime::UNIX_EPOCH);
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
                }),
            ],
        };
        let r = w
            .store(None, BlobKind::Tree, &root.to_bytes(), Compress::Try)
            .unwrap();
        w.finish().unwrap();
        (r, s, a, b)
    }

    fn key(b: &BlobRef) -> Loc {
        (b.pack, b.id)
    }

    #[test]
    fn live_set_follows_the_rewrites_the_prune_will_commit() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(
            &crate::repo::Location::Local(dir.path().join("r")),
            chrono::DateTime::UNIX_EPOCH,
            &crate::repo::MasterKey::generate(),
        )
        .unwrap();
        let (r, s, a, b) = small_repo(&repo);
        let expired = |f: &FileEntry| f.name == "b";
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
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(
            &crate::repo::Location::Local(dir.path().join("r")),
            chrono::DateTime::UNIX_EPOCH,
            &crate::repo::MasterKey::generate(),
        )
        .unwrap();
        let (r, _, a, _) = small_repo(&repo);
        let writer = BlobWriter::new(&repo, Index::default(), chrono::DateTime::UNIX_EPOCH);
        let moved = Moved::new();
        let going = HashSet::from([a.pack]);
        let err = Rewriter::new(&repo, &writer, &moved, |_| true)
            .guard(&going)
            .rewrite(&r)
            .unwrap_err();
        assert!(matches!(err, crate::Error::Conflict(_)), "{err}");
        // Without the guard the same rewrite keeps the reference unchanged.
        let same = Rewriter::new(&repo, &writer, &moved, |_| true)
            .rewrite(&r)
            .unwrap();
        assert_eq!(same.tree, r);
    }
}
