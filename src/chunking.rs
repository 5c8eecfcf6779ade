//! Content-defined chunking, with chunk sizes chosen per class of data.
//!
//! FastCDC cuts files where their content says, so an edit moves only the
//! chunks around it. The right size depends on how the data changes:
//!
//! * **Client data** (database dumps, chats, e-mails) changes by scattered
//!   line edits: a dump rewrites ~1 % of its rows a day, about one edit every
//!   15 KB. Large chunks would all be touched every day, so client data uses
//!   small chunks (8 KiB average) and zstd recovers most of the ratio.
//!   Measured on the benchmark tree (one simulated day): 16 KiB chunks add
//!   37 MiB, 8 KiB 31 MiB, 4 KiB 26 MiB, but smaller chunks compress worse
//!   (initial 118 / 126 / 140 MiB) and need more memory; 8 KiB is the balance.
//! * **Voice** recordings never change once written: big chunks (2 MiB
//!   average) keep the metadata small and are stored uncompressed.
//!
//! The parameters are part of what a snapshot writes, not of the format:
//! changing them only costs deduplication against older snapshots.

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::SourceClass;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::progress::Progress;
use crate::repo::pack::{BlobKind, BlobRef, Compression};
use crate::repo::writer::{BlobWriter, Compress};

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
            min: 2 << 10,
            avg: 8 << 10,
            max: 64 << 10,
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

/// Bytes read from a file at a time; at least twice the largest chunk, so
/// every window holds whole chunks. Files smaller than this are read at once.
const WINDOW: usize = 32 << 20;

thread_local! {
    /// One read buffer per worker thread, reused across files.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn fill(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Read, chunk, hash and store one file. `size_hint` (the size the walk saw)
/// only sizes the read buffer.
///
/// The file is read in windows of up to [`WINDOW`] bytes and cut with FastCDC
/// over each window; the last chunk of a window that did not reach the end of
/// the file is carried into the next window, so the cut points are the same
/// as over the whole file, and no chunk is copied before it is stored.
pub fn store_file(
    path: &Path,
    tenant: Option<&str>,
    size_hint: u64,
    sizes: ChunkSizes,
    writer: &BlobWriter<'_>,
) -> Result<StoredContent, StoreFileError> {
    let file =
        File::open(path).map_err(|e| StoreFileError::Source(format!("{}: {e}", path.display())))?;
    store_open_file(
        file,
        path,
        tenant,
        size_hint,
        sizes,
        writer,
        &Progress::hidden(),
    )
}

/// [`store_file`] for a file the caller opened (and vetted) already; `path`
/// only names it in warnings; each chunk's bytes are counted on `progress`.
/// Chunks are stored under `tenant`'s key (the file's tenant).
pub fn store_open_file(
    mut file: File,
    path: &Path,
    tenant: Option<&str>,
    size_hint: u64,
    sizes: ChunkSizes,
    writer: &BlobWriter<'_>,
    progress: &Progress,
) -> Result<StoredContent, StoreFileError> {
    let source_error =
        |e: std::io::Error| StoreFileError::Source(format!("{}: {e}", path.display()));
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        let want = (size_hint as usize)
            .saturating_add(1)
            .clamp(64 << 10, WINDOW);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let window = buf.len().min(WINDOW);
        let mut whole = Sha256::new();
        let mut chunks = Vec::new();
        let mut mode = Compress::Try;
        let mut bytes_read = 0u64;
        let mut filled = 0usize;
        loop {
            let got = fill(&mut file, &mut buf[filled..window]).map_err(source_error)?;
            filled += got;
            let at_end = filled < window;
            if filled == 0 {
                break;
            }
            let cuts: Vec<(usize, usize)> =
                fastcdc::v2020::FastCDC::new(&buf[..filled], sizes.min, sizes.avg, sizes.max)
                    .map(|c| (c.offset, c.length))
                    .collect();
            let mut consumed = 0;
            for (i, &(offset, length)) in cuts.iter().enumerate() {
                if !at_end && i + 1 == cuts.len() && i > 0 {
                    break; // carried into the next window
                }
                let data = &buf[offset..offset + length];
                whole.update(data);
                bytes_read += length as u64;
                let blob = writer
                    .store(tenant, BlobKind::Data, data, mode)
                    .map_err(StoreFileError::Repository)?;
                // One incompressible first chunk (audio, archives): stop trying.
                if chunks.is_empty() && blob.compression == Compression::None {
                    mode = Compress::Never;
                }
                chunks.push(blob);
                progress.advance(0, length as u64);
                consumed = offset + length;
            }
            if at_end {
                break;
            }
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
        }
        Ok(StoredContent {
            sha256: ObjectId(whole.finalize().into()),
            chunks,
            bytes_read,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_file_is_a_source_warning_not_a_repository_failure() {
        let dir = tempfile::tempdir().unwrap();
        let location = crate::repo::Location::Local(dir.path().join("repo"));
        let repo = crate::repo::Repository::init(
            &location,
            chrono::DateTime::UNIX_EPOCH,
            &crate::repo::MasterKey::generate(),
        )
        .unwrap();
        let writer = BlobWriter::new(&repo, chrono::DateTime::UNIX_EPOCH);
        let err = store_file(
            &dir.path().join("gone"),
            None,
            0,
            sizes_for(SourceClass::ClientData),
            &writer,
        )
        .unwrap_err();
        assert!(matches!(err, StoreFileError::Source(m) if m.contains("gone")));
    }
}
