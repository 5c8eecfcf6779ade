//! `offsite restore-test`: prove the backups read back, one random item at a time.
//!
//! A restore test restores one item chosen at random through the same code as
//! `restore --item` ([`restore_item`]: every chunk and the whole-content
//! SHA-256 verified, the path built from checked names through real
//! directories, no setuid/setgid/sticky bits) below a private temporary
//! directory, then removes the copy. Choices spread over what the
//! repository holds: a source, then one of its snapshots (daily, weekly,
//! monthly ones alike), then a tenant in it, then an item of that tenant
//! (carried-forward voice recordings included), each uniformly, so over many
//! runs every source, tenant and snapshot age is exercised rather than only the
//! biggest tenant or the newest snapshot. The random source is seeded on
//! request, so a run can be repeated exactly. Erased tenants
//! ([`crate::ops::erase`]) are never chosen: their items cannot be read, by
//! design, until the next prune removes them.
//!
//! A failure is a result, not an error: the report says `failed`, names the
//! object that failed, and is logged; nothing is ever deleted because of it.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Source};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::operation::Outcome;
use crate::ops::erase::{for_each_file_but, is_erased};
use crate::ops::restore::{restore_item, FoundItem, RestoreOptions};
use crate::ops::restore_run::NoProgress;
use crate::repo::pack::BlobRef;
use crate::repo::rotate::{erased_tenants, ErasedTenant};
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;
use crate::tree::{DirEntry, FileEntry};

/// The outcome of one restore test.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RestoreTestReport {
    pub result: Outcome,
    /// When the test started, by the caller's clock.
    pub time: DateTime<Utc>,
    pub host: String,
    pub snapshot: Option<ObjectId>,
    pub snapshot_time: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub item: Option<String>,
    pub tenant: Option<String>,
    pub carried: bool,
    pub bytes: u64,
    pub sha256: Option<ObjectId>,
    pub duration_seconds: f64,
    pub error: Option<String>,
}

impl RestoreTestReport {
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The failure as an error (`check failed`), for an exit code or a job
    /// outcome; `None` when the test passed.
    pub fn failure(&self) -> Option<Error> {
        let e = self.error.as_ref()?;
        Some(Error::CheckFailed(format!("restore test failed: {e}")))
    }
}

/// A small seeded generator (SplitMix64): choices must be repeatable.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Rng(seed)
    }

    /// Seeded from the system's random source (a random id, which falls
    /// back to hashing the time and process when `/dev/urandom` cannot be read).
    pub fn from_entropy() -> Self {
        let id = ObjectId::random();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&id.0[..8]);
        Rng(u64::from_le_bytes(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is below 2^-40 for any n
    /// a snapshot can hold).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One item of each tenant of a snapshot (up to `max_bytes`), each chosen
/// uniformly among that tenant's items, with how many it had; the erased
/// tenants' left out (their directories unread).
///
/// One pass, reservoir sampling: the `n`-th item of a tenant replaces its
/// pick with probability 1/`n`. Memory is one item per tenant (plus the
/// walk's path), not one per file: a source of 20 million files is tested
/// in the memory budget.
fn pick_per_tenant(
    repo: &Repository,
    tree: &BlobRef,
    max_bytes: Option<u64>,
    erased: &BTreeMap<String, ErasedTenant>,
    rng: &mut Rng,
) -> Result<BTreeMap<String, (u64, String, FileEntry)>> {
    let mut out: BTreeMap<String, (u64, String, FileEntry)> = BTreeMap::new();
    let leave = |_: &str, d: &DirEntry| is_erased(erased, d.tenant.as_ref());
    for_each_file_but(repo, tree, &leave, &mut |path, f| {
        if max_bytes.is_some_and(|m| f.size > m) || is_erased(erased, f.tenant.as_ref()) {
            return;
        }
        let tenant = f.tenant.clone().unwrap_or_default();
        match out.get_mut(&tenant) {
            None => {
                out.insert(tenant, (1, path, f));
            }
            Some(pick) => {
                pick.0 = pick.0.saturating_add(1);
                if rng.below_u64(pick.0) == 0 {
                    (pick.1, pick.2) = (path, f);
                }
            }
        }
    })?;
    Ok(out)
}

/// Run one restore test over `sources` with `rng`, started at `time`.
pub fn restore_test(
    repo: &Repository,
    config: &Config,
    sources: &[&Source],
    rng: &mut Rng,
    time: DateTime<Utc>,
) -> RestoreTestReport {
    let started = Instant::now();
    let mut report = RestoreTestReport {
        result: Outcome::Failed,
        time,
        host: config.host.clone(),
        snapshot: None,
        snapshot_time: None,
        source: None,
        item: None,
        tenant: None,
        carried: false,
        bytes: 0,
        sha256: None,
        duration_seconds: 0.0,
        error: None,
    };
    if let Err(e) = attempt(repo, config, sources, rng, &mut report) {
        report.error = Some(e.to_string());
    } else {
        report.result = Outcome::Ok;
    }
    report.duration_seconds = started.elapsed().as_secs_f64();
    report
}

fn attempt(
    repo: &Repository,
    config: &Config,
    sources: &[&Source],
    rng: &mut Rng,
    report: &mut RestoreTestReport,
) -> Result<()> {
    let mut candidates: Vec<(&Source, Vec<SnapshotRef>)> = Vec::new();
    for s in sources {
        let snaps = repo.list_snapshots(Some(&config.host), Some(&s.name))?;
        if !snaps.is_empty() {
            candidates.push((s, snaps));
        }
    }
    if candidates.is_empty() {
        return Err(Error::NotFound {
            what: "any snapshot to test".into(),
        });
    }
    let (source, snaps) = &candidates[rng.below(candidates.len())];
    report.source = Some(source.name.clone());
    let erased = erased_tenants(repo)?;
    let (snap_ref, snap) = pick_readable_snapshot(repo, snaps, rng, &erased)?;
    report.snapshot = Some(snap_ref.id);
    report.snapshot_time = Some(snap_ref.time);
    let by_tenant = pick_per_tenant(
        repo,
        &snap.tree,
        config.restore_test_max_item_bytes,
        &erased,
        rng,
    )?;
    if by_tenant.is_empty() {
        return Err(Error::NotFound {
            what: format!("an item to test in snapshot {}", snap_ref.id.short()),
        });
    }
    let tenants: Vec<&String> = by_tenant.keys().collect();
    let tenant = tenants[rng.below(tenants.len())];
    let (_, path, entry) = &by_tenant[tenant];
    report.item = Some(path.clone());
    report.tenant = entry.tenant.clone();
    report.carried = entry.carried;
    report.sha256 = Some(entry.sha256);
    let found = FoundItem {
        snapshot: snap_ref.clone(),
        source: source.name.clone(),
        path: path.clone(),
        entry: entry.clone(),
        problems: Vec::new(),
    };
    let dir = tempfile_dir()?;
    let result = restore_item(repo, &found, &dir, RestoreOptions::default(), &NoProgress);
    let _ = std::fs::remove_dir_all(&dir);
    report.bytes = result?.bytes;
    Ok(())
}

/// A snapshot of `snaps` chosen uniformly among those whose manifest reads.
/// A manifest that cannot be read is reported by `check`, `snapshots` and the
/// `offsite_repository_problems` metric; here it is skipped (with a warning),
/// so one damaged manifest does not fail every restore test that draws it.
/// A snapshot wholly of an erased tenant is skipped too.
fn pick_readable_snapshot<'s>(
    repo: &Repository,
    snaps: &'s [SnapshotRef],
    rng: &mut Rng,
    erased: &BTreeMap<String, ErasedTenant>,
) -> Result<(&'s SnapshotRef, crate::snapshot::Snapshot)> {
    let mut left: Vec<&SnapshotRef> = snaps.iter().collect();
    let mut last_problem = None;
    while !left.is_empty() {
        let snap_ref = left.swap_remove(rng.below(left.len()));
        match repo.load_snapshot(snap_ref) {
            Ok(snap) if is_erased(erased, snap.tree_tenant.as_ref()) => {}
            Ok(snap) => return Ok((snap_ref, snap)),
            Err(e) if crate::problems::is_object_damage(&e) => {
                tracing::warn!(manifest = %snap_ref.key, error = %e, "restore test skips an unreadable manifest");
                last_problem = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_problem.unwrap_or(Error::NotFound {
        what: "any snapshot to test".into(),
    }))
}

/// A fresh private directory for the test copy.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "offsite-restore-test-{}",
        &ObjectId::random().to_hex()[..16]
    ));
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}
