//! Packs: immutable objects that hold many blobs, sealed, and describe themselves.
//!
//! A snapshot of 100 000 small e-mails must not cost 100 000 PUT requests, so
//! blobs (file chunks and directory trees) are appended to a pack buffer of a
//! few MiB that is written as one object. The pack ends with its own header so
//! the index can always be rebuilt from the packs alone:
//!
//! ```text
//! [dictionary section] | blob 0 | blob 1 | … | sealed header | header length (u32 LE) | "OFFPACK3"
//! ```
//!
//! * **One key per pack.** A pack holds blobs of one tenant only (`None`: the
//!   shared key), so erasing a tenant's key makes whole packs unreadable and
//!   prune can drop them by their header alone. Each blob is
//!   `key.pack_key(pack_id).seal_into(offset, aad, stored)`: AES-256-GCM under
//!   a subkey derived for this pack, the nonce is the blob's offset (unique
//!   in the pack, so a (key, nonce) pair never repeats), and
//!   `aad = "offsite2/blob" ‖ compression u8 ‖ raw_length u32 LE`. Blobs are
//!   compressed before they are sealed; [`BlobRef::length`] includes the
//!   16-byte tag.
//! * **Compression** ([`Compression`]): none, zstd, or zstd with the pack's
//!   dictionary (`zstd-dict`, code 2). A pack holding blobs of the latter
//!   starts with its **dictionary section** (a fixed [`SECTION_LEN`] bytes,
//!   sealed like a blob at offset 0; see [`crate::repo::dictionary`] for
//!   why each pack carries its own copy): every pack still decodes from its
//!   own bytes alone, so prune, erase and rebuild-index work as before. A
//!   reader of one such blob fetches the section with one ranged read
//!   ([`Repository::pack_dictionary`], cached per pack).
//! * **Header.** `{"version":3,"tenant":<name or null>,"dictionary":<bool>,"blobs":[PackedBlob…]}`,
//!   zstd-compressed, then sealed under the metadata key bound to the pack
//!   id ([`crate::repo::keys::DataKey::seal_bound`], purpose `pack-header`):
//!   readable without any tenant key (prune, check and rebuild-index work for
//!   erased tenants too), and a header moved to another pack fails to open.
//! * **Reading** a blob ([`decode_blob`]): decrypt (a failure is
//!   [`Error::Corrupt`] naming the pack and blob: "does not authenticate"),
//!   decompress (bounded, with the pack's dictionary when the blob says so;
//!   a missing or damaged dictionary is corruption of the pack), check the length, then re-compute the keyed id of
//!   the content: AES-GCM is not key-committing, the keyed id is.
//!
//! A pack is named by a random id chosen when it is opened (trees record where
//! each blob lives, so the name must be known before the pack is complete).
//! What the bucket still shows: pack sizes and count, and when each was written.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::crypto::{SealingKey, TAG_LEN};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::compress::Dictionary;
use crate::repo::dictionary::{self, SECTION_LEN};
use crate::repo::keys::DataKey;
use crate::repo::layout::pack_key;
#[cfg(doc)]
use crate::repo::Repository;

/// Pack format version written in every header.
pub const PACK_VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"OFFPACK3";
/// Bytes after the header: its length and the magic.
pub const TRAILER_LEN: u64 = 12;
/// What the metadata key seals a pack header for.
const HEADER_PURPOSE: &str = "pack-header";

/// How a blob's bytes are stored.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is (audio and other incompressible data).
    #[default]
    None,
    /// One zstd frame.
    Zstd,
    /// One zstd frame compressed with the dictionary of its pack.
    #[serde(rename = "zstd-dict")]
    ZstdDict,
}

impl Compression {
    /// The code of this compression in blob associated data, binary
    /// metadata and the lookup table.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
            Compression::ZstdDict => 2,
        }
    }

    /// The compression of `code`, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::ZstdDict),
            _ => None,
        }
    }
}

/// What a blob holds.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// A serialized directory tree.
    Tree,
}

/// One blob as a pack header and the index describe it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PackedBlob {
    pub id: ObjectId,
    pub kind: BlobKind,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
    pub compression: Compression,
}

/// Where a blob lives: what trees store for every chunk and subtree, so a
/// single-item restore needs no index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub id: ObjectId,
    pub pack: ObjectId,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
    #[serde(default, skip_serializing_if = "is_uncompressed")]
    pub compression: Compression,
    /// The tenant whose key seals the blob (`None`: the shared key). Not
    /// serialized: trees record it once per entry ([`crate::tree::FileEntry::tenant`],
    /// [`crate::tree::DirEntry::tenant`]), manifests for the root, the index
    /// per pack; parsing fills it in ([`crate::tree::page::decode`]).
    #[serde(skip)]
    pub tenant: Option<std::sync::Arc<str>>,
}

fn is_uncompressed(c: &Compression) -> bool {
    *c == Compression::None
}

impl BlobRef {
    /// The location of `blob` inside `pack`, sealed under `tenant`'s key.
    pub fn new(pack: ObjectId, blob: &PackedBlob, tenant: Option<&Arc<str>>) -> Self {
        BlobRef {
            id: blob.id,
            pack,
            offset: blob.offset,
            length: blob.length,
            raw_length: blob.raw_length,
            compression: blob.compression,
            tenant: tenant.cloned(),
        }
    }

    /// The byte range inside the pack (its end saturates: a hostile offset
    /// gives a range no pack has, never an overflow).
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset.saturating_add(u64::from(self.length))
    }
}

/// The self-description at the end of every pack (sealed, see the module docs).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PackHeader {
    pub version: u32,
    /// Whose key seals every blob of the pack (`None`: the shared key).
    pub tenant: Option<String>,
    /// Whether the pack starts with a dictionary section.
    #[serde(default)]
    pub dictionary: bool,
    pub blobs: Vec<PackedBlob>,
}

/// A pack being filled with the blobs of one tenant.
pub struct PackBuilder {
    id: ObjectId,
    buf: Vec<u8>,
    blobs: Vec<PackedBlob>,
    tenant: Option<Arc<str>>,
    /// This pack's subkey, derived once.
    seal: SealingKey,
    /// The serial of the dictionary at the pack's start, if any.
    dictionary: Option<u64>,
}

/// The associated data of a blob: what its reference says about it that
/// decryption must confirm.
fn blob_aad(compression: Compression, raw_length: u32) -> [u8; 18] {
    let mut aad = [0u8; 18];
    aad[..13].copy_from_slice(b"offsite2/blob");
    aad[13] = compression.code();
    aad[14..].copy_from_slice(&raw_length.to_le_bytes());
    aad
}

impl PackBuilder {
    /// An empty pack with a fresh id for the blobs of `tenant` (sealed under
    /// `key`, that tenant's key), filling `buf` (which is cleared). With a
    /// `dictionary`, the pack starts with its section and takes blobs
    /// compressed with it.
    pub fn new(
        mut buf: Vec<u8>,
        tenant: Option<Arc<str>>,
        key: &DataKey,
        dictionary: Option<&Dictionary>,
    ) -> Self {
        buf.clear();
        let id = ObjectId::random();
        let seal = key.pack_key(&id);
        if let Some(d) = dictionary {
            dictionary::seal_section(&seal, &d.bytes, &mut buf);
        }
        PackBuilder {
            seal,
            id,
            buf,
            blobs: Vec::new(),
            tenant,
            dictionary: dictionary.map(|d| d.serial),
        }
    }

    /// Bytes of blob data so far (and the dictionary section).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The serial of the pack's dictionary, if it has one.
    pub fn dictionary(&self) -> Option<u64> {
        self.dictionary
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// The tenant whose blobs this pack holds.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Seal and append a blob whose stored (maybe compressed) form is
    /// `stored`; returns its location.
    pub fn add(
        &mut self,
        id: ObjectId,
        kind: BlobKind,
        stored: &[u8],
        raw_length: usize,
        compression: Compression,
    ) -> BlobRef {
        assert!(
            compression != Compression::ZstdDict || self.dictionary.is_some(),
            "a dictionary-compressed blob goes to a pack with the dictionary"
        );
        let raw_length = raw_length as u32;
        let offset = self.buf.len() as u64;
        let aad = blob_aad(compression, raw_length);
        self.seal.seal_into(offset, &aad, stored, &mut self.buf);
        let blob = PackedBlob {
            id,
            kind,
            offset,
            length: (stored.len() + TAG_LEN) as u32,
            raw_length,
            compression,
        };
        let location = BlobRef::new(self.id, &blob, self.tenant.as_ref());
        self.blobs.push(blob);
        location
    }

    /// Close the pack, sealing its header under `meta` (the metadata key):
    /// returns its id, its bytes and its header. Consuming: an id (and so a
    /// pack subkey) is never used for a second pack.
    pub fn finish(mut self, meta: &DataKey) -> (ObjectId, Vec<u8>, PackHeader) {
        let header = PackHeader {
            version: PACK_VERSION,
            tenant: self.tenant.as_deref().map(String::from),
            dictionary: self.dictionary.is_some(),
            blobs: self.blobs,
        };
        let json = serde_json::to_vec(&header).expect("pack header serializes");
        let packed = zstd::bulk::compress(&json, 3).expect("zstd compresses in memory");
        let sealed = meta.seal_bound(HEADER_PURPOSE, &self.id.0, &packed);
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(MAGIC);
        (self.id, self.buf, header)
    }
}

/// Parse the trailer (last `TRAILER_LEN` bytes) of the pack `key`: the header's
/// length.
pub fn parse_trailer(key: &str, trailer: &[u8]) -> Result<u64> {
    if trailer.len() != TRAILER_LEN as usize || &trailer[4..] != MAGIC {
        return Err(Error::corrupt(key, "pack trailer is missing its magic"));
    }
    Ok(u64::from(u32::from_le_bytes(
        trailer[..4].try_into().unwrap(),
    )))
}

/// Open and parse the sealed header of the pack `pack` (`meta`: the metadata key).
pub fn parse_header(pack: &ObjectId, sealed: &[u8], meta: &DataKey) -> Result<PackHeader> {
    let key = &pack_key(pack);
    let packed = meta.open_bound(HEADER_PURPOSE, &pack.0, key, sealed)?;
    let json =
        crate::decompress::decompress_at_most(&packed, crate::decompress::json_limit(packed.len()))
            .map_err(|e| Error::corrupt_by(key, "pack header does not decompress", e))?;
    let header: PackHeader = serde_json::from_slice(&json)
        .map_err(|e| Error::corrupt_by(key, "pack header does not parse", e))?;
    if header.version != PACK_VERSION {
        return Err(Error::corrupt(
            key,
            format!("unsupported pack version {}", header.version),
        ));
    }
    Ok(header)
}

/// Parse a whole pack's header from its bytes.
pub fn header_of(pack: &ObjectId, bytes: &[u8], meta: &DataKey) -> Result<PackHeader> {
    let key = &pack_key(pack);
    let total = bytes.len() as u64;
    if total < TRAILER_LEN {
        return Err(Error::corrupt(key, "pack is shorter than its trailer"));
    }
    let header_len = parse_trailer(key, &bytes[(total - TRAILER_LEN) as usize..])?;
    let start = total
        .checked_sub(TRAILER_LEN + header_len)
        .ok_or_else(|| Error::corrupt(key, "pack header length exceeds the pack"))?;
    parse_header(
        pack,
        &bytes[start as usize..(total - TRAILER_LEN) as usize],
        meta,
    )
}

/// Decrypt a blob's sealed bytes with its pack's subkey (`seal`, from
/// [`DataKey::pack_key`]): its stored (maybe compressed) form, authenticated
/// but not yet checked against its id (see [`decode_stored`]).
pub fn open_blob(sealed: &[u8], blob: &BlobRef, seal: &SealingKey) -> Result<Vec<u8>> {
    let aad = blob_aad(blob.compression, blob.raw_length);
    seal.open(blob.offset, &aad, sealed).ok_or_else(|| {
        Error::corrupt(
            pack_key(&blob.pack),
            format!(
                "blob {} does not authenticate (changed, moved, or sealed under another key)",
                blob.id
            ),
        )
    })
}

/// Turn a blob's decrypted stored form back into its content, checking its
/// length and its keyed id under `key`. `dictionary` is its pack's, needed
/// when the blob is [`Compression::ZstdDict`]. Errors name the pack.
pub fn decode_stored(
    stored: Vec<u8>,
    blob: &BlobRef,
    key: &DataKey,
    dictionary: Option<&dictionary::Loaded>,
) -> Result<Vec<u8>> {
    let pack = pack_key(&blob.pack);
    let max = u64::from(blob.raw_length);
    let not_decompressed =
        |e| Error::corrupt_by(&pack, &format!("blob {} does not decompress", blob.id), e);
    let raw = match (blob.compression, dictionary) {
        (Compression::None, _) => stored,
        (Compression::Zstd, _) => {
            crate::decompress::decompress_at_most(&stored, max).map_err(not_decompressed)?
        }
        (Compression::ZstdDict, Some(d)) => {
            crate::decompress::decompress_with_dictionary_at_most(&stored, d, max)
                .map_err(not_decompressed)?
        }
        (Compression::ZstdDict, None) => {
            return Err(Error::corrupt(
                &pack,
                format!("blob {} needs a dictionary its pack does not have", blob.id),
            ))
        }
    };
    if raw.len() != blob.raw_length as usize {
        return Err(Error::corrupt(
            &pack,
            format!(
                "blob {} has {} bytes, expected {}",
                blob.id,
                raw.len(),
                blob.raw_length
            ),
        ));
    }
    if key.id_of(&raw) != blob.id {
        return Err(Error::corrupt(
            &pack,
            format!("blob {} does not match its keyed id", blob.id),
        ));
    }
    Ok(raw)
}

/// Decrypt and verify one blob read from its pack with the pack's subkey
/// `seal`, derived once per pack from `key` (the blob's tenant key), and
/// the pack's `dictionary` (see [`decode_stored`]).
pub fn decode_blob_with(
    sealed: &[u8],
    blob: &BlobRef,
    seal: &SealingKey,
    key: &DataKey,
    dictionary: Option<&dictionary::Loaded>,
) -> Result<Vec<u8>> {
    decode_stored(open_blob(sealed, blob, seal)?, blob, key, dictionary)
}

/// Decrypt and verify one blob under `key`, its tenant's key (the pack's
/// `dictionary` when the blob needs it).
pub fn decode_blob(
    sealed: &[u8],
    blob: &BlobRef,
    key: &DataKey,
    dictionary: Option<&dictionary::Loaded>,
) -> Result<Vec<u8>> {
    decode_blob_with(sealed, blob, &key.pack_key(&blob.pack), key, dictionary)
}

/// The dictionary of the pack `bytes` (a whole pack, read into memory),
/// opened with the pack's subkey `seal`.
pub fn dictionary_of(
    pack: &ObjectId,
    bytes: &[u8],
    seal: &SealingKey,
) -> Result<dictionary::Loaded> {
    dictionary::load_section(pack, seal, bytes.get(..SECTION_LEN).unwrap_or(bytes))
}

#[cfg(test)]
mod tests;
