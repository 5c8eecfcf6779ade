//! `offsite erase`: destroying a tenant's data key, or removing items from
//! every backup.
//!
//! * **A tenant** ([`erase_tenant`]): the master key is rotated with the
//!   tenant's wrap replaced by a tombstone ([`crate::repo::rotate`]), this
//!   host's key file gets the new key, and the passphrase envelopes and old
//!   wraps are deleted. From that moment no item of the tenant can be read
//!   by anyone holding the new key or any copy of the bucket made after the
//!   old key is gone: reading one says "tenant T was erased at …: REASON"
//!   ([`crate::Error::Erased`]). The next prune rewrites every snapshot of
//!   every host without the tenant and sweeps its packs
//!   ([`crate::ops::prune_plan`], `erase`). What it cannot reach: exported
//!   key-file copies and other hosts' key files until they open the
//!   repository once, and copies restored before the erase.
//! * **Items** ([`plan_items`], [`erase_items`]): the files an `--item PATH`
//!   or `--glob PATTERN` selects are removed from every snapshot in scope
//!   (default: every host), by the rewrite prune uses for expired recordings
//!   ([`crate::ops::rewrite`]). Plan, then apply: `--dry-run` prints the
//!   [`ItemPlan`], and the real run computes the same plan under the
//!   exclusive lock and executes exactly it, stopping with
//!   [`crate::Error::Conflict`] before any manifest is replaced if a
//!   snapshot would lose other items than planned. The blobs left
//!   unreferenced go at the next prune.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::glob::Pattern;
use crate::id::ObjectId;
use crate::keyfile::KeyFile;
use crate::ops::rewrite::{replace_manifest, Leave, Moved, Rewriter};
use crate::problems::{is_object_damage, Problem};
use crate::repo::pack::BlobRef;
use crate::repo::rotate::{self, ErasedTenant};
use crate::repo::writer::BlobWriter;
use crate::repo::{Exclusive, Repository};
use crate::snapshot::SnapshotRef;
use crate::tree::{item_components, DirEntry, Entry, FileEntry, TreeWalk};

/// What `erase --tenant` did.
#[derive(Serialize, Debug)]
pub struct TenantErasure {
    pub tenant: String,
    pub erased_at: DateTime<Utc>,
    pub reason: String,
    /// False when the tenant was erased before (only leftovers were cleaned).
    pub rotated: bool,
    /// The key epoch now in force.
    pub epoch: u64,
    /// Data-key wraps carried into the new epoch (the tombstone included).
    pub wraps: usize,
    /// Passphrase envelopes deleted (they held the old master key).
    pub envelopes_deleted: usize,
    /// The key file now holding the new master key.
    pub key_file: PathBuf,
}

/// Erase `tenant` (see the module docs), under the exclusive lock; the new
/// master key goes to `key_file` before anything old is deleted.
pub fn erase_tenant(
    lock: &Exclusive<'_>,
    key_file: &Path,
    tenant: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<TenantErasure> {
    let repo = lock.repo();
    // After the commit point the new key must land here: a key file that
    // cannot be written would leave it only behind the old one's link.
    KeyFile::check_writable(key_file)?;
    let rotated = rotate::erase_tenant(lock, tenant, reason, now)?;
    if rotated.rotated {
        KeyFile {
            repository: Some(repo.config.id),
            master: rotated.master.clone(),
        }
        .store(key_file)?;
        crate::failpoint::hit("erase-after-key-file");
        repo.follow_key_rotation()?;
    }
    let envelopes_deleted = if rotated.old_keys_left {
        rotate::drop_old_keys(lock, rotated.master.epoch)?
    } else {
        0
    };
    Ok(TenantErasure {
        tenant: tenant.to_string(),
        erased_at: rotated.erased_at,
        reason: rotated.reason,
        rotated: rotated.rotated,
        epoch: rotated.master.epoch,
        wraps: rotated.wraps,
        envelopes_deleted,
        key_file: key_file.to_path_buf(),
    })
}

/// What `erase --item | --glob` selects.
#[derive(Debug, Clone)]
pub enum Selection {
    /// A file, or a directory and everything below it.
    Item(Vec<String>),
    /// Every file whose path matches.
    Glob(Pattern),
}

impl Selection {
    /// `--item PATH`, checked (a path that would leave the source is refused).
    pub fn item(path: &str) -> Result<Self> {
        Ok(Selection::Item(item_components(path)?))
    }

    /// `--glob PATTERN`, checked.
    pub fn glob(pattern: &str) -> Result<Self> {
        Ok(Selection::Glob(
            Pattern::parse(pattern).map_err(Error::Usage)?,
        ))
    }

    /// Is the file at `path` (relative to its source) selected?
    pub fn selects(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        match self {
            Selection::Item(item) => {
                parts.len() >= item.len() && parts.iter().zip(item).all(|(a, b)| a == b)
            }
            Selection::Glob(p) => p.matches(&parts),
        }
    }

    /// Could a selected file lie below the directory at `path`?
    fn may_select_below(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        match self {
            Selection::Item(item) => parts.iter().zip(item).all(|(a, b)| a == b),
            Selection::Glob(p) => p.may_match_below(&parts),
        }
    }

    /// As the operator wrote it.
    pub fn describe(&self) -> String {
        match self {
            Selection::Item(item) => item.join("/"),
            Selection::Glob(p) => p.as_str().to_string(),
        }
    }
}

/// Which snapshots an item erase looks at.
#[derive(Debug, Clone)]
pub struct ItemQuery {
    pub selection: Selection,
    /// `None`: every host.
    pub host: Option<String>,
    pub source: Option<String>,
}

/// One item the erase removes from one snapshot.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErasedItem {
    pub host: String,
    pub source: String,
    pub snapshot: ObjectId,
    pub snapshot_time: DateTime<Utc>,
    pub path: String,
    pub tenant: Option<String>,
    pub size: u64,
}

/// Everything one item erase removes: the `--dry-run` output and what the
/// real run executes.
#[derive(Serialize, Debug, Default)]
pub struct ItemPlan {
    pub selection: String,
    /// Every (snapshot, item) removed, sorted by host, source, snapshot, path.
    pub items: Vec<ErasedItem>,
    /// Snapshots that get a new manifest.
    pub snapshots: usize,
    /// Manifests and trees that cannot be read: items there are not erased.
    pub problems: Vec<Problem>,
    #[serde(skip)]
    refs: Vec<SnapshotRef>,
}

/// Directories an item erase leaves unread: where nothing can be selected,
/// and every directory of an erased tenant (its key is gone; prune drops it).
fn leave<'a>(
    selection: &'a Selection,
    erased: &'a BTreeMap<String, ErasedTenant>,
) -> impl Fn(&str, &DirEntry) -> bool + 'a {
    move |path, d| is_erased(erased, d.tenant.as_ref()) || !selection.may_select_below(path)
}

/// The plan of an item erase: every selected file of every snapshot in scope.
pub fn plan_items(repo: &Repository, query: &ItemQuery) -> Result<ItemPlan> {
    let erased = rotate::erased_tenants(repo)?;
    let leave = leave(&query.selection, &erased);
    let listing = repo.load_snapshots_tolerant(query.host.as_deref(), query.source.as_deref())?;
    let mut plan = ItemPlan {
        selection: query.selection.describe(),
        problems: listing.problems(),
        ..ItemPlan::default()
    };
    for (r, snap) in &listing.readable {
        if is_erased(&erased, snap.tree_tenant.as_ref()) {
            continue;
        }
        let found = match selected_in(repo, &snap.tree, &query.selection, &leave) {
            Ok(found) => found,
            Err(e) if is_object_damage(&e) => {
                plan.problems.push(Problem::new(&r.key, &e));
                continue;
            }
            Err(e) => return Err(e),
        };
        if found.is_empty() {
            continue;
        }
        plan.refs.push(r.clone());
        plan.items
            .extend(found.into_iter().map(|(path, tenant, size)| ErasedItem {
                host: snap.host.clone(),
                source: snap.source.clone(),
                snapshot: r.id,
                snapshot_time: r.time,
                path,
                tenant,
                size,
            }));
    }
    plan.items.sort();
    plan.refs.sort_by_key(|r| r.id);
    plan.snapshots = plan.refs.len();
    Ok(plan)
}

/// The selected files below `root`: (path, tenant, size).
fn selected_in(
    repo: &Repository,
    root: &BlobRef,
    selection: &Selection,
    leave: Leave<'_>,
) -> Result<Vec<(String, Option<String>, u64)>> {
    let mut out = Vec::new();
    for_each_file_but(repo, root, leave, &mut |path, f| {
        if selection.selects(&path) {
            out.push((path, f.tenant.clone(), f.size));
        }
    })?;
    Ok(out)
}

/// Is `tenant` one of the `erased`?
pub fn is_erased(erased: &BTreeMap<String, ErasedTenant>, tenant: Option<&String>) -> bool {
    tenant.is_some_and(|t| erased.contains_key(t))
}

/// Visit every file below the tree `root` with its path, depth first in
/// name order, except below the directories `leave` picks: those are not
/// read (an erased tenant's cannot be). Iterative and depth limited
/// ([`TreeWalk`]).
pub fn for_each_file_but(
    repo: &Repository,
    root: &BlobRef,
    leave: Leave<'_>,
    visit: &mut dyn FnMut(String, FileEntry),
) -> Result<()> {
    let mut walk = TreeWalk::new(repo.read_tree(root)?);
    while let Some(entry) = walk.next_entry() {
        match entry {
            Entry::Dir(d) => {
                if !leave(&walk.path_of(&d.name), &d) {
                    walk.descend(&d, repo.read_tree(&d.tree)?)?;
                }
            }
            Entry::File(f) => visit(walk.path_of(&f.name), f),
        }
    }
    Ok(())
}

/// What `erase --item | --glob` did (its plan, executed).
#[derive(Serialize, Debug)]
pub struct ItemErasure {
    pub dry_run: bool,
    pub reason: String,
    #[serde(flatten)]
    pub plan: ItemPlan,
    /// Bytes the items held, summed over snapshots (freed by the next prune
    /// where no other snapshot shares them).
    pub bytes: u64,
}

impl ItemErasure {
    /// The report of `plan`, executed or not.
    pub fn new(plan: ItemPlan, reason: &str, dry_run: bool) -> Self {
        ItemErasure {
            dry_run,
            reason: reason.to_string(),
            bytes: plan.items.iter().map(|i| i.size).sum(),
            plan,
        }
    }
}

/// Execute `plan` under the exclusive lock (see the module docs): new trees
/// and an index file, then each new manifest before its old one goes.
pub fn erase_items(
    lock: &Exclusive<'_>,
    query: &ItemQuery,
    plan: &ItemPlan,
    wall: DateTime<Utc>,
) -> Result<()> {
    let repo = lock.repo();
    if plan.refs.is_empty() {
        return Ok(());
    }
    let erased = rotate::erased_tenants(repo)?;
    let leave = leave(&query.selection, &erased);
    let writer = BlobWriter::new(repo, wall);
    let moved = Moved::new();
    let mut rewriter = Rewriter::new(repo, &writer, &moved, |path, _| {
        !query.selection.selects(path)
    })
    .by_path()
    .leaving(&leave);
    let mut replacements = Vec::new();
    for r in &plan.refs {
        let planned = plan.items.iter().filter(|i| i.snapshot == r.id).count() as u64;
        let snap = repo.load_snapshot(r)?;
        let new = rewriter.rewrite(&snap.tree)?;
        if new.dropped != planned {
            return Err(Error::Conflict(format!(
                "erase plan no longer holds: snapshot {} would lose {} item(s), the plan said {planned}; nothing was changed, run it again",
                r.id.short(),
                new.dropped
            )));
        }
        replacements.push((r, snap, new));
    }
    let packs = writer.finish()?;
    if !packs.is_empty() {
        repo.write_index_file(packs)?;
    }
    crate::failpoint::hit("erase-before-manifests");
    for (r, snap, new) in &replacements {
        replace_manifest(repo, r, snap, new, wall)?;
    }
    Ok(())
}
