//! Which snapshots and which items a lost or damaged pack takes with it.
//!
//! `check` and `repair` name the packs that are missing or damaged; an
//! operator needs to know what that costs: which snapshots can no longer
//! restore which items. This walks every snapshot's trees once (a subtree
//! shared by many snapshots is walked once and its result reused) and lists,
//! per snapshot, each file with a chunk in a bad pack and each directory
//! whose listing is in one (its contents unknown, shown as `dir/`).
//! A chunk is bad when its pack is not present in the store or is named in
//! `bad.packs`, or when the chunk itself is named in `bad.blobs` (it failed
//! to read back: the rest of its pack may be fine).
//! The full list goes to `--json`; text output shows the first few per
//! snapshot ([`SHOWN_PER_SNAPSHOT`]).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::pack::BlobRef;
use crate::repo::{Repository, TreeCache};

use crate::tree::{Entry, MAX_TREE_DEPTH};

/// Items printed per damaged snapshot in text output.
pub const SHOWN_PER_SNAPSHOT: usize = 10;

/// One snapshot that references lost or damaged data.
#[derive(Serialize, Debug, Clone)]
pub struct SnapshotDamage {
    pub snapshot: ObjectId,
    pub time: DateTime<Utc>,
    pub host: String,
    pub source: String,
    /// Number of entries in `items`.
    pub items_damaged: usize,
    /// Paths relative to the source; a directory whose listing is lost ends in `/`.
    pub items: Vec<String>,
}

/// What is known to be damaged beyond the packs that are missing.
#[derive(Default, Debug)]
pub struct Bad {
    /// Whole packs (wrong size).
    pub packs: HashSet<ObjectId>,
    /// Single blobs, as (pack, blob), that failed to read back.
    pub blobs: HashSet<(ObjectId, ObjectId)>,
}

struct Finder<'a> {
    trees: TreeCache<'a>,
    present: &'a HashSet<ObjectId>,
    bad: &'a Bad,
    /// Tree id → damaged paths below it, relative to it.
    memo: HashMap<ObjectId, Rc<Vec<String>>>,
}

impl Finder<'_> {
    fn is_bad(&self, blob: &BlobRef) -> bool {
        self.bad.packs.contains(&blob.pack)
            || self.bad.blobs.contains(&(blob.pack, blob.id))
            || !self.present.contains(&blob.pack)
    }

    /// Damaged paths below the tree `blob` at `depth`; `Err` only for store
    /// failures (a transient error must not be reported as damage). A tree
    /// deeper than [`MAX_TREE_DEPTH`] counts as lost (it is corrupt), which
    /// also bounds this recursion.
    fn below(&mut self, blob: &BlobRef, depth: usize) -> Result<Rc<Vec<String>>> {
        if let Some(found) = self.memo.get(&blob.id) {
            return Ok(found.clone());
        }
        let lost = Rc::new(vec![String::new()]);
        let tree = if self.is_bad(blob) || depth > MAX_TREE_DEPTH {
            None
        } else {
            match self.trees.read_tree(blob) {
                Ok(t) => Some(t),
                Err(Error::NotFound { .. } | Error::Corrupt { .. }) => None,
                // Unreadable by design, not damaged (prune drops it).
                Err(Error::Erased { .. }) => {
                    let none = Rc::new(Vec::new());
                    self.memo.insert(blob.id, none.clone());
                    return Ok(none);
                }
                Err(e) => return Err(e),
            }
        };
        let Some(tree) = tree else {
            self.memo.insert(blob.id, lost.clone());
            return Ok(lost);
        };
        let mut out = Vec::new();
        for entry in tree.entries {
            match entry {
                Entry::File(f) => {
                    let blobs = crate::tree::read::file_blobs(&mut self.trees, &f.chunks);
                    if blobs.map_or(true, |b| b.iter().any(|c| self.is_bad(c))) {
                        out.push(f.name);
                    }
                }
                Entry::Dir(d) => {
                    for rest in self.below(&d.tree, depth + 1)?.iter() {
                        out.push(format!("{}/{rest}", d.name));
                    }
                }
            }
        }
        let out = Rc::new(out);
        self.memo.insert(blob.id, out.clone());
        Ok(out)
    }
}

/// Every snapshot with damaged items, newest first. Snapshots whose manifest
/// cannot be read are skipped (`check` reports those by themselves).
pub fn damaged_snapshots(
    repo: &Repository,
    present: &HashSet<ObjectId>,
    bad: &Bad,
) -> Result<Vec<SnapshotDamage>> {
    let mut finder = Finder {
        trees: TreeCache::new(repo),
        present,
        bad,
        memo: HashMap::new(),
    };
    let mut out = Vec::new();
    for r in repo.list_snapshots(None, None)? {
        let Ok(snap) = repo.load_snapshot(&r) else {
            continue;
        };
        let items = finder.below(&snap.tree, 0)?;
        if items.is_empty() {
            continue;
        }
        let items: Vec<String> = items
            .iter()
            .map(|p| {
                if p.is_empty() {
                    "/".to_string()
                } else {
                    p.clone()
                }
            })
            .collect();
        out.push(SnapshotDamage {
            snapshot: r.id,
            time: snap.time,
            host: snap.host,
            source: snap.source,
            items_damaged: items.len(),
            items,
        });
    }
    Ok(out)
}

/// The `blobs` that fail to read back (missing or corrupt), as (pack, blob):
/// used after a file failed to verify, to find the chunks at fault.
pub fn failing_blobs(repo: &Repository, blobs: &[BlobRef]) -> HashSet<(ObjectId, ObjectId)> {
    blobs
        .iter()
        .filter(|b| {
            matches!(
                repo.read_blob(b),
                Err(Error::NotFound { .. } | Error::Corrupt { .. })
            )
        })
        .map(|b| (b.pack, b.id))
        .collect()
}
