//! Pack objects by id: listed, read whole or in ranges, written, deleted,
//! and quarantined. A listed key that is not a well-formed pack key is not a
//! pack: it is skipped with a warning, never read or deleted.

use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::index::IndexedPack;
use crate::repo::layout::{self, pack_key, ObjectKind};
use crate::repo::pack::{
    decode_stored, dictionary_of, header_of, open_blob, parse_header, parse_trailer, BlobKind,
    BlobRef, TRAILER_LEN,
};
use crate::repo::Repository;

/// A whole pack read back and verified ([`Repository::verify_pack`]).
#[derive(Debug)]
pub enum PackVerdict {
    /// The header opens and every blob authenticates and matches its id.
    Whole(IndexedPack),
    /// The header opens but the pack's tenant was erased: its blobs cannot be
    /// read by anyone, by design. Not damage.
    Erased { pack: IndexedPack, tenant: String },
    /// The header opens but the key of the pack's tenant cannot be loaded
    /// (its wrap is damaged or missing): the key is damaged, not the pack,
    /// which is never quarantined for it. `reason` names the key object.
    Unverifiable { pack: IndexedPack, reason: String },
    /// Damaged: why, the blobs that still verify (with their content, to
    /// salvage), and how many do not.
    Damaged {
        reason: String,
        good: Vec<(BlobKind, BlobRef, Vec<u8>)>,
        lost: usize,
    },
}

/// One pack of a listing with the store's last-modified time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPack {
    pub id: ObjectId,
    pub size: u64,
    /// The store's clock (the same for every writer): the grace period of
    /// unindexed packs is measured on it.
    pub modified: DateTime<Utc>,
}

fn parsed(key: &str) -> Option<ObjectId> {
    let id = layout::parse_pack_key(key);
    if id.is_none() {
        tracing::warn!(object = %key, "not a pack key; ignored");
    }
    id
}

impl Repository {
    /// Every pack with its size, in id order.
    pub fn list_packs(&self) -> Result<Vec<(ObjectId, u64)>> {
        Ok(self
            .store
            .list(ObjectKind::Pack.prefix())?
            .into_iter()
            .filter_map(|(key, size)| Some((parsed(&key)?, size)))
            .collect())
    }

    /// Every pack with its size and last-modified time, in id order.
    pub fn list_packs_with_times(&self) -> Result<Vec<ListedPack>> {
        Ok(self
            .store
            .list_with_times(ObjectKind::Pack.prefix())?
            .into_iter()
            .filter_map(|l| {
                Some(ListedPack {
                    id: parsed(&l.key)?,
                    size: l.size,
                    modified: l.modified,
                })
            })
            .collect())
    }

    /// A whole pack (unverified: blobs are verified as they are decoded).
    pub fn read_pack(&self, id: &ObjectId) -> Result<Bytes> {
        self.store.get(&pack_key(id))
    }

    /// `range` of a pack; a short read is an error naming the pack.
    pub fn read_pack_range(&self, id: &ObjectId, range: Range<u64>) -> Result<Bytes> {
        self.store.get_range(&pack_key(id), range)
    }

    /// A pack's header with two ranged reads (trailer, then header), as the
    /// index lists it; `size` is the pack's size from a listing. Opened with
    /// the metadata key only: readable for an erased tenant's pack too.
    pub fn read_pack_header(&self, id: &ObjectId, size: u64) -> Result<IndexedPack> {
        let key = pack_key(id);
        if size < TRAILER_LEN {
            return Err(Error::corrupt(&key, "pack is shorter than its trailer"));
        }
        let trailer = self.read_pack_range(id, size - TRAILER_LEN..size)?;
        let header_len = parse_trailer(&key, &trailer)?;
        let start = (size - TRAILER_LEN)
            .checked_sub(header_len)
            .ok_or_else(|| Error::corrupt(&key, "pack header length exceeds the pack"))?;
        let sealed = self.read_pack_range(id, start..size - TRAILER_LEN)?;
        let header = parse_header(id, &sealed, self.keys().meta())?;
        Ok(IndexedPack {
            id: *id,
            size,
            tenant: header.tenant,
            blobs: header.blobs,
        })
    }

    /// Verify the whole pack `id` read as `bytes`: its sealed header (under
    /// the metadata key), then every blob under the key of the header's
    /// tenant. Errors only when the store fails (loading a tenant key).
    pub fn verify_pack(&self, id: ObjectId, bytes: &[u8]) -> Result<PackVerdict> {
        let key = &pack_key(&id);
        let header = match header_of(&id, bytes, self.keys().meta()) {
            Ok(h) => h,
            Err(e) => {
                return Ok(PackVerdict::Damaged {
                    reason: e.to_string(),
                    good: Vec::new(),
                    lost: 0,
                })
            }
        };
        let pack = IndexedPack {
            id,
            size: bytes.len() as u64,
            tenant: header.tenant,
            blobs: header.blobs,
        };
        let has_dictionary = header.dictionary;
        let data_key = match self.data_key(pack.tenant.as_deref()) {
            Ok(k) => k,
            Err(Error::Erased { tenant, .. }) => return Ok(PackVerdict::Erased { pack, tenant }),
            Err(e @ Error::Corrupt { .. }) => {
                return Ok(PackVerdict::Unverifiable {
                    pack,
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        let seal = data_key.pack_key(&id);
        let tenant: Option<std::sync::Arc<str>> = pack.tenant.as_deref().map(Into::into);
        let mut first_error = None;
        // Read from these bytes, never from a cache: this is what verifies it.
        let dictionary = match has_dictionary {
            true => match dictionary_of(&id, bytes, &seal) {
                Ok(d) => Some(d),
                Err(e) => {
                    first_error = Some(e.to_string());
                    None
                }
            },
            false => None,
        };
        let decode = |blob: &crate::repo::pack::PackedBlob| {
            let location = BlobRef::new(id, blob, tenant.as_ref());
            let range = location.range();
            let sealed = usize::try_from(range.start)
                .ok()
                .zip(usize::try_from(range.end).ok())
                .and_then(|(start, end)| bytes.get(start..end));
            let raw = match sealed {
                Some(s) => open_blob(s, &location, &seal).and_then(|stored| {
                    decode_stored(stored, &location, &data_key, dictionary.as_ref())
                }),
                None => Err(Error::corrupt(
                    key,
                    format!("blob {} lies beyond the pack", blob.id),
                )),
            };
            raw.map(|raw| (blob.kind, location, raw))
        };
        // Each blob's content is dropped once verified: a pack holds up to
        // a few times its size in content, and check reads packs on every
        // core. Only a damaged pack's good blobs are kept, decoded again,
        // for the repair that salvages them.
        for blob in &pack.blobs {
            if let Err(e) = decode(blob) {
                first_error.get_or_insert(e.to_string());
            }
        }
        let Some(reason) = first_error else {
            return Ok(PackVerdict::Whole(pack));
        };
        let good: Vec<_> = pack.blobs.iter().filter_map(|b| decode(b).ok()).collect();
        Ok(PackVerdict::Damaged {
            reason,
            lost: pack.blobs.len() - good.len(),
            good,
        })
    }

    /// Write a pack (by the blob writer, before any index lists it),
    /// Object-Locked until `until` where the repository locks.
    pub(crate) fn put_pack(
        &self,
        id: &ObjectId,
        bytes: Bytes,
        until: Option<DateTime<Utc>>,
    ) -> Result<()> {
        self.store.put_until(&pack_key(id), bytes, until)
    }

    /// Delete a pack (a missing one is not an error).
    pub fn delete_pack(&self, id: &ObjectId) -> Result<()> {
        self.store.delete(&pack_key(id))
    }

    /// Move a damaged pack out of the way: `bytes` (the pack as read) are
    /// copied to quarantine first, then the pack is deleted. Returns where
    /// the copy is, for the report.
    pub fn quarantine_pack(&self, id: &ObjectId, bytes: Bytes) -> Result<String> {
        let quarantined_as = layout::quarantine_key(id);
        self.store.put(&quarantined_as, bytes)?;
        self.delete_pack(id)?;
        Ok(quarantined_as)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Location;

    /// A pack of an erased tenant: its header still opens (metadata key),
    /// the verdict says erased (not damaged), and its blobs read as erased.
    #[test]
    fn an_erased_tenants_pack_is_erased_not_damaged() {
        use crate::repo::keys::Wrap;
        use crate::repo::pack::BlobKind;
        use crate::repo::writer::{BlobWriter, Compress};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let location = Location::Local(root.clone());
        let master = crate::repo::MasterKey::generate();
        let repo = Repository::init(&location, DateTime::UNIX_EPOCH, &master).unwrap();
        let writer = BlobWriter::new(&repo, DateTime::UNIX_EPOCH);
        let blob = writer
            .store(Some("gone"), BlobKind::Data, b"old data", Compress::Never)
            .unwrap();
        let packs = writer.finish().unwrap();
        let bytes = repo.read_pack(&blob.pack).unwrap();
        assert!(matches!(
            repo.verify_pack(blob.pack, &bytes).unwrap(),
            PackVerdict::Whole(_)
        ));
        let tombstone = Wrap::Erased {
            name: "gone".into(),
            erased_at: DateTime::UNIX_EPOCH,
            reason: "contract ended".into(),
        };
        let wrap = root.join(master.wrap_key("tenant", "gone"));
        std::fs::write(wrap, master.seal_json("wrap", &tombstone)).unwrap();
        let repo = Repository::open(&location, &master).unwrap();
        match repo.verify_pack(blob.pack, &bytes).unwrap() {
            PackVerdict::Erased { pack, tenant } => {
                assert_eq!(tenant, "gone");
                assert_eq!(pack, packs[0]);
            }
            other => panic!("not erased: {other:?}"),
        }
        assert!(matches!(repo.read_blob(&blob), Err(Error::Erased { .. })));
        let header = repo.read_pack_header(&blob.pack, bytes.len() as u64);
        assert_eq!(header.unwrap().tenant.as_deref(), Some("gone"));
    }

    /// Keys of another shape under the packs' and index files' prefixes
    /// (written by whoever writes the bucket) are neither listed nor touched.
    #[test]
    fn foreign_keys_are_not_packs_or_index_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let repo = Repository::init(
            &Location::Local(root.clone()),
            DateTime::UNIX_EPOCH,
            &crate::repo::MasterKey::generate(),
        )
        .unwrap();
        let id = ObjectId::hash(b"pack");
        repo.put_pack(&id, Bytes::from_static(b"bytes"), None)
            .unwrap();
        let index = repo.write_index_file(Vec::new()).unwrap();
        let (packs, index_files) = (ObjectKind::Pack.prefix(), ObjectKind::Index.prefix());
        let wrong_place = format!("{packs}/zz/{id}");
        for stray in [
            wrong_place.clone(),
            format!("{packs}/ab/not-an-id"),
            format!("{index_files}/garbage"),
        ] {
            let path = root.join(&stray);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        assert_eq!(repo.list_packs().unwrap(), vec![(id, 5)]);
        let timed = repo.list_packs_with_times().unwrap();
        assert_eq!(timed.iter().map(|p| p.id).collect::<Vec<_>>(), vec![id]);
        assert_eq!(repo.list_index_files().unwrap(), vec![index]);
        let copy = repo
            .quarantine_pack(&id, Bytes::from_static(b"bytes"))
            .unwrap();
        assert_eq!(repo.list_packs().unwrap(), vec![]);
        assert_eq!(std::fs::read(root.join(copy)).unwrap(), b"bytes");
        assert!(root.join(wrong_place).exists());
    }
}
