//! Writing blobs: deduplication, compression and pack filling.
//!
//! One `BlobWriter` serves all worker threads of a snapshot. A blob is named
//! by its keyed id under its tenant's key (see [`crate::repo::keys`]), and a
//! blob whose id the repository (or this run) already has is not stored
//! again: dedup works within a tenant, never across. New blobs are compressed
//! with zstd when that pays, small data blobs with a dictionary trained on
//! the tenant's data of this run ([`crate::repo::compress`]; a pack holding
//! such blobs starts with that dictionary, so a pack opened before it was
//! trained is closed when the first of them comes), sealed into the open pack of their (tenant, kind)
//! (a pack holds one tenant's blobs, see [`crate::repo::pack`]), and a pack
//! that reaches the target size is written out at once: by
//! the thread that filled it on a local store, by a few background upload
//! threads (bounded queue) on a remote one, so workers do not wait on network
//! latency. `finish` writes the last packs and returns what the
//! index file must list: the caller writes the index, then the manifest.
//!
//! On a repository with Object Lock (see [`crate::object_lock`]) a pack is
//! written locked: until the writer's snapshot date ([`BlobWriter::with_lock_until`]),
//! or, for voice data stored inside [`BlobWriter::with_expiry_day`], until
//! the start of its recordings' expiry day, or, for a copy a repack makes
//! ([`BlobWriter::store_copy`]), until the date its old pack was locked to.
//! Open packs are grouped by that date (and tenant, and kind): voice data
//! packs hold one (tenant, expiry day) each, so no recording is held locked
//! past its expiry by a neighbour, and a repack never lengthens a lock. The
//! index files a writer writes on the way (every so many packs, at
//! checkpoints) are locked like its packs without an expiry day.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::budget::FRESH_BLOBS;
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::compress::{self, pays, Dictionary, Trainer, DICTIONARY_BLOBS_UP_TO};
use crate::repo::index::IndexedPack;
use crate::repo::keys::DataKey;
use crate::repo::lookup::BlobLookup;
use crate::repo::pack::{BlobKind, BlobRef, Compression, PackBuilder};
use crate::repo::Repository;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

/// Target size of a pack: a few MiB, so small files cost few PUT requests and
/// a pack is still cheap to rewrite. 8 MiB rather than 16: each pack in flight
/// is a buffer, and 8 MiB kept peak memory below restic's on the benchmark.
pub const PACK_TARGET: usize = 8 << 20;
/// Whether to try compressing a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compress {
    /// Compress when it saves at least 10 % (judged on a sample for big blobs).
    Try,
    /// Store as is (known incompressible).
    Never,
}

thread_local! {
    /// The expiry day of the data blobs this thread stores now (see
    /// [`BlobWriter::with_expiry_day`]).
    static EXPIRY_DAY: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
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

/// Open packs per kind (data, trees). Each tenant fills its own pack, so a
/// snapshot that goes from tenant to tenant has several open at once; each
/// open data pack is a buffer of up to 8 MiB, so their number bounds the
/// writer's memory. When another tenant needs a pack and this many are
/// open, the fullest one is written out first.
const MAX_OPEN_PACKS: usize = 4;

/// Shared sink for the blobs of one operation.
pub struct BlobWriter<'r> {
    repo: &'r Repository,
    /// When a tenant key created by this writer is recorded as created.
    now: DateTime<Utc>,
    /// Where the repository held each blob when the writer started.
    repository: BlobLookup,
    /// This run's blobs and the forgotten ids.
    fresh: Mutex<Fresh>,
    /// Keys of the tenants seen so far (the shared key is `repo`'s).
    tenants: Mutex<HashMap<String, TenantKey>>,
    /// The tenants' compression dictionaries of this run.
    trainer: Trainer,
    /// Open packs with the lock date they group (voice data, repack
    /// copies; `None`: the writer's `lock_until`).
    data_packs: Mutex<Vec<(Lock, PackBuilder)>>,
    tree_packs: Mutex<Vec<(Lock, PackBuilder)>>,
    /// Object Lock date of packs without an expiry day.
    lock_until: Option<DateTime<Utc>>,
    written: Arc<Written>,
    added: AtomicU64,
    /// Blobs stored by this writer (new ones only).
    blobs_added: AtomicU64,
    cancel: Option<Cancel>,
    /// Background uploads, for remote stores where a PUT waits on the network.
    uploader: Option<Uploader>,
    /// When to index the packs written so far ([`BlobWriter::with_checkpoints`]).
    checkpoints: Option<Mutex<Checkpoints>>,
}

/// A long snapshot indexes the packs it has written every
/// [`CHECKPOINT_EVERY`] or [`CHECKPOINT_BYTES`], whichever comes first, so
/// that after a crash the next run finds them in an index file rather than
/// reading every unindexed pack's header (which it also does, so the loss is
/// bounded either way by the packs in flight).
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// See [`CHECKPOINT_EVERY`].
pub const CHECKPOINT_BYTES: u64 = 8 << 30;

struct Checkpoints {
    bytes: u64,
    last: std::time::Instant,
    added_at_last: u64,
}

/// Uploads packs on a few threads while the workers go on filling the next
/// ones. The queue is bounded, so memory stays bounded: at most
/// `UPLOAD_QUEUE` packs wait and `UPLOAD_THREADS` are in flight.
struct Uploader {
    queue: Option<mpsc::SyncSender<(Bytes, IndexedPack, Lock)>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    failure: Arc<Mutex<Option<Error>>>,
    failed: Arc<AtomicBool>,
}

const UPLOAD_THREADS: usize = 4;
const UPLOAD_QUEUE: usize = 2;

impl Uploader {
    fn start(repo: Repository, written: Arc<Written>) -> Self {
        let (queue, jobs) = mpsc::sync_channel::<(Bytes, IndexedPack, Lock)>(UPLOAD_QUEUE);
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
                    let Ok((bytes, pack, until)) = job else { break };
                    if failed.load(Ordering::SeqCst) {
                        continue; // drain: the snapshot is failing anyway
                    }
                    match repo
                        .put_pack(&pack.id, bytes, until)
                        .and_then(|()| written.push(&repo, pack))
                    {
                        Ok(()) => {}
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

    fn send(&self, bytes: Bytes, pack: IndexedPack, until: Lock) -> Result<()> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        let queue = self.queue.as_ref().expect("uploader is open");
        queue
            .send((bytes, pack, until))
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

/// The Object Lock date of a pack, if any.
type Lock = Option<DateTime<Utc>>;

/// The blobs this writer stored, at most [`FRESH_BLOBS`] (past that the map
/// starts over: a later copy of a forgotten one is stored again, a
/// duplicate, never a wrong reference), and the ids [`BlobWriter::forget`]
/// was told are damaged in the repository.
#[derive(Default)]
struct Fresh {
    blobs: HashMap<ObjectId, BlobRef>,
    forgotten: HashSet<ObjectId>,
}

impl Fresh {
    fn remember(&mut self, blob: BlobRef) {
        if self.blobs.len() >= FRESH_BLOBS {
            self.blobs = HashMap::new();
        }
        self.blobs.insert(blob.id, blob);
    }
}

/// The packs written and not yet listed in an index file. With
/// `every` > 0 they are listed in an index file of their own as soon as
/// that many are written, or they list [`crate::budget::INDEX_EVERY_BLOBS`]
/// blobs (each pack after it is stored, so an index file
/// only ever names packs that exist): a long snapshot then keeps at most
/// `every` packs' blob lists in memory, and one that is interrupted leaves
/// most of its packs indexed, ready for the next run to deduplicate against.
#[derive(Default)]
struct Written {
    packs: Mutex<Vec<IndexedPack>>,
    every: AtomicUsize,
    /// The manifest stem of the snapshot this writer works for, recorded in
    /// every index file it writes ([`crate::repo::index::IndexFile::run`]).
    run: std::sync::OnceLock<String>,
    /// The Object Lock date of the index files (the writer's `lock_until`).
    lock_until: Mutex<Lock>,
}

impl Written {
    fn push(&self, repo: &Repository, pack: IndexedPack) -> Result<()> {
        let every = self.every.load(Ordering::Relaxed);
        let batch = {
            let mut packs = self.packs.lock().unwrap();
            packs.push(pack);
            let blobs: usize = packs.iter().map(|p| p.blobs.len()).sum();
            if every == 0 || (packs.len() < every && blobs < crate::budget::INDEX_EVERY_BLOBS) {
                return Ok(());
            }
            std::mem::take(&mut *packs)
        };
        self.index(repo, batch)
    }

    /// Write an index file listing `packs`, tagged with the run and locked
    /// like the writer's packs.
    fn index(&self, repo: &Repository, packs: Vec<IndexedPack>) -> Result<()> {
        let until = *self.lock_until.lock().unwrap_or_else(|e| e.into_inner());
        repo.write_index_file_for(packs, until, self.run.get().map(String::as_str))
            .map(drop)
    }
}

/// A tenant's name (shared by every reference to its blobs) and key.
type TenantKey = (Arc<str>, Arc<DataKey>);

/// One blob on its way into a pack: content id, stored form, and what the
/// pack header records about it.
struct Blob<'a> {
    id: ObjectId,
    kind: BlobKind,
    stored: &'a [u8],
    raw_length: usize,
    compression: Compression,
    /// The dictionary it is compressed with ([`Compression::ZstdDict`]).
    dictionary: Option<Arc<Dictionary>>,
}

/// A blob's stored form as the compression step chose it (`None`: as is).
struct Packed {
    bytes: Option<Vec<u8>>,
    compression: Compression,
    dictionary: Option<Arc<Dictionary>>,
}

impl Packed {
    const AS_IS: Packed = Packed {
        bytes: None,
        compression: Compression::None,
        dictionary: None,
    };

    fn blob<'a>(&'a self, id: ObjectId, kind: BlobKind, raw: &'a [u8]) -> Blob<'a> {
        Blob {
            id,
            kind,
            stored: self.bytes.as_deref().unwrap_or(raw),
            raw_length: raw.len(),
            compression: self.compression,
            dictionary: self.dictionary.clone(),
        }
    }
}

impl<'r> BlobWriter<'r> {
    /// Forget that the repository holds `id` (its stored copy is damaged),
    /// so the next `store` of that content writes it again.
    pub fn forget(&self, id: &ObjectId) {
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        fresh.blobs.remove(id);
        fresh.forgotten.insert(*id);
    }

    /// A writer that deduplicates within its own run (see
    /// [`with_lookup`](Self::with_lookup) for the repository's blobs); a
    /// tenant key it has to create is recorded as created at `now`.
    pub fn new(repo: &'r Repository, now: DateTime<Utc>) -> Self {
        BlobWriter {
            repo,
            now,
            repository: BlobLookup::default(),
            fresh: Mutex::default(),
            tenants: Mutex::default(),
            trainer: Trainer::default(),
            data_packs: Mutex::default(),
            tree_packs: Mutex::default(),
            lock_until: None,
            written: Arc::default(),
            added: AtomicU64::new(0),
            blobs_added: AtomicU64::new(0),
            cancel: None,
            uploader: None,
            checkpoints: None,
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

    /// Write an index file for every `packs` packs written, rather than
    /// return them all from [`finish`](Self::finish) (which then returns
    /// the rest). For snapshots: their packs need no other bookkeeping.
    pub fn with_index_every(self, packs: usize) -> Self {
        self.written.every.store(packs, Ordering::Relaxed);
        self
    }

    /// Deduplicate against the repository's blobs as `lookup` holds them.
    pub fn with_lookup(mut self, lookup: BlobLookup) -> Self {
        self.repository = lookup;
        self
    }

    /// Stop storing (with `Error::Cancelled`) once `cancel` is set: checked
    /// before every blob, so a snapshot stops within one chunk.
    pub fn with_cancel(mut self, cancel: &Cancel) -> Self {
        self.cancel = Some(cancel.clone());
        self
    }

    /// Index the packs written so far every [`CHECKPOINT_EVERY`] or `bytes`
    /// stored ([`CHECKPOINT_BYTES`] in a snapshot), whichever comes first.
    pub fn with_checkpoints(mut self, bytes: u64) -> Self {
        self.checkpoints = Some(Mutex::new(Checkpoints {
            bytes,
            last: std::time::Instant::now(),
            added_at_last: 0,
        }));
        self
    }

    /// Write an index file for the packs written (uploaded) since the last
    /// one, if a checkpoint is due. [`BlobWriter::finish`] then returns only
    /// the packs written after it.
    fn checkpoint_if_due(&self) -> Result<()> {
        let Some(checkpoints) = &self.checkpoints else {
            return Ok(());
        };
        let mut due = checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        let added = self.bytes_added();
        if added.saturating_sub(due.added_at_last) < due.bytes
            && due.last.elapsed() < CHECKPOINT_EVERY
        {
            return Ok(());
        }
        let packs = std::mem::take(&mut *self.written.packs.lock().unwrap());
        if !packs.is_empty() {
            self.written.index(self.repo, packs)?;
            tracing::info!(bytes_added = added, "checkpoint: packs so far indexed");
        }
        due.last = std::time::Instant::now();
        due.added_at_last = added;
        Ok(())
    }

    /// Tag every index file this writer writes with `stem`, the manifest
    /// stem of the snapshot it works for, so prune can tell the packs of a
    /// snapshot that never finished ([`crate::ops::sweep`]'s resume grace).
    pub fn with_run(self, stem: String) -> Self {
        let _ = self.written.run.set(stem);
        self
    }

    /// The manifest stem it tags index files with ([`Self::with_run`]).
    pub fn run(&self) -> Option<String> {
        self.written.run.get().cloned()
    }

    /// Lock the packs and index files this writer writes until `until` (on
    /// a repository with Object Lock; voice data stored with an expiry day
    /// and repack copies excepted).
    pub fn with_lock_until(mut self, until: Lock) -> Self {
        self.lock_until = until;
        *self
            .written
            .lock_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = until;
        self
    }

    /// The lock date of this writer's packs and index files (see
    /// [`BlobWriter::with_lock_until`]), for an index file its caller writes.
    pub fn lock_until(&self) -> Lock {
        self.lock_until
    }

    /// Run `f` with the data blobs this thread stores going to packs of
    /// recordings expiring on `day` (see [`crate::object_lock::expiry_day`]).
    pub fn with_expiry_day<R>(&self, day: Option<i64>, f: impl FnOnce() -> R) -> R {
        let before = EXPIRY_DAY.replace(day);
        let out = f();
        EXPIRY_DAY.set(before);
        out
    }

    /// Bytes stored by this writer so far (new blobs, as stored).
    pub fn bytes_added(&self) -> u64 {
        self.added.load(Ordering::Relaxed)
    }

    /// Blobs stored by this writer so far (new ones only).
    pub fn blobs_added(&self) -> u64 {
        self.blobs_added.load(Ordering::Relaxed)
    }

    /// Where the repository (or this run) holds the blob `id`, if anywhere.
    pub fn locate(&self, id: &ObjectId) -> Option<BlobRef> {
        {
            let fresh = self.fresh.lock().unwrap();
            if let Some(found) = fresh.blobs.get(id) {
                return Some(found.clone());
            }
            if fresh.forgotten.contains(id) {
                return None;
            }
        }
        self.repository.locate(id)
    }

    /// Whether `chunk` may be referenced as it is: its pack is one the
    /// repository lookup trusts and its id was not forgotten.
    pub fn trusts(&self, chunk: &BlobRef) -> bool {
        self.repository.holds_pack(&chunk.pack)
            && !self.fresh.lock().unwrap().forgotten.contains(&chunk.id)
    }

    /// The key of `tenant` (created on first use), once per tenant.
    fn key_for(&self, tenant: Option<&str>) -> Result<(Option<Arc<str>>, Arc<DataKey>)> {
        let Some(name) = tenant else {
            return Ok((None, self.repo.keys().shared().clone()));
        };
        if let Some((n, k)) = self.tenants.lock().unwrap().get(name) {
            return Ok((Some(n.clone()), k.clone()));
        }
        let key = self.repo.data_key_for_writing(Some(name), self.now)?;
        let shared: Arc<str> = name.into();
        self.tenants
            .lock()
            .unwrap()
            .insert(name.to_string(), (shared.clone(), key.clone()));
        Ok((Some(shared), key))
    }

    /// Store one blob of `tenant` (or find it stored already); returns where
    /// it lives.
    pub fn store(
        &self,
        tenant: Option<&str>,
        kind: BlobKind,
        raw: &[u8],
        mode: Compress,
    ) -> Result<BlobRef> {
        if let Some(cancel) = &self.cancel {
            cancel.check()?;
        }
        let (tenant, key) = self.key_for(tenant)?;
        let id = key.id_of(raw);
        if let Some(found) = self.locate(&id) {
            return Ok(found);
        }
        let packed = self.compressed(&tenant, kind, raw, mode);
        let group = match kind {
            BlobKind::Data => EXPIRY_DAY.get().map(crate::object_lock::voice_until),
            BlobKind::Tree => None,
        };
        self.append(tenant, &key, packed.blob(id, kind, raw), group, true)
    }

    /// The compression step (see [`crate::repo::compress`]): as is, zstd,
    /// or zstd with the tenant's dictionary; small compressible data blobs
    /// stored before the dictionary is trained are its samples.
    fn compressed(
        &self,
        tenant: &Option<Arc<str>>,
        kind: BlobKind,
        raw: &[u8],
        mode: Compress,
    ) -> Packed {
        if mode == Compress::Never || !compress::worth_trying(raw) {
            return Packed::AS_IS;
        }
        let small_data = kind == BlobKind::Data && raw.len() <= DICTIONARY_BLOBS_UP_TO;
        if let Some(dictionary) = self.trainer.dictionary(tenant).filter(|_| small_data) {
            let bytes = compress::with_dictionary(&dictionary, raw);
            if !pays(raw.len(), bytes.len()) {
                return Packed::AS_IS;
            }
            return Packed {
                bytes: Some(bytes),
                compression: Compression::ZstdDict,
                dictionary: Some(dictionary),
            };
        }
        let bytes = compress::plain(raw);
        if !pays(raw.len(), bytes.len()) {
            return Packed::AS_IS;
        }
        if small_data {
            self.trainer.offer(tenant, raw);
        }
        Packed {
            bytes: Some(bytes),
            compression: Compression::Zstd,
            dictionary: None,
        }
    }

    /// Store a blob read out of another pack and verified by the caller
    /// (its content `raw`, and its decrypted `stored` form when at hand),
    /// sealed again into a pack of the same tenant: as it was stored, not
    /// compressed again, unless it needs its old pack's dictionary (or
    /// `stored` is not given), then compressed like a new blob; in a pack
    /// locked until `until` (simulated time; `None`: the writer's own lock),
    /// shared only with blobs of the same date.
    pub fn store_copy(
        &self,
        kind: BlobKind,
        blob: &BlobRef,
        stored: Option<&[u8]>,
        raw: &[u8],
        until: Lock,
    ) -> Result<BlobRef> {
        let (tenant, key) = self.key_for(blob.tenant.as_deref())?;
        let packed = match stored {
            Some(stored) if blob.compression != Compression::ZstdDict => Packed {
                bytes: Some(stored.to_vec()),
                compression: blob.compression,
                dictionary: None,
            },
            _ => self.compressed(&tenant, kind, raw, Compress::Try),
        };
        self.append(tenant, &key, packed.blob(blob.id, kind, raw), until, false)
    }

    /// Seal `blob` into the open pack of (`tenant`, kind, lock `group`),
    /// opening one (and writing out the fullest when [`MAX_OPEN_PACKS`] are
    /// open) or closing a pack that would pass the target first. With
    /// `dedup`, a blob some other thread stored meanwhile is not stored twice.
    fn append(
        &self,
        tenant: Option<Arc<str>>,
        key: &DataKey,
        blob: Blob<'_>,
        group: Lock,
        dedup: bool,
    ) -> Result<BlobRef> {
        let slot = match blob.kind {
            BlobKind::Data => &self.data_packs,
            BlobKind::Tree => &self.tree_packs,
        };
        // A new pack of client data starts with the tenant's dictionary
        // once there is one, so it need not be closed early for it.
        let fresh = |tenant: Option<Arc<str>>| {
            let buf = match blob.kind {
                BlobKind::Data => take_buffer(),
                BlobKind::Tree => Vec::with_capacity(1 << 20),
            };
            let dictionary = blob.dictionary.clone().or_else(|| {
                (blob.kind == BlobKind::Data && group.is_none())
                    .then(|| self.trainer.dictionary(&tenant))
                    .flatten()
            });
            PackBuilder::new(buf, tenant, key, dictionary.as_deref())
        };
        let (location, full) = {
            let mut packs = slot.lock().unwrap();
            let mut run = self.fresh.lock().unwrap();
            if dedup {
                if let Some(found) = run.blobs.get(&blob.id) {
                    return Ok(found.clone());
                }
            }
            let mut full = None;
            let at = packs
                .iter()
                .position(|(g, p)| *g == group && p.tenant() == tenant.as_deref());
            let at = match at {
                Some(at) => {
                    // Close the pack before it would pass the target, so its
                    // buffer never grows, or when it lacks the blob's dictionary.
                    let pack = &mut packs[at];
                    let wrong_dictionary = blob
                        .dictionary
                        .as_ref()
                        .is_some_and(|d| pack.1.dictionary() != Some(d.serial));
                    let too_full = pack.1.len() + blob.stored.len() > PACK_TARGET;
                    if !pack.1.is_empty() && (too_full || wrong_dictionary) {
                        full = Some((group, std::mem::replace(&mut pack.1, fresh(tenant.clone()))));
                    } else if wrong_dictionary {
                        pack.1 = fresh(tenant.clone());
                    }
                    at
                }
                None => {
                    if packs.len() >= MAX_OPEN_PACKS {
                        let fullest = (0..packs.len()).max_by_key(|&i| packs[i].1.len());
                        full = fullest.map(|i| packs.swap_remove(i));
                    }
                    packs.push((group, fresh(tenant.clone())));
                    packs.len() - 1
                }
            };
            let location = packs[at].1.add(
                blob.id,
                blob.kind,
                blob.stored,
                blob.raw_length,
                blob.compression,
            );
            run.remember(location.clone());
            drop(run);
            self.added
                .fetch_add(location.length as u64, Ordering::Relaxed);
            self.blobs_added.fetch_add(1, Ordering::Relaxed);
            (location, full)
        };
        if let Some((group, pack)) = full {
            self.write_pack(pack, group)?;
        }
        Ok(location)
    }

    /// Write out a pack, locked until its `group`'s date when it has one.
    fn write_pack(&self, pack: PackBuilder, group: Lock) -> Result<()> {
        let until = group.or(self.lock_until);
        let (id, bytes, header) = pack.finish(self.repo.keys().meta());
        let size = bytes.len() as u64;
        let (bytes, pack) = (
            Bytes::from_owner(RecycledBuffer(bytes)),
            IndexedPack {
                id,
                size,
                tenant: header.tenant,
                blobs: header.blobs,
            },
        );
        if let Some(uploader) = &self.uploader {
            uploader.send(bytes, pack, until)?;
        } else {
            self.repo.put_pack(&pack.id, bytes, until)?;
            self.written.push(self.repo, pack)?;
        }
        crate::failpoint::pause_if_armed("pack-written");
        self.checkpoint_if_due()
    }

    /// Write the packs still open; returns every pack this writer wrote
    /// (since its last checkpoint).
    pub fn finish(mut self) -> Result<Vec<IndexedPack>> {
        for slot in [&self.data_packs, &self.tree_packs] {
            let open = std::mem::take(&mut *slot.lock().unwrap());
            for (group, pack) in open.into_iter().filter(|(_, p)| !p.is_empty()) {
                self.write_pack(pack, group)?;
            }
        }
        if let Some(uploader) = self.uploader.take() {
            uploader.finish()?;
        }
        let written = std::mem::take(&mut *self.written.packs.lock().unwrap());
        Ok(written)
    }
}

#[cfg(test)]
mod tests;
