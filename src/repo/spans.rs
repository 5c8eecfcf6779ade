//! Reading a file's chunks on all cores, handed over in order.
//!
//! Restoring a large file used to fetch, decrypt, decompress and verify one
//! span after another on one thread. Here the chunk list is cut into spans
//! (runs of chunks back to back in one pack, at most [`MAX_SPAN`] bytes,
//! one ranged read each) and up to [`workers`] threads fetch and decode
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

/// Cut `blobs` into spans: index ranges of chunks back to back in one pack
/// under one key, at most [`MAX_SPAN`] bytes each. A hole is a span alone.
fn spans(repo: &Repository, blobs: &[BlobRef]) -> Result<Vec<std::ops::Range<usize>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < blobs.len() {
        let first = &blobs[i];
        let mut end = i + 1;
        if !crate::sparse::is_hole(repo, first)? {
            while end < blobs.len()
                && blobs[end].pack == first.pack
                && blobs[end].tenant == first.tenant
                && Some(blobs[end].offset)
                    == blobs[end - 1]
                        .offset
                        .checked_add(blobs[end - 1].length.into())
                && blobs[end].range().end.saturating_sub(first.offset) <= MAX_SPAN
            {
                end += 1;
            }
        }
        out.push(i..end);
        i = end;
    }
    Ok(out)
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

fn decode_into(repo: &Repository, blobs: &[BlobRef], out: &mut Vec<Result<Piece>>) -> Result<()> {
    let first = &blobs[0];
    if blobs.len() == 1 && crate::sparse::is_hole(repo, first)? {
        out.push(Ok(Piece::Zeros(first.raw_length.into())));
        return Ok(());
    }
    let key = repo.data_key(first.tenant.as_deref())?;
    let seal = key.pack_key(&first.pack);
    let span = first.offset..blobs[blobs.len() - 1].range().end;
    let bytes = repo.read_pack_range(&first.pack, span.clone())?;
    for blob in blobs {
        let at = (blob.offset - span.start) as usize;
        let sealed = bytes
            .get(at..at + blob.length as usize)
            .ok_or_else(|| Error::corrupt(pack_key(&blob.pack), "short read of a span"))?;
        let dictionary = repo.pack_dictionary(blob, &seal, None)?;
        out.push(Ok(Piece::Data(decode_blob_with(
            sealed,
            blob,
            &seal,
            &key,
            dictionary.as_ref(),
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
                for piece in decode_span(self, &blobs[span]) {
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
            let decoded = decode_span(self, &blobs[span.clone()]);
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

    /// A 40 MiB "file" of 1 MiB chunks (5 spans and more, several packs):
    /// read back in order on several threads; then one chunk damaged on disk
    /// fails the read at that chunk, after exactly the chunks before it.
    #[test]
    fn spans_decode_in_parallel_and_hand_over_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let location = Location::Local(root.clone());
        let repo =
            Repository::init(&location, DateTime::UNIX_EPOCH, &MasterKey::generate()).unwrap();
        let writer = BlobWriter::new(&repo, DateTime::UNIX_EPOCH);
        let chunk = |i: usize| -> Vec<u8> {
            (0..1 << 20)
                .map(|j| (j * 31 + i * 7 + j / 4096) as u8)
                .collect()
        };
        let blobs: Vec<BlobRef> = (0..40)
            .map(|i| {
                writer
                    .store(None, BlobKind::Data, &chunk(i), Compress::Never)
                    .unwrap()
            })
            .collect();
        writer.finish().unwrap();
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
}
