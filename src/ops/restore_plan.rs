//! What a restore of many files writes: the plan, built from one snapshot's
//! trees before anything is written.
//!
//! A [`Selection`] says what the operator asked for: a path (`--item`, a
//! file or a directory), a glob (`--glob`, matched like include patterns,
//! [`crate::glob`]) or a whole source; `--tenant` narrows any of them to the
//! files whose recorded tenant it is. [`plan`] asks [`restore_find`] for
//! the newest snapshot of each source where the selection matches something
//! (a whole source without `--tenant` always takes the newest snapshot, even
//! an empty one: that is what the source was) and lists, from its trees:
//!
//! * the files to write, each with its path from the source's root;
//! * the directories to create, each with its recorded mode and mtime: every
//!   directory the selection covers (so empty directories come back), and
//!   every directory above a selected file or directory. With `--tenant`,
//!   only directories that lead to the tenant's files: a directory has no
//!   tenant of its own.
//!
//! The walk reads trees only where the selection may match (a glob prunes
//! directories that cannot hold a match; a path reads only the trees on its
//! way and below it), with an explicit stack and the same depth limit as
//! every other walk ([`crate::tree`]). Names come from checked trees: each is
//! one safe path component, so no plan can point outside the target. The
//! plan holds metadata only (paths, sizes, chunk locations), never content.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::glob::Pattern;
use crate::ops::restore_find::{self, Search};
use crate::repo::{Repository, TreeCache};
use crate::snapshot::SnapshotRef;
use crate::tree::{check_depth, DirEntry, Entry, FileEntry, Tree};

/// What the operator asked to restore.
#[derive(Debug, Clone)]
pub enum Selection {
    /// `--item PATH`: a file, or everything below a directory. `dir_only`
    /// when the path was written with a trailing `/`.
    Path {
        components: Vec<String>,
        dir_only: bool,
    },
    /// `--glob PATTERN`: every file (and directory) whose path matches.
    Glob(Pattern),
    /// Neither: the whole source.
    Whole,
}

/// A selection, optionally narrowed to one tenant's files.
#[derive(Debug, Clone)]
pub struct Filter {
    pub selection: Selection,
    pub tenant: Option<String>,
}

/// A directory to create, with what the snapshot recorded for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedDir {
    pub mode: u32,
    pub mtime_ns: i64,
}

impl From<&DirEntry> for PlannedDir {
    fn from(d: &DirEntry) -> Self {
        PlannedDir {
            mode: d.mode,
            mtime_ns: d.mtime_ns,
        }
    }
}

/// A file to write: its path components below the source's root.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub path: Vec<String>,
    pub entry: FileEntry,
}

/// What one snapshot contributes.
#[derive(Debug, Clone, Default)]
pub struct TreePlan {
    /// Parents before children (component order).
    pub dirs: BTreeMap<Vec<String>, PlannedDir>,
    pub files: Vec<PlannedFile>,
}

impl TreePlan {
    /// The bytes the files claim (sizes from the tree, untrusted: saturating).
    pub fn bytes(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.entry.size))
    }
}

/// What a path selection found in a snapshot.
#[derive(Debug)]
pub enum Found {
    /// `--item` named a file: restored the single-item way.
    File(FileEntry),
    /// A directory, a glob, a tenant or a whole source.
    Tree(TreePlan),
}

/// A source's plan with the snapshot it reads.
#[derive(Debug)]
pub struct SourcePlan {
    pub source: String,
    pub snapshot: SnapshotRef,
    pub plan: TreePlan,
}

/// For each of `sources`, the newest snapshot (or the one `selector` names)
/// where `filter` matches, and what it matches (see the module docs).
pub fn plan(
    repo: &Repository,
    host: &str,
    sources: &[&str],
    filter: &Filter,
    selector: Option<&str>,
) -> Result<Search<Found>> {
    restore_find::newest_holding(repo, host, sources, selector, &mut |_, manifest| {
        plan_snapshot(repo, &manifest.tree, filter)
    })
}

/// What `filter` selects in the snapshot whose root tree is `root`; `None`
/// when nothing (see the module docs for a whole source).
fn plan_snapshot(
    repo: &Repository,
    root: &crate::repo::pack::BlobRef,
    filter: &Filter,
) -> Result<Option<Found>> {
    let mut cache = TreeCache::new(repo);
    let mut walk = Walk {
        filter,
        known: HashMap::new(),
        plan: TreePlan::default(),
        erased: Default::default(),
    };
    let start = match &filter.selection {
        Selection::Path {
            components,
            dir_only,
        } => match lookup(repo, root, components)? {
            None => return Ok(None),
            Some((_, Entry::File(_))) if *dir_only => return Ok(None),
            Some((_, Entry::File(f))) if filter.tenant.is_some() && f.tenant != filter.tenant => {
                return Ok(None)
            }
            Some((_, Entry::File(f))) => return Ok(Some(Found::File(f))),
            Some((chain, Entry::Dir(d))) => {
                check_depth(components.len(), &d.tree)?;
                let tree = cache.read_tree(&d.tree)?;
                for (depth, dir) in chain.iter().chain([&d]).enumerate() {
                    walk.known
                        .insert(components[..=depth].to_vec(), PlannedDir::from(dir));
                }
                if filter.tenant.is_none() {
                    walk.need(components);
                }
                (components.clone(), tree)
            }
        },
        Selection::Glob(_) | Selection::Whole => (Vec::new(), cache.read_tree(root)?),
    };
    walk.run(&mut cache, start)?;
    let whole = matches!(filter.selection, Selection::Whole) && filter.tenant.is_none();
    let plan = walk.plan;
    if plan.files.is_empty() && plan.dirs.is_empty() && !whole {
        return Ok(None);
    }
    Ok(Some(Found::Tree(plan)))
}

/// The entry at `components` below `root`, with the directories on the way.
/// Each page is a ranged read of its own (a single file costs only the pages
/// on its path: one per level of each directory); walks below use the cache.
fn lookup(
    repo: &Repository,
    root: &crate::repo::pack::BlobRef,
    components: &[String],
) -> Result<Option<(Vec<DirEntry>, Entry)>> {
    let mut dir = root.clone();
    let mut chain = Vec::new();
    for (i, name) in components.iter().enumerate() {
        let Some(entry) = repo.dir_get(&dir, name)? else {
            return Ok(None);
        };
        if i + 1 == components.len() {
            return Ok(Some((chain, entry)));
        }
        let Entry::Dir(d) = entry else {
            return Ok(None);
        };
        check_depth(i + 1, &d.tree)?;
        dir = d.tree.clone();
        chain.push(d);
    }
    Err(Error::Usage("an empty item path names nothing".into()))
}

/// The walk below the selection's start, filling a plan.
struct Walk<'f> {
    filter: &'f Filter,
    /// Every directory seen, so a selected file's parents can be planned.
    known: HashMap<Vec<String>, PlannedDir>,
    plan: TreePlan,
    /// Erased tenants whose directories were left out.
    erased: std::collections::BTreeSet<String>,
}

impl Walk<'_> {
    /// A directory below the start that cannot be read because its tenant
    /// was erased is left out (said once per tenant), so a whole source or
    /// a glob still restores every other tenant's files; asked for by
    /// `--tenant`, or any other error, it stops the restore.
    fn erased_dir(&mut self, path: &[String], e: Error) -> Result<()> {
        match &e {
            Error::Erased { tenant, .. } if self.filter.tenant.as_ref() != Some(tenant) => {
                self.plan.dirs.remove(path);
                if self.filter.tenant.is_none() && self.erased.insert(tenant.clone()) {
                    let e = crate::escape::escaped(&e.to_string());
                    tracing::warn!("{e}: its files are not restored");
                }
                Ok(())
            }
            _ => Err(e),
        }
    }

    /// Plan the directory `path` and every directory above it (each known).
    fn need(&mut self, path: &[String]) {
        let mut path = path.to_vec();
        while !path.is_empty() && !self.plan.dirs.contains_key(&path) {
            if let Some(dir) = self.known.get(&path) {
                self.plan.dirs.insert(path.clone(), *dir);
            }
            path.pop();
        }
    }

    fn selects_file(&self, path: &[&str], entry: &FileEntry) -> bool {
        let tenant_ok = self
            .filter
            .tenant
            .as_deref()
            .is_none_or(|t| entry.tenant.as_deref() == Some(t));
        tenant_ok
            && match &self.filter.selection {
                Selection::Glob(p) => p.matches(path),
                Selection::Path { .. } | Selection::Whole => true,
            }
    }

    /// Is the directory itself selected (restored even when empty)?
    fn selects_dir(&self, path: &[&str]) -> bool {
        self.filter.tenant.is_none()
            && match &self.filter.selection {
                Selection::Glob(p) => p.matches(path),
                Selection::Path { .. } | Selection::Whole => true,
            }
    }

    fn enters(&self, path: &[&str]) -> bool {
        match &self.filter.selection {
            Selection::Glob(p) => p.may_match_below(path),
            Selection::Path { .. } | Selection::Whole => true,
        }
    }

    /// Depth first from `start` (a directory's path and tree), explicit stack.
    fn run(&mut self, cache: &mut TreeCache<'_>, start: (Vec<String>, Tree)) -> Result<()> {
        let mut stack = vec![start];
        while let Some((dir, tree)) = stack.pop() {
            for entry in tree.entries {
                let mut path = dir.clone();
                path.push(entry.name().to_string());
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                match entry {
                    Entry::File(f) => {
                        if self.selects_file(&refs, &f) {
                            self.need(&dir);
                            self.plan.files.push(PlannedFile { path, entry: f });
                        }
                    }
                    Entry::Dir(d) => {
                        check_depth(path.len(), &d.tree)?;
                        let (selected, enter) = (self.selects_dir(&refs), self.enters(&refs));
                        self.known.insert(path.clone(), PlannedDir::from(&d));
                        if selected {
                            self.need(&path);
                        }
                        if enter {
                            match cache.read_tree(&d.tree) {
                                Ok(tree) => stack.push((path, tree)),
                                Err(e) => self.erased_dir(&path, e)?,
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
