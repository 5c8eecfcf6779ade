//! Writing blobs: deduplication, compression and pack filling.
//!
//! One `BlobWriter` serves all worker threads of a snapshot. A blob whose id
//! the repository (or this run) already has is not stored again. New blobs
//! are compressed with zstd when that pays, appended to the open data or tree
//! pack, and a pack that reaches the target size is written out at once: by
//! the thread that filled it on a local store, by a few background upload
//! threads (bounded queue) on a remote one, so workers do not wait on network
//! latency. `finish` writes the last packs and returns what the
//! index file must list: the caller writes the index, then the manifest.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::index::{Index, IndexedPack};
use crate::repo::pack::{BlobKind, BlobRef, Compression, PackBuilder};
use crate::repo::Repository;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

/// Target size of a pack: a few MiB, so small files cost few PUT requests and
/// a pack is still cheap to rewrite. 8 MiB rather than 16: each pack in flight
/// is a buffer, and 8 MiB kept peak memory below restic's on the benchmark.
pub const PACK_TARGET: usize = 8 << 20;
/// zstd level: 3 is zstd's default, a good trade of speed and ratio for text.
const ZSTD_LEVEL: i32 = 3;
/// Blobs larger than this are first judged on a sample.
const SAMPLE: usize = 64 << 10;

/// Whether to try compressing a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compress {
    /// Compress when it saves at least 10 % (judged on a sample for big blobs).
    Try,
    /// Store as is (known incompressible).
    Never,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

fn compress(raw: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = slot
            .get_or_insert_with(|| zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd context"));
        c.compress(raw).expect("zstd compresses in memory")
    })
}

/// Pack buffers are recycled: a pack's bytes go to the store as `Bytes` that
/// give the buffer back here when the store is done with them. Without this,
/// every pack is a fresh allocation of `BUFFER_CAPACITY` (the 8 MiB
/// `PACK_TARGET` plus 1 MiB for the blob that fills it), and the allocator's arenas keep
/// the freed ones, so peak memory grows with the number of threads.
static BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const BUFFER_CAPACITY: usize = PACK_TARGET + (1 << 20);

fn take_buffer() -> Vec<u8> {
    BUFFERS
        .lock()
        .unwrap()
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(BUFFER_CAPACITY))
}

struct RecycledBuffer(Vec<u8>);

impl AsRef<[u8]> for RecycledBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for RecycledBuffer {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() == BUFFER_CAPACITY {
            buf.clear();
            let mut pool = BUFFERS.lock().unwrap();
            if pool.len() < 4 {
                pool.push(buf);
            }
        }
    }
}

fn pays(raw_len: usize, packed_len: usize) -> bool {
    packed_len * 10 < raw_len * 9
}

/// Shared sink for the blobs of one operation.
pub struct BlobWriter<'r> {
    repo: &'r Repository,
    known: Mutex<HashMap<ObjectId, BlobRef>>,
    data_pack: Mutex<PackBuilder>,
    tree_pack: Mutex<PackBuilder>,
    written: Arc<Mutex<Vec<IndexedPack>>>,
    added: AtomicU64,
    cancel: Option<Cancel>,
    /// Background uploads, for remote stores where a PUT waits on the network.
    uploader: Option<Uploader>,
}

/// Uploads packs on a few threads while the workers go on filling the next
/// ones. The queue is bounded, so memory stays bounded: at most
/// `UPLOAD_QUEUE` packs wait and `UPLOAD_THREADS` are in flight.
struct Uploader {
    queue: Option<mpsc::SyncSender<(Bytes, IndexedPack)>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    failure: Arc<Mutex<Option<Error>>>,
    failed: Arc<AtomicBool>,
}

const UPLOAD_THREADS: usize = 4;
const UPLOAD_QUEUE: usize = 2;

impl Uploader {
    fn start(repo: Repository, written: Arc<Mutex<Vec<IndexedPack>>>) -> Self {
        let (queue, jobs) = mpsc::sync_channel::<(Bytes, IndexedPack)>(UPLOAD_QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        let failure: Arc<Mutex<Option<Error>>> = Arc::default();
        let failed: Arc<AtomicBool> = Arc::default();
        let threads = (0..UPLOAD_THREADS)
            .map(|_| {
                let (repo, written, jobs, failure, failed) = (
                    repo.clone(),
                    written.clone(),
                    jobs.clone(),
                    failure.clone(),
                    failed.clone(),
                );
                std::thread::spawn(move || loop {
                    let job = jobs.lock().unwrap().recv();
                    let Ok((bytes, pack)) = job else { break };
                    if failed.load(Ordering::SeqCst) {
                        continue; // drain: the snapshot is failing anyway
                    }
                    match repo.put_pack(&pack.id, bytes) {
                        Ok(()) => written.lock().unwrap().push(pack),
                        Err(e) => {
                            failed.store(true, Ordering::SeqCst);
                            failure.lock().unwrap().get_or_insert(e);
                        }
                    }
                })
            })
            .collect();
        Uploader {
            queue: Some(queue),
            threads,
            failure,
            failed,
        }
    }

    /// The first upload error, once.
    fn error(&self) -> Option<Error> {
        if !self.failed.load(Ordering::SeqCst) {
            return None;
        }
        Some(
            self.failure
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(|| Error::Conflict("an earlier pack upload failed".into())),
        )
    }

    fn send(&self, bytes: Bytes, pack: IndexedPack) -> Result<()> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        let queue = self.queue.as_ref().expect("uploader is open");
        queue
            .send((bytes, pack))
            .map_err(|_| Error::Conflict("the pack uploader stopped".into()))
    }

    /// Wait for every queued upload; the first error, if any.
    fn finish(mut self) -> Result<()> {
        drop(self.queue.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        match self.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<'r> BlobWriter<'r> {
    /// Forget that the repository holds `id` (its stored copy is damaged),
    /// so the next `store` of that content writes it again.
    pub fn forget(&self, id: &ObjectId) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// A writer that deduplicates against `index`.
    pub fn new(repo: &'r Repository, index: Index) -> Self {
        BlobWriter {
            repo,
            known: Mutex::new(index.blobs),
            data_pack: Mutex::new(PackBuilder::with_buffer(take_buffer())),
            tree_pack: Mutex::new(PackBuilder::new(1 << 20)),
            written: Arc::default(),
            added: AtomicU64::new(0),
            cancel: None,
            uploader: None,
        }
        .with_background_uploads()
    }

    /// Remote stores get background uploads; a local directory is written
    /// inline (a write there is fast, and extra packs in flight cost memory).
    fn with_background_uploads(mut self) -> Self {
        if self.repo.is_remote() {
            self.uploader = Some(Uploader::start(self.repo.clone(), self.written.clone()));
        }
        self
    }

    /// Stop storing (with `Error::Cancelled`) once `cancel` is set: checked
    /// before every blob, so a snapshot stops within one chunk.
    pub fn with_cancel(mut self, cancel: &Cancel) -> Self {
        self.cancel = Some(cancel.clone());
        self
    }

    /// Bytes stored by this writer so far (new blobs, as stored).
    pub fn bytes_added(&self) -> u64 {
        self.added.load(Ordering::Relaxed)
    }

    /// Where the repository (or this run) holds the blob `id`, if anywhere.
    pub fn locate(&self, id: &ObjectId) -> Option<BlobRef> {
        self.known.lock().unwrap().get(id).cloned()
    }

    /// Store one blob (or find it stored already); returns where it lives.
    pub fn store(&self, kind: BlobKind, raw: &[u8], mode: Compress) -> Result<BlobRef> {
        if let Some(cancel) = &self.cancel {
            cancel.check()?;
        }
        let id = ObjectId::hash(raw);
        if let Some(found) = self.known.lock().unwrap().get(&id) {
            return Ok(found.clone());
        }
        let packed = match mode {
            Compress::Try
                if raw.len() > 2 * SAMPLE && !pays(SAMPLE, compress(&raw[..SAMPLE]).len()) =>
            {
                None
            }
            Compress::Try => Some(compress(raw)).filter(|p| pays(raw.len(), p.len())),
            Compress::Never => None,
        };
        let (stored, compression) = match &packed {
            Some(p) => (p.as_slice(), Compression::Zstd),
            None => (raw, Compression::None),
        };
        let slot = match kind {
            BlobKind::Data => &self.data_pack,
            BlobKind::Tree => &self.tree_pack,
        };
        let (location, full) = {
            let mut pack = slot.lock().unwrap();
            let mut known = self.known.lock().unwrap();
            if let Some(found) = known.get(&id) {
                return Ok(found.clone());
            }
            // Close the pack before it would pass the target, so its buffer never grows.
            let full = (!pack.is_empty() && pack.len() + stored.len() > PACK_TARGET)
                .then(|| std::mem::replace(&mut *pack, PackBuilder::with_buffer(take_buffer())));
            let location = pack.add(id, kind, stored, raw.len(), compression);
            known.insert(id, location.clone());
            drop(known);
            self.added.fetch_add(stored.len() as u64, Ordering::Relaxed);
            (location, full)
        };
        if let Some(pack) = full {
            self.write_pack(pack)?;
        }
        Ok(location)
    }

    /// Store a blob already in its stored form (copied out of another pack,
    /// verified by the caller), without compressing it again.
    pub fn store_copy(&self, kind: BlobKind, blob: &BlobRef, stored: &[u8]) -> Result<BlobRef> {
        let slot = match kind {
            BlobKind::Data => &self.data_pack,
            BlobKind::Tree => &self.tree_pack,
        };
        let (location, full) = {
            let mut pack = slot.lock().unwrap();
            let full = (!pack.is_empty() && pack.len() + stored.len() > PACK_TARGET)
                .then(|| std::mem::replace(&mut *pack, PackBuilder::with_buffer(take_buffer())));
            let location = pack.add(
                blob.id,
                kind,
                stored,
                blob.raw_length as usize,
                blob.compression,
            );
            self.known.lock().unwrap().insert(blob.id, location.clone());
            self.added.fetch_add(stored.len() as u64, Ordering::Relaxed);
            (location, full)
        };
        if let Some(pack) = full {
            self.write_pack(pack)?;
        }
        Ok(location)
    }

    fn write_pack(&self, pack: PackBuilder) -> Result<()> {
        let (id, bytes, blobs) = pack.finish();
        let size = bytes.len() as u64;
        let (bytes, pack) = (
            Bytes::from_owner(RecycledBuffer(bytes)),
            IndexedPack { id, size, blobs },
        );
        if let Some(uploader) = &self.uploader {
            return uploader.send(bytes, pack);
        }
        self.repo.put_pack(&pack.id, bytes)?;
        self.written.lock().unwrap().push(pack);
        Ok(())
    }

    /// Write the packs still open; returns every pack this writer wrote.
    pub fn finish(mut self) -> Result<Vec<IndexedPack>> {
        for slot in [&self.data_pack, &self.tree_pack] {
            let pack = std::mem::replace(
                &mut *slot.lock().unwrap(),
                PackBuilder::with_buffer(Vec::new()),
            );
            if !pack.is_empty() {
                self.write_pack(pack)?;
            }
        }
        if let Some(uploader) = self.uploader.take() {
            uploader.finish()?;
        }
        let written = std::mem::take(&mut *self.written.lock().unwrap());
        Ok(written)
    }
}
