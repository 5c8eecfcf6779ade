//! Reading a file's chunks on all cores, handed over in order.
//!
//! Restoring a large file used to fetch, decrypt, decompress and verify one
//! span after another on one thread. Here the chunk list is cut into spans
//! (runs of chunks close together in one pack, at most [`MAX_SPAN`] bytes,
//! one ranged read each: [`spans`]) and up to [`workers`] threads fetch and decode
//! spans side by side (cores on a local store, more on S3, where a span is
//! one ranged GET). The caller's thread receives the decoded chunks **in
//! file order** through a reorder window and does what must be in order:
//! feeding the whole-content SHA-256 and writing (sequential writes, so a
//! restore never needs to pre-size or seek a file it has not verified).
//!
//! At most [`WINDOW_SPANS`] spans are fetched ahead of the one the caller is
//! waiting for, so memory is bounded by `WINDOW_SPANS × MAX_SPAN` (64 MiB)
//! per file, whatever its size. The first error in file order is the one
//! returned, as a sequential read would; the workers stop soon after.
//!
//! Why in order rather than positioned writes: the whole-content hash must be
//! fed in order anyway, and on two cores the hashing thread (SHA-256 with the
//! CPU's SHA extensions, ~2 GB/s) is not the bottleneck; decrypt, decompress
//! and keyed-id checks are, and those run on every core.
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

/// The largest span fetched with one ranged read.
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

/// Cut `blobs` into spans: index ranges of chunks in one pack under one
/// key whose covering byte range ([`covering`]) is at most [`MAX_SPAN`]
/// bytes and not mostly other blobs (see [`worth_joining`]). A hole is a
/// span alone.
///
/// The chunks of a span need not be back to back nor in pack order: a
/// snapshot stores a large file's chunks as its threads finish them, so
/// neighbours in the file are neighbours in the pack but often swapped or
/// with another file's chunk between. Asking for exact runs cut a 500 MiB
/// dump into 25 000 reads of two or three chunks; one read of the region
/// they share costs a few bytes more and one request.
fn spans(repo: &Repository, blobs: &[BlobRef]) -> Result<Vec<std::ops::Range<usize>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < blobs.len() {
        let first = &blobs[i];
        let mut end = i + 1;
        if !crate::sparse::is_hole(repo, first)? {
            let mut region = first.range();
            let mut used = u64::from(first.length);
            while let Some(next) = blobs.get(end) {
                if next.pack != first.pack || next.tenant != first.tenant {
                    break;
                }
                let joined = region.start.min(next.offset)..region.end.max(next.range().end);
                let used_then = used.saturating_add(next.length.into());
                if !worth_joining(&joined, used_then) || crate::sparse::is_hole(repo, next)? {
                    break;
                }
                (region, used) = (joined, used_then);
                end += 1;
            }
        }
        out.push(i..end);
        i = end;
    }
    Ok(out)
}

/// Whether one read of `region` for blobs of `used` bytes in it is better
/// than several: at most [`MAX_SPAN`], and at most half other bytes (or
/// small enough that a request costs more than reading it).
fn worth_joining(region: &std::ops::Range<u64>, used: u64) -> bool {
    const SMALL: u64 = 256 << 10;
    let len = region.end.saturating_sub(region.start);
    len <= MAX_SPAN && (len <= SMALL || len <= used.saturating_mul(2))
}

/// The byte range of a pack that holds every blob of a span.
fn covering(blobs: &[BlobRef]) -> std::ops::Range<u64> {
    let start = blobs.iter().map(|b| b.offset).min().unwrap_or(0);
    let end = blobs.iter().map(|b| b.range().end).max().unwrap_or(start);
    start..end
}

/// Fetch and decode one span: its pieces in order, ending at the first
/// error (the chunks before a damaged one are still handed over).
fn decode_span(repo: &Repository, blobs: &[BlobRef]) -> Vec<Result<Piece>> {
    let mut out = Vec::with_capacity(blobs.len());
    if let Err(e) = decode_into(repo, blobs, &mut out) {
        out.push(Err(e));
    }
    out
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

fn decode_into(repo: &Repository, blobs: &[BlobRef], out: &mut Vec<Result<Piece>>) -> Result<()> {
    let first = &blobs[0];
    if blobs.len() == 1 && crate::sparse::is_hole(repo, first)? {
        out.push(Ok(Piece::Zeros(first.raw_length.into())));
        return Ok(());
    }
    let key = repo.data_key(first.tenant.as_deref())?;
    let seal = key.pack_key(&first.pack);
    let span = covering(blobs);
    let bytes = repo.read_pack_range(&first.pack, span.clone())?;
    for blob in blobs {
        let at = (blob.offset - span.start) as usize;
        let sealed = bytes
            .get(at..at + blob.length as usize)
            .ok_or_else(|| Error::corrupt(pack_key(&blob.pack), "short read of a span"))?;
        out.push(Ok(Piece::Data(decode_blob_with(
            sealed, blob, &seal, &key,
        )?)));
    }
    Ok(())
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
        sink: &mut dyn FnMut(Piece) -> Result<()>,
    ) -> Result<()> {
        let spans = spans(self, blobs)?;
        let threads = workers(self).min(spans.len());
        if threads <= 1 {
            for span in spans {
                for piece in decode_caught(self, &blobs[span]) {
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
                scope.spawn(|| self.decode_worker(blobs, &spans, &window));
            }
            let result = hand_over(&window, spans.len(), sink);
            window.stop.store(true, Ordering::SeqCst);
            let _guard = window.ready.lock().unwrap_or_else(|p| p.into_inner());
            window.changed.notify_all();
            result
        })
    }

    /// One worker: take the next span within the window, decode it, file it.
    fn decode_worker(&self, blobs: &[BlobRef], spans: &[std::ops::Range<usize>], w: &Window) {
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
            let decoded = decode_caught(self, &blobs[span.clone()]);
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
        assert!(spans(&repo, &blobs).unwrap().len() >= 5);
        let mut got = Vec::new();
        repo.read_blobs(&blobs, &mut |p| {
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
            .read_blobs(&blobs, &mut |_| {
                handed += 1;
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(&pack_key(&bad.pack)), "{err}");
        assert_eq!(handed, 23, "every chunk before the damaged one, none after");
    }

    /// A worker that panics while decoding (a bug met on some input) ends
    /// the read with an error naming the pack, after the chunks before it;
    /// it does not leave the caller waiting for a span that never comes.
    #[test]
    fn a_panicking_decode_worker_fails_the_read_instead_of_hanging() {
        let (_dir, repo, blobs) = repo_with(40);
        let spans = spans(&repo, &blobs).unwrap();
        let victim = spans
            .iter()
            .find(|s| s.start > 0 && blobs[s.start].pack != blobs[0].pack)
            .expect("a span in a later pack")
            .start;
        let pack = blobs[victim].pack;
        *PANIC_ON.lock().unwrap() = Some(pack);
        let mut handed = 0;
        let err = repo
            .read_blobs(&blobs, &mut |_| {
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

    /// Chunks of one pack out of pack order (as a snapshot's threads store
    /// them) are one read, handed over in file order; chunks far apart in
    /// a pack are not read with everything between them.
    #[test]
    fn chunks_close_together_in_a_pack_are_one_read_whatever_their_order() {
        let (_dir, repo, blobs) = repo_with(12);
        let same: Vec<&BlobRef> = blobs.iter().filter(|b| b.pack == blobs[0].pack).collect();
        assert!(same.len() >= 6, "1 MiB chunks in 8 MiB packs");
        let shuffled: Vec<BlobRef> = [1, 0, 3, 2].iter().map(|&i| same[i].clone()).collect();
        assert_eq!(spans(&repo, &shuffled).unwrap(), vec![0..4]);
        let mut got = Vec::new();
        repo.read_blobs(&shuffled, &mut |p| {
            got.push(p);
            Ok(())
        })
        .unwrap();
        for (piece, want) in got.iter().zip([1, 0, 3, 2]) {
            assert!(matches!(piece, Piece::Data(d) if *d == chunk(want)));
        }
        let far = vec![same[0].clone(), same[5].clone()];
        assert_eq!(spans(&repo, &far).unwrap(), vec![0..1, 1..2]);
    }
}
