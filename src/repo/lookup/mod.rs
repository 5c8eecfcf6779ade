//! Finding a blob in the repository without holding the index in RAM.
//!
//! A snapshot needs two answers about the repository: "is this pack present
//! and indexed?" (to reuse an unchanged file's chunk list as is) and "where,
//! if anywhere, is the blob with this id?" (dedup of new content). Holding
//! every index entry in a map cost ~270 B per blob, 36 MiB for the 130 000
//! blobs of a 1 GiB client-data tree and tens of GiB on a large host, so:
//!
//! * **packs** are kept in RAM, ~52 B each (id, size, tenant), sorted by id;
//! * **blobs** are written once per run, from the index files as they are
//!   streamed, into an on-disk [`table`] sorted by id (53 B per blob, in an
//!   unlinked scratch file under the temporary directory, `$TMPDIR`), with a
//!   [`bloom`] filter (10 bits per blob, capped at
//!   [`crate::budget::LOOKUP_FILTER_MAX`]) and one 8-byte fence per page of
//!   64 records in RAM. An absent id costs one filter probe; a present one a
//!   `pread` of 3.4 KiB.
//!
//! The table is rebuilt by every snapshot rather than cached between runs:
//! index files are read whole by every snapshot anyway, and writing 53 B per
//! blob sequentially costs less than reading them; a cache keyed by index
//! file ids is the next step if that ever shows in a profile.
//!
//! A read error of the scratch file answers "absent" (with a warning): that
//! costs a duplicate stored, never a reference to a blob that is not there.

pub mod bloom;
pub mod table;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::budget::{LOOKUP_FILTER_MAX, LOOKUP_RUN_RECORDS};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::index::IndexedPack;
use crate::repo::pack::{BlobRef, Compression};
use table::{Record, Table, TableBuilder};

/// One pack the lookup knows.
#[derive(Debug)]
struct PackInfo {
    id: ObjectId,
    size: u64,
    tenant: Option<Arc<str>>,
}

/// Where the repository holds each blob: packs in RAM, blobs on disk.
#[derive(Debug, Default)]
pub struct BlobLookup {
    /// By slot (the number records carry).
    packs: Vec<PackInfo>,
    /// Slots sorted by pack id.
    by_id: Vec<u32>,
    table: Option<Table>,
}

impl BlobLookup {
    /// The slot of the pack `id`, if known.
    fn slot(&self, id: &ObjectId) -> Option<u32> {
        let at = self
            .by_id
            .binary_search_by(|&s| self.packs[s as usize].id.cmp(id))
            .ok()?;
        Some(self.by_id[at])
    }

    /// Whether the pack `id` is one the lookup trusts (present, indexed).
    pub fn holds_pack(&self, id: &ObjectId) -> bool {
        self.slot(id).is_some()
    }

    /// The trusted packs with their sizes.
    pub fn packs(&self) -> impl Iterator<Item = (&ObjectId, u64)> {
        self.packs.iter().map(|p| (&p.id, p.size))
    }

    /// Blobs in the table.
    pub fn blobs(&self) -> u64 {
        self.table.as_ref().map_or(0, Table::records)
    }

    /// Bytes of RAM the lookup holds (filter, fences, pack table).
    pub fn ram_bytes(&self) -> usize {
        let packs = self.packs.capacity() * std::mem::size_of::<PackInfo>() + self.by_id.len() * 4;
        packs + self.table.as_ref().map_or(0, Table::ram_bytes)
    }

    /// Where the repository holds the blob `id`, if anywhere.
    pub fn locate(&self, id: &ObjectId) -> Option<BlobRef> {
        let record = match self.table.as_ref()?.get(&id.0) {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!("blob lookup unreadable, blob stored again: {e}");
                return None;
            }
        };
        self.blob_ref(record)
    }

    /// Every indexed copy of the blob `id` (a lookup built
    /// [`with_copies`](LookupBuilder::with_copies) keeps them all), first
    /// indexed first.
    pub fn copies(&self, id: &ObjectId) -> Result<Vec<BlobRef>> {
        let Some(table) = &self.table else {
            return Ok(Vec::new());
        };
        let mut records = table.get_all(&id.0).map_err(scratch_error)?;
        records.sort_by_key(|r| r.slot);
        Ok(records
            .into_iter()
            .filter_map(|r| self.blob_ref(r))
            .collect())
    }

    fn blob_ref(&self, record: Record) -> Option<BlobRef> {
        let pack = self.packs.get(record.slot as usize)?;
        Some(BlobRef {
            id: ObjectId(record.id),
            pack: pack.id,
            offset: record.offset,
            length: record.length,
            raw_length: record.raw_length,
            // Written from a `Compression` below; a scratch file that says
            // otherwise reads as uncompressed, which fails the blob's checks.
            compression: Compression::from_code(record.compression).unwrap_or_default(),
            tenant: pack.tenant.clone(),
        })
    }
}

/// Builds a [`BlobLookup`] from packs as the index lists them.
pub struct LookupBuilder<'d> {
    packs: Vec<PackInfo>,
    slots: HashMap<ObjectId, u32>,
    tenants: HashMap<String, Arc<str>>,
    table: TableBuilder<'d>,
}

impl<'d> LookupBuilder<'d> {
    /// A builder spilling into `dir` (see the module docs).
    pub fn new(dir: &'d Path) -> Self {
        LookupBuilder {
            packs: Vec::new(),
            slots: HashMap::new(),
            tenants: HashMap::new(),
            table: TableBuilder::new(dir, LOOKUP_RUN_RECORDS, LOOKUP_FILTER_MAX),
        }
    }

    /// A builder that keeps every indexed copy of a blob (for `check`).
    pub fn with_copies(mut self) -> Self {
        let dir = self.table.dir();
        self.table = TableBuilder::new(dir, LOOKUP_RUN_RECORDS, LOOKUP_FILTER_MAX).keep_copies();
        self
    }

    /// Whether the pack `id` was added.
    pub fn has_pack(&self, id: &ObjectId) -> bool {
        self.slots.contains_key(id)
    }

    /// Add a pack and its blobs (a pack added before is skipped).
    pub fn add_pack(&mut self, pack: &IndexedPack) -> Result<()> {
        if self.slots.contains_key(&pack.id) {
            return Ok(());
        }
        let slot = u32::try_from(self.packs.len())
            .map_err(|_| Error::Conflict("more than 4 billion packs".into()))?;
        let tenant = pack.tenant.as_deref().map(|t| {
            self.tenants
                .entry(t.to_string())
                .or_insert_with(|| t.into())
                .clone()
        });
        self.slots.insert(pack.id, slot);
        self.packs.push(PackInfo {
            id: pack.id,
            size: pack.size,
            tenant,
        });
        for blob in &pack.blobs {
            let record = Record {
                id: blob.id.0,
                slot,
                offset: blob.offset,
                length: blob.length,
                raw_length: blob.raw_length,
                compression: blob.compression.code(),
            };
            self.table.push(record).map_err(scratch_error)?;
        }
        Ok(())
    }

    /// The finished lookup.
    pub fn finish(self) -> Result<BlobLookup> {
        let table = self.table.finish().map_err(scratch_error)?;
        let mut packs = self.packs;
        packs.shrink_to_fit();
        let mut by_id: Vec<u32> = (0..packs.len() as u32).collect();
        by_id.sort_unstable_by(|&a, &b| packs[a as usize].id.cmp(&packs[b as usize].id));
        Ok(BlobLookup {
            packs,
            by_id,
            table: Some(table),
        })
    }
}

fn scratch_error(e: std::io::Error) -> Error {
    Error::io(std::env::temp_dir(), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::pack::{BlobKind, PackedBlob};

    fn pack(tenant: Option<&str>, blobs: u32) -> IndexedPack {
        IndexedPack {
            id: ObjectId::random(),
            size: 1000,
            tenant: tenant.map(String::from),
            blobs: (0..blobs)
                .map(|i| PackedBlob {
                    id: ObjectId::random(),
                    kind: BlobKind::Data,
                    offset: u64::from(i) * 10,
                    length: 10,
                    raw_length: 20,
                    compression: Compression::Zstd,
                })
                .collect(),
        }
    }

    #[test]
    fn every_added_blob_is_located_in_its_pack() {
        let dir = tempfile::tempdir().unwrap();
        let packs = [pack(None, 50), pack(Some("t1"), 70)];
        let mut b = LookupBuilder::new(dir.path());
        for p in &packs {
            b.add_pack(p).unwrap();
        }
        let lookup = b.finish().unwrap();
        assert_eq!(lookup.blobs(), 120);
        for p in &packs {
            assert!(lookup.holds_pack(&p.id));
            for blob in &p.blobs {
                let tenant: Option<Arc<str>> = p.tenant.as_deref().map(Into::into);
                assert_eq!(
                    lookup.locate(&blob.id),
                    Some(BlobRef::new(p.id, blob, tenant.as_ref()))
                );
            }
        }
        assert!(!lookup.holds_pack(&ObjectId::random()));
        assert_eq!(lookup.locate(&ObjectId::random()), None);
    }

    #[test]
    fn an_empty_lookup_knows_nothing() {
        let lookup = BlobLookup::default();
        assert!(!lookup.holds_pack(&ObjectId::random()));
        assert_eq!(lookup.locate(&ObjectId::random()), None);
    }
}
