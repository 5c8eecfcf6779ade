//! The repository's keys: a master key per epoch, and the data keys it wraps.
//!
//! ```text
//!  master key M_e (key file / systemd credential / passphrase envelope)
//!      └─ wraps ─▶ keys/tenants/<e>/<tag>: the metadata key, the shared key, one key per tenant
//!  keys/epoch/<e>: sealed under M_e — proves M_e opens this repository (the commit point of an epoch)
//!  keys/link/<e>:  M_e sealed under M_{e-1} — how a host holding the old key follows a rotation
//! ```
//!
//! * The **metadata key** seals pack headers, index files, manifests, locks
//!   and activity-log entries, and keys the tags that hide host and source
//!   names in object keys.
//! * The **shared key** encrypts blobs of items without a tenant (and the
//!   directories above the tenants).
//! * A **tenant key** encrypts that tenant's blobs, and its blob ids are
//!   HMACs under it: equal content in two tenants gives two unrelated blobs.
//!
//! Data keys are random, not derived from M, so rotating M (crypto-erasure,
//! see `crate::ops::erase`) rewrites only the small wrap objects. A tenant's
//! wrap is created on first use with a create-only write under a tag that
//! only M_e can compute, so two hosts racing agree on one key. An erased
//! tenant's wrap is replaced by a tombstone saying when and why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, SealingKey, Secret};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::store::Store;

const KEYS: &str = "keys";

/// The master key of one epoch, as a key file holds it.
#[derive(Clone, Debug)]
pub struct MasterKey {
    pub secret: Secret,
    pub epoch: u64,
}

impl MasterKey {
    /// A fresh master key for a new repository (epoch 1).
    pub fn generate() -> Self {
        MasterKey {
            secret: Secret::random(),
            epoch: 1,
        }
    }
}

/// One data key: encrypts blobs and names them.
pub struct DataKey {
    enc: Secret,
    id: aws_lc_rs::hmac::Key,
    /// The key's stable number, written in pack headers and the index.
    pub key_id: [u8; 16],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", hex::encode(self.key_id))
    }
}

impl DataKey {
    /// The data key whose secret is `secret` (a fixed one in tests and fuzz targets).
    pub fn from_secret(secret: &Secret) -> Self {
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&secret.derive(b"", b"offsite2/key-id").expose()[..16]);
        DataKey {
            enc: secret.derive(b"", b"offsite2/enc"),
            id: secret.derive(b"", b"offsite2/id").hmac_key(),
            key_id,
        }
    }

    /// The keyed id of a blob's content: HMAC-SHA-256 under this key.
    pub fn id_of(&self, content: &[u8]) -> ObjectId {
        ObjectId(crypto::hmac_id(&self.id, content))
    }

    /// The AES-GCM key of one pack's blobs (nonce: the blob's offset).
    pub fn pack_key(&self, pack: &ObjectId) -> SealingKey {
        SealingKey::new(&self.enc.derive(&pack.0, b"offsite2/pack"))
    }

    /// Seal a whole object for `purpose` (fresh random salt).
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        self.seal_bound(purpose, b"", plaintext)
    }

    /// Open what [`DataKey::seal`] made; `key` names the object in the error.
    pub fn open(&self, purpose: &str, key: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        self.open_bound(purpose, b"", key, sealed)
    }

    /// Seal a whole object for `purpose`, bound to `context` (say, the id
    /// of the pack a header belongs to: moved elsewhere, it fails to open).
    pub fn seal_bound(&self, purpose: &str, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        crypto::seal(&self.enc, purpose.as_bytes(), context, plaintext)
    }

    /// Open what [`DataKey::seal_bound`] made with the same purpose and context.
    pub fn open_bound(
        &self,
        purpose: &str,
        context: &[u8],
        key: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        crypto::open(&self.enc, purpose.as_bytes(), context, sealed).ok_or_else(|| {
            Error::corrupt(
                key,
                "does not authenticate (changed, damaged, or sealed under another key)",
            )
        })
    }

    /// A tag that names `value` in an object key without revealing it.
    pub fn tag(&self, value: &str) -> String {
        hex::encode(&self.id_of(value.as_bytes()).0[..16])
    }
}

/// A tenant's key, or the fact that it was erased.
#[derive(Clone, Debug)]
pub enum TenantKey {
    Live(Arc<DataKey>),
    Erased { at: DateTime<Utc>, reason: String },
}

/// What a wrap object holds (sealed under the epoch's master key).
#[derive(Serialize, Deserialize, Clone)]
#[serde(tag = "state", rename_all = "lowercase")]
pub(crate) enum Wrap {
    Live {
        name: String,
        key: String,
        created: DateTime<Utc>,
    },
    Erased {
        name: String,
        erased_at: DateTime<Utc>,
        reason: String,
    },
}

impl std::fmt::Debug for Wrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wrap::Live { name, .. } => write!(f, "Live({name:?}, [redacted])"),
            Wrap::Erased { name, .. } => write!(f, "Erased({name:?})"),
        }
    }
}

/// What `keys/epoch/<e>` holds.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct EpochRecord {
    pub repository: ObjectId,
    pub epoch: u64,
    pub created: DateTime<Utc>,
    pub reason: String,
}

/// The names of the two keys that belong to no tenant; tenant names are
/// tagged in another namespace, so no tenant can be called either.
const META: &str = "meta";
const SHARED: &str = "shared";

/// The keys of an open repository.
#[derive(Debug)]
pub struct Keys {
    repository: ObjectId,
    /// Replaced when another process rotates it ([`Keys::follow`]).
    master: RwLock<MasterKey>,
    meta: Arc<DataKey>,
    shared: Arc<DataKey>,
    tenants: Mutex<HashMap<String, TenantKey>>,
}

/// `keys/epoch/<e:010>`.
pub(crate) fn epoch_key(epoch: u64) -> String {
    format!("{KEYS}/epoch/{epoch:010}")
}

/// `keys/link/<e:010>`: M_e sealed under M_{e-1}.
pub(crate) fn link_key(epoch: u64) -> String {
    format!("{KEYS}/link/{epoch:010}")
}

/// The listing prefix of epoch `e`'s wraps.
pub(crate) fn wraps_prefix(epoch: u64) -> String {
    format!("{KEYS}/tenants/{epoch:010}/")
}

fn master_purpose(what: &str) -> String {
    format!("offsite2/master/{what}")
}

impl MasterKey {
    fn tag_of(&self, namespace: &str, name: &str) -> String {
        let tag_key = self.secret.derive(b"", b"offsite2/wrap-tag");
        let mut input = namespace.as_bytes().to_vec();
        input.push(0);
        input.extend_from_slice(name.as_bytes());
        hex::encode(&tag_key.keyed_id(&input)[..16])
    }

    pub(crate) fn wrap_key(&self, namespace: &str, name: &str) -> String {
        format!(
            "{}{}",
            wraps_prefix(self.epoch),
            self.tag_of(namespace, name)
        )
    }

    pub(crate) fn seal_json<T: Serialize>(&self, what: &str, value: &T) -> Bytes {
        let json = serde_json::to_vec(value).expect("key records serialize");
        Bytes::from(crypto::seal(
            &self.secret,
            master_purpose(what).as_bytes(),
            b"",
            &json,
        ))
    }

    pub(crate) fn open_json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Option<T>> {
        let Some(json) = crypto::open(&self.secret, master_purpose(what).as_bytes(), b"", sealed)
        else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| Error::corrupt_by(key, "does not parse", e))
    }
}

fn new_wrap(name: &str, secret: &Secret, now: DateTime<Utc>) -> Wrap {
    Wrap::Live {
        name: name.to_string(),
        key: hex::encode(secret.expose()),
        created: now,
    }
}

fn secret_of(key: &str, hex_key: &str) -> Result<Secret> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut bytes)
        .map_err(|_| Error::corrupt(key, "wrapped key is not 32 bytes of hex"))?;
    Ok(Secret::from_bytes(bytes))
}

impl Keys {
    /// Write the keys of a new repository (epoch 1) and return them. The
    /// epoch record is written last, create-only: it is what makes the key
    /// usable, and a second `init` over the same bucket fails on it.
    pub(crate) fn create(
        store: &Store,
        repository: ObjectId,
        master: &MasterKey,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let meta = Secret::random();
        let shared = Secret::random();
        for (ns, secret) in [(META, &meta), (SHARED, &shared)] {
            let wrap = new_wrap(ns, secret, now);
            store.put_new(&master.wrap_key("key", ns), master.seal_json("wrap", &wrap))?;
        }
        let record = EpochRecord {
            repository,
            epoch: master.epoch,
            created: now,
            reason: "init".into(),
        };
        store.put_new(&epoch_key(master.epoch), master.seal_json("epoch", &record))?;
        Ok(Keys {
            repository,
            master: RwLock::new(master.clone()),
            meta: Arc::new(DataKey::from_secret(&meta)),
            shared: Arc::new(DataKey::from_secret(&shared)),
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// Open the keys of `repository` with `master`. Fails with one clear
    /// line when the key does not open this repository; follows forward
    /// links when the repository has moved to a newer epoch (the caller
    /// should then store [`Keys::master`] in place of the old key).
    pub(crate) fn open(store: &Store, repository: ObjectId, master: &MasterKey) -> Result<Self> {
        let newest = newest_epoch(store)?;
        if master.epoch > newest {
            return Err(Error::Key(format!(
                "the key is of epoch {} but the repository's newest is {newest}: \
                 was the bucket rolled back? (nothing was changed)",
                master.epoch
            )));
        }
        let mut current = master.clone();
        verify_epoch(store, repository, &current)?;
        while current.epoch < newest {
            current = follow_link(store, &current)?;
            verify_epoch(store, repository, &current)?;
        }
        let meta = load_fixed(store, &current, META)?;
        let shared = load_fixed(store, &current, SHARED)?;
        Ok(Keys {
            repository,
            master: RwLock::new(current),
            meta: Arc::new(DataKey::from_secret(&meta)),
            shared: Arc::new(DataKey::from_secret(&shared)),
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// The master key in use (newer than the one opened with after a rotation).
    pub fn master(&self) -> MasterKey {
        self.master
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Use `master`, a newer epoch's key that opened its epoch record
    /// (see `crate::repo::rotate`): tenant keys are read again (an erased
    /// one is now a tombstone); the metadata and shared keys are carried
    /// over unchanged by a rotation.
    pub(crate) fn adopt(&self, master: MasterKey) {
        *self.master.write().unwrap_or_else(|e| e.into_inner()) = master;
        self.tenants.lock().unwrap().clear();
    }

    /// The repository these keys belong to.
    pub fn repository(&self) -> ObjectId {
        self.repository
    }

    /// The metadata key.
    pub fn meta(&self) -> &Arc<DataKey> {
        &self.meta
    }

    /// The key of items without a tenant.
    pub fn shared(&self) -> &Arc<DataKey> {
        &self.shared
    }

    /// The key of `tenant` for reading: an unknown tenant is an error (a
    /// tree naming a tenant the repository never had is corrupt), an erased
    /// one says so.
    pub(crate) fn tenant(&self, store: &Store, tenant: &str) -> Result<TenantKey> {
        if let Some(k) = self.tenants.lock().unwrap().get(tenant) {
            return Ok(k.clone());
        }
        let master = self.master();
        let key = master.wrap_key("tenant", tenant);
        let loaded = match store.get(&key) {
            Ok(bytes) => self.parse_wrap(&master, &key, tenant, &bytes)?,
            Err(Error::NotFound { .. }) => {
                return Err(Error::corrupt(
                    key,
                    format!(
                        "no key for tenant {}: the repository never stored it",
                        crate::escape::escaped(tenant)
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        self.tenants
            .lock()
            .unwrap()
            .insert(tenant.to_string(), loaded.clone());
        Ok(loaded)
    }

    /// The key of `tenant` for writing: created (create-only) on first use.
    pub(crate) fn tenant_for_writing(
        &self,
        store: &Store,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<TenantKey> {
        match self.tenant(store, tenant) {
            Err(Error::Corrupt { .. }) => {}
            other => return other,
        }
        let master = self.master();
        let key = master.wrap_key("tenant", tenant);
        let secret = Secret::random();
        match store.put_new(
            &key,
            master.seal_json("wrap", &new_wrap(tenant, &secret, now)),
        ) {
            Ok(()) => {}
            Err(Error::AlreadyExists { .. }) => return self.tenant(store, tenant),
            Err(e) => return Err(e),
        }
        let live = TenantKey::Live(Arc::new(DataKey::from_secret(&secret)));
        self.tenants
            .lock()
            .unwrap()
            .insert(tenant.to_string(), live.clone());
        Ok(live)
    }

    fn parse_wrap(
        &self,
        master: &MasterKey,
        key: &str,
        tenant: &str,
        bytes: &[u8],
    ) -> Result<TenantKey> {
        let wrap: Wrap = master
            .open_json("wrap", key, bytes)?
            .ok_or_else(|| Error::corrupt(key, "tenant key does not authenticate"))?;
        match wrap {
            Wrap::Live { name, key: k, .. } if name == tenant => Ok(TenantKey::Live(Arc::new(
                DataKey::from_secret(&secret_of(key, &k)?),
            ))),
            Wrap::Erased {
                name,
                erased_at,
                reason,
            } if name == tenant => Ok(TenantKey::Erased {
                at: erased_at,
                reason,
            }),
            _ => Err(Error::corrupt(
                key,
                "tenant key is filed under another name",
            )),
        }
    }
}

/// The newest epoch with a record in the repository.
pub(crate) fn newest_epoch(store: &Store) -> Result<u64> {
    let listed = store.list(&format!("{KEYS}/epoch/"))?;
    listed
        .iter()
        .filter_map(|(k, _)| k.rsplit('/').next()?.parse::<u64>().ok())
        .max()
        .ok_or_else(|| Error::NotFound {
            what: "the repository's key records (keys/epoch/): it was not initialised completely"
                .into(),
        })
}

pub(crate) fn verify_epoch(store: &Store, repository: ObjectId, master: &MasterKey) -> Result<()> {
    let key = epoch_key(master.epoch);
    let bytes = store.get(&key)?;
    match master.open_json::<EpochRecord>("epoch", &key, &bytes)? {
        Some(r) if r.repository == repository && r.epoch == master.epoch => Ok(()),
        Some(_) => Err(Error::corrupt(key, "epoch record is of another repository")),
        // The record does not open: a wrong key, or a damaged record. The
        // metadata key's wrap tells them apart (it opens with the right key).
        None if load_fixed(store, master, META).is_ok() => Err(Error::corrupt(
            key,
            "epoch record does not authenticate under a key that opens the rest",
        )),
        None => Err(Error::Key(
            "the key does not open this repository (wrong key file or passphrase; nothing was changed)"
                .into(),
        )),
    }
}

pub(crate) fn follow_link(store: &Store, from: &MasterKey) -> Result<MasterKey> {
    let next = from.epoch + 1;
    let key = link_key(next);
    let bytes = store.get(&key)?;
    let hex_key: String = from
        .open_json("link", &key, &bytes)?
        .ok_or_else(|| Error::corrupt(&key, "forward link does not authenticate"))?;
    Ok(MasterKey {
        secret: secret_of(&key, &hex_key)?,
        epoch: next,
    })
}

fn load_fixed(store: &Store, master: &MasterKey, name: &str) -> Result<Secret> {
    let key = master.wrap_key("key", name);
    let bytes = store.get(&key)?;
    match master.open_json::<Wrap>("wrap", &key, &bytes)? {
        Some(Wrap::Live {
            name: n, key: k, ..
        }) if n == name => secret_of(&key, &k),
        _ => Err(Error::corrupt(key, "repository key does not authenticate")),
    }
}
