//! A blocked Bloom filter over blob ids: "certainly absent" in one cache line.
//!
//! Blob ids are keyed hashes (uniform bytes an attacker cannot steer without
//! the key), so the filter uses their bytes directly instead of hashing again:
//! bytes 0..8 pick a 512-bit block, bytes 8..16 and 16..24 drive
//! [`PROBES`] bit positions inside it (double hashing). At
//! [`BITS_PER_ENTRY`] bits per entry the false-positive rate is about 1 %; a
//! false positive costs one page read of the on-disk table, never a wrong
//! answer. A filter capped below its ideal size only answers "maybe" more often.

/// Bits per entry at the ideal size.
pub const BITS_PER_ENTRY: u64 = 10;
/// Bits set and tested per id.
const PROBES: u64 = 7;
/// u64 words per block (one 64-byte cache line).
const WORDS: usize = 8;

/// The filter.
#[derive(Debug, Default)]
pub struct Bloom {
    words: Vec<u64>,
}

fn word(id: &[u8; 32], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[at..at + 8]);
    u64::from_le_bytes(b)
}

impl Bloom {
    /// A filter for `entries` ids using at most `max_bytes` (at least one block).
    pub fn with_capacity(entries: u64, max_bytes: u64) -> Self {
        let ideal = entries.saturating_mul(BITS_PER_ENTRY) / 8;
        let blocks = (ideal.min(max_bytes) / 64).max(1);
        let blocks = usize::try_from(blocks).unwrap_or(usize::MAX / WORDS);
        Bloom {
            words: vec![0; blocks * WORDS],
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    fn probes(&self, id: &[u8; 32]) -> Option<(usize, impl Iterator<Item = u64>)> {
        let blocks = (self.words.len() / WORDS) as u64;
        if blocks == 0 {
            return None;
        }
        let block = (word(id, 0) % blocks) as usize * WORDS;
        let (h1, h2) = (word(id, 8), word(id, 16) | 1);
        Some((
            block,
            (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % 512),
        ))
    }

    /// Record `id`.
    pub fn insert(&mut self, id: &[u8; 32]) {
        if let Some((block, bits)) = self.probes(id) {
            let bits: Vec<u64> = bits.collect();
            for bit in bits {
                self.words[block + (bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
    }

    /// False: `id` was certainly never inserted.
    pub fn may_contain(&self, id: &[u8; 32]) -> bool {
        match self.probes(id) {
            None => false,
            Some((block, mut bits)) => {
                bits.all(|bit| self.words[block + (bit / 64) as usize] & (1 << (bit % 64)) != 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ObjectId;

    #[test]
    fn inserted_ids_are_found_and_few_others_are() {
        let ids: Vec<ObjectId> = (0..20_000).map(|_| ObjectId::random()).collect();
        let mut bloom = Bloom::with_capacity(ids.len() as u64, u64::MAX);
        for id in &ids {
            bloom.insert(&id.0);
        }
        assert!(ids.iter().all(|id| bloom.may_contain(&id.0)));
        let false_positives = (0..20_000)
            .filter(|_| bloom.may_contain(&ObjectId::random().0))
            .count();
        assert!(
            false_positives < 600,
            "{false_positives} false positives in 20 000"
        );
    }

    #[test]
    fn a_capped_filter_stays_within_its_bytes_and_still_finds_everything() {
        let ids: Vec<ObjectId> = (0..5_000).map(|_| ObjectId::random()).collect();
        let mut bloom = Bloom::with_capacity(ids.len() as u64, 1024);
        assert_eq!(bloom.bytes(), 1024);
        for id in &ids {
            bloom.insert(&id.0);
        }
        assert!(ids.iter().all(|id| bloom.may_contain(&id.0)));
    }

    #[test]
    fn an_empty_filter_contains_nothing() {
        assert!(!Bloom::default().may_contain(&[7; 32]));
    }
}
