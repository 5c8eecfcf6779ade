//! `offsite ls [SNAPSHOT] [PATH]`: one snapshot's tree, as the operator sees
//! a directory listing: type, size, mtime, mode and tenant per entry.
//!
//! The snapshot is the newest of the scope (this host by default) unless an
//! id prefix or `latest` names one. A single argument is the snapshot when it
//! is `latest` or a hex id prefix of a snapshot in scope, else the path (so
//! `ls latest PATH` lists a path that looks like an id; an id a prune rewrote
//! names its rewrite, as for `restore`). PATH narrows the
//! listing to a directory, reading only the trees on its path, or to one
//! file; `--recursive` lists everything below (an explicit-stack walk,
//! [`TreeWalk`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;
use crate::tree::{item_components, Entry, Tree, TreeWalk};

use super::{time_of, Scope};

/// What to list.
#[derive(Debug, Clone, Copy)]
pub struct LsRequest<'a> {
    pub scope: Scope<'a>,
    /// The positional arguments: `[SNAPSHOT] [PATH]`.
    pub args: (Option<&'a str>, Option<&'a str>),
    pub recursive: bool,
}

/// One entry of the listing.
#[derive(Serialize, Debug, Clone)]
pub struct LsEntry {
    /// Path relative to the snapshot's source.
    pub path: String,
    /// `file` or `dir`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Files only.
    pub size: Option<u64>,
    pub mtime: DateTime<Utc>,
    pub mode: u32,
    pub tenant: Option<String>,
    /// Files only: the content's SHA-256.
    pub sha256: Option<ObjectId>,
    pub carried: bool,
}

/// What `ls` reports.
#[derive(Serialize, Debug)]
pub struct LsReport {
    pub snapshot: ObjectId,
    pub time: DateTime<Utc>,
    pub host: String,
    pub source: String,
    /// The listed path (empty: the source's root).
    pub path: String,
    pub entries: Vec<LsEntry>,
    pub trees_read: u64,
}

/// List a snapshot's tree.
pub fn ls(repo: &Repository, request: &LsRequest<'_>) -> Result<LsReport> {
    let snaps = repo.list_snapshots(request.scope.host, request.scope.source)?;
    let (snapshot, path) = split_args(repo, &snaps, request.args)?;
    let manifest = repo.load_snapshot(snapshot)?;
    let components = match path {
        Some(p) if !p.trim_matches('/').is_empty() && p != "." => item_components(p)?,
        _ => Vec::new(),
    };
    let shown = components.join("/");
    let mut trees_read = 1;
    let mut dir = Some(manifest.tree.clone());
    let mut entries = Vec::new();
    for (i, name) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let found = match &dir {
            Some(d) => repo.dir_get(d, name)?,
            None => None,
        };
        match found {
            Some(Entry::Dir(d)) => {
                dir = Some(d.tree);
                trees_read += 1;
            }
            Some(file @ Entry::File(_)) if last => {
                entries.push(entry(&shown, &file));
                dir = None;
            }
            _ => {
                return Err(Error::NotFound {
                    what: format!("{shown:?} in snapshot {}", snapshot.id.short()),
                })
            }
        }
    }
    let prefix = if shown.is_empty() || !entries.is_empty() {
        String::new()
    } else {
        format!("{shown}/")
    };
    let tree = match &dir {
        Some(d) => repo.read_tree(d)?,
        None => Tree::default(),
    };
    let mut walk = TreeWalk::new(tree);
    let mut erased = std::collections::BTreeSet::new();
    while let Some(e) = walk.next_entry() {
        let path = format!("{prefix}{}", walk.path_of(e.name()));
        entries.push(entry(&path, &e));
        if let (Entry::Dir(d), true) = (&e, request.recursive) {
            match repo.read_tree(&d.tree) {
                Ok(below) => walk.descend(d, below)?,
                // Listed, not entered: nobody can read an erased tenant's
                // directory (said once per tenant).
                Err(e @ Error::Erased { .. }) => {
                    if let Error::Erased { tenant, .. } = &e {
                        if erased.insert(tenant.clone()) {
                            let e = crate::escape::escaped(&e.to_string());
                            tracing::warn!("{e}: its directories are not listed");
                        }
                    }
                }
                Err(e) => return Err(e),
            }
            trees_read += 1;
        }
    }
    Ok(LsReport {
        snapshot: snapshot.id,
        time: manifest.time,
        host: manifest.host,
        source: manifest.source,
        path: shown,
        entries,
        trees_read,
    })
}

fn entry(path: &str, e: &Entry) -> LsEntry {
    match e {
        Entry::File(f) => LsEntry {
            path: path.to_string(),
            kind: "file",
            size: Some(f.size),
            mtime: time_of(f.mtime_ns),
            mode: f.mode,
            tenant: f.tenant.clone(),
            sha256: Some(f.sha256),
            carried: f.carried,
        },
        Entry::Dir(d) => LsEntry {
            path: path.to_string(),
            kind: "dir",
            size: None,
            mtime: time_of(d.mtime_ns),
            mode: d.mode,
            tenant: None,
            sha256: None,
            carried: false,
        },
    }
}

/// The snapshot and the path the positional arguments name (see the module
/// docs for the one-argument rule).
fn split_args<'s, 'a>(
    repo: &Repository,
    snaps: &'s [SnapshotRef],
    args: (Option<&'a str>, Option<&'a str>),
) -> Result<(&'s SnapshotRef, Option<&'a str>)> {
    let newest = || {
        snaps.first().ok_or_else(|| Error::NotFound {
            what: "any snapshot in scope (see `offsite snapshots`)".into(),
        })
    };
    match args {
        (Some(sel), Some(path)) => Ok((select(repo, snaps, sel)?, Some(path))),
        (Some(one), None) if names_snapshot(snaps, one) => Ok((select(repo, snaps, one)?, None)),
        (one, _) => Ok((newest()?, one)),
    }
}

/// The snapshot `selector` names; an id a prune rewrote resolves to the rewrite.
fn select<'s>(
    repo: &Repository,
    snaps: &'s [SnapshotRef],
    selector: &str,
) -> Result<&'s SnapshotRef> {
    match Repository::select_snapshot(snaps, selector) {
        Err(e @ Error::NotFound { .. }) => {
            crate::ops::rewrite::find_rewrite(repo, snaps, selector)?.ok_or(e)
        }
        other => other,
    }
}

fn names_snapshot(snaps: &[SnapshotRef], arg: &str) -> bool {
    arg == "latest"
        || (arg.len() >= 4
            && arg.bytes().all(|b| b.is_ascii_hexdigit())
            && snaps.iter().any(|s| s.id.to_hex().starts_with(arg)))
}
