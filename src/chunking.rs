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
//! * **Small documents are one blob.** A client-data file of at most 64 KiB
//!   (the largest chunk) is stored whole: chats and e-mails are written once
//!   and never edited, so cutting them buys no deduplication, while each cut
//!   costs a blob (an index entry, a reference in the tree, 16 bytes of tag)
//!   and zstd compresses a whole document better than its pieces.
//!
//! **Size study** (2026-11-29, `benches/gen_scale.py` tree of 1 280 MiB: one
//! 515 MiB `dump.sql`, 102 000 chats and e-mails of 1–50 KB; blob bytes as
//! stored, with the 16-byte tag, before and after one simulated day;
//! restic 0.14 stores 449.9 MiB for the whole repository and adds 124.4 MiB):
//!
//! | chunks | zstd | dictionary | dump | small files | initial | blobs | one day |
//! |---|---|---|---|---|---|---|---|
//! | 8 KiB | 3 | none | 159.7 | 336.1 | 495.9 | 206 430 | 80.8 |
//! | 8 KiB | 6 | none | 154.5 | 324.0 | 478.5 | 206 430 | 78.2 |
//! | 16 KiB | 3 | none | 149.8 | 325.8 | 475.6 | 145 282 | 110.8 |
//! | 32 KiB | 3 | none | 141.6 | 317.9 | 459.5 | 118 773 | 127.4 |
//! | 8 KiB, documents whole | 3 | none | 159.7 | 318.1 | 477.9 | 154 375 | 80.6 |
//! | 8 KiB | 3 | one of 64 KiB | 138.7 | 229.2 | 367.9 | 206 430 | 71.5 |
//! | 8 KiB | 3 | one per kind, 64 KiB | 133.4 | 229.2 | 362.7 | 206 430 | 69.3 |
//! | 8 KiB | 3 | one of 112 KiB | 135.2 | 215.9 | 351.1 | 206 430 | 69.9 |
//! | 8 KiB, documents whole | 3 | one of 112 KiB | 135.1 | 212.4 | 347.5 | 154 375 | 69.8 |
//!
//! (MiB; sizes are estimated from every fourth chunk, chosen by id.) Bigger
//! chunks trade little size for much daily growth (+37 % at 16 KiB), and
//! zstd 6 saves 3.5 % for a fraction of level 3's speed; a zstd dictionary
//! trained on ~2 000 chunks of the tenant's own data saves 26 % of the
//! initial size and 12 % of the daily growth, by far the largest lever;
//! whole documents are free and take a quarter of the blobs away.
//!
//! **Built** (format 4, [`crate::repo::compress`]): one 112 KiB dictionary
//! per tenant and run, trained on the run's first 2 000 compressible data
//! blobs (2 MiB at most, see below) and carried by every pack that uses it. Measured
//! end to end on the same tree (2026-11-29, debug build, whole repository on
//! disk after `snapshot`, then after `gen_scale.py mutate` and a second one;
//! restic 0.14 on the same tree beside it):
//!
//! | | blobs | repository | one day: blobs | one day: growth |
//! |---|---|---|---|---|
//! | format 3 (no dictionary) | 492.0 | 506.5 | 93.6 | 95.8 |
//! | format 4 (dictionary per run) | 362.8 | 382.1 | 84.2 | 87.4 |
//! | restic 0.14 | | 450.6 | | 125.1 |
//!
//! (MiB.) The repository is 0.85× restic's and a day adds 0.70× what
//! restic adds. The day gains less than the study's estimate (−10 %, not
//! −12 %) because each run trains its own dictionary: its first 2 000 blobs
//! are the samples, stored with plain zstd, and each of its packs carries
//! the dictionary (1.4 % of an 8 MiB pack). Training on the 8 MiB of
//! samples took 1.9 s (zstd's trainer tries four parameter sets; the
//! tenant's other workers wait for it), ~4 % of the 43 s initial snapshot
//! on this loaded machine: at the edge of what is worth it.
//!
//! **Samples capped at 2 MiB** (2026-11-30): on the 2 GiB `compare` tree,
//! whose 20 tenants each train their own, training on 8 MiB took ~0.41 s a
//! tenant with every worker waiting, 8.2 s of a 12.9 s client-data snapshot
//! (restic took 13.6 s for the whole tree). On 2 MiB: ~0.14 s a tenant,
//! 6.7 s, and the dictionary is ready sooner, so that source stored 117
//! instead of 121 MiB. On the scale tree above: 384 MiB (was 382) and a day
//! 86 MiB (was 85.7), restic 450 and 124.6 (release build, tmpfs).
//! Blobs include the trees (format 3's binary pages); the rest of the
//! repository (pack headers, the packs' dictionaries, index files,
//! manifests) is 19 MiB after the first snapshot and 3 MiB a day.
//! * **Voice** recordings never change once written: big chunks (2 MiB
//!   average) keep the metadata small and are stored uncompressed.
//!
//! The parameters are part of what a snapshot writes, not of the format:
//! changing them only costs deduplication against older snapshots.

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::id::Sha256;

use crate::config::SourceClass;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::progress::Progress;
use crate::repo::pack::{BlobKind, BlobRef, Compression};
use crate::repo::writer::{BlobWriter, Compress};
use crate::tree::build::ChunkListBuilder;
use crate::tree::ChunkList;

/// FastCDC sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSizes {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
    /// A file of at most this many bytes is stored whole, as one blob (0: none).
    pub whole_up_to: u32,
}

/// The chunk sizes used for a class of data.
pub fn sizes_for(class: SourceClass) -> ChunkSizes {
    match class {
        SourceClass::ClientData => ChunkSizes {
            min: 2 << 10,
            avg: 8 << 10,
            max: 64 << 10,
            whole_up_to: 64 << 10,
        },
        SourceClass::Voice => ChunkSizes {
            min: 512 << 10,
            avg: 2 << 20,
            max: 8 << 20,
            whole_up_to: 0,
        },
    }
}

/// A file's content as stored.
#[derive(Debug, Clone)]
pub struct StoredContent {
    pub sha256: ObjectId,
    /// Stored as it came, piece by piece ([`ChunkListBuilder`]): a new
    /// 100 GB dump never holds its 13 million chunk references at once.
    pub chunks: ChunkList,
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

fn fill(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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
///
/// A sparse file (one with holes, asked with `SEEK_HOLE`) is read region by
/// region: each data region is chunked on its own, each hole is stored
/// without reading it ([`crate::sparse`]). A file without holes is read
/// front to back as always, so its chunks are the same as ever.
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
        let mut chunker = Chunker::new(tenant, sizes, writer, progress);
        match crate::sparse::first_hole(&file).map_err(source_error)? {
            None => {
                // Asking for the first hole moved the file's offset.
                file.rewind().map_err(source_error)?;
                chunker.data(&mut file, &mut buf[..window], path)?
            }
            Some(size) => chunker.regions(&mut file, size, &mut buf[..window], path)?,
        }
        let (tenant, writer) = (chunker.tenant, chunker.writer);
        let chunks = chunker
            .list
            .finish(&mut |bytes| writer.store(tenant, BlobKind::Tree, bytes, Compress::Try))
            .map_err(StoreFileError::Repository)?;
        Ok(StoredContent {
            sha256: chunker.whole.finish(),
            chunks,
            bytes_read: chunker.bytes_read,
        })
    })
}

/// One file being chunked: what is stored so far.
struct Chunker<'a, 'w> {
    tenant: Option<&'a str>,
    sizes: ChunkSizes,
    writer: &'a BlobWriter<'w>,
    progress: &'a Progress,
    whole: Sha256,
    /// The chunk list so far: one piece in memory at a time.
    list: ChunkListBuilder,
    /// Chunks stored so far.
    chunks: u64,
    mode: Compress,
    bytes_read: u64,
    /// The zero blob, once stored for this file's holes.
    zero: Option<BlobRef>,
}

impl<'a, 'w> Chunker<'a, 'w> {
    /// A file about to be chunked: nothing stored yet.
    fn new(
        tenant: Option<&'a str>,
        sizes: ChunkSizes,
        writer: &'a BlobWriter<'w>,
        progress: &'a Progress,
    ) -> Self {
        Chunker {
            tenant,
            sizes,
            writer,
            progress,
            whole: Sha256::new(),
            list: ChunkListBuilder::default(),
            chunks: 0,
            mode: Compress::Try,
            bytes_read: 0,
            zero: None,
        }
    }

    fn store(&mut self, data: &[u8]) -> Result<BlobRef, StoreFileError> {
        let blob = self
            .writer
            .store(self.tenant, BlobKind::Data, data, self.mode)
            .map_err(StoreFileError::Repository)?;
        // One incompressible first chunk (audio, archives): stop trying.
        if self.chunks == 0 && blob.compression == Compression::None {
            self.mode = Compress::Never;
        }
        self.whole.update(data);
        self.bytes_read += data.len() as u64;
        self.progress.advance(0, data.len() as u64);
        Ok(blob)
    }

    /// Add the next chunk to the list (a piece stored when one closes).
    fn push(&mut self, chunk: BlobRef) -> Result<(), StoreFileError> {
        self.chunks += 1;
        let (tenant, writer) = (self.tenant, self.writer);
        self.list
            .push(chunk, &mut |bytes| {
                writer.store(tenant, BlobKind::Tree, bytes, Compress::Try)
            })
            .map_err(StoreFileError::Repository)
    }

    /// Chunk everything `reader` returns: read in windows of `buf`, cut with
    /// FastCDC over each window; the last chunk of a window that did not
    /// reach the end is carried into the next, so the cut points are the
    /// same as over the whole stream.
    fn data(
        &mut self,
        reader: &mut impl Read,
        buf: &mut [u8],
        path: &Path,
    ) -> Result<(), StoreFileError> {
        let window = buf.len();
        let mut filled = 0usize;
        loop {
            let got = fill(reader, &mut buf[filled..window])
                .map_err(|e| StoreFileError::Source(format!("{}: {e}", path.display())))?;
            filled += got;
            let at_end = filled < window;
            if filled == 0 {
                break;
            }
            // A small document (the whole file in one window): one blob.
            let whole_file = at_end && self.chunks == 0;
            let cuts: Vec<(usize, usize)> =
                if whole_file && filled <= self.sizes.whole_up_to as usize {
                    vec![(0, filled)]
                } else {
                    fastcdc::v2020::FastCDC::new(
                        &buf[..filled],
                        self.sizes.min,
                        self.sizes.avg,
                        self.sizes.max,
                    )
                    .map(|c| (c.offset, c.length))
                    .collect()
                };
            let mut consumed = 0;
            for (i, &(offset, length)) in cuts.iter().enumerate() {
                if !at_end && i + 1 == cuts.len() && i > 0 {
                    break; // carried into the next window
                }
                let blob = self.store(&buf[offset..offset + length])?;
                self.push(blob)?;
                consumed = offset + length;
            }
            if at_end {
                break;
            }
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
        }
        Ok(())
    }

    /// A sparse file of `size` bytes (its length when the walk began), data
    /// region by data region. A file that shrinks while it is read keeps what
    /// was read, as any file does: no hole is padded past its end now.
    fn regions(
        &mut self,
        file: &mut File,
        size: u64,
        buf: &mut [u8],
        path: &Path,
    ) -> Result<(), StoreFileError> {
        let source_error =
            |e: std::io::Error| StoreFileError::Source(format!("{}: {e}", path.display()));
        let mut at = 0;
        while at < size {
            let data = crate::sparse::next_data(file, at, size).map_err(source_error)?;
            if data >= size {
                let now = file.metadata().map_err(source_error)?.len();
                return self.hole(size.min(now).saturating_sub(at));
            }
            self.hole(data - at)?;
            let hole = crate::sparse::next_hole(file, data, size).map_err(source_error)?;
            file.seek(SeekFrom::Start(data)).map_err(source_error)?;
            let before = self.bytes_read;
            self.data(&mut (&*file).take(hole - data), buf, path)?;
            if self.bytes_read - before < hole - data {
                break; // cut short: the file shrank
            }
            at = hole;
        }
        Ok(())
    }

    /// A hole of `len` bytes, not read: whole zero blobs, then the rest
    /// (less than one) as a chunk of zeros.
    fn hole(&mut self, mut len: u64) -> Result<(), StoreFileError> {
        let whole = u64::from(crate::sparse::ZERO_BLOB);
        while len >= whole {
            let blob = match &self.zero {
                Some(b) => {
                    crate::sparse::hash_zeros(&mut self.whole, whole);
                    self.bytes_read += whole;
                    self.progress.advance(0, whole);
                    b.clone()
                }
                None => {
                    let b = self.store(crate::sparse::zeros())?;
                    self.zero = Some(b.clone());
                    b
                }
            };
            self.push(blob)?;
            len -= whole;
        }
        if len > 0 {
            let blob = self.store(&crate::sparse::zeros()[..len as usize])?;
            self.push(blob)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text that FastCDC cuts into several 8 KiB chunks.
    fn text(bytes: usize) -> Vec<u8> {
        let mut state = 7u64;
        (0..bytes)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b"abcdefgh ijklmnop\n"[(state >> 59) as usize % 18]
            })
            .collect()
    }

    /// A fresh local repository in a temporary directory.
    fn test_repo() -> (tempfile::TempDir, crate::repo::Repository) {
        let dir = tempfile::tempdir().unwrap();
        let location = crate::repo::Location::Local(dir.path().join("repo"));
        let repo = crate::repo::Repository::init(
            &location,
            chrono::DateTime::UNIX_EPOCH,
            &crate::repo::MasterKey::generate(),
        )
        .unwrap();
        (dir, repo)
    }

    #[test]
    fn small_client_documents_are_one_blob_and_larger_files_are_chunked() {
        let (dir, repo) = test_repo();
        let writer = BlobWriter::new(&repo, chrono::DateTime::UNIX_EPOCH);
        let sizes = sizes_for(SourceClass::ClientData);
        let chunks_of = |bytes: usize| {
            let path = dir.path().join(format!("doc-{bytes}"));
            std::fs::write(&path, text(bytes)).unwrap();
            let stored = store_file(&path, None, bytes as u64, sizes, &writer).unwrap();
            assert_eq!(stored.bytes_read, bytes as u64);
            stored.chunks.len()
        };
        assert_eq!(chunks_of(sizes.whole_up_to as usize), 1);
        assert_eq!(chunks_of(40 << 10), 1);
        assert!(chunks_of(sizes.whole_up_to as usize + 1) > 1);
        assert!(chunks_of(256 << 10) > 4);
    }

    /// Regression: a sparse file that shrank after its size was taken was
    /// recorded padded with zeros up to the old size.
    #[test]
    fn a_sparse_file_that_shrank_is_not_padded_to_its_old_size() {
        let (dir, repo) = test_repo();
        let writer = BlobWriter::new(&repo, chrono::DateTime::UNIX_EPOCH);
        let path = dir.path().join("sparse");
        std::fs::write(&path, text(64 << 10)).unwrap();
        let mut file = File::options().read(true).write(true).open(&path).unwrap();
        file.set_len(3 << 20).unwrap(); // a trailing hole: 3 MiB now
        let progress = Progress::hidden();
        let sizes = sizes_for(SourceClass::ClientData);
        let mut chunker = Chunker::new(None, sizes, &writer, &progress);
        let mut buf = vec![0u8; 1 << 20];
        // The walk saw 5 MiB; the file has 3 MiB by the time it is read.
        chunker
            .regions(&mut file, 5 << 20, &mut buf, &path)
            .unwrap();
        assert_eq!(chunker.bytes_read, 3 << 20);
    }

    #[test]
    fn a_vanished_file_is_a_source_warning_not_a_repository_failure() {
        let (dir, repo) = test_repo();
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
