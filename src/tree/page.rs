//! The bytes of directory pages and chunk-list pieces (format 3).
//!
//! ```text
//! leaf       := 0x11 n:uvarint entry{n}                 n ≤ MAX_PAGE_ENTRIES
//! internal   := 0x12 level:u8 n:uvarint child{n}        1 ≤ level ≤ MAX_LEVEL, 1 ≤ n
//! piece      := 0x21 n:uvarint ref{n}                   1 ≤ n ≤ MAX_PIECE_CHUNKS
//! piece list := 0x22 n:uvarint (ref chunks:uvarint bytes:uvarint){n}
//! name       := shared:uvarint suffix:bytes             prefix-coded against the previous name
//! entry      := 0x01 name size:uvarint mtime:svarint mode:uvarint inode:uvarint tenant
//!               sha256[32] flags:u8 (bit 0: carried) chunks
//!             | 0x02 name mode:uvarint mtime:svarint tenant ref files:uvarint bytes:uvarint
//! chunks     := 0x00 k:uvarint ref{k}                   k ≤ INLINE_CHUNKS
//!             | 0x01 ref count:uvarint                  the piece list, count > INLINE_CHUNKS
//! child      := name ref entries:uvarint files:uvarint bytes:uvarint
//! tenant     := 0x00 | 0x01 bytes                       (1 to 255 bytes)
//! ref        := [`Writer::blob_ref`]
//! ```
//!
//! [`decode`] checks everything the module docs of [`crate::tree`] promise
//! and fills each reference's tenant: a file's chunks and piece list and a
//! directory's pages carry the entry's tenant, child pages the page's own.

use std::sync::Arc;

use crate::codec::{DecodeError, Decoded, Reader, Writer};
use crate::error::{Error, Result};
use crate::repo::layout::pack_key;
use crate::repo::pack::BlobRef;
use crate::tree::build::{INLINE_CHUNKS, MAX_PAGE_ENTRIES, MAX_PIECE_CHUNKS};
use crate::tree::{check_name, shown, ChunkList, DirEntry, Entry, FileEntry, MAX_NAME_BYTES};

const LEAF: u8 = 0x11;
const INTERNAL: u8 = 0x12;
const PIECE: u8 = 0x21;
const PIECE_LIST: u8 = 0x22;

/// The most levels of internal pages above a directory's leaves: 4096^8
/// entries is far more than any file system holds.
pub const MAX_LEVEL: u8 = 8;

/// One decoded directory page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    Leaf(Vec<Entry>),
    Internal { level: u8, children: Vec<Child> },
}

/// An internal page's record of one child page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The first name in the child (and so in everything below it).
    pub first: String,
    pub page: BlobRef,
    /// Entries in the leaves below the child.
    pub entries: u64,
    /// Files and their bytes anywhere below the child (subdirectories too).
    pub files: u64,
    pub bytes: u64,
}

/// One piece of a chunk list in the list blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceRef {
    pub piece: BlobRef,
    pub chunks: u64,
    /// Content bytes of its chunks.
    pub bytes: u64,
}

/// Appends prefix-coded names.
#[derive(Default)]
pub(crate) struct NameCoder {
    previous: String,
}

impl NameCoder {
    pub fn put(&mut self, w: &mut Writer, name: &str) {
        let shared = common_prefix(&self.previous, name);
        w.uvarint(shared as u64);
        w.bytes(&name.as_bytes()[shared..]);
        self.previous.clear();
        self.previous.push_str(name);
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

fn put_tenant(w: &mut Writer, tenant: Option<&str>) {
    match tenant {
        None => w.u8(0),
        Some(t) => {
            w.u8(1);
            w.str(t);
        }
    }
}

/// Append one entry (its name through `names`).
pub(crate) fn put_entry(w: &mut Writer, names: &mut NameCoder, entry: &Entry) {
    match entry {
        Entry::File(f) => {
            w.u8(1);
            names.put(w, &f.name);
            w.uvarint(f.size);
            w.svarint(f.mtime_ns);
            w.uvarint(u64::from(f.mode));
            w.uvarint(f.inode);
            put_tenant(w, f.tenant.as_deref());
            w.id(&f.sha256);
            w.u8(u8::from(f.carried));
            match &f.chunks {
                ChunkList::Inline(chunks) => {
                    w.u8(0);
                    w.uvarint(chunks.len() as u64);
                    chunks.iter().for_each(|c| w.blob_ref(c));
                }
                ChunkList::Pieces { list, chunks } => {
                    w.u8(1);
                    w.blob_ref(list);
                    w.uvarint(*chunks);
                }
            }
        }
        Entry::Dir(d) => {
            w.u8(2);
            names.put(w, &d.name);
            w.uvarint(u64::from(d.mode));
            w.svarint(d.mtime_ns);
            put_tenant(w, d.tenant.as_deref());
            w.blob_ref(&d.tree);
            w.uvarint(d.files_below);
            w.uvarint(d.bytes_below);
        }
    }
}

/// Append one child record (its first name through `names`).
pub(crate) fn put_child(w: &mut Writer, names: &mut NameCoder, child: &Child) {
    names.put(w, &child.first);
    w.blob_ref(&child.page);
    w.uvarint(child.entries);
    w.uvarint(child.files);
    w.uvarint(child.bytes);
}

/// A leaf page's header and an encoded body of `n` entries.
pub(crate) fn leaf_bytes(n: usize, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(LEAF);
    w.uvarint(n as u64);
    w.raw(body);
    w.into_bytes()
}

/// An internal page's header and an encoded body of `n` children.
pub(crate) fn internal_bytes(level: u8, n: usize, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(INTERNAL);
    w.u8(level);
    w.uvarint(n as u64);
    w.raw(body);
    w.into_bytes()
}

/// `entries` (sorted) as one leaf page.
pub fn encode_leaf(entries: &[Entry]) -> Vec<u8> {
    let mut body = Writer::new();
    let mut names = NameCoder::default();
    entries
        .iter()
        .for_each(|e| put_entry(&mut body, &mut names, e));
    leaf_bytes(entries.len(), body.as_bytes())
}

/// One piece: chunk references in order.
pub fn encode_piece(chunks: &[BlobRef]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PIECE);
    w.uvarint(chunks.len() as u64);
    chunks.iter().for_each(|c| w.blob_ref(c));
    w.into_bytes()
}

/// The list of a file's pieces.
pub fn encode_piece_list(pieces: &[PieceRef]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PIECE_LIST);
    w.uvarint(pieces.len() as u64);
    for p in pieces {
        w.blob_ref(&p.piece);
        w.uvarint(p.chunks);
        w.uvarint(p.bytes);
    }
    w.into_bytes()
}

/// `Corrupt` naming the pack and blob whose bytes did not decode.
fn corrupt(blob: &BlobRef, what: &str, e: DecodeError) -> Error {
    Error::corrupt(
        pack_key(&blob.pack),
        format!("{what} blob {}: {e}", blob.id),
    )
}

/// Decode and check the directory page `blob`, whose verified content is
/// `bytes`.
pub fn decode(blob: &BlobRef, bytes: &[u8]) -> Result<Page> {
    decode_page(bytes, blob.tenant.as_ref()).map_err(|e| corrupt(blob, "tree", e))
}

/// Decode and check the piece `blob` of a chunk list.
pub fn decode_piece(blob: &BlobRef, bytes: &[u8]) -> Result<Vec<BlobRef>> {
    let mut r = Reader::new(bytes);
    let run = |r: &mut Reader| -> Decoded<Vec<BlobRef>> {
        tag(r, PIECE)?;
        let n = r.len(MAX_PIECE_CHUNKS, "chunks in the piece")?;
        if n == 0 {
            return Err(r.error("an empty piece"));
        }
        let mut chunks = Vec::with_capacity(n.min(r.remaining()));
        for _ in 0..n {
            chunks.push(with_tenant(blob_ref(r)?, blob.tenant.as_ref()));
        }
        r.finish()?;
        Ok(chunks)
    };
    run(&mut r).map_err(|e| corrupt(blob, "chunk-list piece", e))
}

/// Decode and check the piece list `blob` of a file of `chunks` chunks.
pub fn decode_piece_list(blob: &BlobRef, chunks: u64, bytes: &[u8]) -> Result<Vec<PieceRef>> {
    let mut r = Reader::new(bytes);
    let run = |r: &mut Reader| -> Decoded<Vec<PieceRef>> {
        tag(r, PIECE_LIST)?;
        let n = r.len(r.remaining(), "pieces")?;
        let mut pieces = Vec::with_capacity(n.min(4096));
        let (mut total, mut bytes) = (0u64, 0u64);
        for _ in 0..n {
            let piece = with_tenant(blob_ref(r)?, blob.tenant.as_ref());
            let count = r.uvarint_max(MAX_PIECE_CHUNKS as u64, "chunks in a piece")?;
            let size = r.uvarint("bytes in a piece")?;
            total = total.saturating_add(count);
            bytes = bytes
                .checked_add(size)
                .ok_or_else(|| r.error("piece sizes past 64 bits"))?;
            if count == 0 {
                return Err(r.error("an empty piece"));
            }
            pieces.push(PieceRef {
                piece,
                chunks: count,
                bytes: size,
            });
        }
        r.finish()?;
        if total != chunks {
            return Err(r.error(format!(
                "the pieces hold {total} chunks, the file entry says {chunks}"
            )));
        }
        Ok(pieces)
    };
    run(&mut r).map_err(|e| corrupt(blob, "chunk list", e))
}

fn tag(r: &mut Reader, want: u8) -> Decoded<()> {
    match r.u8("tag")? {
        t if t == want => Ok(()),
        t => Err(r.error(format!("tag {t:#04x} where {want:#04x} belongs"))),
    }
}

fn with_tenant(mut blob: BlobRef, tenant: Option<&Arc<str>>) -> BlobRef {
    blob.tenant = tenant.cloned();
    blob
}

/// A reference whose location fits in 64 bits.
fn blob_ref(r: &mut Reader) -> Decoded<BlobRef> {
    let at = r.position();
    let blob = r.blob_ref()?;
    if blob.offset.checked_add(u64::from(blob.length)).is_none() {
        return Err(DecodeError {
            at,
            what: format!("blob {} lies past the end of any pack", blob.id),
        });
    }
    Ok(blob)
}

/// Reads prefix-coded names, each safe and greater than the one before.
#[derive(Default)]
struct NameReader {
    previous: String,
}

impl NameReader {
    fn next(&mut self, r: &mut Reader) -> Decoded<String> {
        let at = r.position();
        let shared = r.len(self.previous.len(), "shared name prefix")?;
        // Any length reads (it is a slice of the input); check_name says
        // what is wrong with a long one.
        let suffix = r.bytes(r.remaining(), "name")?;
        let mut bytes = self.previous.as_bytes()[..shared].to_vec();
        bytes.extend_from_slice(suffix);
        let error = |what: String| DecodeError { at, what };
        let name = String::from_utf8(bytes).map_err(|_| error("a name is not UTF-8".into()))?;
        check_name(&name).map_err(|why| error(format!("entry {}: {why}", shown(&name))))?;
        if !self.previous.is_empty() && name <= self.previous {
            return Err(error(format!(
                "entry {} is out of order or repeated (entries must be sorted by name)",
                shown(&name)
            )));
        }
        self.previous.clone_from(&name);
        Ok(name)
    }
}

fn tenant(r: &mut Reader) -> Decoded<Option<String>> {
    match r.u8("tenant")? {
        0 => Ok(None),
        1 => {
            let t = r.str(MAX_NAME_BYTES, "tenant")?;
            if t.is_empty() {
                return Err(r.error("an empty tenant name"));
            }
            Ok(Some(t.to_string()))
        }
        other => Err(r.error(format!("tenant marker {other}"))),
    }
}

fn decode_page(bytes: &[u8], own: Option<&Arc<str>>) -> Decoded<Page> {
    let mut r = Reader::new(bytes);
    let mut names = NameReader::default();
    let page = match r.u8("page tag")? {
        LEAF => {
            let n = r.len(MAX_PAGE_ENTRIES, "entries in the page")?;
            let mut entries = Vec::with_capacity(n.min(r.remaining()));
            for _ in 0..n {
                entries.push(entry(&mut r, &mut names)?);
            }
            Page::Leaf(entries)
        }
        INTERNAL => {
            let level = r.u8("page level")?;
            if level == 0 || level > MAX_LEVEL {
                return Err(r.error(format!("page level {level}")));
            }
            let n = r.len(MAX_PAGE_ENTRIES, "children of the page")?;
            if n == 0 {
                return Err(r.error("an internal page without children"));
            }
            let mut children = Vec::with_capacity(n.min(r.remaining()));
            for _ in 0..n {
                children.push(Child {
                    first: names.next(&mut r)?,
                    page: with_tenant(blob_ref(&mut r)?, own),
                    entries: r.uvarint("entries below")?,
                    files: r.uvarint("files below")?,
                    bytes: r.uvarint("bytes below")?,
                });
            }
            Page::Internal { level, children }
        }
        other => return Err(r.error(format!("page tag {other:#04x}"))),
    };
    r.finish()?;
    Ok(page)
}

fn entry(r: &mut Reader, names: &mut NameReader) -> Decoded<Entry> {
    match r.u8("entry kind")? {
        1 => {
            let name = names.next(r)?;
            let size = r.uvarint("size")?;
            let mtime_ns = r.svarint("mtime")?;
            let mode = r.u32("mode")?;
            let inode = r.uvarint("inode")?;
            let tenant = tenant(r)?;
            let sha256 = r.id("sha256")?;
            let carried = match r.u8("flags")? {
                0 => false,
                1 => true,
                other => return Err(r.error(format!("file flags {other:#04x}"))),
            };
            let shared: Option<Arc<str>> = tenant.as_deref().map(Into::into);
            let chunks = match r.u8("chunk list kind")? {
                0 => {
                    let k = r.len(INLINE_CHUNKS, "inline chunks")?;
                    let mut chunks = Vec::with_capacity(k);
                    for _ in 0..k {
                        chunks.push(with_tenant(blob_ref(r)?, shared.as_ref()));
                    }
                    ChunkList::Inline(chunks)
                }
                1 => {
                    let list = with_tenant(blob_ref(r)?, shared.as_ref());
                    let chunks = r.uvarint("chunks")?;
                    if chunks <= INLINE_CHUNKS as u64 {
                        return Err(r.error(format!("{chunks} chunks in pieces")));
                    }
                    ChunkList::Pieces { list, chunks }
                }
                other => return Err(r.error(format!("chunk list kind {other}"))),
            };
            Ok(Entry::File(FileEntry {
                name,
                size,
                mtime_ns,
                mode,
                inode,
                tenant,
                sha256,
                chunks,
                carried,
            }))
        }
        2 => {
            let name = names.next(r)?;
            let mode = r.u32("mode")?;
            let mtime_ns = r.svarint("mtime")?;
            let tenant = tenant(r)?;
            let shared: Option<Arc<str>> = tenant.as_deref().map(Into::into);
            let tree = with_tenant(blob_ref(r)?, shared.as_ref());
            Ok(Entry::Dir(DirEntry {
                name,
                mode,
                mtime_ns,
                tenant,
                tree,
                files_below: r.uvarint("files below")?,
                bytes_below: r.uvarint("bytes below")?,
            }))
        }
        other => Err(r.error(format!("entry kind {other}"))),
    }
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
