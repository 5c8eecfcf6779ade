//! `offsite find --history PATH`: which snapshots hold which versions of one
//! item. One row per (host, source, version), the version being the
//! content's SHA-256, with every snapshot holding it (newest first).
//!
//! Each snapshot's manifest is read (one request each, unavoidable) and then
//! only the trees on the item's path; a tree already seen at the same depth
//! is not read again (the path is fixed, so depth names the place), so a
//! directory unchanged across 400 snapshots costs one read. The memo holds
//! at most [`MEMO_MAX_TREES`] trees (one small entry each).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::repo::pack::BlobRef;
use crate::repo::Repository;
use crate::tree::{check_depth, item_components, Entry};

use super::walk::{Item, MEMO_MAX_TREES};
use super::{groups, restore_args, time_of, Scope};

/// A snapshot holding a version.
#[derive(Serialize, Debug, Clone)]
pub struct Holder {
    pub snapshot: ObjectId,
    pub time: DateTime<Utc>,
}

/// One version of the item in one (host, source) group.
#[derive(Serialize, Debug, Clone)]
pub struct Version {
    #[serde(flatten)]
    pub item: Item,
    pub mtime: DateTime<Utc>,
    pub host: String,
    pub source: String,
    /// Snapshots holding this version, newest first.
    pub snapshots: Vec<Holder>,
    /// `offsite restore` arguments for this version (add `--to DIR`).
    pub restore: Vec<String>,
}

/// What `find --history` reports.
#[derive(Serialize, Debug, Default)]
pub struct HistoryReport {
    pub path: String,
    pub versions: Vec<Version>,
    pub snapshots: usize,
    pub trees_read: u64,
    pub problems: Vec<Problem>,
}

/// The versions of the item `path` in the snapshots of `scope`.
pub fn history(repo: &Repository, scope: Scope<'_>, path: &str) -> Result<HistoryReport> {
    let components = item_components(path)?;
    let listing = repo.load_snapshots_tolerant(scope.host, scope.source)?;
    let mut report = HistoryReport {
        path: components.join("/"),
        problems: listing.problems(),
        ..HistoryReport::default()
    };
    let mut lookup = Lookup {
        repo,
        components: &components,
        memo: HashMap::new(),
        trees_read: 0,
    };
    for group in groups(listing.readable) {
        // Versions in the order first seen (newest first).
        let mut versions: Vec<Version> = Vec::new();
        let mut index: BTreeMap<ObjectId, usize> = BTreeMap::new();
        for (r, snap) in &group {
            let found = match lookup.find(&snap.tree) {
                Ok(found) => found,
                Err(e) if is_object_damage(&e) => {
                    report.problems.push(Problem::new(&r.key, &e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.snapshots += 1;
            let Some(item) = found else { continue };
            let holder = Holder {
                snapshot: r.id,
                time: snap.time,
            };
            match index.get(&item.sha256) {
                Some(&i) => versions[i].snapshots.push(holder),
                None => {
                    index.insert(item.sha256, versions.len());
                    versions.push(Version {
                        mtime: time_of(item.mtime_ns),
                        host: snap.host.clone(),
                        source: snap.source.clone(),
                        restore: restore_args(&snap.host, &snap.source, &r.id, &item.path),
                        snapshots: vec![holder],
                        item,
                    });
                }
            }
        }
        report.versions.extend(versions);
    }
    report.trees_read = lookup.trees_read;
    Ok(report)
}

/// Looks one path up below snapshot roots, remembering per (tree, depth)
/// what lies at the end of the path.
struct Lookup<'a> {
    repo: &'a Repository,
    components: &'a [String],
    memo: HashMap<(ObjectId, usize), Option<Item>>,
    trees_read: u64,
}

impl Lookup<'_> {
    fn find(&mut self, root: &BlobRef) -> Result<Option<Item>> {
        let mut chain: Vec<(ObjectId, usize)> = Vec::new();
        let mut blob = root.clone();
        let mut found = None;
        for (depth, name) in self.components.iter().enumerate() {
            if let Some(hit) = self.memo.get(&(blob.id, depth)) {
                found = hit.clone();
                break;
            }
            chain.push((blob.id, depth));
            check_depth(depth, &blob)?;
            let entry = self.repo.dir_get(&blob, name)?;
            self.trees_read += 1;
            let last = depth + 1 == self.components.len();
            match entry {
                Some(Entry::File(f)) if last => {
                    found = Some(Item::new(self.components.join("/"), &f));
                    break;
                }
                Some(Entry::Dir(d)) if !last => blob = d.tree.clone(),
                _ => break,
            }
        }
        for key in chain {
            if self.memo.len() < MEMO_MAX_TREES {
                self.memo.insert(key, found.clone());
            }
        }
        Ok(found)
    }
}
