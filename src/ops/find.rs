//! `offsite find`: which snapshots hold the items whose path matches a glob,
//! across sources and hosts, so an operator with a ticket ("we deleted the
//! 7 October call of agent Anna") finds the item and the exact `restore`
//! arguments that bring it back.
//!
//! Snapshots are grouped by (host, source) and walked newest first. Each
//! (item path, version) becomes one [`FindRow`] naming the **newest**
//! snapshot of its group that holds it; the version is the content's
//! SHA-256. Filters (`--tenant`, `--newer`, `--older`) judge the item's
//! recorded fields; `--deleted` keeps the items that an older snapshot of the
//! group holds but that are gone from the group's newest snapshot, or that
//! the newest holds only as carried forward (a voice recording gone from the
//! source is kept in voice snapshots until its copy expires, see
//! [`crate::voice`]: it was deleted all the same).
//!
//! Trees are read through [`walk::MatchWalker`]: only trees on the glob's
//! literal prefix, and each (tree, place) once per run however many
//! snapshots share it (the module has the memory bound). `--history PATH`
//! is [`history`]; `ls` is [`ls`]. A manifest or tree that cannot be read is
//! reported as a problem and its snapshot skipped: one damaged object does
//! not hide the rest.

pub mod history;
pub mod ls;
pub mod walk;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::glob::Pattern;
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::repo::{LoadedSnapshot, Repository};
use walk::{Item, MatchWalker, Seen};

/// What to look for.
#[derive(Debug, Clone)]
pub struct FindQuery {
    pub pattern: Pattern,
    pub tenant: Option<String>,
    /// Only items modified at or after this time.
    pub newer: Option<DateTime<Utc>>,
    /// Only items modified before this time.
    pub older: Option<DateTime<Utc>>,
    /// Only items gone from the newest snapshot of their group.
    pub deleted: bool,
}

/// Which snapshots to search: one host or all, one source or all.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub host: Option<&'a str>,
    pub source: Option<&'a str>,
}

/// One version of one item, with the newest snapshot holding it.
#[derive(Serialize, Debug, Clone)]
pub struct FindRow {
    #[serde(flatten)]
    pub item: Item,
    pub mtime: DateTime<Utc>,
    pub host: String,
    pub source: String,
    /// The newest snapshot of the group holding this version.
    pub snapshot: ObjectId,
    pub snapshot_time: DateTime<Utc>,
    /// Gone from the group's newest snapshot (or only carried forward there).
    pub deleted: bool,
    /// `offsite restore` arguments that bring this version back (add `--to DIR`).
    pub restore: Vec<String>,
}

/// What `find` reports.
#[derive(Serialize, Debug, Default)]
pub struct FindReport {
    pub rows: Vec<FindRow>,
    /// Snapshots whose trees were searched.
    pub snapshots: usize,
    /// Tree blobs read from the repository.
    pub trees_read: u64,
    pub problems: Vec<Problem>,
}

/// Search the snapshots in `scope` for items matching `query`.
pub fn find(repo: &Repository, scope: Scope<'_>, query: &FindQuery) -> Result<FindReport> {
    let listing = repo.load_snapshots_tolerant(scope.host, scope.source)?;
    let mut report = FindReport {
        problems: listing.problems(),
        ..FindReport::default()
    };
    let mut walker = MatchWalker::new(repo, query.pattern.clone())
        .skipping(crate::repo::rotate::erased_tenants(repo)?);
    for group in groups(listing.readable) {
        let mut rows: BTreeMap<(String, ObjectId), FindRow> = BTreeMap::new();
        let mut present: Option<HashSet<String>> = None;
        let mut seen = Seen::new();
        for (r, snap) in &group {
            let items = match walker.matches(&snap.tree, &mut seen) {
                Ok(items) => items,
                Err(e) if is_object_damage(&e) => {
                    report.problems.push(Problem::new(&r.key, &e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.snapshots += 1;
            // The newest snapshot that reads decides what is still there.
            present.get_or_insert_with(|| {
                items
                    .iter()
                    .filter(|i| !i.carried)
                    .map(|i| i.path.clone())
                    .collect()
            });
            for item in &items {
                let key = (item.path.clone(), item.sha256);
                rows.entry(key).or_insert_with(|| FindRow {
                    item: item.clone(),
                    mtime: time_of(item.mtime_ns),
                    host: snap.host.clone(),
                    source: snap.source.clone(),
                    snapshot: r.id,
                    snapshot_time: snap.time,
                    deleted: false,
                    restore: restore_args(&snap.host, &snap.source, &r.id, &item.path),
                });
            }
        }
        let present = present.unwrap_or_default();
        for mut row in rows.into_values() {
            row.deleted = !present.contains(&row.item.path);
            if query.keeps(&row) {
                report.rows.push(row);
            }
        }
    }
    report.trees_read = walker.trees_read();
    Ok(report)
}

impl FindQuery {
    /// Does `row` pass the filters (the pattern has matched already)?
    fn keeps(&self, row: &FindRow) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|t| row.item.tenant.as_ref() == Some(t))
            && self.newer.is_none_or(|t| row.mtime >= t)
            && self.older.is_none_or(|t| row.mtime < t)
            && (!self.deleted || row.deleted)
    }
}

/// Snapshots (newest first) split into their (host, source) groups, each
/// newest first, groups in (host, source) order.
pub fn groups(snapshots: Vec<LoadedSnapshot>) -> Vec<Vec<LoadedSnapshot>> {
    let mut by_group: BTreeMap<(String, String), Vec<LoadedSnapshot>> = BTreeMap::new();
    for loaded in snapshots {
        let key = (loaded.1.host.clone(), loaded.1.source.clone());
        by_group.entry(key).or_default().push(loaded);
    }
    by_group.into_values().collect()
}

/// A recorded mtime as a time (out-of-range values clamp to the epoch's
/// ends instead of failing: the tree is untrusted).
pub fn time_of(mtime_ns: i64) -> DateTime<Utc> {
    let secs = mtime_ns.div_euclid(1_000_000_000);
    let nanos = mtime_ns.rem_euclid(1_000_000_000) as u32;
    DateTime::from_timestamp(secs, nanos).unwrap_or(if secs < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The `offsite restore` arguments that restore `path` from `snapshot`.
pub fn restore_args(host: &str, source: &str, snapshot: &ObjectId, path: &str) -> Vec<String> {
    [
        "--host",
        host,
        "--source",
        source,
        "--snapshot",
        &snapshot.to_hex(),
        "--item",
        path,
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_times_convert_and_clamp() {
        assert_eq!(
            time_of(1_500_000_000),
            DateTime::from_timestamp(1, 500_000_000).unwrap()
        );
        assert_eq!(
            time_of(-1),
            DateTime::from_timestamp(-1, 999_999_999).unwrap()
        );
        assert_eq!(
            time_of(i64::MIN),
            DateTime::from_timestamp(i64::MIN.div_euclid(1_000_000_000), 145_224_192).unwrap()
        );
        assert_eq!(time_of(i64::MAX).timestamp(), i64::MAX / 1_000_000_000);
    }
}
