//! The writer's compression step: plain zstd, or zstd with a dictionary
//! trained on this run's data of the tenant.
//!
//! **When.** A blob is compressed when that saves at least 10 % (a big blob
//! is first judged on a sample, so incompressible audio costs little). Data
//! blobs of at most [`DICTIONARY_BLOBS_UP_TO`] (client-data chunks and
//! whole documents; voice chunks are larger) use the tenant's dictionary
//! once it is trained; trees never do (their bytes are ids and names, unlike
//! the documents the dictionary learnt).
//!
//! **Training** ([`Trainer`]): the first compressible data blobs of a tenant
//! in a run are kept as samples (they are stored with plain zstd meanwhile)
//! until [`TRAIN_SAMPLES`] or [`TRAIN_BYTES`] are reached; then the thread
//! that reached it trains a dictionary of [`MAX_DICTIONARY`] bytes
//! (`zstd::dict::from_samples`) while the others wait for it (blobs stored
//! meanwhile without it would be lost to it for good). Every later blob of
//! the tenant in this run uses it, and every pack holding such blobs
//! carries a copy (see [`crate::repo::dictionary`]). One dictionary per
//! tenant and run, never shared across runs: nothing to find, version or
//! collect, and a crash loses nothing but the run's own packs.
//!
//! The thresholds: ~2 000 samples is what the size study trained on
//! ([`crate::chunking`]); samples are capped in bytes so training stays a
//! small share of a snapshot (measured in the module docs of
//! [`crate::chunking`]). One tenant at a time holds samples
//! ([`SAMPLING_TENANTS`]; a snapshot walks tenant after tenant), so samples
//! cost at most `SAMPLING_TENANTS × TRAIN_BYTES` of memory (see
//! [`crate::budget`]): a tenant that needs the slot when it is taken has
//! the holder train on what it has, or drop its samples when they are too
//! few to train on.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use zstd::zstd_safe::CParameter;

use crate::repo::dictionary::MAX_DICTIONARY;

/// zstd level: 3 is zstd's default, a good trade of speed and ratio for
/// text (level 6 saved 3.5 % for a fraction of the speed, see
/// [`crate::chunking`]).
pub const ZSTD_LEVEL: i32 = 3;
/// Blobs larger than this are first judged on a sample.
const SAMPLE: usize = 64 << 10;
/// Data blobs of at most this many bytes use the tenant's dictionary (the
/// largest client-data chunk; a dictionary helps small blobs most).
pub const DICTIONARY_BLOBS_UP_TO: usize = 64 << 10;
/// Samples a dictionary is trained on at most.
pub const TRAIN_SAMPLES: usize = 2000;
/// Bytes of samples a dictionary is trained on at most.
pub const TRAIN_BYTES: usize = 2 << 20;
/// A tenant with fewer sample bytes than this gets no dictionary when it
/// loses its slot (zstd's trainer wants ~10× the dictionary's size).
const TRAIN_MIN_BYTES: usize = 10 * MAX_DICTIONARY;
/// Tenants collecting samples at once.
pub const SAMPLING_TENANTS: usize = 1;

/// A dictionary trained in this process, with a number telling it apart
/// from every other (packs are matched to dictionaries by it).
#[derive(Debug)]
pub struct Dictionary {
    pub serial: u64,
    pub bytes: Vec<u8>,
}

static SERIALS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static PLAIN: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    /// Compressors with a dictionary loaded, by its serial (a few: one per
    /// tenant this thread met lately).
    static WITH_DICTIONARY: RefCell<Vec<(u64, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(Vec::new()) };
}

/// zstd at [`ZSTD_LEVEL`] without a dictionary.
pub fn plain(raw: &[u8]) -> Vec<u8> {
    PLAIN.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = slot
            .get_or_insert_with(|| zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd context"));
        c.compress(raw).expect("zstd compresses in memory")
    })
}

/// zstd at [`ZSTD_LEVEL`] with `dictionary` (the frame does not repeat the
/// dictionary's id: the pack holds exactly one).
pub fn with_dictionary(dictionary: &Dictionary, raw: &[u8]) -> Vec<u8> {
    WITH_DICTIONARY.with(|cell| {
        let mut loaded = cell.borrow_mut();
        let at = match loaded.iter().position(|(s, _)| *s == dictionary.serial) {
            Some(at) => at,
            None => {
                if loaded.len() >= 2 {
                    loaded.remove(0);
                }
                let mut c = zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, &dictionary.bytes)
                    .expect("zstd loads a dictionary it trained");
                c.set_parameter(CParameter::DictIdFlag(false))
                    .expect("zstd parameter");
                loaded.push((dictionary.serial, c));
                loaded.len() - 1
            }
        };
        loaded[at]
            .1
            .compress(raw)
            .expect("zstd compresses in memory")
    })
}

/// Whether `packed_len` bytes for `raw_len` save at least 10 %.
pub fn pays(raw_len: usize, packed_len: usize) -> bool {
    packed_len * 10 < raw_len * 9
}

/// Whether a blob of `len` bytes is worth a full compression attempt: a
/// big one is judged on its first [`SAMPLE`] bytes.
pub fn worth_trying(raw: &[u8]) -> bool {
    raw.len() <= 2 * SAMPLE || pays(SAMPLE, plain(&raw[..SAMPLE]).len())
}

/// A tenant's dictionary, per run: being sampled, being trained, ready, or
/// not to be had.
enum State {
    Sampling { samples: Vec<Vec<u8>>, bytes: usize },
    Training,
    Ready(Arc<Dictionary>),
    None,
}

/// The tenants' dictionaries of one writer (see the module docs).
#[derive(Default)]
pub struct Trainer {
    tenants: Mutex<HashMap<Option<Arc<str>>, State>>,
    /// Signalled when a training ends.
    trained: Condvar,
}

/// Samples taken out of the trainer to train on, and for whom.
type Batch = (Option<Arc<str>>, Vec<Vec<u8>>);

impl Trainer {
    /// The dictionary of `tenant`, when it is trained. While it is being
    /// trained this waits for it (up to a second or so): every blob after
    /// the samples is then stored with it.
    pub fn dictionary(&self, tenant: &Option<Arc<str>>) -> Option<Arc<Dictionary>> {
        let mut tenants = self.lock();
        loop {
            match tenants.get(tenant) {
                Some(State::Ready(d)) => return Some(d.clone()),
                Some(State::Training) => {
                    tenants = self
                        .trained
                        .wait(tenants)
                        .unwrap_or_else(|e| e.into_inner());
                }
                _ => return None,
            }
        }
    }

    /// Keep `raw` (a compressible data blob of `tenant` stored without a
    /// dictionary) as a sample; trains on this thread when enough are kept.
    pub fn offer(&self, tenant: &Option<Arc<str>>, raw: &[u8]) {
        if raw.len() > DICTIONARY_BLOBS_UP_TO {
            return;
        }
        let mut ready = Vec::new();
        {
            let mut tenants = self.lock();
            if !tenants.contains_key(tenant) {
                let sampling = tenants
                    .values()
                    .filter(|s| matches!(s, State::Sampling { .. }))
                    .count();
                if sampling >= SAMPLING_TENANTS {
                    ready.extend(evict_fullest(&mut tenants));
                }
                tenants.insert(
                    tenant.clone(),
                    State::Sampling {
                        samples: Vec::new(),
                        bytes: 0,
                    },
                );
            }
            let state = tenants.get_mut(tenant).expect("inserted above");
            if let State::Sampling { samples, bytes } = state {
                samples.push(raw.to_vec());
                *bytes += raw.len();
                if samples.len() >= TRAIN_SAMPLES || *bytes >= TRAIN_BYTES {
                    let samples = std::mem::take(samples);
                    *state = State::Training;
                    ready.push((tenant.clone(), samples));
                }
            }
        }
        for batch in ready {
            self.train(batch);
        }
    }

    /// Train on `samples` (outside the lock) and record the outcome.
    fn train(&self, (tenant, samples): Batch) {
        let started = std::time::Instant::now();
        let bytes: usize = samples.iter().map(Vec::len).sum();
        // A panic in training must still end the `Training` state: every
        // writer thread waits on it ([`Trainer::dictionary`]).
        let trained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            zstd::dict::from_samples(&samples, MAX_DICTIONARY)
        }));
        drop(samples);
        let state = match trained {
            Ok(Ok(bytes)) => State::Ready(Arc::new(Dictionary {
                serial: SERIALS.fetch_add(1, Ordering::Relaxed),
                bytes,
            })),
            Ok(Err(e)) => {
                tracing::info!("no compression dictionary this run: {e}");
                State::None
            }
            Err(_) => {
                tracing::warn!("training the compression dictionary failed (a bug); none this run");
                State::None
            }
        };
        tracing::debug!(
            samples_bytes = bytes,
            millis = started.elapsed().as_millis() as u64,
            trained = matches!(state, State::Ready(_)),
            "compression dictionary"
        );
        self.lock().insert(tenant, state);
        self.trained.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<Arc<str>>, State>> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Free the slot of the sampling tenant holding the most bytes: its samples
/// to train on now if they are enough, else it gets no dictionary.
fn evict_fullest(tenants: &mut HashMap<Option<Arc<str>>, State>) -> Option<Batch> {
    let (tenant, state) = tenants
        .iter_mut()
        .filter_map(|(t, s)| match s {
            State::Sampling { bytes, .. } => Some((*bytes, t, s)),
            _ => None,
        })
        .max_by_key(|(bytes, _, _)| *bytes)
        .map(|(_, t, s)| (t.clone(), s))?;
    let State::Sampling { samples, bytes } = std::mem::replace(state, State::None) else {
        unreachable!("filtered above");
    };
    if bytes < TRAIN_MIN_BYTES {
        return None;
    }
    *state = State::Training;
    Some((tenant, samples))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Documents that share a vocabulary, as a tenant's chats do.
    pub(crate) fn documents(n: usize) -> Vec<Vec<u8>> {
        let words = [
            "order", "invoice", "refund", "customer", "delivery", "account", "ticket", "agent",
            "please", "thanks", "payment", "status", "waiting", "contract", "upgrade",
        ];
        (0..n)
            .map(|i| {
                let mut doc = format!("{{\"chat\":{i},\"lines\":[");
                for j in 0..40 {
                    let w = |k: usize| words[(i * 7 + j * 13 + k * 5) % words.len()];
                    doc += &format!("\"{} {} {} #{}\",", w(0), w(1), w(2), i * j % 97);
                }
                doc += "]}";
                doc.into_bytes()
            })
            .collect()
    }

    /// How many of `docs` are offered before training starts: the first
    /// count that reaches [`TRAIN_SAMPLES`] or [`TRAIN_BYTES`].
    pub(crate) fn samples_to_train(docs: &[Vec<u8>]) -> usize {
        let mut bytes = 0;
        for (i, doc) in docs.iter().enumerate() {
            bytes += doc.len();
            if i + 1 >= TRAIN_SAMPLES || bytes >= TRAIN_BYTES {
                return i + 1;
            }
        }
        docs.len() + 1
    }

    #[test]
    fn a_tenant_trains_once_enough_samples_are_kept_and_others_wait_for_the_slot() {
        let trainer = Trainer::default();
        let (a, b, c): (Option<Arc<str>>, _, _) = (Some("a".into()), Some("b".into()), None);
        let needed = samples_to_train(&documents(TRAIN_SAMPLES));
        for doc in documents(needed - 1) {
            trainer.offer(&a, &doc);
        }
        assert!(trainer.dictionary(&a).is_none(), "one sample short");
        // Another tenant needs the slot: a trains on what it has.
        trainer.offer(&b, b"one sample");
        let dictionary = trainer
            .dictionary(&a)
            .expect("a trained when it gave up the slot");
        assert!(dictionary.bytes.len() <= MAX_DICTIONARY);
        // Too few to train on: b loses the slot and gets none this run.
        trainer.offer(&c, b"another");
        for doc in documents(TRAIN_SAMPLES) {
            trainer.offer(&b, &doc);
        }
        assert!(trainer.dictionary(&b).is_none(), "b is done sampling");
        for doc in documents(TRAIN_SAMPLES) {
            trainer.offer(&c, &doc);
        }
        assert!(trainer.dictionary(&c).is_some(), "c trains on its own");
    }

    #[test]
    fn a_dictionary_shrinks_small_documents() {
        let trainer = Trainer::default();
        let tenant: Option<Arc<str>> = Some("t".into());
        let docs = documents(TRAIN_SAMPLES + 100);
        for doc in &docs[..TRAIN_SAMPLES] {
            trainer.offer(&tenant, doc);
        }
        let dictionary = trainer.dictionary(&tenant).expect("trained");
        let (plain_total, dict_total) = docs[TRAIN_SAMPLES..]
            .iter()
            .map(|d| (plain(d).len(), with_dictionary(&dictionary, d).len()))
            .fold((0, 0), |(p, q), (a, b)| (p + a, q + b));
        assert!(
            dict_total * 2 < plain_total,
            "{dict_total} with, {plain_total} without"
        );
    }
}
