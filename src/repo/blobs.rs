//! Reading blobs and trees: verified on every read, few requests per item.
//!
//! A blob is read by its location ([`BlobRef`]: pack, offset, length), so a
//! single-item restore needs only the trees on its path, never the index.
//! The key is the one of the blob's tenant ([`BlobRef::tenant`], filled in
//! from the tree entry that names it): an erased tenant's blob fails with
//! [`Error::Erased`], a blob that does not authenticate or does not match
//! its keyed id with [`Error::Corrupt`] naming its pack (see [`crate::repo::pack`]).

use std::collections::HashMap;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::layout::pack_key;
use crate::repo::pack::{decode_blob, BlobRef};
use crate::repo::Repository;
use crate::tree::{check_depth, Entry, FileEntry, Tree, TreeWalk};

/// Reads many trees with few requests: the first tree read from a pack
/// fetches the whole pack (tree packs hold only trees, a few MiB), later ones
/// come from memory. For walks over a whole snapshot (the parent of an
/// incremental snapshot); a single restore reads its few trees directly.
pub struct TreeCache<'r> {
    repo: &'r Repository,
    packs: HashMap<ObjectId, Bytes>,
    held: usize,
}

/// Memory the cache may hold before it starts over.
const TREE_CACHE_BYTES: usize = 64 << 20;

impl<'r> TreeCache<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        TreeCache {
            repo,
            packs: HashMap::new(),
            held: 0,
        }
    }

    /// Read one tree, verified like every blob.
    pub fn read_tree(&mut self, blob: &BlobRef) -> Result<Tree> {
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
        Tree::from_bytes(blob, &decode_blob(stored, blob, &key)?)
    }
}

impl Repository {
    /// Read one blob and verify it.
    pub fn read_blob(&self, blob: &BlobRef) -> Result<Vec<u8>> {
        let key = self.data_key(blob.tenant.as_deref())?;
        let stored = self.read_pack_range(&blob.pack, blob.range())?;
        decode_blob(&stored, blob, &key)
    }

    /// Read one tree blob.
    pub fn read_tree(&self, blob: &BlobRef) -> Result<Tree> {
        let bytes = self.read_blob(blob)?;
        Tree::from_bytes(blob, &bytes)
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
        let mut tree = self.read_tree(root)?;
        for (i, name) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            match tree.get(name) {
                Some(Entry::File(f)) if last => return Ok(Some(f.clone())),
                Some(Entry::Dir(d)) if !last => {
                    let next = d.tree.clone();
                    check_depth(i + 1, &next)?;
                    tree = self.read_tree(&next)?;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}
