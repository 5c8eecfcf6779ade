//! The repository: format, commit order, and the one door to storage.
//!
//! [`Repository`] is the only way in: operations call its typed methods
//! (packs, index files, manifests, activity-log entries, locks) with ids and
//! get typed values back; they never see an object key or the [`store`]
//! beneath. Every key is spelled in one file, [`layout`]. Operations that
//! need the repository lock take a guard ([`Shared`], [`Exclusive`]) instead
//! of a bare `&Repository`, so forgetting the lock does not compile.
//!
//! # Layout of this module
//!
//! * [`layout`]: object keys, built and parsed; [`store`]: the object store
//!   facade (and [`s3`] for S3 buckets); [`lock`] and the guards in
//!   [`locked`]: the repository lock.
//! * Formats: [`pack`] (packs), [`index`] (index files); typed access in
//!   [`blobs`] (blobs and trees), [`packs`], [`snapshots`] (manifests),
//!   [`log`] (activity-log entries); [`writer`]: deduplicating blob writer;
//!   [`parallel`]: reading many small objects at once.
//! * Keys: [`keys`] (master key epochs, data keys), [`envelopes`]
//!   (passphrase copies of the master key) and [`rotate`] (a new epoch that
//!   erases a tenant, with its own commit order).
//!
//! # Format (version 4)
//!
//! | object (key in [`layout`]) | content | written |
//! |---|---|---|
//! | config | JSON [`RepoConfig`]: format version, repository id, encryption scheme (`none`) | once, create-only, by `init` |
//! | packs | [a zstd dictionary trained on the tenant's data, sealed like a blob, when blobs use it (see [`dictionary`])] + blobs of one tenant, each AES-256-GCM under the tenant's key (shared key when none), + header sealed under the metadata key (see [`pack`]) | by snapshot (and prune), never modified |
//! | index files | zstd JSON list of packs and their blobs (see [`index`]), sealed (metadata key); `id` = SHA-256 of the sealed bytes | after the packs it lists |
//! | snapshot manifests | JSON manifest (see [`crate::snapshot`]), sealed (metadata key, bound to its key); `id` = SHA-256 of the sealed bytes; keyed by host and source tags | last, create-only |
//! | locks | JSON holder and kind (see [`lock`]), sealed (metadata key, bound to its key) | by every writer, refreshed while held |
//! | activity log | one JSON line per operation (see [`log`]), sealed (metadata key, bound to its key); keyed by time only | after each operation |
//! | quarantined packs | a damaged pack, byte for byte | by `repair`, before it removes the pack |
//! | key objects (`keys/`) | epoch records, forward links, data-key wraps and tombstones (see [`keys`]) | `init`, a tenant's first use, `erase --tenant` ([`rotate`]: the old epoch's wraps and the passphrase envelopes are deleted after the new epoch commits) |
//! | key envelopes (`keys/envelopes/<id>`) | plaintext JSON: label, epoch, Argon2id parameters; the master key sealed under Argon2id(passphrase) (see [`envelopes`]) | by `key add`, create-only; deleted by `key remove`, and every one by `erase --tenant` (each holds the old master key) |
//!
//! With `object_lock` ([`crate::object_lock`], [`s3_lock`]) packs, index
//! files and manifests are written with an S3 Object Lock date and the bucket
//! is versioned; keys, locks, log entries and the config are never locked.
//!
//! Blobs are named by their keyed id (HMAC-SHA-256 under their tenant's key,
//! see [`keys`]) and stored once per tenant: the same content in two tenants
//! is two unrelated blobs. File content is cut by FastCDC (sizes per class of data, see
//! [`crate::chunking`]) and compressed with zstd where it pays, small data
//! blobs with a dictionary of their tenant trained once per run and carried
//! by each pack that uses it ([`compress`], [`dictionary`]). Directory trees
//! are blobs too: each directory a content-defined B-tree of binary pages, the
//! chunk list of a big file in deduplicating pieces (see [`crate::tree`]);
//! they record the pack location of every chunk, so reading one item needs
//! only the pages on its path (one per level of each directory).
//!
//! Format 1 was unencrypted; format 2 stored each directory as one JSON
//! tree blob; format 3 had no compression dictionaries (pack version 2).
//! None is read: opening one says so (exit 2) and asks for a new
//! repository.
//!
//! # Commit order and who may delete what
//!
//! | step | writer | a crash after this step leaves |
//! |---|---|---|
//! | 1. data and tree packs | snapshot | packs nobody references: garbage, collected by prune |
//! | 2. index file | snapshot | indexed but unreferenced blobs: reused by the next snapshot, or collected |
//! | 3. manifest (create-only) | snapshot | a complete snapshot |
//!
//! A manifest is only ever written after everything it references, so every
//! listed snapshot is complete. Nothing but prune deletes objects (and `key
//! remove` the one envelope it names), and it
//! never deletes because a read failed; `repair` only moves a pack whose
//! bytes do not verify to quarantine (see [`crate::ops::repair`]). `check`
//! and `restore` only read. A manifest that cannot be read is skipped and
//! reported, not fatal ([`Repository::load_snapshots_tolerant`],
//! [`crate::problems`]).

pub mod blobs;
pub mod compress;
pub mod dictionary;
pub mod envelopes;
pub mod index;
pub mod keys;
pub mod layout;
pub mod lock;
pub mod locked;
pub mod log;
pub mod lookup;
mod object_locks;
pub mod pack;
pub mod packs;
pub(crate) mod parallel;
pub mod rotate;
pub mod s3;
pub mod s3_lock;
pub mod snapshots;
pub mod spans;
pub mod store;
pub mod writer;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use store::Store;

pub use blobs::TreeCache;
pub use keys::MasterKey;
pub use locked::{Exclusive, Shared};
pub use packs::ListedPack;
pub use snapshots::{LoadedSnapshot, SnapshotListing};
pub use store::{Location, Requests};

/// Repository format version.
pub const REPO_VERSION: u32 = 4;
/// The encryption scheme of formats 2 to 4 (see [`keys`] and [`crate::crypto`]).
pub const ENCRYPTION: &str = "aes256gcm-hkdf-hmacsha256";

/// The `config` object.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RepoConfig {
    pub version: u32,
    pub id: ObjectId,
    pub created: DateTime<Utc>,
    /// Encryption scheme of packs and metadata ([`ENCRYPTION`]).
    pub encryption: String,
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Store,
    pub config: RepoConfig,
    keys: std::sync::Arc<keys::Keys>,
    /// Pack dictionaries this process loaded (see [`dictionary`]).
    dictionaries: std::sync::Arc<dictionary::Cache>,
}

impl Repository {
    /// Create a new repository, as created at `now`; refuses when one exists
    /// there already.
    /// `master` becomes the key of epoch 1: whoever holds it (or a
    /// passphrase envelope of it) can read the repository, nobody else.
    pub fn init(location: &Location, now: DateTime<Utc>, master: &MasterKey) -> Result<Self> {
        let store = Store::connect(location, true)?;
        let exists = || Error::AlreadyExists {
            what: format!("a repository already exists at {}", store.describe()),
        };
        match store.get(layout::CONFIG) {
            Err(Error::NotFound { .. }) => {}
            Ok(_) => return Err(exists()),
            Err(e) => return Err(e),
        }
        let config = RepoConfig {
            version: REPO_VERSION,
            id: ObjectId::random(),
            created: now,
            encryption: ENCRYPTION.into(),
        };
        let keys = match keys::Keys::create(&store, config.id, master, now) {
            Err(Error::AlreadyExists { .. }) => return Err(exists()),
            other => other?,
        };
        let bytes = serde_json::to_vec_pretty(&config).expect("config serializes");
        match store.put_new(layout::CONFIG, Bytes::from(bytes)) {
            Err(Error::AlreadyExists { .. }) => Err(exists()),
            other => other.map(|()| Repository {
                store,
                config,
                keys: std::sync::Arc::new(keys),
                dictionaries: std::sync::Arc::default(),
            }),
        }
    }

    /// Open an existing repository.
    /// Fails with one line ([`Error::Key`]) when `master` does not open it.
    pub fn open(location: &Location, master: &MasterKey) -> Result<Self> {
        let store = Store::connect(location, false)?;
        let bytes = store.get(layout::CONFIG).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: format!(
                    "repository at {} (run `offsite init` first)",
                    store.describe()
                ),
            },
            other => other,
        })?;
        let config: RepoConfig = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt_by(layout::CONFIG, "does not parse", e))?;
        if config.version == 1 {
            return Err(Error::Usage(format!(
                "{} holds a repository of format 1 (unencrypted, offsite 0.1); this offsite \
                 reads format {REPO_VERSION} only: init a new repository elsewhere",
                store.describe()
            )));
        }
        if config.version == 2 {
            return Err(Error::Usage(format!(
                "{} holds a repository of format 2 (JSON directory trees, offsite 0.2); this offsite \
                 reads format {REPO_VERSION} only: init a new repository elsewhere",
                store.describe()
            )));
        }
        if config.version == 3 {
            return Err(Error::Usage(format!(
                "{} holds a repository of format 3 (packs without compression dictionaries, \
                 offsite 0.3); this offsite reads format {REPO_VERSION} only: init a new \
                 repository elsewhere",
                store.describe()
            )));
        }
        if config.version != REPO_VERSION || config.encryption != ENCRYPTION {
            return Err(Error::corrupt(
                layout::CONFIG,
                format!(
                    "repository format {} ({}) is not supported (this offsite reads {REPO_VERSION}, {ENCRYPTION})",
                    config.version, config.encryption
                ),
            ));
        }
        let keys = keys::Keys::open(&store, config.id, master)?;
        Ok(Repository {
            store,
            config,
            keys: std::sync::Arc::new(keys),
            dictionaries: std::sync::Arc::default(),
        })
    }

    /// The id in the `config` object at `location`, read without a key:
    /// to say which repository a key file that does not open it is for.
    pub fn stored_id(location: &Location) -> Result<ObjectId> {
        let store = Store::connect(location, false)?;
        let bytes = store.get(layout::CONFIG).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: format!("repository at {}", store.describe()),
            },
            other => other,
        })?;
        let config: RepoConfig = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt_by(layout::CONFIG, "does not parse", e))?;
        Ok(config.id)
    }

    /// The repository's keys.
    pub fn keys(&self) -> &keys::Keys {
        &self.keys
    }

    /// The data key of `tenant` (`None`: the shared key) for reading. An
    /// erased tenant is [`Error::Erased`], never "corrupt".
    pub fn data_key(&self, tenant: Option<&str>) -> Result<std::sync::Arc<keys::DataKey>> {
        let Some(tenant) = tenant else {
            return Ok(self.keys.shared().clone());
        };
        match self.keys.tenant(&self.store, tenant)? {
            keys::TenantKey::Live(k) => Ok(k),
            keys::TenantKey::Erased { at, reason } => Err(Error::Erased {
                tenant: tenant.to_string(),
                at,
                reason,
            }),
        }
    }

    /// The data key of `tenant` for writing: created on first use.
    pub fn data_key_for_writing(
        &self,
        tenant: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<keys::DataKey>> {
        let Some(tenant) = tenant else {
            return Ok(self.keys.shared().clone());
        };
        match self.keys.tenant_for_writing(&self.store, tenant, now)? {
            keys::TenantKey::Live(k) => Ok(k),
            keys::TenantKey::Erased { at, reason } => Err(Error::Erased {
                tenant: tenant.to_string(),
                at,
                reason,
            }),
        }
    }

    /// Where the repository lives (its URL), for messages.
    pub fn describe(&self) -> &str {
        self.store.describe()
    }

    /// True for repositories across a network (S3).
    pub fn is_remote(&self) -> bool {
        self.store.is_remote()
    }

    /// The repository's Object Lock settings (`[repository] object_lock`).
    pub fn object_lock(&self) -> Option<&crate::object_lock::ObjectLock> {
        self.store.object_lock()
    }

    /// Requests sent to the store so far by this handle (and its clones).
    pub fn requests(&self) -> Requests {
        self.store.requests()
    }
}
