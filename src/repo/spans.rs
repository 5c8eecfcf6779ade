//! Reading a file's chunks on all cores, handed over in order.
//!
//! Restoring a large file used to fetch, decrypt, decompress and verify one
//! span after another on one thread. Here the chunk list is cut into spans
//! (consecutive chunks of at most [`SPAN_BYTES`] stored bytes, read with
//! one ranged read per pack they lie in, see [`decode_span`]) and up to
//! [`workers`] threads fetch and decode spans side by side (cores on a
//! local store, more on S3, where a read is one ranged GET). The caller's thread receives the decoded chunks **in
//! file order** through a reorder window and does what must be in order:
//! feeding the whole-content SHA-256. Writing is not: given a file
//! ([`WriteAt`], a restore's temporary file, verified before it takes the
//! item's name), each worker writes what it decoded at its offset.
//!
//! At most [`WINDOW_SPANS`] spans are fetched ahead of the one the caller is
//! waiting for, and a span reads at most twice its chunks' bytes
//! ([`MAX_SPAN`]), so memory is bounded by `WINDOW_SPANS × MAX_SPAN`
//! (64 MiB) per file, whatever its size. The first error in file order is the one
//! returned, as a sequential read would; the workers stop soon after.
//!
//! Why positioned writes: the whole-content hash must be fed in order, and
//! with the writes on the same thread that thread was the bottleneck of a
//! 2 GiB restore (writing to tmpfs and hashing were half of all CPU time).
//!
//! Chunks that are holes ([`crate::sparse`]: the tenant's all-zero blob) are
//! not fetched at all: the sink gets [`Piece::Zeros`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::repo::layout::pack_key;
use crate::repo::pack::{decode_blob_with, BlobRef};
use crate::repo::Repository;

/// The most bytes one span reads: its chunks ([`SPAN_BYTES`]) and what
/// lies between them in their packs.
pub const MAX_SPAN: u64 = 8 << 20;

/// Spans fetched ahead of the one being handed over (× [`MAX_SPAN`] = the
/// bytes in flight per file).
pub const WINDOW_SPANS: usize = 8;

/// One decoded chunk of a file, in file order.
#[derive(Debug)]
pub enum Piece {
    /// The chunk's verified plaintext.
    Data(Vec<u8>),
    /// A hole: this many zero bytes, not fetched.
    Zeros(u64),
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Data(d) => d.len() as u64,
            Piece::Zeros(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the workers also write what they decode: each chunk at its offset
/// in `file` (`base` is the offset of the first chunk read), so the write
/// runs on every core and the caller's thread only hashes. A hole is not
/// written (the caller sets the file's length at the end).
#[derive(Debug, Clone, Copy)]
pub struct WriteAt<'a> {
    pub file: &'a std::fs::File,
    /// For error messages.
    pub path: &'a std::path::Path,
    pub base: u64,
}

impl WriteAt<'_> {
    /// Write the `pieces` of one span, the first at `at`, gathering
    /// neighbours into writes of up to [`GATHER`] bytes (a chunk is a few
    /// KiB: a write call each cost more than the copy); a failed write ends
    /// the span with that error (as a damaged chunk would).
    fn place(&self, pieces: &mut Vec<Result<Piece>>, at: u64) {
        use std::os::unix::fs::FileExt;
        let mut gathered: Vec<u8> = Vec::new();
        // Offset of `gathered`, and the first piece in it.
        let (mut start, mut first) = (at, 0);
        let mut end = at;
        let mut k = 0;
        while k <= pieces.len() {
            let next = pieces.get(k).and_then(|p| p.as_ref().ok());
            let joins = matches!(next, Some(Piece::Data(d)) if gathered.len() + d.len() <= GATHER);
            if !joins && !gathered.is_empty() {
                if let Err(e) = self.file.write_all_at(&gathered, start) {
                    pieces[first] = Err(Error::io(self.path, e));
                    pieces.truncate(first + 1);
                    return;
                }
                gathered.clear();
            }
            let Some(piece) = next else { return };
            match piece {
                // A big chunk (a recording's) goes out as it is.
                Piece::Data(data) if data.len() >= GATHER => {
                    if let Err(e) = self.file.write_all_at(data, end) {
                        pieces[k] = Err(Error::io(self.path, e));
                        pieces.truncate(k + 1);
                        return;
                    }
                }
                Piece::Data(data) => {
                    if gathered.is_empty() {
                        (start, first) = (end, k);
                    }
                    gathered.extend_from_slice(data);
                }
                Piece::Zeros(_) => {}
            }
            end = end.saturating_add(piece.len());
            k += 1;
        }
    }
}

/// Bytes gathered into one positioned write.
const GATHER: usize = 1 << 20;

/// The file offset of each span's first chunk, from `base`.
fn span_offsets(blobs: &[BlobRef], spans: &[std::ops::Range<usize>], base: u64) -> Vec<u64> {
    let mut at = base;
    spans
        .iter()
        .map(|span| {
            let start = at;
            let bytes: u64 = blobs[span.clone()]
                .iter()
                .map(|b| u64::from(b.raw_length))
                .sum();
            at = at.saturating_add(bytes);
            start
        })
        .collect()
}

/// Threads decoding spans of one file: the machine's cores locally (the
/// work is CPU-bound), at least 8 on a remote store (the work waits on GETs).
pub fn workers(repo: &Repository) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if repo.is_remote() {
        cores.clamp(8, 16)
    } else {
        cores.clamp(1, 16)
    }
}

/// Cut `blobs` into spans: consecutive chunks of at most [`SPAN_BYTES`]
/// stored bytes (at least one chunk each), decoded by one worker.
fn spans(blobs: &[BlobRef]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < blobs.len() {
        let mut end = i + 1;
        let mut bytes = u64::from(blobs[i].length);
        while let Some(next) = blobs.get(end) {
            bytes = bytes.saturating_add(next.length.into());
            if bytes > SPAN_BYTES {
                break;
            }
            end += 1;
        }
        out.push(i..end);
        i = end;
    }
    out
}

/// Stored bytes of the chunks in one span: half of [`MAX_SPAN`], since
/// what a span reads may be up to twice what its chunks hold
/// ([`worth_joining`]).
const SPAN_BYTES: u64 = MAX_SPAN / 2;

/// Whether one read of `region` for blobs of `used` bytes in it is better
/// than several: at most [`MAX_SPAN`], and at most half other bytes.
fn worth_joining(region: &std::ops::Range<u64>, used: u64) -> bool {
    let len = region.end.saturating_sub(region.start);
    len <= MAX_SPAN && len <= used.saturating_mul(2)
}

/// Fetch and decode one span: its pieces in file order, ending at the
/// first error in that order (the chunks before a damaged one are still
/// handed over).
///
/// A span's chunks are read grouped by pack, one read per group of chunks
/// close together ([`worth_joining`]), whatever their order in the file: a
/// snapshot fills several packs at once and stores a large file's chunks as
/// its threads finish them, so neighbours in the file alternate between
/// packs and are swapped within one. Reading runs of chunks back to back
/// in file order cut a 500 MiB dump into 24 000 reads of one to three
/// chunks.
fn decode_span(repo: &Repository, blobs: &[BlobRef]) -> Vec<Result<Piece>> {
    let mut slots: Vec<Option<Result<Piece>>> = Vec::with_capacity(blobs.len());
    let mut fetch = Vec::with_capacity(blobs.len());
    for (i, blob) in blobs.iter().enumerate() {
        slots.push(match crate::sparse::is_hole(repo, blob) {
            Ok(true) => Some(Ok(Piece::Zeros(blob.raw_length.into()))),
            Ok(false) => {
                fetch.push(i);
                None
            }
            Err(e) => Some(Err(e)),
        });
    }
    fetch.sort_by(|&a, &b| {
        let (a, b) = (&blobs[a], &blobs[b]);
        (&a.pack, &a.tenant, a.offset).cmp(&(&b.pack, &b.tenant, b.offset))
    });
    let mut k = 0;
    while k < fetch.len() {
        let first = &blobs[fetch[k]];
        let (mut region, mut used) = (first.range(), u64::from(first.length));
        let mut end = k + 1;
        while let Some(next) = fetch.get(end).map(|&i| &blobs[i]) {
            let joined = region.start.min(next.offset)..region.end.max(next.range().end);
            let used_then = used.saturating_add(next.length.into());
            if next.pack != first.pack
                || next.tenant != first.tenant
                || !worth_joining(&joined, used_then)
            {
                break;
            }
            (region, used, end) = (joined, used_then, end + 1);
        }
        decode_group(repo, blobs, &fetch[k..end], region, &mut slots);
        k = end;
    }
    let mut out = Vec::with_capacity(blobs.len());
    for (slot, blob) in slots.into_iter().zip(blobs) {
        // Empty only after an error earlier in file order (see decode_group).
        let piece = slot.unwrap_or_else(|| Err(Error::corrupt(pack_key(&blob.pack), "not read")));
        let failed = piece.is_err();
        out.push(piece);
        if failed {
            break;
        }
    }
    out
}

/// Read `region` of one pack once and decode the chunks `group` (indices
/// into `blobs`) from it into their slots. When the read itself fails, the
/// error goes to the group's first chunk in file order and the others stay
/// empty: the hand-over stops at that error before reaching them.
fn decode_group(
    repo: &Repository,
    blobs: &[BlobRef],
    group: &[usize],
    region: std::ops::Range<u64>,
    slots: &mut [Option<Result<Piece>>],
) {
    let first = &blobs[group[0]];
    let read = repo.data_key(first.tenant.as_deref()).and_then(|key| {
        let bytes = repo.read_pack_range(&first.pack, region.clone())?;
        Ok((key, bytes))
    });
    let (key, bytes) = match read {
        Ok(read) => read,
        Err(e) => {
            let earliest = group.iter().copied().min().unwrap_or(group[0]);
            slots[earliest] = Some(Err(e));
            return;
        }
    };
    let seal = key.pack_key(&first.pack);
    for &i in group {
        let blob = &blobs[i];
        let at = (blob.offset - region.start) as usize;
        slots[i] = Some(
            bytes
                .get(at..at.saturating_add(blob.length as usize))
                .ok_or_else(|| Error::corrupt(pack_key(&blob.pack), "short read of a span"))
                .and_then(|sealed| {
                    let dictionary = repo.pack_dictionary(blob, &seal, None)?;
                    decode_blob_with(sealed, blob, &seal, &key, dictionary.as_ref())
                })
                .map(Piece::Data),
        );
    }
}

/// [`decode_span`], with a panic on the way turned into an error naming
/// the span's pack: the caller waits for every span in order, so a worker
/// that died without filing its span would leave the restore waiting
/// forever. (The panic message itself goes to stderr as usual.)
fn decode_caught(repo: &Repository, blobs: &[BlobRef]) -> Vec<Result<Piece>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        #[cfg(test)]
        tests::panic_if_armed(&blobs[0].pack);
        decode_span(repo, blobs)
    }))
    .unwrap_or_else(|_| {
        vec![Err(Error::corrupt(
            pack_key(&blobs[0].pack),
            "decoding a span of it panicked (a bug; the message is above)",
        ))]
    })
}

/// What the workers and the caller share.
struct Window {
    /// Decoded spans not yet handed over, by span number.
    ready: Mutex<BTreeMap<usize, Vec<Result<Piece>>>>,
    changed: Condvar,
    /// The span the caller hands over next.
    handed: AtomicUsize,
    next: AtomicUsize,
    stop: AtomicBool,
}

impl Repository {
    /// Read `blobs` (a file's chunks) verified, handing each to `sink` in
    /// order; spans are fetched and decoded on several threads (see the
    /// module docs). Holes are handed over as [`Piece::Zeros`], unfetched.
    pub fn read_blobs(
        &self,
        blobs: &[BlobRef],
        write: Option<WriteAt<'_>>,
        sink: &mut dyn FnMut(Piece) -> Result<()>,
    ) -> Result<()> {
        let spans = spans(blobs);
        let offsets = span_offsets(blobs, &spans, write.map_or(0, |w| w.base));
        let threads = workers(self).min(spans.len());
        if threads <= 1 {
            for (span, at) in spans.into_iter().zip(offsets) {
                let mut pieces = decode_caught(self, &blobs[span]);
                if let Some(w) = write {
                    w.place(&mut pieces, at);
                }
                for piece in pieces {
                    sink(piece?)?;
                }
            }
            return Ok(());
        }
        let window = Window {
            ready: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            handed: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        };
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| self.decode_worker(blobs, &spans, &offsets, write, &window));
            }
            let result = hand_over(&window, spans.len(), sink);
            window.stop.store(true, Ordering::SeqCst);
            let _guard = window.ready.lock().unwrap_or_else(|p| p.into_inner());
            window.changed.notify_all();
            result
        })
    }

    /// One worker: take the next span within the window, decode it, file it.
    fn decode_worker(
        &self,
        blobs: &[BlobRef],
        spans: &[std::ops::Range<usize>],
        offsets: &[u64],
        write: Option<WriteAt<'_>>,
        w: &Window,
    ) {
        loop {
            let i = w.next.fetch_add(1, Ordering::SeqCst);
            let Some(span) = spans.get(i) else { return };
            {
                let mut ready = w.ready.lock().unwrap_or_else(|p| p.into_inner());
                while !w.stop.load(Ordering::SeqCst)
                    && i >= w.handed.load(Ordering::SeqCst) + WINDOW_SPANS
                {
                    ready = w.changed.wait(ready).unwrap_or_else(|p| p.into_inner());
                }
            }
            if w.stop.load(Ordering::SeqCst) {
                return;
            }
            let mut decoded = decode_caught(self, &blobs[span.clone()]);
            if let (Some(out), Some(at)) = (write, offsets.get(i)) {
                out.place(&mut decoded, *at);
            }
            let failed = decoded.last().is_some_and(|p| p.is_err());
            w.ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(i, decoded);
            w.changed.notify_all();
            if failed {
                return;
            }
        }
    }
}

/// The caller's side: take the spans in order and hand their pieces to `sink`.
fn hand_over(w: &Window, count: usize, sink: &mut dyn FnMut(Piece) -> Result<()>) -> Result<()> {
    for i in 0..count {
        let decoded = {
            let mut ready = w.ready.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(d) = ready.remove(&i) {
                    // Under the lock: a worker checks the window under it too.
                    w.handed.store(i + 1, Ordering::SeqCst);
                    break d;
                }
                ready = w.changed.wait(ready).unwrap_or_else(|p| p.into_inner());
            }
        };
        w.changed.notify_all();
        for piece in decoded {
            sink(piece?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::pack::BlobKind;
    use crate::repo::writer::{BlobWriter, Compress};
    use crate::repo::{Location, MasterKey};
    use chrono::DateTime;
    use std::sync::Mutex;

    /// The pack whose decoding panics ([`decode_caught`]), for one test.
    static PANIC_ON: Mutex<Option<crate::id::ObjectId>> = Mutex::new(None);

    pub(super) fn panic_if_armed(pack: &crate::id::ObjectId) {
        if *PANIC_ON.lock().unwrap_or_else(|p| p.into_inner()) == Some(*pack) {
            panic!("test: decoding a span of the armed pack");
        }
    }

    fn repo_with(chunks: usize) -> (tempfile::TempDir, Repository, Vec<BlobRef>) {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Local(dir.path().join("repo"));
        let repo =
            Repository::init(&location, DateTime::UNIX_EPOCH, &MasterKey::generate()).unwrap();
        let writer = BlobWriter::new(&repo, DateTime::UNIX_EPOCH);
        let blobs = (0..chunks)
            .map(|i| {
                writer
                    .store(None, BlobKind::Data, &chunk(i), Compress::Never)
                    .unwrap()
            })
            .collect();
        writer.finish().unwrap();
        (dir, repo, blobs)
    }

    fn chunk(i: usize) -> Vec<u8> {
        (0..1 << 20)
            .map(|j| (j * 31 + i * 7 + j / 4096) as u8)
            .collect()
    }

    /// A 40 MiB "file" of 1 MiB chunks (5 spans and more, several packs):
    /// read back in order on several threads; then one chunk damaged on disk
    /// fails the read at that chunk, after exactly the chunks before it.
    #[test]
    fn spans_decode_in_parallel_and_hand_over_in_order() {
        let (dir, repo, blobs) = repo_with(40);
        let root = dir.path().join("repo");
        assert!(spans(&blobs).len() >= 5);
        let mut got = Vec::new();
        repo.read_blobs(&blobs, None, &mut |p| {
            got.push(p);
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 40);
        for (i, piece) in got.iter().enumerate() {
            assert!(
                matches!(piece, Piece::Data(d) if *d == chunk(i)),
                "chunk {i}"
            );
        }

        let bad = &blobs[23];
        let path = root.join(pack_key(&bad.pack));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[bad.offset as usize + 100] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let mut handed = 0;
        let err = repo
            .read_blobs(&blobs, None, &mut |_| {
                handed += 1;
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(&pack_key(&bad.pack)), "{err}");
        assert_eq!(handed, 23, "every chunk before the damaged one, none after");
    }

    /// With a file to write to, every chunk lands at its offset (40 chunks
    /// of 1 MiB: written as they are; 300 small ones: gathered), from a
    /// base offset, while the sink still gets them in order.
    #[test]
    fn workers_write_each_chunk_at_its_offset() {
        for (count, size) in [(40, 1 << 20), (300, 5000)] {
            let dir = tempfile::tempdir().unwrap();
            let location = Location::Local(dir.path().join("repo"));
            let repo =
                Repository::init(&location, DateTime::UNIX_EPOCH, &MasterKey::generate()).unwrap();
            let writer = BlobWriter::new(&repo, DateTime::UNIX_EPOCH);
            let content: Vec<Vec<u8>> = (0..count).map(|i| chunk(i)[..size].to_vec()).collect();
            let blobs: Vec<BlobRef> = content
                .iter()
                .map(|c| {
                    writer
                        .store(None, BlobKind::Data, c, Compress::Never)
                        .unwrap()
                })
                .collect();
            writer.finish().unwrap();
            let path = dir.path().join("out");
            let file = std::fs::File::create(&path).unwrap();
            let base = 7;
            let write = WriteAt {
                file: &file,
                path: &path,
                base,
            };
            let mut handed = Vec::new();
            repo.read_blobs(&blobs, Some(write), &mut |p| {
                handed.push(p.len());
                Ok(())
            })
            .unwrap();
            let want: Vec<u8> = content.concat();
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len() as u64, base + want.len() as u64);
            assert!(got[..base as usize].iter().all(|b| *b == 0));
            assert!(got[base as usize..] == want[..], "{count} chunks of {size}");
            assert_eq!(handed, vec![size as u64; count]);
        }
    }

    /// A worker that panics while decoding (a bug met on some input) ends
    /// the read with an error naming the pack, after the chunks before it;
    /// it does not leave the caller waiting for a span that never comes.
    #[test]
    fn a_panicking_decode_worker_fails_the_read_instead_of_hanging() {
        let (_dir, repo, blobs) = repo_with(40);
        let spans = spans(&blobs);
        let victim = spans
            .iter()
            .find(|s| s.start > 0 && blobs[s.start].pack != blobs[0].pack)
            .expect("a span in a later pack")
            .start;
        let pack = blobs[victim].pack;
        *PANIC_ON.lock().unwrap() = Some(pack);
        let mut handed = 0;
        let err = repo
            .read_blobs(&blobs, None, &mut |_| {
                handed += 1;
                Ok(())
            })
            .unwrap_err();
        *PANIC_ON.lock().unwrap() = None;
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(&pack_key(&pack)), "{err}");
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(handed, victim, "every chunk before the failed span");
    }

    /// Chunks of two packs, alternating and out of pack order within each
    /// (as a snapshot's threads store a big file), are read with one
    /// request per pack and handed over in file order; chunks far apart in
    /// a pack are not read with everything between them.
    #[test]
    fn chunks_close_together_in_a_pack_are_one_read_whatever_their_order() {
        let (_dir, repo, blobs) = repo_with(16);
        let a: Vec<usize> = (0..16)
            .filter(|&i| blobs[i].pack == blobs[0].pack)
            .collect();
        let b: Vec<usize> = (0..16)
            .filter(|&i| blobs[i].pack == blobs[15].pack)
            .collect();
        assert!(a.len() >= 5 && b.len() >= 2 && blobs[0].pack != blobs[15].pack);
        let order = [a[1], b[1], a[0], b[0]];
        let mixed: Vec<BlobRef> = order.iter().map(|&i| blobs[i].clone()).collect();
        assert_eq!(
            spans(&mixed),
            vec![0..3, 3..4],
            "4 MiB of stored chunks a span"
        );
        let read = |list: &[BlobRef]| {
            let before = repo.requests().get;
            let mut got = Vec::new();
            repo.read_blobs(list, None, &mut |p| {
                got.push(p);
                Ok(())
            })
            .unwrap();
            (repo.requests().get - before, got)
        };
        let (requests, got) = read(&mixed[..3]);
        assert_eq!(requests, 2, "one read per pack");
        for (piece, want) in got.iter().zip(order) {
            assert!(matches!(piece, Piece::Data(d) if *d == chunk(want)));
        }
        let far = [blobs[a[0]].clone(), blobs[a[a.len() - 1]].clone()];
        assert_eq!(read(&far).0, 2, "two reads, not the 2 MiB between them");
    }
}
