//! Compression dictionaries as a pack stores them, and as readers load them.
//!
//! Small similar documents (chats, e-mails, a dump's 8 KiB chunks) compress
//! poorly one by one: zstd starts each blob knowing nothing. A dictionary
//! trained on the tenant's own data gives it a head start (−26 % on the
//! scale tree, see [`crate::chunking`]). It is trained by the writer once per
//! run and tenant ([`crate::repo::compress`]) and **stored in every pack
//! whose blobs use it**, so a pack stays self-contained: no object depends
//! on another, and prune, erase, Object Lock and crash safety need nothing
//! new. A pack that holds dictionary-compressed blobs begins with its
//! dictionary section:
//!
//! ```text
//! sealed( dictionary length u32 LE | dictionary | zeros up to MAX_DICTIONARY ) | blob 0 | …
//! ```
//!
//! * **Fixed size** ([`SECTION_LEN`]): a reader holding only a blob's
//!   location (a single-item restore) fetches the section with one ranged
//!   read of known length at offset 0, without the pack header. A trained
//!   dictionary fills [`MAX_DICTIONARY`] (zstd's trainer fills what it is
//!   given room for), so the padding is nil in practice.
//! * **Sealed like a blob**: AES-256-GCM under the pack's subkey of the
//!   tenant's key, nonce 0 (blobs start at [`SECTION_LEN`], so nonces stay
//!   unique), its own associated data. It is trained from personal data and
//!   is erased with the tenant's key. It is not listed among the pack's
//!   blobs (no tree references it, so prune would count it as garbage); the
//!   header says whether the section is there (`dictionary`).
//! * **Trust**: the length is bounded before use; a section that does not
//!   authenticate is [`Error::Corrupt`] naming the pack. A wrong dictionary
//!   cannot pass for the right one anyway: every blob is checked against
//!   its keyed id after decompression.
//!
//! Readers keep the last [`CACHED`] dictionaries they loaded, by pack
//! ([`Cache`]): a restore reading many chunks of one pack loads its
//! dictionary once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zstd::dict::DecoderDictionary;

use crate::crypto::{SealingKey, TAG_LEN};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::layout::pack_key;

/// The largest dictionary: 112 KiB measured best on the scale tree (64 KiB
/// saved 4.5 % less; the gain flattens past ~100 KiB while each pack pays
/// for it, 1.4 % of an 8 MiB pack).
pub const MAX_DICTIONARY: usize = 112 << 10;
/// Bytes of a pack's dictionary section (see the module docs).
pub const SECTION_LEN: usize = 4 + MAX_DICTIONARY + TAG_LEN;
/// The associated data of the section.
const AAD: &[u8] = b"offsite4/dictionary";
/// Dictionaries a reader keeps loaded (each ~150 KiB with zstd's tables).
pub const CACHED: usize = 16;

/// A dictionary ready for decompressing.
pub type Loaded = Arc<DecoderDictionary<'static>>;

/// Seal `dictionary` as a pack's dictionary section into `out` (which must
/// be empty: the section is the start of the pack).
pub fn seal_section(seal: &SealingKey, dictionary: &[u8], out: &mut Vec<u8>) {
    assert!(out.is_empty(), "the dictionary section starts the pack");
    assert!(dictionary.len() <= MAX_DICTIONARY, "dictionary too large");
    let mut plain = Vec::with_capacity(SECTION_LEN - TAG_LEN);
    plain.extend_from_slice(&(dictionary.len() as u32).to_le_bytes());
    plain.extend_from_slice(dictionary);
    plain.resize(SECTION_LEN - TAG_LEN, 0);
    seal.seal_into(0, AAD, &plain, out);
}

/// Open the dictionary section `section` (the first [`SECTION_LEN`] bytes,
/// or fewer if the pack is shorter) of the pack `pack` with the pack's
/// subkey `seal`: the dictionary's bytes.
pub fn open_section(pack: &ObjectId, seal: &SealingKey, section: &[u8]) -> Result<Vec<u8>> {
    let key = pack_key(pack);
    let section = section
        .get(..SECTION_LEN)
        .ok_or_else(|| Error::corrupt(&key, "pack is shorter than its dictionary section"))?;
    let plain = seal.open(0, AAD, section).ok_or_else(|| {
        Error::corrupt(
            &key,
            "dictionary does not authenticate (changed, or sealed under another key)",
        )
    })?;
    let len = u32::from_le_bytes(plain[..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_DICTIONARY {
        return Err(Error::corrupt(
            &key,
            format!("dictionary of {len} bytes is larger than {MAX_DICTIONARY}"),
        ));
    }
    Ok(plain[4..4 + len].to_vec())
}

/// [`open_section`], prepared for decompression.
pub fn load_section(pack: &ObjectId, seal: &SealingKey, section: &[u8]) -> Result<Loaded> {
    prepare(&open_section(pack, seal, section)?)
        .map_err(|e| Error::corrupt(pack_key(pack), format!("dictionary: {e}")))
}

/// A dictionary's bytes prepared for decompression. Bytes that do not start
/// with zstd's dictionary magic are taken as plain content to refer to;
/// bytes that do but whose tables do not load are refused (zstd's own
/// constructor would panic on them).
pub fn prepare(bytes: &[u8]) -> std::result::Result<Loaded, &'static str> {
    if zstd::zstd_safe::DDict::try_create(bytes).is_none() {
        return Err("its tables do not load");
    }
    Ok(Arc::new(DecoderDictionary::copy(bytes)))
}

/// The dictionaries a reader loaded, by pack: at most [`CACHED`], the whole
/// cache starting over when full (restores read pack after pack).
#[derive(Default)]
pub struct Cache {
    loaded: Mutex<HashMap<ObjectId, Loaded>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dictionary::Cache({} loaded)", self.lock().len())
    }
}

impl Cache {
    /// The dictionary of `pack`, loaded by `load` unless cached.
    pub fn get_or_load(
        &self,
        pack: &ObjectId,
        load: impl FnOnce() -> Result<Loaded>,
    ) -> Result<Loaded> {
        if let Some(found) = self.lock().get(pack) {
            return Ok(found.clone());
        }
        let loaded = load()?;
        let mut cache = self.lock();
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(*pack, loaded.clone());
        Ok(loaded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, Loaded>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Secret;
    use crate::repo::keys::DataKey;

    #[test]
    fn a_section_round_trips_and_every_flipped_byte_is_corrupt() {
        let key = DataKey::from_secret(&Secret::from_bytes([3; 32]));
        let pack = ObjectId::random();
        let seal = key.pack_key(&pack);
        let dictionary = b"a dictionary of sorts".repeat(100);
        let mut out = Vec::new();
        seal_section(&seal, &dictionary, &mut out);
        assert_eq!(out.len(), SECTION_LEN);
        assert_eq!(open_section(&pack, &seal, &out).unwrap(), dictionary);
        for i in (0..out.len()).step_by(997).chain([out.len() - 1]) {
            let mut bad = out.clone();
            bad[i] ^= 1;
            let err = open_section(&pack, &seal, &bad).unwrap_err().to_string();
            assert!(err.contains(&pack_key(&pack)), "{err}");
            assert!(err.contains("does not authenticate"), "{err}");
        }
        let short = open_section(&pack, &seal, &out[..100]).unwrap_err();
        assert!(short.to_string().contains("shorter"), "{short}");
        let other = key.pack_key(&ObjectId::random());
        assert!(open_section(&pack, &other, &out).is_err());
    }

    #[test]
    fn a_dictionary_with_the_magic_and_broken_tables_is_refused_not_a_panic() {
        let mut bytes = vec![0x37, 0xA4, 0x30, 0xEC];
        bytes.extend_from_slice(&[0xFF; 200]);
        assert!(prepare(&bytes).is_err());
        assert!(prepare(b"plain content to refer to").is_ok());
    }

    #[test]
    fn a_sealed_length_past_the_maximum_is_corrupt() {
        let key = DataKey::from_secret(&Secret::from_bytes([3; 32]));
        let pack = ObjectId::random();
        let seal = key.pack_key(&pack);
        let mut plain = vec![0u8; SECTION_LEN - TAG_LEN];
        plain[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut out = Vec::new();
        seal.seal_into(0, AAD, &plain, &mut out);
        let err = open_section(&pack, &seal, &out).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }
}
