//! The on-disk half of the blob lookup: fixed-size records sorted by id.
//!
//! Records arrive in index order, are sorted in runs of at most `run_cap`
//! records in RAM, spilled to an unlinked scratch file, and merged (k-way,
//! one small read buffer per run) into one sorted table in a second scratch
//! file. RAM keeps only the first 8 id bytes of every page of
//! [`PAGE_RECORDS`] records (0.125 B per blob) and a [`Bloom`] filter: a
//! lookup of an absent id usually stops at the filter, a present one reads
//! one page (`pread`, thread-safe, no lock). Scratch files live in the
//! process's temporary directory and vanish with the process, crash or not.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::bloom::Bloom;
use crate::id::ObjectId;

/// Bytes of one record: id 32, pack slot 4, offset 8, length 4, raw length 4, flags 1.
pub const RECORD_LEN: usize = 53;
/// Records per page (one `pread`, 3 392 bytes).
pub const PAGE_RECORDS: usize = 64;
const PAGE_LEN: usize = RECORD_LEN * PAGE_RECORDS;
/// Read buffer per run while merging.
const MERGE_BUFFER: usize = 64 << 10;

/// One blob's location, as the table stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: [u8; 32],
    /// Index into the lookup's pack table.
    pub slot: u32,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
    /// [`crate::repo::pack::Compression::code`].
    pub compression: u8,
}

impl Record {
    fn encode(&self, out: &mut impl Write) -> io::Result<()> {
        let mut b = [0u8; RECORD_LEN];
        b[..32].copy_from_slice(&self.id);
        b[32..36].copy_from_slice(&self.slot.to_le_bytes());
        b[36..44].copy_from_slice(&self.offset.to_le_bytes());
        b[44..48].copy_from_slice(&self.length.to_le_bytes());
        b[48..52].copy_from_slice(&self.raw_length.to_le_bytes());
        b[52] = self.compression;
        out.write_all(&b)
    }

    fn decode(b: &[u8]) -> Record {
        let n = |r: std::ops::Range<usize>| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..r.len()].copy_from_slice(&b[r]);
            a
        };
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        Record {
            id,
            slot: u64::from_le_bytes(n(32..36)) as u32,
            offset: u64::from_le_bytes(n(36..44)),
            length: u64::from_le_bytes(n(44..48)) as u32,
            raw_length: u64::from_le_bytes(n(48..52)) as u32,
            compression: b[52],
        }
    }
}

/// The table's order: by id, then pack slot and offset.
fn order(r: &Record) -> ([u8; 32], u32, u64) {
    (r.id, r.slot, r.offset)
}

fn key(id: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[..8]);
    u64::from_be_bytes(b)
}

/// An unlinked read-write file in `dir`.
fn scratch(dir: &Path) -> io::Result<File> {
    let path = dir.join(format!("offsite-lookup-{}.tmp", ObjectId::random().short()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// The sorted table.
#[derive(Debug)]
pub struct Table {
    file: File,
    records: u64,
    fences: Vec<u64>,
    bloom: Bloom,
}

impl Table {
    /// Bytes held in RAM (filter and fences).
    pub fn ram_bytes(&self) -> usize {
        self.bloom.bytes() + self.fences.len() * 8
    }

    /// Records in the table.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The record of `id`, if the table holds it.
    pub fn get(&self, id: &[u8; 32]) -> io::Result<Option<Record>> {
        self.search(id, |_| true)
    }

    /// Every record of `id` (a table built with copies kept can hold several).
    pub fn get_all(&self, id: &[u8; 32]) -> io::Result<Vec<Record>> {
        let mut all = Vec::new();
        self.search(id, |r| {
            all.push(r);
            false
        })?;
        Ok(all)
    }

    /// Hand the records of `id` to `found` in order until it returns true
    /// (then that record is the answer).
    fn search(
        &self,
        id: &[u8; 32],
        mut found: impl FnMut(Record) -> bool,
    ) -> io::Result<Option<Record>> {
        if !self.bloom.may_contain(id) {
            return Ok(None);
        }
        let k = key(id);
        let mut page = self.fences.partition_point(|&f| f < k).saturating_sub(1);
        let mut buf = vec![0u8; PAGE_LEN];
        while page < self.fences.len() && self.fences[page] <= k {
            let first = page as u64 * PAGE_RECORDS as u64;
            let n = (self.records - first).min(PAGE_RECORDS as u64) as usize;
            let bytes = &mut buf[..n * RECORD_LEN];
            self.file.read_exact_at(bytes, first * RECORD_LEN as u64)?;
            // The first record of the page not below `id`, then its run of equal ids.
            let (mut lo, mut hi) = (0, n);
            while lo < hi {
                let mid = (lo + hi) / 2;
                let at = mid * RECORD_LEN;
                if bytes[at..at + 32] < id[..] {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            for i in lo..n {
                let at = i * RECORD_LEN;
                if bytes[at..at + 32] != id[..] {
                    return Ok(None);
                }
                let record = Record::decode(&bytes[at..]);
                if found(record) {
                    return Ok(Some(record));
                }
            }
            page += 1;
        }
        Ok(None)
    }
}

/// Builds a [`Table`] from records in any order.
pub struct TableBuilder<'d> {
    dir: &'d Path,
    run_cap: usize,
    pending: Vec<Record>,
    /// The spilled runs: their file and (first record, records) each.
    runs: Option<(File, Vec<(u64, u64)>)>,
    bloom_max: u64,
    /// Keep every copy of an id (by pack and offset), not only the first.
    copies: bool,
}

impl<'d> TableBuilder<'d> {
    /// A builder sorting at most `run_cap` records in RAM at a time, with a
    /// filter of at most `bloom_max` bytes, spilling into `dir`.
    pub fn new(dir: &'d Path, run_cap: usize, bloom_max: u64) -> Self {
        TableBuilder {
            dir,
            run_cap: run_cap.max(1),
            pending: Vec::new(),
            runs: None,
            bloom_max,
            copies: false,
        }
    }

    /// Where runs spill.
    pub fn dir(&self) -> &'d Path {
        self.dir
    }

    /// Keep every copy of an id (for `check`), not only the first added.
    pub fn keep_copies(mut self) -> Self {
        self.copies = true;
        self
    }

    /// Add one record (a later duplicate of an id is dropped).
    pub fn push(&mut self, record: Record) -> io::Result<()> {
        self.pending.push(record);
        if self.pending.len() >= self.run_cap {
            self.spill()?;
        }
        Ok(())
    }

    fn sort_pending(&mut self) {
        // Slots grow in the order packs are added, so the first-added copy
        // of an id comes first.
        self.pending.sort_unstable_by_key(order);
        let copies = self.copies;
        self.pending
            .dedup_by(|b, a| a.id == b.id && (!copies || (a.slot, a.offset) == (b.slot, b.offset)));
    }

    fn spill(&mut self) -> io::Result<()> {
        self.sort_pending();
        if self.runs.is_none() {
            self.runs = Some((scratch(self.dir)?, Vec::new()));
        }
        let (file, runs) = self.runs.as_mut().expect("runs set above");
        let start = runs.last().map_or(0, |(s, n)| s + n);
        let mut out = BufWriter::new(&*file);
        for r in &self.pending {
            r.encode(&mut out)?;
        }
        out.flush()?;
        runs.push((start, self.pending.len() as u64));
        self.pending = Vec::new();
        Ok(())
    }

    /// The finished table.
    pub fn finish(mut self) -> io::Result<Table> {
        if self.runs.is_none() {
            self.sort_pending();
            let pending = std::mem::take(&mut self.pending);
            return self.write_table(pending.len() as u64, pending.into_iter().map(Ok));
        }
        if !self.pending.is_empty() {
            self.spill()?;
        }
        let (file, runs) = self.runs.take().expect("spilled");
        let total = runs.iter().map(|(_, n)| n).sum();
        let mut cursors: Vec<Cursor> = runs
            .iter()
            .map(|&(start, n)| Cursor::new(&file, start, n))
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, c) in cursors.iter_mut().enumerate() {
            if let Some(r) = c.next()? {
                heap.push(Reverse((order(&r), i, Wrapped(r))));
            }
        }
        let merged = std::iter::from_fn(|| {
            let Reverse((_, i, Wrapped(r))) = heap.pop()?;
            match cursors[i].next() {
                Ok(Some(next)) => heap.push(Reverse((order(&next), i, Wrapped(next)))),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            Some(Ok(r))
        });
        self.write_table(total, merged)
    }

    /// Write sorted records (duplicates of an id skipped) as the table.
    fn write_table(
        &self,
        upper: u64,
        sorted: impl Iterator<Item = io::Result<Record>>,
    ) -> io::Result<Table> {
        let file = scratch(self.dir)?;
        let mut bloom = Bloom::with_capacity(upper, self.bloom_max);
        let mut fences = Vec::new();
        let mut records = 0u64;
        let mut last: Option<Record> = None;
        let mut out = BufWriter::new(&file);
        for r in sorted {
            let r = r?;
            let same = |l: &Record| {
                l.id == r.id && (!self.copies || (l.slot, l.offset) == (r.slot, r.offset))
            };
            if last.as_ref().is_some_and(same) {
                continue;
            }
            last = Some(r);
            if records.is_multiple_of(PAGE_RECORDS as u64) {
                fences.push(key(&r.id));
            }
            bloom.insert(&r.id);
            r.encode(&mut out)?;
            records += 1;
        }
        out.flush()?;
        drop(out);
        fences.shrink_to_fit();
        Ok(Table {
            file,
            records,
            fences,
            bloom,
        })
    }
}

/// A record ordered by nothing (the heap orders by id and run first).
struct Wrapped(Record);
impl PartialEq for Wrapped {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Wrapped {}
impl PartialOrd for Wrapped {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wrapped {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// Reads one spilled run in order through a small buffer.
struct Cursor<'f> {
    file: &'f File,
    next: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
}

impl<'f> Cursor<'f> {
    fn new(file: &'f File, start: u64, records: u64) -> Self {
        Cursor {
            file,
            next: start * RECORD_LEN as u64,
            end: (start + records) * RECORD_LEN as u64,
            buf: Vec::new(),
            at: 0,
        }
    }

    fn next(&mut self) -> io::Result<Option<Record>> {
        if self.at >= self.buf.len() {
            let n = (self.end - self.next).min((MERGE_BUFFER / RECORD_LEN * RECORD_LEN) as u64);
            if n == 0 {
                return Ok(None);
            }
            self.buf.resize(n as usize, 0);
            self.file.read_exact_at(&mut self.buf, self.next)?;
            self.next += n;
            self.at = 0;
        }
        let r = Record::decode(&self.buf[self.at..self.at + RECORD_LEN]);
        self.at += RECORD_LEN;
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u32) -> Record {
        Record {
            id: ObjectId::hash(&i.to_le_bytes()).0,
            slot: i,
            offset: u64::from(i) * 3,
            length: i + 1,
            raw_length: i + 2,
            compression: (i % 3) as u8,
        }
    }

    fn check(run_cap: usize, n: u32) {
        let dir = tempfile::tempdir().unwrap();
        let mut b = TableBuilder::new(dir.path(), run_cap, u64::MAX);
        for i in 0..n {
            b.push(record(i)).unwrap();
        }
        // A second copy of an id keeps the first one's location.
        b.push(Record {
            slot: 999,
            ..record(0)
        })
        .unwrap();
        let table = b.finish().unwrap();
        assert_eq!(table.records(), u64::from(n));
        for i in 0..n {
            assert_eq!(table.get(&record(i).id).unwrap(), Some(record(i)), "{i}");
        }
        assert_eq!(table.get(&record(n + 1).id).unwrap(), None);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "scratch files unlinked"
        );
    }

    #[test]
    fn one_run_in_memory_finds_every_record() {
        check(1 << 20, 1000);
    }

    #[test]
    fn spilled_runs_merge_into_one_table() {
        check(97, 5000);
    }

    #[test]
    fn copies_are_kept_when_asked_and_span_pages() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = TableBuilder::new(dir.path(), 50, u64::MAX).keep_copies();
        for i in 0..300 {
            b.push(record(i)).unwrap();
        }
        for slot in 0..100 {
            b.push(Record { slot, ..record(7) }).unwrap();
        }
        b.push(record(7)).unwrap(); // an exact duplicate is dropped
        let table = b.finish().unwrap();
        let copies = table.get_all(&record(7).id).unwrap();
        assert_eq!(
            copies.len(),
            100,
            "record 7 at each of 100 slots (its own among them)"
        );
        assert!(copies.contains(&record(7)));
        assert_eq!(table.get_all(&record(8).id).unwrap(), vec![record(8)]);
        assert_eq!(table.get_all(&record(301).id).unwrap(), vec![]);
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let table = TableBuilder::new(dir.path(), 10, 1 << 20).finish().unwrap();
        assert_eq!(table.get(&[0; 32]).unwrap(), None);
    }
}
