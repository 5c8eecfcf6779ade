//! Passphrase envelopes: copies of the master key in the bucket, each
//! opened by a passphrase, so that a passphrase alone gets the key back
//! after every host holding the key file is lost.
//!
//! `keys/envelopes/<16 random bytes, hex>` holds plaintext JSON:
//!
//! ```text
//! {"version":1, "label":"…", "created":"…", "epoch":e,
//!  "kdf":{"alg":"argon2id","m_kib":65536,"t":3,"p":1,"salt":"<hex 16 B>"},
//!  "sealed":"<hex>"}
//! ```
//!
//! `sealed` is AES-256-GCM ([`crypto::seal`]) under KEK = Argon2id(passphrase,
//! salt) of `{repository, epoch, key}`, with every other field as associated
//! data: a changed label, epoch or parameter fails to open like a wrong
//! passphrase. The **label is not secret**: whoever reads the bucket reads
//! it (say "laptop of the on-call", never the passphrase's hint).
//!
//! The parameters come from the bucket, which a hostile writer controls, so
//! they are capped before any work is done: at most 1 GiB
//! of memory, 64 passes and 16 lanes; below 8 MiB or one pass is refused as
//! too weak. An envelope seals one epoch's key: after a rotation (an erased
//! tenant) it opens nothing newer, and `key list` calls it stale.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, Secret};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::keys::{self, MasterKey};
use crate::repo::store::Store;
use crate::repo::{Location, Repository};

/// Where envelopes live: the one place that spells their keys (an
/// erase deletes every one, [`crate::repo::rotate`]).
pub(crate) const PREFIX: &str = "keys/envelopes/";
const VERSION: u32 = 1;
const PURPOSE: &[u8] = b"offsite2/envelope";
/// An envelope is a few hundred bytes; anything much bigger is not one.
const MAX_LEN: usize = 64 * 1024;

/// Argon2id cost parameters, as stored in an envelope.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Kdf {
    pub alg: String,
    pub m_kib: u64,
    pub t: u64,
    pub p: u64,
    pub salt: String,
}

impl Kdf {
    /// The defaults for a new envelope: 64 MiB, 3 passes, 1 lane, fresh salt.
    pub fn new_default() -> Self {
        Kdf {
            alg: "argon2id".into(),
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
            salt: hex::encode(crypto::random::<16>()),
        }
    }

    /// The parameters as Argon2 takes them, refused when out of bounds (a
    /// hostile bucket must not make us hang or allocate without bound).
    fn checked(&self, object: &str) -> Result<(argon2::Params, Vec<u8>)> {
        let bad = |why: String| Error::corrupt(object, format!("key envelope refused: {why}"));
        if self.alg != "argon2id" {
            return Err(bad("its algorithm is not argon2id".into()));
        }
        if !(8 * 1024..=1024 * 1024).contains(&self.m_kib) {
            return Err(bad(format!(
                "memory {} KiB is outside 8 MiB..1 GiB",
                self.m_kib
            )));
        }
        if !(1..=64).contains(&self.t) {
            return Err(bad(format!("{} passes is outside 1..64", self.t)));
        }
        if !(1..=16).contains(&self.p) {
            return Err(bad(format!("{} lanes is outside 1..16", self.p)));
        }
        let salt = hex::decode(&self.salt)
            .ok()
            .filter(|s| (16..=64).contains(&s.len()))
            .ok_or_else(|| bad("its salt is not 16 to 64 bytes of hex".into()))?;
        let narrow = |v: u64| u32::try_from(v).map_err(|_| bad("a parameter is too large".into()));
        let params = argon2::Params::new(
            narrow(self.m_kib)?,
            narrow(self.t)?,
            narrow(self.p)?,
            Some(32),
        )
        .map_err(|e| bad(format!("argon2 parameters: {e}")))?;
        Ok((params, salt))
    }

    /// KEK = Argon2id(passphrase, salt) with these parameters.
    fn kek(&self, object: &str, passphrase: &[u8]) -> Result<Secret> {
        let (params, salt) = self.checked(object)?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, &salt, out.as_mut())
            .map_err(|e| Error::corrupt(object, format!("key envelope refused: argon2: {e}")))?;
        Ok(Secret::from_bytes(*out))
    }
}

/// What the operator sees of an envelope: nothing secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeInfo {
    pub version: u32,
    /// Not secret: readable by whoever reads the bucket.
    pub label: String,
    pub created: DateTime<Utc>,
    pub epoch: u64,
    pub kdf: Kdf,
}

/// An envelope as stored: the plaintext fields and the sealed key.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    info: EnvelopeInfo,
    sealed: String,
}

/// What the sealed part holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Content {
    repository: ObjectId,
    epoch: u64,
    key: String,
}

/// An envelope read from the bucket.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The 32 hex digits that name it (`key remove ID`).
    pub id: String,
    pub info: EnvelopeInfo,
    sealed: Vec<u8>,
}

/// `keys/envelopes/<id>`.
fn object_key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

/// The id of an envelope key; `None` unless it is exactly 32 hex digits.
fn parse_key(key: &str) -> Option<String> {
    let id = key.strip_prefix(PREFIX)?;
    (id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| id.to_string())
}

fn aad(info: &EnvelopeInfo) -> Vec<u8> {
    serde_json::to_vec(info).expect("envelope fields serialize")
}

impl Envelope {
    /// Seal `master` of `repository` under `passphrase`.
    fn seal(
        repository: ObjectId,
        master: &MasterKey,
        passphrase: &[u8],
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, Bytes)> {
        let id = hex::encode(crypto::random::<16>());
        let info = EnvelopeInfo {
            version: VERSION,
            label: label.to_string(),
            created: now,
            epoch: master.epoch,
            kdf: Kdf::new_default(),
        };
        let kek = info.kdf.kek(&object_key(&id), passphrase)?;
        let content = Content {
            repository,
            epoch: master.epoch,
            key: hex::encode(master.secret.expose()),
        };
        let json = Zeroizing::new(serde_json::to_vec(&content).expect("envelope serializes"));
        drop(Zeroizing::new(content.key)); // wipes the key's hex copy
        let sealed = crypto::seal(&kek, PURPOSE, &aad(&info), &json);
        let stored = Stored {
            info,
            sealed: hex::encode(sealed),
        };
        let bytes = serde_json::to_vec_pretty(&stored).expect("envelope serializes");
        Ok((id, Bytes::from(bytes)))
    }

    /// Parse a stored envelope (the plaintext fields only; nothing is opened).
    fn parse(key: &str, bytes: &[u8]) -> Result<Self> {
        let id = parse_key(key).ok_or_else(|| Error::corrupt(key, "not an envelope key"))?;
        if bytes.len() > MAX_LEN {
            return Err(Error::corrupt(key, "key envelope is too large"));
        }
        let stored: Stored = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt_by(key, "key envelope does not parse", e))?;
        if stored.info.version != VERSION {
            return Err(Error::corrupt(
                key,
                format!(
                    "key envelope version {} is not supported",
                    stored.info.version
                ),
            ));
        }
        let sealed = hex::decode(&stored.sealed)
            .map_err(|_| Error::corrupt(key, "key envelope's sealed key is not hex"))?;
        Ok(Envelope {
            id,
            info: stored.info,
            sealed,
        })
    }

    /// The repository id and master key inside, when `passphrase` opens
    /// it; `Ok(None)` when it does not (wrong passphrase, or a changed
    /// field); an error when the envelope is refused (hostile parameters).
    pub fn open(&self, passphrase: &[u8]) -> Result<Option<(ObjectId, MasterKey)>> {
        let key = object_key(&self.id);
        let kek = self.info.kdf.kek(&key, passphrase)?;
        let Some(json) = crypto::open(&kek, PURPOSE, &aad(&self.info), &self.sealed) else {
            return Ok(None);
        };
        let json = Zeroizing::new(json);
        // No parser message in the error: it could quote the key.
        let content: Content = serde_json::from_slice(&json)
            .map_err(|_| Error::corrupt(&key, "key envelope's content does not parse"))?;
        let hex_key = Zeroizing::new(content.key);
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_key.as_bytes(), secret.as_mut())
            .map_err(|_| Error::corrupt(&key, "key envelope's key is not 32 bytes of hex"))?;
        if content.epoch != self.info.epoch {
            return Err(Error::corrupt(&key, "key envelope's epoch does not match"));
        }
        Ok(Some((
            content.repository,
            MasterKey {
                secret: Secret::from_bytes(*secret),
                epoch: content.epoch,
            },
        )))
    }
}

/// Write a new envelope of `master` under `passphrase`; returns its id.
pub(crate) fn add(
    store: &Store,
    repository: ObjectId,
    master: &MasterKey,
    passphrase: &[u8],
    label: &str,
    now: DateTime<Utc>,
) -> Result<String> {
    let (id, bytes) = Envelope::seal(repository, master, passphrase, label, now)?;
    store.put_new(&object_key(&id), bytes)?;
    Ok(id)
}

/// Every envelope in the bucket, oldest first; one that does not parse is
/// an error naming it (a hostile or damaged envelope is never skipped
/// silently, and never deleted).
pub(crate) fn list(store: &Store) -> Result<Vec<Envelope>> {
    let (envelopes, mut refused) = list_tolerant(store)?;
    match refused.is_empty() {
        true => Ok(envelopes),
        false => Err(refused.swap_remove(0)),
    }
}

/// Every envelope that parses (oldest first), and the errors of those
/// that do not: recovery tries the good ones even when one is damaged.
fn list_tolerant(store: &Store) -> Result<(Vec<Envelope>, Vec<Error>)> {
    let (mut out, mut refused) = (Vec::new(), Vec::new());
    for (key, size) in store.list(PREFIX)? {
        if parse_key(&key).is_none() {
            continue;
        }
        let parsed = if size > MAX_LEN as u64 {
            Err(Error::corrupt(&key, "key envelope is too large"))
        } else {
            store.get(&key).and_then(|b| Envelope::parse(&key, &b))
        };
        match parsed {
            Ok(e) => out.push(e),
            Err(e) => refused.push(e),
        }
    }
    out.sort_by(|a, b| (a.info.created, &a.id).cmp(&(b.info.created, &b.id)));
    Ok((out, refused))
}

/// Delete the envelope `id`; an unknown id is [`Error::NotFound`].
pub(crate) fn remove(store: &Store, id: &str) -> Result<()> {
    let key = object_key(id);
    let unknown = || Error::NotFound {
        what: format!("key envelope {id} (see `offsite key list`)"),
    };
    if parse_key(&key).is_none() {
        return Err(unknown());
    }
    match store.size(&key) {
        Ok(_) => store.delete(&key),
        Err(Error::NotFound { .. }) => Err(unknown()),
        Err(e) => Err(e),
    }
}

/// The master key that `passphrase` opens among the envelopes of the
/// newest epoch `newest`, with the repository it names. Wrong passphrase:
/// one [`Error::Key`] line; when none opens and one was refused (damaged or
/// hostile parameters), that refusal, naming the envelope.
pub(crate) fn recover(
    store: &Store,
    newest: u64,
    passphrase: &[u8],
) -> Result<(ObjectId, MasterKey)> {
    let (envelopes, mut refused) = list_tolerant(store)?;
    let current: Vec<&Envelope> = envelopes
        .iter()
        .filter(|e| e.info.epoch == newest)
        .collect();
    for envelope in &current {
        match envelope.open(passphrase) {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            Err(e) => refused.push(e),
        }
    }
    if !refused.is_empty() {
        return Err(refused.swap_remove(0));
    }
    Err(Error::Key(if !current.is_empty() {
        "no key envelope opens with this passphrase (nothing was changed)".into()
    } else if envelopes.is_empty() {
        "the repository has no key envelope (`offsite key add` makes one); nothing was changed"
            .into()
    } else {
        format!(
            "no key envelope of the repository's current key (epoch {newest}): the existing ones \
             are stale since a tenant was erased; nothing was changed"
        )
    }))
}

impl Repository {
    /// Add a passphrase envelope of the current master key; returns its id.
    pub fn add_envelope(
        &self,
        passphrase: &[u8],
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        add(
            &self.store,
            self.config.id,
            &self.keys.master(),
            passphrase,
            label,
            now,
        )
    }

    /// Every passphrase envelope, oldest first.
    pub fn envelopes(&self) -> Result<Vec<Envelope>> {
        list(&self.store)
    }

    /// Delete the envelope `id` (an unknown id is [`Error::NotFound`]).
    pub fn remove_envelope(&self, id: &str) -> Result<()> {
        remove(&self.store, id)
    }

    /// The master key that `passphrase` opens (an envelope of the newest
    /// epoch), read before the repository can be opened; checked against
    /// the repository's config by opening it.
    pub fn open_with_passphrase(location: &Location, passphrase: &[u8]) -> Result<Self> {
        let expected = Repository::stored_id(location)?;
        let store = Store::connect(location, false)?;
        let newest = keys::newest_epoch(&store)?;
        let (id, master) = recover(&store, newest, passphrase)?;
        if id != expected {
            return Err(Error::corrupt(
                PREFIX,
                "a key envelope names another repository",
            ));
        }
        Repository::open(location, &master)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kdf: Kdf) -> Envelope {
        Envelope {
            id: "00".repeat(16),
            info: EnvelopeInfo {
                version: VERSION,
                label: "x".into(),
                created: Utc::now(),
                epoch: 1,
                kdf,
            },
            sealed: vec![0; 64],
        }
    }

    #[test]
    fn sealed_envelopes_open_with_their_passphrase_only() {
        let master = MasterKey::generate();
        let repo = ObjectId::hash(b"repo");
        let (id, bytes) =
            Envelope::seal(repo, &master, b"correct horse", "safe", Utc::now()).unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains(&hex::encode(master.secret.expose())));
        let env = Envelope::parse(&object_key(&id), &bytes).unwrap();
        let (r, m) = env.open(b"correct horse").unwrap().unwrap();
        assert_eq!((r, m.epoch, &m.secret), (repo, 1, &master.secret));
        assert!(env.open(b"wrong horse").unwrap().is_none());
        let relabelled = text.replace("\"safe\"", "\"other\"");
        let env = Envelope::parse(&object_key(&id), relabelled.as_bytes()).unwrap();
        assert!(
            env.open(b"correct horse").unwrap().is_none(),
            "label is bound"
        );
    }

    #[test]
    fn hostile_parameters_are_refused_before_any_work() {
        let cases = [
            (1u64 << 31, 3, 1, "memory"),
            (65536, 1_000_000, 1, "passes"),
            (65536, 3, 1 << 20, "lanes"),
            (1024, 3, 1, "memory"),
            (65536, 0, 1, "passes"),
        ];
        for (m_kib, t, p, what) in cases {
            let kdf = Kdf {
                m_kib,
                t,
                p,
                ..Kdf::new_default()
            };
            let err = envelope(kdf).open(b"pw").unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
        let kdf = Kdf {
            alg: "scrypt".into(),
            ..Kdf::new_default()
        };
        assert!(envelope(kdf).open(b"pw").is_err());
    }

    #[test]
    fn recovery_tries_the_newest_epoch_only_and_says_why_nothing_opens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Location::Local(dir.path().to_path_buf()), true).unwrap();
        let repo = ObjectId::hash(b"repo");
        let err = recover(&store, 1, b"pw").unwrap_err().to_string();
        assert!(err.contains("has no key envelope"), "{err}");
        let old = MasterKey::generate();
        add(&store, repo, &old, b"pw", "old", Utc::now()).unwrap();
        let err = recover(&store, 2, b"pw").unwrap_err().to_string();
        assert!(err.contains("stale"), "{err}");
        let new = MasterKey {
            epoch: 2,
            ..MasterKey::generate()
        };
        add(&store, repo, &new, b"other", "new", Utc::now()).unwrap();
        let err = recover(&store, 2, b"pw").unwrap_err().to_string();
        assert!(err.contains("no key envelope opens"), "{err}");
        let (r, m) = recover(&store, 2, b"other").unwrap();
        assert_eq!((r, m.epoch, &m.secret), (repo, 2, &new.secret));
        let listed = list(&store).unwrap();
        assert_eq!(listed.len(), 2);
        remove(&store, &listed[0].id).unwrap();
        assert!(matches!(
            remove(&store, &listed[0].id),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(list(&store).unwrap().len(), 1);
    }

    #[test]
    fn only_exact_envelope_keys_parse() {
        assert!(parse_key(&format!("{PREFIX}{}", "ab".repeat(16))).is_some());
        for bad in [
            "keys/envelopes/",
            "keys/envelopes/AB",
            "keys/envelopes/../x",
            "keys/x",
        ] {
            assert!(parse_key(bad).is_none(), "{bad}");
        }
    }
}
