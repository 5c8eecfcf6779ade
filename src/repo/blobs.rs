//! Reading blobs, directory pages and chunk lists: verified on every read,
//! few requests per item.
//!
//! A blob is read by its location ([`BlobRef`]: pack, offset, length), so a
//! single-item restore needs only the trees on its path, never the index.
//! The key is the one of the blob's tenant ([`BlobRef::tenant`], filled in
//! from the tree entry that names it): an erased tenant's blob fails with
//! [`Error::Erased`], a blob that does not authenticate or does not match
//! its keyed id with [`Error::Corrupt`] naming its pack (see [`crate::repo::pack`]).

use std::collections::HashMap;

use bytes::Bytes;

use crate::crypto::SealingKey;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::dictionary::{self, SECTION_LEN};
use crate::repo::layout::pack_key;
use crate::repo::pack::{decode_blob_with, dictionary_of, BlobRef, Compression};
use crate::repo::spans::{Piece, WriteAt};
use crate::repo::Repository;
use crate::tree::build::Boundary;
use crate::tree::page::{self, Page, PieceRef};
use crate::tree::read::{self as pages, ChunkIter, PageSource};
use crate::tree::{check_depth, ChunkList, Entry, FileEntry, Tree, TreeWalk};

/// Reads many trees with few requests: the first tree read from a pack
/// fetches the whole pack (tree packs hold only trees, a few MiB), later ones
/// come from memory. For walks over a whole snapshot (the parent of an
/// incremental snapshot); a single restore reads its few trees directly.
pub struct TreeCache<'r> {
    repo: &'r Repository,
    packs: HashMap<ObjectId, Bytes>,
    held: usize,
    /// Pages and pieces that were found damaged (see [`TreeCache::damaged`]).
    damaged: Vec<ObjectId>,
}

/// Memory the cache may hold before it starts over.
const TREE_CACHE_BYTES: usize = 64 << 20;

impl<'r> TreeCache<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        TreeCache {
            repo,
            packs: HashMap::new(),
            held: 0,
            damaged: Vec::new(),
        }
    }

    /// The pages, pieces and piece lists this cache found damaged. A
    /// snapshot forgets them: a page rebuilt byte for byte has the same id,
    /// and must be stored again rather than point at the damaged copy.
    pub fn damaged(&self) -> &[ObjectId] {
        &self.damaged
    }

    /// `read`, noting `blob` as damaged when it is.
    fn noting<T>(&mut self, blob: &BlobRef, read: Result<T>) -> Result<T> {
        if let Err(e) = &read {
            if crate::problems::is_object_damage(e) {
                self.damaged.push(blob.id);
            }
        }
        read
    }

    /// The verified content of `blob`, from its pack in memory.
    fn blob_bytes(&mut self, blob: &BlobRef) -> Result<Vec<u8>> {
        if !self.packs.contains_key(&blob.pack) {
            if self.held > TREE_CACHE_BYTES {
                self.packs.clear();
                self.held = 0;
            }
            let bytes = self.repo.read_pack(&blob.pack)?;
            self.held += bytes.len();
            self.packs.insert(blob.pack, bytes);
        }
        let pack = &self.packs[&blob.pack];
        let stored = pack
            .get(blob.offset as usize..blob.range().end as usize)
            .ok_or_else(|| {
                Error::corrupt(
                    pack_key(&blob.pack),
                    format!("blob {} lies beyond the pack", blob.id),
                )
            })?;
        let key = self.repo.data_key(blob.tenant.as_deref())?;
        let seal = key.pack_key(&blob.pack);
        let dictionary = self.repo.pack_dictionary(blob, &seal, Some(&pack[..]))?;
        decode_blob_with(stored, blob, &seal, &key, dictionary.as_ref())
    }

    /// Read one whole directory (every page of it), verified like every blob.
    pub fn read_tree(&mut self, blob: &BlobRef) -> Result<Tree> {
        Ok(pages::read_dir(self, blob)?.0)
    }

    /// [`Self::read_tree`], and every page the directory is stored in.
    pub fn read_tree_pages(&mut self, blob: &BlobRef) -> Result<(Tree, Vec<BlobRef>)> {
        pages::read_dir(self, blob)
    }
}

impl PageSource for TreeCache<'_> {
    fn page(&mut self, blob: &BlobRef) -> Result<Page> {
        let read = self.blob_bytes(blob).and_then(|b| page::decode(blob, &b));
        self.noting(blob, read)
    }
    fn piece(&mut self, blob: &BlobRef) -> Result<Vec<BlobRef>> {
        let read = self
            .blob_bytes(blob)
            .and_then(|b| page::decode_piece(blob, &b));
        self.noting(blob, read)
    }
    fn piece_list(&mut self, blob: &BlobRef, chunks: u64) -> Result<Vec<PieceRef>> {
        let read = self
            .blob_bytes(blob)
            .and_then(|b| page::decode_piece_list(blob, chunks, &b));
        self.noting(blob, read)
    }
}

impl PageSource for &Repository {
    fn page(&mut self, blob: &BlobRef) -> Result<Page> {
        page::decode(blob, &self.read_blob(blob)?)
    }
    fn piece(&mut self, blob: &BlobRef) -> Result<Vec<BlobRef>> {
        page::decode_piece(blob, &self.read_blob(blob)?)
    }
    fn piece_list(&mut self, blob: &BlobRef, chunks: u64) -> Result<Vec<PieceRef>> {
        page::decode_piece_list(blob, chunks, &self.read_blob(blob)?)
    }
}

impl Repository {
    /// Read one blob and verify it.
    pub fn read_blob(&self, blob: &BlobRef) -> Result<Vec<u8>> {
        let key = self.data_key(blob.tenant.as_deref())?;
        let stored = self.read_pack_range(&blob.pack, blob.range())?;
        let seal = key.pack_key(&blob.pack);
        let dictionary = self.pack_dictionary(blob, &seal, None)?;
        decode_blob_with(&stored, blob, &seal, &key, dictionary.as_ref())
    }

    /// The dictionary of `blob`'s pack when the blob is compressed with
    /// one (`None` otherwise), opened with the pack's subkey `seal`: from
    /// this process's cache, else from `whole` (the pack, when it is in
    /// memory) or one ranged read of the pack's dictionary section.
    pub fn pack_dictionary(
        &self,
        blob: &BlobRef,
        seal: &SealingKey,
        whole: Option<&[u8]>,
    ) -> Result<Option<dictionary::Loaded>> {
        if blob.compression != Compression::ZstdDict {
            return Ok(None);
        }
        let load = || match whole {
            Some(bytes) => dictionary_of(&blob.pack, bytes, seal),
            None => {
                let section = self.read_pack_range(&blob.pack, 0..SECTION_LEN as u64)?;
                dictionary::load_section(&blob.pack, seal, &section)
            }
        };
        self.dictionaries.get_or_load(&blob.pack, load).map(Some)
    }

    /// Read one whole directory (every page of it).
    pub fn read_tree(&self, blob: &BlobRef) -> Result<Tree> {
        Ok(pages::read_dir(self, blob)?.0)
    }

    /// The entry called `name` in the directory `dir`, reading one page per
    /// level of it.
    pub fn dir_get(&self, dir: &BlobRef, name: &str) -> Result<Option<Entry>> {
        pages::lookup(&mut &*self, dir, name)
    }

    /// The chunks of `list` in order, read one piece at a time.
    pub fn file_chunks(&self, list: &ChunkList) -> Result<ChunkIter<&Repository>> {
        ChunkIter::new(self, list)
    }

    /// Read the content of `list` in order, verified, handing each chunk to
    /// `sink` (and, with `write`, writing it at its offset first, see
    /// [`WriteAt`]); [`Self::read_blobs`] a batch of references at a time,
    /// so a 100 GB file's 12 million references are never all in memory; a
    /// batch holds up to 128 MiB of content, so its spans keep every core
    /// busy.
    pub fn read_file(
        &self,
        list: &ChunkList,
        write: Option<WriteAt<'_>>,
        sink: &mut dyn FnMut(Piece) -> Result<()>,
    ) -> Result<()> {
        const BATCH: usize = 16 << 10;
        const BATCH_BYTES: u64 = 128 << 20;
        let mut batch = Vec::with_capacity(BATCH.min(list.len() as usize));
        let (mut bytes, mut base) = (0u64, 0u64);
        let at = |base| write.map(|w| WriteAt { base, ..w });
        for chunk in self.file_chunks(list)? {
            let chunk = chunk?;
            bytes = bytes.saturating_add(chunk.raw_length.into());
            batch.push(chunk);
            if batch.len() == BATCH || bytes >= BATCH_BYTES {
                self.read_blobs(&batch, at(base), sink)?;
                batch.clear();
                base = base.saturating_add(bytes);
                bytes = 0;
            }
        }
        self.read_blobs(&batch, at(base), sink)
    }

    /// Every chunk of `list`, in memory.
    pub fn all_chunks(&self, list: &ChunkList) -> Result<Vec<BlobRef>> {
        pages::all_chunks(self, list)
    }

    /// Where this repository's directory pages end (see
    /// [`crate::tree::build`]): under the metadata key, so the same
    /// directory always gives the same pages here.
    pub fn page_boundary(&self) -> Boundary {
        Boundary::new(self.keys.meta().clone())
    }

    /// Visit every file below the tree `root` with its path (relative to the
    /// snapshot's source), depth first in name order. Iterative and depth
    /// limited ([`TreeWalk`]): a hostile tree cannot overflow the stack.
    pub fn for_each_file(
        &self,
        root: &BlobRef,
        visit: &mut dyn FnMut(String, FileEntry),
    ) -> Result<()> {
        let mut walk = TreeWalk::new(self.read_tree(root)?);
        while let Some(entry) = walk.next_entry() {
            match entry {
                Entry::Dir(d) => walk.descend(&d, self.read_tree(&d.tree)?)?,
                Entry::File(f) => visit(walk.path_of(&f.name), f),
            }
        }
        Ok(())
    }

    /// The file at `components` below the tree `root`, if the snapshot has it.
    pub fn lookup_file(&self, root: &BlobRef, components: &[String]) -> Result<Option<FileEntry>> {
        let mut dir = root.clone();
        for (i, name) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            match self.dir_get(&dir, name)? {
                Some(Entry::File(f)) if last => return Ok(Some(f)),
                Some(Entry::Dir(d)) if !last => {
                    check_depth(i + 1, &d.tree)?;
                    dir = d.tree;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}
