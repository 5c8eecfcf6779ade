//! The memory budget: one documented ceiling for an operation's peak memory.
//!
//! [`MEMORY_BUDGET`] (512 MiB) is what a snapshot may use with default
//! settings, whatever the number of blobs, files and snapshots; the systemd
//! unit ships `MemoryMax=1G`, twice that, for the kernel's page cache and
//! slack. [`PARTS`] apportions it: each part is a ceiling that the code it
//! names enforces (a cap, a bounded queue, a fixed count of buffers), most
//! allocated lazily, so a small repository stays far below. Per-thread parts
//! are counted for [`BUDGET_THREADS`] workers (snapshot uses up to 8; each
//! worker past 4 adds [`PER_THREAD`]).
//!
//! What grows with the repository, and why it still fits:
//! * the blob lookup's filter is capped ([`LOOKUP_FILTER_MAX`]); past ~50 M
//!   blobs it answers "maybe" more often, which costs a page read of the
//!   on-disk table, never a wrong answer (see [`crate::repo::lookup`]);
//! * its page fences cost 0.125 B per blob (16 MiB at 130 M blobs) and its
//!   pack table ~52 B per pack (32 MiB at 640 000 packs, 5 TB of packs);
//! * the blob records themselves live in an unlinked scratch file in the
//!   temporary directory (53 B per blob on disk), never in RAM.

/// The ceiling of an operation's peak memory with default settings.
pub const MEMORY_BUDGET: u64 = 512 << 20;

/// Worker threads the per-thread parts are counted for.
pub const BUDGET_THREADS: u64 = 4;

/// One worker's read window (`chunking::WINDOW`) and zstd contexts (measured:
/// 1.3 MiB for plain zstd after a 2 MiB voice chunk, ~0.6 MiB for each of
/// the two with a dictionary, 0.2 MiB to decompress).
pub const PER_THREAD: u64 = (32 << 20) + (4 << 20);

/// Cap of the blob lookup's Bloom filter.
pub const LOOKUP_FILTER_MAX: u64 = 64 << 20;

/// Records sorted in RAM at a time while the blob lookup is built.
pub const LOOKUP_RUN_RECORDS: usize = 512 << 10;

/// Blobs of the current run remembered for dedup (past it, forgotten: a
/// duplicate stored at worst).
pub const FRESH_BLOBS: usize = 96 << 10;

/// Packs a snapshot writes before it lists them in an index file.
pub const INDEX_EVERY_PACKS: usize = 64;

/// Blobs in the packs a snapshot writes before it lists them in an index
/// file, whichever of the two comes first: a pack of small documents holds
/// ~7 000 blobs, so 64 of them held 450 000 blob entries (36 MiB) and a
/// 17 MiB index file in memory (measured on the 5 GiB scale tree).
pub const INDEX_EVERY_BLOBS: usize = 32 << 10;

const MIB: u64 = 1 << 20;
const PACK_BUFFER: u64 = 9 * MIB;

/// The parts of the budget: (what, bytes at most).
pub const PARTS: &[(&str, u64)] = &[
    ("blob lookup: Bloom filter (capped)", LOOKUP_FILTER_MAX),
    (
        "blob lookup: page fences (0.125 B per blob, 130 M blobs)",
        16 * MIB,
    ),
    (
        "blob lookup: pack table (52 B per pack, 640 000 packs)",
        32 * MIB,
    ),
    (
        "blob lookup: sort buffer while building (56 B per record)",
        LOOKUP_RUN_RECORDS as u64 * 56,
    ),
    ("this run's blobs (~160 B each)", FRESH_BLOBS as u64 * 160),
    (
        "packs written, not yet indexed (32 Ki blobs × 80 B) and their index file (~85 B each)",
        (INDEX_EVERY_BLOBS as u64) * 165,
    ),
    (
        "open data packs (4) and recycled buffers (4)",
        8 * PACK_BUFFER,
    ),
    ("open tree packs (4)", 4 * PACK_BUFFER),
    (
        "read windows and zstd contexts",
        BUDGET_THREADS * PER_THREAD,
    ),
    ("directory trees being read and built", 48 * MIB),
    (
        "compression dictionary: samples (2 MiB), training (~2 MiB), 16 loaded for reading (140 KiB each)",
        7 * MIB,
    ),
    ("runtime, allocator slack", 32 * MIB),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_fit_the_budget() {
        let total: u64 = PARTS.iter().map(|(_, bytes)| bytes).sum();
        assert!(
            total <= MEMORY_BUDGET,
            "parts sum to {} MiB, budget {} MiB",
            total >> 20,
            MEMORY_BUDGET >> 20
        );
    }

    #[test]
    fn the_unit_allows_the_budget_with_room() {
        let unit = include_str!("../systemd/offsite.service");
        let max = unit
            .lines()
            .find_map(|l| l.strip_prefix("MemoryMax="))
            .expect("the unit sets MemoryMax");
        let bytes = match max.trim().strip_suffix('G') {
            Some(g) => g.parse::<u64>().unwrap() << 30,
            None => panic!("MemoryMax={max}: expected gigabytes"),
        };
        assert!(bytes >= 2 * MEMORY_BUDGET);
    }
}
