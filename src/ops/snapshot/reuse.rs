//! Reusing a file's chunk list from the parent snapshot.
//!
//! An unchanged file (or a carried recording) keeps its parent's chunk
//! list only if every blob it names is held in a pack the trusted index
//! holds ([`crate::ops::live_index`]): a snapshot never references data it
//! has not verified exists. An inline list is checked chunk by chunk. A
//! list in pieces is checked without holding it: its piece list (one small
//! blob, ~100 bytes a piece) and its pieces by pack presence, then its
//! chunks one piece at a time. Pieces must be read for that (the chunks'
//! packs are named only there), but nothing is stored: the list is reused
//! by reference, the same blobs. Only when a chunk moved (its pack is gone
//! but the index holds the same blob elsewhere) is the list rebuilt,
//! streamed piece by piece through a [`ChunkListBuilder`] (unchanged pieces
//! deduplicate). So a 100 GB dump costs one piece in memory at a time, not
//! its 13 million chunk references twice.

use crate::error::{Error, Result};
use crate::problems::is_object_damage;
use crate::repo::pack::{BlobKind, BlobRef};
use crate::repo::writer::{BlobWriter, Compress};
use crate::tree::build::ChunkListBuilder;
use crate::tree::read::{list_blobs, ChunkIter};
use crate::tree::ChunkList;

use super::walk::{Cached, Walker};

/// Where `chunk` may be referenced: as it is when its pack is trusted,
/// else wherever the repository holds the same blob.
fn relocated(chunk: &BlobRef, writer: &BlobWriter<'_>) -> Option<BlobRef> {
    if writer.trusts(chunk) {
        Some(chunk.clone())
    } else {
        writer.locate(&chunk.id)
    }
}

impl Walker<'_> {
    /// `chunks` re-pointed at the trusted index, `None` if any is lost (or
    /// a piece of the list is lost or damaged). Other errors (the store
    /// failing) stop the snapshot, so a transient failure never drops a
    /// carried recording.
    pub(super) fn relocate(
        &mut self,
        tenant: Option<&str>,
        chunks: &ChunkList,
    ) -> Result<Option<ChunkList>> {
        if let ChunkList::Inline(c) = chunks {
            return Ok(crate::ops::live_index::relocate(c, self.writer).map(ChunkList::Inline));
        }
        let found = self.held_as_is(chunks).and_then(|held| match held {
            true => Ok(Some(chunks.clone())),
            false => self.rebuilt(tenant, chunks),
        });
        self.forget_damaged();
        match found {
            Err(e) if is_object_damage(&e) || matches!(e, Error::Erased { .. }) => Ok(None),
            found => found,
        }
    }

    /// Is every blob of the list in pieces `chunks` (piece list, pieces,
    /// chunks) held in a trusted pack as referenced?
    fn held_as_is(&mut self, chunks: &ChunkList) -> Result<bool> {
        let writer = self.writer;
        if !list_blobs(Cached(self.trees), chunks)?
            .iter()
            .all(|b| writer.trusts(b))
        {
            return Ok(false);
        }
        for chunk in ChunkIter::new(Cached(self.trees), chunks)? {
            if !writer.trusts(&chunk?) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The list of `chunks` stored again with every chunk re-pointed at
    /// the trusted index, one piece at a time; `None` if a chunk is lost.
    fn rebuilt(&mut self, tenant: Option<&str>, chunks: &ChunkList) -> Result<Option<ChunkList>> {
        let writer = self.writer;
        let mut store = |bytes: &[u8]| writer.store(tenant, BlobKind::Tree, bytes, Compress::Try);
        let mut list = ChunkListBuilder::default();
        for chunk in ChunkIter::new(Cached(self.trees), chunks)? {
            let Some(chunk) = relocated(&chunk?, writer) else {
                return Ok(None);
            };
            list.push(chunk, &mut store)?;
        }
        list.finish(&mut store).map(Some)
    }
}
