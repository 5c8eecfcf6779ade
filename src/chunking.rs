//! Content-defined chunking, with chunk sizes chosen per class of data.
//!
//! FastCDC cuts files where their content says, so an edit moves only the
//! chunks around it. The right size depends on how the data changes:
//!
//! * **Client data** (database dumps, chats, e-mails) changes by scattered
//!   line edits: a dump rewrites ~1 % of its rows a day, about one edit every
//!   15 KB. Large chunks would all be touched every day, so client data uses
//!   small chunks (16 KiB average) and zstd recovers the ratio.
//! * **Voice** recordings never change once written: big chunks (2 MiB
//!   average) keep the metadata small and are stored uncompressed.
//!
//! The parameters are part of what a snapshot writes, not of the format:
//! changing them only costs deduplication against older snapshots.

use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::SourceClass;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::{BlobKind, BlobRef, Compression};
use crate::writer::{BlobWriter, Compress};

/// FastCDC sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSizes {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

/// The chunk sizes used for a class of data.
pub fn sizes_for(class: SourceClass) -> ChunkSizes {
    match class {
        SourceClass::ClientData => ChunkSizes {
            min: 4 << 10,
            avg: 16 << 10,
            max: 128 << 10,
        },
        SourceClass::Voice => ChunkSizes {
            min: 512 << 10,
            avg: 2 << 20,
            max: 8 << 20,
        },
    }
}

/// A file's content as stored.
#[derive(Debug, Clone)]
pub struct StoredContent {
    pub sha256: ObjectId,
    pub chunks: Vec<BlobRef>,
    pub bytes_read: u64,
}

/// Why a file could not be stored: the file (a warning) or the repository (fatal).
#[derive(Debug)]
pub enum StoreFileError {
    /// The source file could not be read; the snapshot goes on without it.
    Source(String),
    /// Writing to the repository failed; the snapshot must stop.
    Repository(Error),
}

/// Read, chunk, hash and store one file.
pub fn store_file(
    path: &Path,
    sizes: ChunkSizes,
    writer: &BlobWriter<'_>,
) -> Result<StoredContent, StoreFileError> {
    let file =
        File::open(path).map_err(|e| StoreFileError::Source(format!("{}: {e}", path.display())))?;
    let chunker = fastcdc::v2020::StreamCDC::new(file, sizes.min, sizes.avg, sizes.max);
    let mut whole = Sha256::new();
    let mut chunks = Vec::new();
    let mut mode = Compress::Try;
    let mut bytes_read = 0u64;
    for chunk in chunker {
        let chunk =
            chunk.map_err(|e| StoreFileError::Source(format!("{}: {e}", path.display())))?;
        whole.update(&chunk.data);
        bytes_read += chunk.data.len() as u64;
        let blob = writer
            .store(BlobKind::Data, &chunk.data, mode)
            .map_err(StoreFileError::Repository)?;
        // One incompressible chunk means the file is (audio, archives): stop trying.
        if chunks.is_empty() && blob.compression == Compression::None {
            mode = Compress::Never;
        }
        chunks.push(blob);
    }
    Ok(StoredContent {
        sha256: ObjectId(whole.finalize().into()),
        chunks,
        bytes_read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_file_is_a_source_warning_not_a_repository_failure() {
        let dir = tempfile::tempdir().unwrap();
        let location = crate::store::Location::Local(dir.path().join("repo"));
        let repo = crate::repo::Repository::init(&location).unwrap();
        let writer = BlobWriter::new(&repo, crate::index::Index::default());
        let err = store_file(
            &dir.path().join("gone"),
            sizes_for(SourceClass::ClientData),
            &writer,
        )
        .unwrap_err();
        assert!(matches!(err, StoreFileError::Source(m) if m.contains("gone")));
    }
}
