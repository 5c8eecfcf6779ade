//! `check --read-data`: every pack read once, on several threads.
//!
//! Reading back each file through the restore path (as `check` once did,
//! after reading every pack whole) reads the data twice and costs a ranged
//! read per file. Every byte a snapshot references lies in a blob of some
//! pack, and a blob is verified by opening it (AES-GCM under its pack's
//! key) and recomputing its keyed id from the decompressed plaintext. So
//! `--read-data` streams each pack once, whole: its sealed header opened,
//! then every blob it holds decrypted, decompressed and re-identified
//! ([`Repository::verify_pack`]). The packs are read on [`workers`] threads
//! (cores on a local store, at least 8 on S3); each holds one pack (≤ ~9 MiB)
//! at a time, so the bytes in flight are bounded by the thread count.
//!
//! What the file pass gave is kept: a blob that fails names its pack (one
//! problem per damaged pack), and the items it costs are listed per snapshot
//! ([`crate::ops::damage`]) from the damaged blobs (or the whole pack, when
//! its header does not open). A file counts as verified when every chunk lies
//! in a pack that was read and verified whole. Packs no index lists
//! (`unindexed_packs`: an interrupted snapshot's, adopted by the next one)
//! and packs no snapshot references (`unreferenced_packs`: the next prune's)
//! are counted, not problems.
//!
//! # Subsets
//!
//! A large repository can be verified over several runs, like restic's
//! `--read-data-subset`: `n/m` reads the packs whose id, as a little-endian
//! number from its first 8 bytes, is `n - 1` modulo `m` (so `1/7` … `7/7` on
//! the days of a week cover every pack once); `P%` reads a random P % of the
//! packs, drawn from a seed that is printed (the same seed picks the same
//! packs).

use std::collections::{BTreeSet, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::progress::Progress;
use crate::repo::layout::pack_key;
use crate::repo::pack::header_of;
use crate::repo::packs::PackVerdict;
use crate::repo::spans::workers;
use crate::repo::Repository;

/// Which packs `check --read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// Every pack.
    All,
    /// Packs whose id is `n - 1` modulo `m` (1 ≤ n ≤ m).
    Part { n: u64, m: u64 },
    /// A random `percent` of the packs, drawn from `seed`.
    Percent { percent: f64, seed: u64 },
}

impl FromStr for Subset {
    type Err = Error;

    /// `n/m` or `P%` (a fresh random seed); anything else is a usage error.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "--read-data-subset {:?}: {why}; give n/m (1 ≤ n ≤ m, e.g. 1/7) or a percentage (e.g. 10%)",
                crate::escape::escaped(s)
            ))
        };
        if let Some(p) = s.strip_suffix('%') {
            let percent: f64 = p.trim().parse().map_err(|_| bad("not a percentage"))?;
            if !(percent > 0.0 && percent <= 100.0) {
                return Err(bad("the percentage must be above 0 and at most 100"));
            }
            let seed = u64::from_le_bytes(first8(&ObjectId::random()));
            return Ok(Subset::Percent { percent, seed });
        }
        let (n, m) = s.split_once('/').ok_or_else(|| bad("not n/m"))?;
        let n: u64 = n.trim().parse().map_err(|_| bad("n is not a number"))?;
        let m: u64 = m.trim().parse().map_err(|_| bad("m is not a number"))?;
        if n == 0 || m == 0 || n > m {
            return Err(bad("n must be between 1 and m"));
        }
        Ok(Subset::Part { n, m })
    }
}

fn first8(id: &ObjectId) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    b
}

impl Subset {
    /// Whether `pack` is read.
    pub fn selects(&self, pack: &ObjectId) -> bool {
        match *self {
            Subset::All => true,
            Subset::Percent { percent, .. } if percent >= 100.0 => true,
            Subset::Part { n, m } => u64::from_le_bytes(first8(pack)) % m == n - 1,
            Subset::Percent { percent, seed } => {
                let mut input = seed.to_le_bytes().to_vec();
                input.extend_from_slice(&pack.0);
                let draw = u64::from_le_bytes(first8(&ObjectId::hash(&input)));
                (draw as f64) < percent / 100.0 * (u64::MAX as f64)
            }
        }
    }

    /// How the report names it ("1/7", "10% (seed 1234)"); `None` for all.
    pub fn describe(&self) -> Option<String> {
        match *self {
            Subset::All => None,
            Subset::Part { n, m } => Some(format!("{n}/{m}")),
            Subset::Percent { percent, seed } => Some(format!("{percent}% (seed {seed})")),
        }
    }
}

/// What reading the packs found.
#[derive(Debug, Default, Serialize)]
pub struct PackResults {
    /// Packs read and verified whole.
    #[serde(skip)]
    pub whole: HashSet<ObjectId>,
    /// Packs whose header does not open: every blob in them is lost.
    #[serde(skip)]
    pub bad_packs: HashSet<ObjectId>,
    /// Blobs that fail to verify, as (pack, blob).
    #[serde(skip)]
    pub bad_blobs: HashSet<(ObjectId, ObjectId)>,
    /// One line per damaged pack (naming it) or pack that cannot be verified.
    #[serde(skip)]
    pub problems: Vec<String>,
    /// Tenants whose packs were skipped because they were erased.
    #[serde(skip)]
    pub erased: BTreeSet<String>,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub blobs_verified: u64,
}

/// Read `packs` (id, size), those `subset` selects, each once on several
/// threads, and verify every blob they hold. `Err` only when the store
/// fails (reading a pack, loading a key); damage is in the results.
pub fn read_packs(
    repo: &Repository,
    packs: &[(ObjectId, u64)],
    subset: Subset,
    progress: &Progress,
) -> Result<PackResults> {
    let chosen: Vec<(ObjectId, u64)> = packs
        .iter()
        .filter(|(id, _)| subset.selects(id))
        .copied()
        .collect();
    progress.phase(
        "verifying packs",
        "packs",
        chosen.len() as u64,
        chosen.iter().map(|p| p.1).fold(0, u64::saturating_add),
    );
    let results = Mutex::new(PackResults::default());
    let fatal: Mutex<Option<Error>> = Mutex::new(None);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers(repo).min(chosen.len()) {
            scope.spawn(|| loop {
                if fatal.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                    return;
                }
                let Some(&(id, size)) = chosen.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return;
                };
                let outcome = read_pack(repo, id);
                progress.advance(1, size);
                match outcome {
                    Ok(Some(found)) => {
                        found.add_to(&mut results.lock().unwrap_or_else(|p| p.into_inner()))
                    }
                    Ok(None) => {}
                    Err(e) => {
                        fatal
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.problems.sort();
    Ok(results)
}

/// What one pack showed.
struct OnePack {
    id: ObjectId,
    bytes: u64,
    verdict: PackVerdict,
    /// The blobs its header lists (for a damaged pack whose header opens).
    listed: Vec<ObjectId>,
}

/// Read and verify one pack; `None` when it is gone since the listing.
fn read_pack(repo: &Repository, id: ObjectId) -> Result<Option<OnePack>> {
    let bytes = match repo.read_pack(&id) {
        Ok(b) => b,
        Err(Error::NotFound { .. }) => return Ok(None), // removed since the listing
        Err(e) => return Err(e),
    };
    let verdict = repo.verify_pack(id, &bytes)?;
    let listed = match &verdict {
        PackVerdict::Damaged { lost, .. } if *lost > 0 => {
            header_of(&id, &bytes, repo.keys().meta())
                .map(|h| h.blobs.iter().map(|b| b.id).collect())
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    Ok(Some(OnePack {
        id,
        bytes: bytes.len() as u64,
        verdict,
        listed,
    }))
}

impl OnePack {
    fn add_to(self, r: &mut PackResults) {
        r.packs_read += 1;
        r.bytes_read = r.bytes_read.saturating_add(self.bytes);
        let key = pack_key(&self.id);
        match self.verdict {
            PackVerdict::Whole(pack) => {
                r.blobs_verified += pack.blobs.len() as u64;
                r.whole.insert(self.id);
            }
            PackVerdict::Erased { tenant, .. } => {
                r.erased.insert(tenant);
            }
            PackVerdict::Unverifiable { reason, .. } => {
                r.problems.push(format!("pack {key}: {reason}"))
            }
            PackVerdict::Damaged { reason, good, lost } => {
                r.blobs_verified += good.len() as u64;
                if lost == 0 {
                    // The header does not open: nothing in the pack can be read.
                    r.bad_packs.insert(self.id);
                } else {
                    let good: HashSet<ObjectId> = good.iter().map(|(_, b, _)| b.id).collect();
                    let lost = self.listed.into_iter().filter(|b| !good.contains(b));
                    r.bad_blobs.extend(lost.map(|b| (self.id, b)));
                }
                match reason.contains(&key) {
                    true => r.problems.push(reason),
                    false => r.problems.push(format!("pack {key}: {reason}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse_like_restic_and_bad_values_are_usage_errors() {
        assert_eq!(
            "1/7".parse::<Subset>().unwrap(),
            Subset::Part { n: 1, m: 7 }
        );
        assert_eq!(
            "7/7".parse::<Subset>().unwrap(),
            Subset::Part { n: 7, m: 7 }
        );
        assert!(
            matches!("10%".parse::<Subset>().unwrap(), Subset::Percent { percent, .. } if percent == 10.0)
        );
        assert!(matches!(
            "100%".parse::<Subset>().unwrap(),
            Subset::Percent { .. }
        ));
        for bad in [
            "0/7", "8/7", "1/0", "x/7", "7", "0%", "101%", "-5%", "abc%", "", "NaN%",
        ] {
            let err = bad.parse::<Subset>().unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{bad}: {err}");
            assert!(!err.to_string().contains('\n'), "{bad}: one line: {err}");
        }
    }

    /// `1/7` … `7/7` pick every pack exactly once; a percentage picks about
    /// that share, the same packs for the same seed.
    #[test]
    fn a_week_of_parts_covers_every_pack_once() {
        let packs: Vec<ObjectId> = (0..2000u32)
            .map(|i| ObjectId::hash(&i.to_le_bytes()))
            .collect();
        for p in &packs {
            let picked = (1..=7)
                .filter(|n| Subset::Part { n: *n, m: 7 }.selects(p))
                .count();
            assert_eq!(picked, 1);
        }
        let tenth = Subset::Percent {
            percent: 10.0,
            seed: 42,
        };
        let chosen: Vec<_> = packs.iter().filter(|p| tenth.selects(p)).collect();
        assert!((120..280).contains(&chosen.len()), "{}", chosen.len());
        let again: Vec<_> = packs.iter().filter(|p| tenth.selects(p)).collect();
        assert_eq!(chosen, again);
        let all = Subset::Percent {
            percent: 100.0,
            seed: 7,
        };
        assert!(packs.iter().all(|p| all.selects(p)));
    }
}
