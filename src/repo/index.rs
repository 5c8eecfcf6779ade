//! The index: which blobs exist and in which pack.
//!
//! Index files are written by a snapshot after its packs and before its
//! manifest; each lists the packs that run wrote with their blobs (exactly the
//! packs' own headers), so the index can be rebuilt from the packs. Stored as
//! zstd-compressed JSON sealed under the metadata key (purpose
//! [`INDEX_PURPOSE`]), named by the SHA-256 of the stored (sealed) bytes. A snapshot
//! streams the index files into its on-disk blob lookup
//! ([`crate::repo::lookup`]) to deduplicate; a single-item restore never needs
//! the index, because trees carry each chunk's location.
//!
//! An index file that cannot be read is a problem to report, not a reason to
//! stop: the `_tolerant` readers skip it and return it as a [`Problem`]; the
//! blobs only it lists are then unknown, which costs a re-upload at worst.
//! Prune sweeps no pack while one is unreadable (see `ops::prune`).

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::repo::layout::{self, index_key, ObjectKind};
use crate::repo::pack::{BlobRef, PackedBlob};
use crate::repo::Repository;

/// Index format version.
pub const INDEX_VERSION: u32 = 1;

/// What index files are sealed for.
pub const INDEX_PURPOSE: &str = "offsite2/index";

/// One pack as an index file lists it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IndexedPack {
    pub id: ObjectId,
    pub size: u64,
    /// Whose key seals the pack's blobs (`None`: the shared key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub blobs: Vec<PackedBlob>,
}

/// An index file.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct IndexFile {
    pub version: u32,
    pub packs: Vec<IndexedPack>,
    /// Written by a snapshot run: the stem of the manifest key it was going
    /// to write ([`crate::repo::layout::snapshot_stem`]). A file whose run
    /// has no manifest belongs to a snapshot that never finished; prune
    /// keeps its packs a while for the next run ([`crate::ops::sweep`]).
    /// Files prune and repairs write have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// The union of all index files, in memory.
#[derive(Debug, Default)]
pub struct Index {
    pub blobs: HashMap<ObjectId, BlobRef>,
    /// Pack id → size in bytes.
    pub packs: HashMap<ObjectId, u64>,
}

impl Index {
    /// Merge the packs of one index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack);
        }
    }

    /// Merge one pack.
    pub fn add_pack(&mut self, pack: &IndexedPack) {
        self.packs.insert(pack.id, pack.size);
        let tenant: Option<std::sync::Arc<str>> = pack.tenant.as_deref().map(Into::into);
        for blob in &pack.blobs {
            self.blobs
                .entry(blob.id)
                .or_insert_with(|| BlobRef::new(pack.id, blob, tenant.as_ref()));
        }
    }
}

/// Index files with their ids.
pub type IndexFiles = Vec<(ObjectId, IndexFile)>;

impl Repository {
    /// The ids of every index file, sorted. A listed key that is not an
    /// index key is skipped with a warning.
    pub fn list_index_files(&self) -> Result<Vec<ObjectId>> {
        Ok(self
            .store
            .list(ObjectKind::Index.prefix())?
            .into_iter()
            .filter_map(|(key, _)| {
                let id = layout::parse_index_key(&key);
                if id.is_none() {
                    tracing::warn!(object = %key, "not an index key; ignored");
                }
                id
            })
            .collect())
    }

    /// Read and parse one index file.
    pub fn read_index_file(&self, id: &ObjectId) -> Result<IndexFile> {
        let key = index_key(id);
        let stored = self.store.get(&key)?;
        if ObjectId::hash(&stored) != *id {
            return Err(Error::corrupt(&key, "index file does not match its id"));
        }
        let opened = self.keys.meta().open(INDEX_PURPOSE, &key, &stored)?;
        decode_index_file(&key, &opened)
    }

    /// Read every index file; the first that cannot be read fails.
    pub fn read_all_index_files(&self) -> Result<IndexFiles> {
        self.list_index_files()?
            .into_iter()
            .map(|id| self.read_index_file(&id).map(|file| (id, file)))
            .collect()
    }

    /// Read every index file that reads; the others are returned as problems
    /// (skipped, never deleted here). Only errors of the store itself fail.
    pub fn read_all_index_files_tolerant(&self) -> Result<(IndexFiles, Vec<Problem>)> {
        let mut files = Vec::new();
        let problems = self.each_index_file_tolerant(|id, file| {
            files.push((id, file));
            Ok(())
        })?;
        Ok((files, problems))
    }

    /// Hand every index file that reads to `each`, one at a time (so only
    /// one is in memory); the others are returned as problems.
    pub fn each_index_file_tolerant(
        &self,
        mut each: impl FnMut(ObjectId, IndexFile) -> Result<()>,
    ) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        for id in self.list_index_files()? {
            match self.read_index_file(&id) {
                Ok(file) => each(id, file)?,
                Err(Error::NotFound { .. }) => {} // deleted since the listing
                Err(e) if is_object_damage(&e) => problems.push(Problem::new(&index_key(&id), &e)),
                Err(e) => return Err(e),
            }
        }
        Ok(problems)
    }

    /// The index files that cannot be read, without keeping the others in memory.
    pub fn unreadable_index_files(&self) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        for id in self.list_index_files()? {
            match self.read_index_file(&id) {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) if is_object_damage(&e) => problems.push(Problem::new(&index_key(&id), &e)),
                Err(e) => return Err(e),
            }
        }
        Ok(problems)
    }

    /// Read every index file that reads into one [`Index`]; the unreadable
    /// ones are skipped and returned as problems. A blob only they list is
    /// simply unknown: a snapshot stores it again rather than fail.
    pub fn load_index_tolerant(&self) -> Result<(Index, Vec<Problem>)> {
        let mut index = Index::default();
        let (files, problems) = self.read_all_index_files_tolerant()?;
        for (_, file) in files {
            index.add_file(&file);
        }
        Ok((index, problems))
    }

    /// Write an index file listing `packs`; returns its id.
    pub fn write_index_file(&self, packs: Vec<IndexedPack>) -> Result<ObjectId> {
        self.write_index_file_until(packs, None)
    }

    /// [`Repository::write_index_file`], Object-Locked until `until` where
    /// the repository locks.
    pub fn write_index_file_until(
        &self,
        packs: Vec<IndexedPack>,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<ObjectId> {
        self.write_index_file_for(packs, until, None)
    }

    /// [`Repository::write_index_file_until`] for the snapshot run whose
    /// manifest stem is `run` ([`IndexFile::run`]).
    pub fn write_index_file_for(
        &self,
        packs: Vec<IndexedPack>,
        until: Option<chrono::DateTime<chrono::Utc>>,
        run: Option<&str>,
    ) -> Result<ObjectId> {
        let file = IndexFile {
            version: INDEX_VERSION,
            packs,
            run: run.map(str::to_string),
        };
        // Streamed through the compressor: the JSON (~170 B per blob) is never
        // whole in memory, only its compressed form.
        let mut encoder =
            zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd compresses in memory");
        serde_json::to_writer(&mut encoder, &file).expect("index serializes");
        let packed = encoder.finish().expect("zstd compresses in memory");
        let stored = self.keys.meta().seal(INDEX_PURPOSE, &packed);
        let id = ObjectId::hash(&stored);
        self.store
            .put_until(&index_key(&id), Bytes::from(stored), until)?;
        Ok(id)
    }

    /// When each index file was written, by the store's clock.
    pub fn index_file_times(&self) -> Result<HashMap<ObjectId, chrono::DateTime<chrono::Utc>>> {
        Ok(self
            .store
            .list_with_times(ObjectKind::Index.prefix())?
            .into_iter()
            .filter_map(|l| Some((layout::parse_index_key(&l.key)?, l.modified)))
            .collect())
    }

    /// Delete an index file (a missing one is not an error).
    pub fn delete_index_file(&self, id: &ObjectId) -> Result<()> {
        self.store.delete(&index_key(id))
    }
}

/// Parse the opened bytes (zstd JSON) of the index file `key` (pure: the
/// fuzz target's entry).
pub fn decode_index_file(key: &str, stored: &[u8]) -> Result<IndexFile> {
    let json =
        crate::decompress::decompress_at_most(stored, crate::decompress::json_limit(stored.len()))
            .map_err(|e| Error::corrupt_by(key, "index does not decompress", e))?;
    let file: IndexFile = serde_json::from_slice(&json)
        .map_err(|e| Error::corrupt_by(key, "index does not parse", e))?;
    if file.version != INDEX_VERSION {
        return Err(Error::corrupt(
            key,
            format!("unsupported index version {}", file.version),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_bomb_is_refused_before_it_expands() {
        let bomb = zstd::bulk::compress(&vec![b' '; 64 << 20], 19).unwrap();
        let err = decode_index_file("an index file", &bomb)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not decompress"), "{err}");
    }

    #[test]
    fn written_index_decodes() {
        let file = IndexFile {
            version: INDEX_VERSION,
            packs: vec![],
            run: None,
        };
        let stored = zstd::bulk::compress(&serde_json::to_vec(&file).unwrap(), 3).unwrap();
        assert_eq!(
            decode_index_file("an index file", &stored).unwrap().packs,
            vec![]
        );
    }
}
