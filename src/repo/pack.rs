//! Packs: immutable objects that hold many blobs and describe themselves.
//!
//! A snapshot of 100 000 small e-mails must not cost 100 000 PUT requests, so
//! blobs (file chunks and directory trees) are appended to a pack buffer of a
//! few MiB that is written as one object. The pack ends with its own header so
//! the index can always be rebuilt from the packs alone:
//!
//! ```text
//! blob 0 | blob 1 | … | header (zstd JSON) | header length (u32 LE) | "OFFPACK1"
//! ```
//!
//! The header is `{"version":1,"encryption":"none","blobs":[PackedBlob…]}`.
//! A pack is named by a random id chosen when it is opened (trees record where
//! each blob lives, so the name must be known before the pack is complete);
//! integrity comes from the blobs' own SHA-256 names, checked on every read.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::layout::pack_key;

/// Pack format version written in every header.
pub const PACK_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"OFFPACK1";
/// Bytes after the header: its length and the magic.
pub const TRAILER_LEN: u64 = 12;

/// How a blob's bytes are stored.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is (audio and other incompressible data).
    #[default]
    None,
    /// One zstd frame.
    Zstd,
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
    /// per pack; parsing fills it in ([`crate::tree::Tree::from_bytes`]).
    #[serde(skip)]
    pub tenant: Option<std::sync::Arc<str>>,
}

fn is_uncompressed(c: &Compression) -> bool {
    *c == Compression::None
}

impl BlobRef {
    /// The location of `blob` inside `pack`.
    pub fn new(pack: ObjectId, blob: &PackedBlob) -> Self {
        BlobRef {
            id: blob.id,
            pack,
            offset: blob.offset,
            length: blob.length,
            raw_length: blob.raw_length,
            compression: blob.compression,
            tenant: None,
        }
    }

    /// The byte range inside the pack (its end saturates: a hostile offset
    /// gives a range no pack has, never an overflow).
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset.saturating_add(u64::from(self.length))
    }
}

/// The self-description at the end of every pack.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PackHeader {
    pub version: u32,
    pub encryption: String,
    pub blobs: Vec<PackedBlob>,
}

/// A pack being filled.
pub struct PackBuilder {
    id: ObjectId,
    buf: Vec<u8>,
    blobs: Vec<PackedBlob>,
}

impl PackBuilder {
    /// An empty pack with a fresh id.
    pub fn new(capacity: usize) -> Self {
        Self::with_buffer(Vec::with_capacity(capacity))
    }

    /// An empty pack with a fresh id, filling `buf` (which is cleared).
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        PackBuilder {
            id: ObjectId::random(),
            buf,
            blobs: Vec::new(),
        }
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Append a blob whose stored form is `stored`; returns its location.
    pub fn add(
        &mut self,
        id: ObjectId,
        kind: BlobKind,
        stored: &[u8],
        raw_length: usize,
        compression: Compression,
    ) -> BlobRef {
        let blob = PackedBlob {
            id,
            kind,
            offset: self.buf.len() as u64,
            length: stored.len() as u32,
            raw_length: raw_length as u32,
            compression,
        };
        self.buf.extend_from_slice(stored);
        let location = BlobRef::new(self.id, &blob);
        self.blobs.push(blob);
        location
    }

    /// Close the pack: returns its id, its bytes (header appended) and its blobs.
    pub fn finish(mut self) -> (ObjectId, Vec<u8>, Vec<PackedBlob>) {
        let header = PackHeader {
            version: PACK_VERSION,
            encryption: "none".into(),
            blobs: self.blobs,
        };
        let json = serde_json::to_vec(&header).expect("pack header serializes");
        let packed = zstd::bulk::compress(&json, 3).expect("zstd compresses in memory");
        self.buf.extend_from_slice(&packed);
        self.buf
            .extend_from_slice(&(packed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(MAGIC);
        (self.id, self.buf, header.blobs)
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

/// Parse a pack header read from the pack `key`.
pub fn parse_header(key: &str, packed: &[u8]) -> Result<PackHeader> {
    let json =
        crate::decompress::decompress_at_most(packed, crate::decompress::json_limit(packed.len()))
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
pub fn header_of(key: &str, pack: &[u8]) -> Result<PackHeader> {
    let total = pack.len() as u64;
    if total < TRAILER_LEN {
        return Err(Error::corrupt(key, "pack is shorter than its trailer"));
    }
    let header_len = parse_trailer(key, &pack[(total - TRAILER_LEN) as usize..])?;
    let start = total
        .checked_sub(TRAILER_LEN + header_len)
        .ok_or_else(|| Error::corrupt(key, "pack header length exceeds the pack"))?;
    parse_header(key, &pack[start as usize..(total - TRAILER_LEN) as usize])
}

/// Turn a blob's stored bytes back into its content, checking length and hash.
/// Errors name the pack the bytes came from.
pub fn decode_blob(stored: &[u8], blob: &BlobRef) -> Result<Vec<u8>> {
    let key = pack_key(&blob.pack);
    let raw = match blob.compression {
        Compression::None => stored.to_vec(),
        Compression::Zstd => {
            crate::decompress::decompress_at_most(stored, u64::from(blob.raw_length)).map_err(
                |e| Error::corrupt_by(&key, &format!("blob {} does not decompress", blob.id), e),
            )?
        }
    };
    if raw.len() != blob.raw_length as usize {
        return Err(Error::corrupt(
            &key,
            format!(
                "blob {} has {} bytes, expected {}",
                blob.id,
                raw.len(),
                blob.raw_length
            ),
        ));
    }
    if ObjectId::hash(&raw) != blob.id {
        return Err(Error::corrupt(
            &key,
            format!("blob {} does not match its SHA-256", blob.id),
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trip_reads_blobs_and_header() {
        let mut pack = PackBuilder::new(1024);
        let a = b"hello world".to_vec();
        let b = vec![7u8; 5000];
        let b_packed = zstd::bulk::compress(&b, 3).unwrap();
        let ra = pack.add(
            ObjectId::hash(&a),
            BlobKind::Data,
            &a,
            a.len(),
            Compression::None,
        );
        let rb = pack.add(
            ObjectId::hash(&b),
            BlobKind::Tree,
            &b_packed,
            b.len(),
            Compression::Zstd,
        );
        let (id, bytes, blobs) = pack.finish();
        assert_eq!(ra.pack, id);
        let header = header_of("p", &bytes).unwrap();
        assert_eq!(header.blobs, blobs);
        let got_a = decode_blob(&bytes[ra.offset as usize..][..ra.length as usize], &ra).unwrap();
        let got_b = decode_blob(&bytes[rb.offset as usize..][..rb.length as usize], &rb).unwrap();
        assert_eq!(got_a, a);
        assert_eq!(got_b, b);
    }

    #[test]
    fn hostile_location_range_does_not_overflow() {
        let blob = BlobRef {
            id: ObjectId::hash(b"x"),
            pack: ObjectId::hash(b"p"),
            offset: u64::MAX - 1,
            length: 10,
            raw_length: 10,
            compression: Compression::None,
            tenant: None,
        };
        assert_eq!(blob.range(), u64::MAX - 1..u64::MAX);
    }

    #[test]
    fn header_of_many_tiny_blobs_stays_under_the_expansion_limit() {
        let mut pack = PackBuilder::new(1 << 20);
        for i in 0u32..50_000 {
            let data = i.to_le_bytes();
            pack.add(
                ObjectId::hash(&data),
                BlobKind::Data,
                &data,
                4,
                Compression::None,
            );
        }
        let (_, bytes, blobs) = pack.finish();
        assert_eq!(header_of("p", &bytes).unwrap().blobs, blobs);
    }

    #[test]
    fn header_bomb_is_refused_before_it_expands() {
        // 64 MiB of zeros in about 2 KiB: far beyond any real header's ratio.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap();
        let err = parse_header("a pack", &bomb).unwrap_err().to_string();
        assert!(err.contains("does not decompress"), "{err}");
        assert!(err.contains("more than"), "{err}");
    }

    #[test]
    fn flipped_byte_is_named_corrupt() {
        let mut pack = PackBuilder::new(64);
        let a = b"some bytes".to_vec();
        let ra = pack.add(
            ObjectId::hash(&a),
            BlobKind::Data,
            &a,
            a.len(),
            Compression::None,
        );
        let (_, mut bytes, _) = pack.finish();
        bytes[0] ^= 1;
        let err = decode_blob(&bytes[..ra.length as usize], &ra).unwrap_err();
        assert!(err.to_string().contains(&pack_key(&ra.pack)), "{err}");
    }
}
