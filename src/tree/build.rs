//! Cutting directories into pages and chunk lists into pieces, streaming.
//!
//! [`DirBuilder`] takes a directory's entries in name order and stores each
//! page as soon as it closes, so building a directory holds one open page
//! per level, never the whole directory: O(levels × page) memory. Where a
//! page ends depends only on the entries (see [`crate::tree`]), so the same
//! directory always gives the same pages, whoever builds it (a snapshot, or
//! prune's rewrite).
//!
//! The page boundary hashes the name under a key of the repository
//! ([`Boundary`]): with a plain hash, page sizes in the bucket would let
//! anyone confirm a guess of which names a directory holds.

use std::sync::Arc;

use crate::codec::Writer;
use crate::error::{Error, Result};
use crate::repo::keys::DataKey;
use crate::repo::pack::BlobRef;
use crate::tree::page::{self, Child, NameCoder, PieceRef};
use crate::tree::{ChunkList, Entry};

/// A page closes at a boundary only once it holds this many entries.
pub const MIN_PAGE_ENTRIES: usize = 16;
/// A page closes at this many entries, boundary or not.
pub const MAX_PAGE_ENTRIES: usize = 4096;
/// A page closes once its encoding is this long, boundary or not.
pub const MAX_PAGE_BYTES: usize = 256 << 10;
/// A file with more chunks than this stores its list in pieces.
pub const INLINE_CHUNKS: usize = 32;
/// A piece closes at a boundary only once it holds this many chunks.
pub const MIN_PIECE_CHUNKS: usize = 16;
/// A piece closes at this many chunks, boundary or not.
pub const MAX_PIECE_CHUNKS: usize = 1024;

/// Stores one page or piece (sealed under the right tenant's key) and says
/// where it went.
pub type StoreFn<'a> = dyn FnMut(&[u8]) -> Result<BlobRef> + 'a;

/// Where directory pages end: 1 name in 256, by a keyed hash.
#[derive(Clone, Debug)]
pub struct Boundary {
    key: Arc<DataKey>,
}

impl Boundary {
    /// Boundaries under `key` (the repository's metadata key).
    pub fn new(key: Arc<DataKey>) -> Self {
        Boundary { key }
    }

    /// Does a page of level `level` end after `name`?
    fn hit(&self, level: usize, name: &str) -> bool {
        let mut salted = Vec::with_capacity(name.len() + 24);
        salted.extend_from_slice(b"offsite3/page-boundary");
        salted.push(level as u8);
        salted.extend_from_slice(name.as_bytes());
        self.key.id_of(&salted).0[0] == 0
    }
}

/// What a directory holds: entries directly, files and bytes anywhere below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.entries = self.entries.saturating_add(other.entries);
        self.files = self.files.saturating_add(other.files);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// One level's open page.
#[derive(Default)]
struct Open {
    body: Writer,
    names: NameCoder,
    count: usize,
    first: Option<String>,
    totals: Totals,
    /// The last child added (an internal level with one child is no page).
    last: Option<BlobRef>,
}

/// Builds one directory's pages from its entries in name order.
pub struct DirBuilder {
    boundary: Boundary,
    /// `levels[0]` is the open leaf, `levels[i]` the open internal page of
    /// level `i`.
    levels: Vec<Open>,
    previous: Option<String>,
}

impl DirBuilder {
    pub fn new(boundary: Boundary) -> Self {
        DirBuilder {
            boundary,
            levels: vec![Open::default()],
            previous: None,
        }
    }

    /// Entries held in its open pages, all levels (what it costs in memory
    /// until its pages are stored: each at most a page's worth).
    pub fn open_entries(&self) -> usize {
        self.levels.iter().map(|l| l.count).sum()
    }

    /// Add the next entry; its name must follow the previous one's.
    pub fn push(&mut self, entry: &Entry, store: &mut StoreFn<'_>) -> Result<()> {
        let name = entry.name();
        if self.previous.as_deref().is_some_and(|p| p >= name) {
            return Err(Error::Usage(format!(
                "directory entries out of order: {:?} after {:?}",
                name, self.previous
            )));
        }
        self.previous = Some(name.to_string());
        let leaf = &mut self.levels[0];
        page::put_entry(&mut leaf.body, &mut leaf.names, entry);
        leaf.count += 1;
        leaf.first.get_or_insert_with(|| name.to_string());
        leaf.totals.add(match entry {
            Entry::File(f) => Totals {
                entries: 1,
                files: 1,
                bytes: f.size,
            },
            Entry::Dir(d) => Totals {
                entries: 1,
                files: d.files_below,
                bytes: d.bytes_below,
            },
        });
        if self.closes(0, name) {
            self.close(0, store)?;
        }
        Ok(())
    }

    fn closes(&self, level: usize, name: &str) -> bool {
        let open = &self.levels[level];
        open.count >= MAX_PAGE_ENTRIES
            || open.body.len() >= MAX_PAGE_BYTES
            || (open.count >= MIN_PAGE_ENTRIES && self.boundary.hit(level, name))
    }

    /// Store the open page of `level` and record it in the level above.
    fn close(&mut self, level: usize, store: &mut StoreFn<'_>) -> Result<()> {
        let open = std::mem::take(&mut self.levels[level]);
        let blob = store(&page_bytes(level, &open))?;
        if self.levels.len() == level + 1 {
            self.levels.push(Open::default());
        }
        let child = Child {
            first: open.first.unwrap_or_default(),
            page: blob,
            entries: open.totals.entries,
            files: open.totals.files,
            bytes: open.totals.bytes,
        };
        let above = &mut self.levels[level + 1];
        page::put_child(&mut above.body, &mut above.names, &child);
        above.count += 1;
        above.first.get_or_insert_with(|| child.first.clone());
        above.totals.add(open.totals);
        above.last = Some(child.page);
        if self.closes(level + 1, &child.first) {
            self.close(level + 1, store)?;
        }
        Ok(())
    }

    /// Store what is still open; the directory's root page and totals.
    pub fn finish(mut self, store: &mut StoreFn<'_>) -> Result<(BlobRef, Totals)> {
        let mut level = 0;
        loop {
            let top = level + 1 == self.levels.len();
            if top {
                let open = self.levels.pop().unwrap_or_default();
                if level > 0 && open.count == 1 {
                    if let Some(root) = open.last {
                        return Ok((root, open.totals));
                    }
                }
                return Ok((store(&page_bytes(level, &open))?, open.totals));
            }
            if self.levels[level].count > 0 {
                self.close(level, store)?;
            }
            level += 1;
        }
    }
}

fn page_bytes(level: usize, open: &Open) -> Vec<u8> {
    if level == 0 {
        page::leaf_bytes(open.count, open.body.as_bytes())
    } else {
        page::internal_bytes(level as u8, open.count, open.body.as_bytes())
    }
}

/// Does a piece end after the chunk `id`? 1 chunk in 128 (ids are keyed
/// hashes already).
fn piece_boundary(chunk: &BlobRef) -> bool {
    chunk.id.0[0] & 0x7f == 0
}

/// Cuts a chunk list into pieces as its chunks come, one piece in memory
/// at a time (plus the piece list, ~100 bytes a piece): inline up to
/// [`INLINE_CHUNKS`] chunks, else pieces stored through `store` as they
/// close and, at [`Self::finish`], their list.
#[derive(Default)]
pub struct ChunkListBuilder {
    /// The first chunks, until the list is known to need pieces.
    head: Vec<BlobRef>,
    open: Vec<BlobRef>,
    pieces: Vec<PieceRef>,
    chunks: u64,
    in_pieces: bool,
}

impl ChunkListBuilder {
    /// Add the next chunk.
    pub fn push(&mut self, chunk: BlobRef, store: &mut StoreFn<'_>) -> Result<()> {
        self.chunks += 1;
        if self.in_pieces {
            return self.add_to_piece(chunk, store);
        }
        self.head.push(chunk);
        if self.head.len() > INLINE_CHUNKS {
            self.in_pieces = true;
            for chunk in std::mem::take(&mut self.head) {
                self.add_to_piece(chunk, store)?;
            }
        }
        Ok(())
    }

    fn add_to_piece(&mut self, chunk: BlobRef, store: &mut StoreFn<'_>) -> Result<()> {
        let len = self.open.len() + 1;
        let boundary =
            len >= MAX_PIECE_CHUNKS || (len >= MIN_PIECE_CHUNKS && piece_boundary(&chunk));
        self.open.push(chunk);
        if boundary {
            self.close_piece(store)?;
        }
        Ok(())
    }

    fn close_piece(&mut self, store: &mut StoreFn<'_>) -> Result<()> {
        let piece = std::mem::take(&mut self.open);
        self.pieces.push(PieceRef {
            piece: store(&page::encode_piece(&piece))?,
            chunks: piece.len() as u64,
            bytes: piece.iter().map(|c| u64::from(c.raw_length)).sum(),
        });
        Ok(())
    }

    /// The list: inline, or its last piece and the piece list stored.
    pub fn finish(mut self, store: &mut StoreFn<'_>) -> Result<ChunkList> {
        if !self.in_pieces {
            return Ok(ChunkList::Inline(self.head));
        }
        if !self.open.is_empty() {
            self.close_piece(store)?;
        }
        Ok(ChunkList::Pieces {
            list: store(&page::encode_piece_list(&self.pieces))?,
            chunks: self.chunks,
        })
    }
}

/// The chunk list of a file whose chunks are `chunks`: inline up to
/// [`INLINE_CHUNKS`], else pieces stored through `store` and their list.
pub fn store_chunk_list(chunks: Vec<BlobRef>, store: &mut StoreFn<'_>) -> Result<ChunkList> {
    let mut list = ChunkListBuilder::default();
    for chunk in chunks {
        list.push(chunk, store)?;
    }
    list.finish(store)
}
