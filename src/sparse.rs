//! Holes in sparse files: stored as references to one all-zero blob.
//!
//! A sparse source file (a VM image, a preallocated database file) may be
//! terabytes long and mostly holes. The snapshot asks the file system where
//! its data is (`SEEK_DATA`/`SEEK_HOLE`) and never reads the holes; each
//! whole [`ZERO_BLOB`] of a hole is stored as a reference to the tenant's
//! all-zero blob of that size (stored once per tenant key, deduplicated like
//! any blob: no format change), and a remainder of less than that is read
//! like data (the file system returns zeros; it is small).
//!
//! Restore recognises the zero blob by its keyed id and length, fetches
//! nothing for it, and seeks past it instead of writing, so holes stay holes
//! (the file is `set_len` to its size at the end). The whole-content SHA-256
//! is still fed the zeros, so a restored sparse file is verified like any
//! other.
//!
//! Why 1 MiB: a 4 GiB hole is 4096 references (small next to its chunk
//! list of data), while holes smaller than 1 MiB cost at most 1 MiB of
//! reading zeros each; file systems allocate in far smaller units, so
//! little of a real hole is read.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::keys::DataKey;
use crate::repo::pack::BlobRef;
use crate::repo::Repository;

/// The size of the all-zero blob a hole is stored as.
pub const ZERO_BLOB: u32 = 1 << 20;

/// `ZERO_BLOB` zero bytes.
pub fn zeros() -> &'static [u8] {
    static ZEROS: [u8; ZERO_BLOB as usize] = [0; ZERO_BLOB as usize];
    &ZEROS
}

/// The keyed id of the zero blob under `key` (computed once per key).
pub fn zero_id(key: &DataKey) -> ObjectId {
    static IDS: Mutex<Option<HashMap<[u8; 16], ObjectId>>> = Mutex::new(None);
    let mut ids = IDS.lock().unwrap_or_else(|p| p.into_inner());
    *ids.get_or_insert_with(HashMap::new)
        .entry(key.key_id)
        .or_insert_with(|| key.id_of(zeros()))
}

/// Whether `blob` is its tenant's zero blob (a hole: nothing to fetch).
pub fn is_hole(repo: &Repository, blob: &BlobRef) -> Result<bool> {
    if blob.raw_length != ZERO_BLOB {
        return Ok(false);
    }
    let key = repo.data_key(blob.tenant.as_deref())?;
    Ok(blob.id == zero_id(&key))
}

/// Feed `n` zero bytes to `hash` (a hole, for the whole-content SHA-256).
pub fn hash_zeros(hash: &mut crate::id::Sha256, mut n: u64) {
    while n > 0 {
        let step = n.min(ZERO_BLOB.into());
        hash.update(&zeros()[..step as usize]);
        n -= step;
    }
}

/// `lseek` with `SEEK_DATA`/`SEEK_HOLE`; `None` when there is no data (or
/// hole) at or after the offset (`ENXIO`: the rest is a hole).
fn seek(file: &std::fs::File, to: rustix::fs::SeekFrom) -> std::io::Result<Option<u64>> {
    match rustix::fs::seek(file, to) {
        Ok(at) => Ok(Some(at)),
        Err(rustix::io::Errno::NXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `Some(size)` when `file` (of `size` bytes, from `fstat`) has a hole
/// before its end; `None` for a file without holes, or on a file system that
/// cannot say (read front to back, as ever).
pub fn first_hole(file: &std::fs::File) -> std::io::Result<Option<u64>> {
    let size = file.metadata()?.len();
    match seek(file, rustix::fs::SeekFrom::Hole(0)) {
        Ok(Some(hole)) if hole < size => Ok(Some(size)),
        Ok(_) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where the next data region at or after `at` starts (`size` if none).
pub fn next_data(file: &std::fs::File, at: u64, size: u64) -> std::io::Result<u64> {
    Ok(seek(file, rustix::fs::SeekFrom::Data(at))?.map_or(size, |d| d.clamp(at, size)))
}

/// Where the data region at `at` ends (at most `size`).
pub fn next_hole(file: &std::fs::File, at: u64, size: u64) -> std::io::Result<u64> {
    Ok(seek(file, rustix::fs::SeekFrom::Hole(at))?.map_or(size, |h| h.clamp(at, size)))
}
