//! Which snapshot a restore reads: the one named by `--snapshot`, or the
//! newest one that holds what was asked for.
//!
//! Every kind of restore (one file, a directory, a glob, a tenant, a whole
//! source) asks the same question per source: walk the source's snapshots
//! newest first (or only the one `--snapshot` names) and stop at the first
//! whose tree has what the caller's probe looks for. Only manifests are
//! listed; trees are read only for the snapshots probed. Without
//! `--snapshot`, a snapshot whose manifest or a tree the probe needs cannot
//! be read is skipped and reported (an older snapshot may hold the item);
//! with it, it is an error.
//!
//! A `--snapshot` id (or prefix) that names no snapshot in any of the sources
//! searched is [`Error::NoSuchSnapshot`], saying which snapshot is the newest
//! (or that there is none): never "item not found", which would send the
//! operator looking for the wrong mistake. An id a prune rewrote still
//! resolves, to the rewrite.

use crate::error::{Error, Result};
use crate::problems::{is_object_damage, Problem};
use crate::repo::Repository;
use crate::snapshot::{Snapshot, SnapshotRef};

/// One source's answer: the snapshot that holds what was asked for and what
/// the probe found in it.
#[derive(Debug)]
pub struct Hit<T> {
    pub source: String,
    pub snapshot: SnapshotRef,
    pub found: T,
}

/// All sources' answers, and the snapshots skipped because their manifest
/// or a tree the probe needed cannot be read.
#[derive(Debug)]
pub struct Search<T> {
    pub hits: Vec<Hit<T>>,
    pub skipped: Vec<Problem>,
}

/// In each of `sources` of `host`, the newest snapshot (or the one
/// `selector` names: an id prefix or `latest`) for which `probe` finds
/// something. A source where the selected snapshot does not exist is left
/// out; when it exists in none, the error names the newest snapshot instead.
pub fn newest_holding<T>(
    repo: &Repository,
    host: &str,
    sources: &[&str],
    selector: Option<&str>,
    probe: &mut dyn FnMut(&str, &Snapshot) -> Result<Option<T>>,
) -> Result<Search<T>> {
    let mut search = Search {
        hits: Vec::new(),
        skipped: Vec::new(),
    };
    let mut selected_somewhere = false;
    let mut listed: Vec<(&str, Vec<SnapshotRef>)> = Vec::new();
    for source in sources {
        let snaps = repo.list_snapshots(Some(host), Some(source))?;
        let candidates: Vec<SnapshotRef> = match selector {
            Some(sel) => match select(repo, &snaps, sel)? {
                Some(one) => vec![one],
                None => {
                    listed.push((source, snaps));
                    continue;
                }
            },
            None => snaps,
        };
        selected_somewhere = true;
        for snap in candidates {
            let manifest = match repo.load_snapshot(&snap) {
                Ok(manifest) => manifest,
                Err(e) if selector.is_none() && is_object_damage(&e) => {
                    search.skipped.push(Problem::new(&snap.key, &e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A tree on the way that cannot be read is skipped like a
            // manifest: an older snapshot may hold the item whole.
            let found = match probe(source, &manifest) {
                Err(e) if selector.is_none() && is_object_damage(&e) => {
                    search.skipped.push(Problem::new(&snap.key, &e));
                    continue;
                }
                other => other?,
            };
            if let Some(found) = found {
                search.hits.push(Hit {
                    source: source.to_string(),
                    snapshot: snap,
                    found,
                });
                break;
            }
        }
    }
    match selector {
        Some(sel) if !selected_somewhere => Err(no_such_snapshot(host, sources, sel, &listed)),
        _ => Ok(search),
    }
}

/// The snapshot `selector` names among `snaps` (newest first), following a
/// rewrite; `None` when there is none. An ambiguous prefix is an error.
fn select(repo: &Repository, snaps: &[SnapshotRef], selector: &str) -> Result<Option<SnapshotRef>> {
    match Repository::select_snapshot(snaps, selector) {
        Ok(one) => Ok(Some(one.clone())),
        Err(Error::NotFound { .. }) => {
            Ok(crate::ops::rewrite::find_rewrite(repo, snaps, selector)?.cloned())
        }
        Err(e) => Err(e),
    }
}

/// "there are no snapshots of source S on host H".
pub fn no_snapshots(host: &str, sources: &[&str]) -> Error {
    no_such_snapshot(host, sources, "", &[])
}

/// "no snapshot X in source S on host H; the newest is …", or "there are no
/// snapshots of …" (see the module docs). `listed` holds sources with their
/// snapshots, newest first.
fn no_such_snapshot(
    host: &str,
    sources: &[&str],
    selector: &str,
    listed: &[(&str, Vec<SnapshotRef>)],
) -> Error {
    let of = match sources {
        [one] => format!("source {one} on host {host}"),
        _ => format!("sources {} on host {host}", sources.join(", ")),
    };
    let newest = listed
        .iter()
        .filter_map(|(source, snaps)| snaps.first().map(|s| (source, s)))
        .max_by_key(|(_, s)| s.time);
    Error::NoSuchSnapshot(match newest {
        None => format!("there are no snapshots of {of}"),
        Some((source, s)) => format!(
            "no snapshot {} in {of}; the newest is {} ({}{})",
            selector.escape_debug(),
            s.id.short(),
            s.time.format("%Y-%m-%d %H:%M:%S UTC"),
            if sources.len() > 1 {
                format!(", source {source}")
            } else {
                String::new()
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ObjectId;
    use chrono::TimeZone;

    fn snap(source: &str, day: u32, byte: u8) -> (&str, Vec<SnapshotRef>) {
        let one = SnapshotRef {
            key: String::new(),
            id: ObjectId([byte; 32]),
            host_tag: String::new(),
            source_tag: String::new(),
            time: chrono::Utc
                .with_ymd_and_hms(2026, 11, day, 2, 0, 0)
                .unwrap(),
        };
        (source, vec![one])
    }

    #[test]
    fn a_missing_snapshot_names_the_newest_one() {
        let one = no_such_snapshot("h", &["data"], "beef", &[snap("data", 3, 0xab)]);
        assert_eq!(
            one.to_string(),
            "no snapshot beef in source data on host h; the newest is abababab (2026-11-03 02:00:00 UTC)"
        );
        let listed = [snap("data", 3, 0xab), snap("voice", 5, 0xcd)];
        let two = no_such_snapshot("h", &["data", "voice"], "beef", &listed);
        assert_eq!(
            two.to_string(),
            "no snapshot beef in sources data, voice on host h; the newest is cdcdcdcd (2026-11-05 02:00:00 UTC, source voice)"
        );
        let none = no_such_snapshot("h", &["data"], "latest", &[("data", vec![])]);
        assert_eq!(
            none.to_string(),
            "there are no snapshots of source data on host h"
        );
        assert_eq!(none.exit_code(), 1);
    }
}
