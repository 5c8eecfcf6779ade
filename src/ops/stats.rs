//! `offsite stats`: what the bucket holds, per source and per tenant, for
//! billing and for "how much of the bucket is acme's".
//!
//! # What is counted
//!
//! Every snapshot the repository keeps, of every host: billing wants what the
//! bucket holds, and every kept snapshot holds data.
//!
//! * **items** and **logical bytes**: summed over the snapshots, a file
//!   counting once in each snapshot that holds it, so a source's figures are
//!   the sum of its snapshots' summaries (`items`, `bytes`).
//! * **stored bytes**: the bytes the blobs take in packs (after dedup and
//!   compression), each blob counted **once**, for the first (source, tenant)
//!   that references it in this order: groups by (host, source) name,
//!   within a group oldest snapshot first, within a snapshot files in path
//!   order. Blobs are deduplicated within a tenant only (each tenant's are
//!   sealed and named under its own key), so data shared by two sources of
//!   one tenant is billed to the one that brought it first, and the figures
//!   never add up to more than the packs hold.
//!   Tree blobs (directory metadata) count for their source with no tenant.
//! * **share**: stored bytes over the repository's pack bytes. What no kept
//!   snapshot references (pack headers, data a prune has yet to collect) is
//!   reported as `unattributed_bytes`.
//!
//! # Cost and memory
//!
//! Each distinct tree is read once: the per-tenant totals below a tree are
//! remembered by tree id (a few numbers per tenant below it), and a
//! directory unchanged across snapshots is added from memory. Past
//! [`MEMO_MAX_TREES`] remembered trees the memo starts over (figures stay
//! right, trees are read again). The set of blobs already counted takes 32
//! bytes per distinct blob, as the index does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::repo::pack::BlobRef;
use crate::repo::Repository;
use crate::tree::{check_depth, Entry};

/// Trees whose totals are remembered at most before the memo starts over.
pub const MEMO_MAX_TREES: usize = 500_000;

/// Items, logical bytes and stored bytes of one part of the repository.
#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    pub items: u64,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    /// Of the repository's pack bytes.
    pub share: f64,
}

impl Usage {
    fn add(&mut self, other: &Usage) {
        self.items = self.items.saturating_add(other.items);
        self.logical_bytes = self.logical_bytes.saturating_add(other.logical_bytes);
        self.stored_bytes = self.stored_bytes.saturating_add(other.stored_bytes);
    }
}

/// One row: a source (with `tenant` empty), a tenant (with `source`
/// empty), or a (source, tenant) pair.
#[derive(Serialize, Debug, Clone)]
pub struct StatsRow {
    pub host: Option<String>,
    pub source: Option<String>,
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub usage: Usage,
}

/// What `stats` reports.
#[derive(Serialize, Debug, Default)]
pub struct StatsReport {
    /// Per (host, source).
    pub sources: Vec<StatsRow>,
    /// Per tenant, over every source (no tenant: files outside any tenant, and trees).
    pub tenants: Vec<StatsRow>,
    /// Per (host, source, tenant).
    pub detail: Vec<StatsRow>,
    pub snapshots: usize,
    /// Bytes of all packs.
    pub repository_bytes: u64,
    /// Pack bytes no kept snapshot references.
    pub unattributed_bytes: u64,
    pub trees_read: u64,
    pub problems: Vec<Problem>,
}

type Key = (String, String, Option<String>);
/// Per tenant below a tree: (items, logical bytes).
type Totals = BTreeMap<Option<String>, (u64, u64)>;

/// Count what the repository holds (see the module docs).
pub fn stats(repo: &Repository) -> Result<StatsReport> {
    let listing = repo.load_snapshots_tolerant(None, None)?;
    let mut report = StatsReport {
        problems: listing.problems(),
        ..StatsReport::default()
    };
    let mut counter = Counter {
        repo,
        seen: HashSet::new(),
        memo: HashMap::new(),
        usage: BTreeMap::new(),
        trees_read: 0,
    };
    for group in super::find::groups(listing.readable) {
        for (r, snap) in group.iter().rev() {
            let owner = (snap.host.clone(), snap.source.clone());
            match counter.walk(&owner, &snap.tree) {
                Ok(totals) => {
                    report.snapshots += 1;
                    for (tenant, (items, bytes)) in totals.iter() {
                        let u = counter.at(&owner, tenant);
                        u.items = u.items.saturating_add(*items);
                        u.logical_bytes = u.logical_bytes.saturating_add(*bytes);
                    }
                }
                Err(e) if is_object_damage(&e) => report.problems.push(Problem::new(&r.key, &e)),
                Err(Error::Erased { .. }) => {} // wholly an erased tenant's
                Err(e) => return Err(e),
            }
        }
    }
    report.trees_read = counter.trees_read;
    report.repository_bytes = repo
        .list_packs()?
        .iter()
        .fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
    fill(&mut report, counter.usage);
    Ok(report)
}

/// The rows, totals and shares from the per-(host, source, tenant) usage.
fn fill(report: &mut StatsReport, usage: BTreeMap<Key, Usage>) {
    let mut sources: BTreeMap<(String, String), Usage> = BTreeMap::new();
    let mut tenants: BTreeMap<Option<String>, Usage> = BTreeMap::new();
    let mut attributed = 0u64;
    for ((host, source, tenant), u) in &usage {
        sources
            .entry((host.clone(), source.clone()))
            .or_default()
            .add(u);
        tenants.entry(tenant.clone()).or_default().add(u);
        attributed = attributed.saturating_add(u.stored_bytes);
    }
    let total = report.repository_bytes;
    report.unattributed_bytes = total.saturating_sub(attributed);
    let row =
        |host: Option<&String>, source: Option<&String>, tenant: Option<&String>, u: &Usage| {
            let mut usage = *u;
            usage.share = if total == 0 {
                0.0
            } else {
                u.stored_bytes as f64 / total as f64
            };
            StatsRow {
                host: host.cloned(),
                source: source.cloned(),
                tenant: tenant.cloned(),
                usage,
            }
        };
    report.sources = sources
        .iter()
        .map(|((h, s), u)| row(Some(h), Some(s), None, u))
        .collect();
    report.tenants = tenants
        .iter()
        .map(|(t, u)| row(None, None, t.as_ref(), u))
        .collect();
    report.detail = usage
        .iter()
        .map(|((h, s, t), u)| row(Some(h), Some(s), t.as_ref(), u))
        .collect();
}

/// A tree being counted: its entries still to visit and its totals so far.
struct Frame {
    id: ObjectId,
    entries: std::vec::IntoIter<Entry>,
    totals: Totals,
}

struct Counter<'r> {
    repo: &'r Repository,
    /// Blobs already attributed.
    seen: HashSet<ObjectId>,
    memo: HashMap<ObjectId, Rc<Totals>>,
    usage: BTreeMap<Key, Usage>,
    trees_read: u64,
}

impl Counter<'_> {
    fn at(&mut self, owner: &(String, String), tenant: &Option<String>) -> &mut Usage {
        self.usage
            .entry((owner.0.clone(), owner.1.clone(), tenant.clone()))
            .or_default()
    }

    /// Attribute `blob` to `owner`/`tenant` unless some part had it first.
    fn attribute(&mut self, owner: &(String, String), tenant: &Option<String>, blob: &BlobRef) {
        if self.seen.insert(blob.id) {
            let u = self.at(owner, tenant);
            u.stored_bytes = u.stored_bytes.saturating_add(u64::from(blob.length));
        }
    }

    /// The per-tenant totals below the root tree `root`, attributing the
    /// blobs not seen before to `owner` on the way.
    fn walk(&mut self, owner: &(String, String), root: &BlobRef) -> Result<Rc<Totals>> {
        if let Some(hit) = self.memo.get(&root.id) {
            return Ok(hit.clone());
        }
        let mut stack = vec![self.open(owner, root)?];
        while let Some(top) = stack.last_mut() {
            match top.entries.next() {
                Some(Entry::File(f)) => {
                    let t = top.totals.entry(f.tenant.clone()).or_default();
                    t.0 = t.0.saturating_add(1);
                    t.1 = t.1.saturating_add(f.size);
                    for chunk in &crate::tree::read::file_blobs(self.repo, &f.chunks)? {
                        self.attribute(owner, &f.tenant, chunk);
                    }
                }
                Some(Entry::Dir(d)) => {
                    if let Some(hit) = self.memo.get(&d.tree.id) {
                        merge(&mut top.totals, hit);
                        continue;
                    }
                    check_depth(stack.len(), &d.tree)?;
                    let frame = match self.open(owner, &d.tree) {
                        Ok(frame) => frame,
                        // Nobody can read an erased tenant's directory (the
                        // next prune drops it): not counted, not damage.
                        Err(Error::Erased { .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    stack.push(frame);
                }
                None => {
                    let done = stack.pop().expect("the loop holds a frame");
                    let totals = Rc::new(done.totals);
                    if self.memo.len() >= MEMO_MAX_TREES {
                        self.memo.clear();
                    }
                    self.memo.insert(done.id, totals.clone());
                    match stack.last_mut() {
                        Some(parent) => merge(&mut parent.totals, &totals),
                        None => return Ok(totals),
                    }
                }
            }
        }
        unreachable!("the root frame returns when it is done")
    }

    fn open(&mut self, owner: &(String, String), blob: &BlobRef) -> Result<Frame> {
        let (tree, pages) = crate::tree::read::read_dir(self.repo, blob)?;
        self.trees_read += 1;
        for page in &pages {
            self.attribute(owner, &None, page);
        }
        Ok(Frame {
            id: blob.id,
            entries: tree.entries.into_iter(),
            totals: Totals::new(),
        })
    }
}

fn merge(into: &mut Totals, from: &Totals) {
    for (tenant, (items, bytes)) in from {
        let t = into.entry(tenant.clone()).or_default();
        t.0 = t.0.saturating_add(*items);
        t.1 = t.1.saturating_add(*bytes);
    }
}
