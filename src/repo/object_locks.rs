//! Object Lock on the repository's objects, by kind: extending the lock of
//! packs and manifests, and removing old versions (see
//! [`crate::object_lock`] for the dates, [`crate::repo::s3_lock`] for the
//! requests). Nothing happens on a repository without `object_lock`.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::layout::pack_key;
use crate::repo::store::VersionSweep;
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;

impl Repository {
    /// Keep pack `id` locked until `until` (simulated time): never shortens.
    /// True when a PutObjectRetention was sent.
    pub fn extend_pack_lock(&self, id: &ObjectId, until: DateTime<Utc>) -> Result<bool> {
        self.store.extend_lock(&pack_key(id), until)
    }

    /// Keep the manifest of `snapshot` locked until `until`.
    pub fn extend_manifest_lock(
        &self,
        snapshot: &SnapshotRef,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        self.store.extend_lock(&snapshot.key, until)
    }

    /// The real retain-until date of pack `id` (none: not locked).
    pub fn pack_retain_until(&self, id: &ObjectId) -> Result<Option<DateTime<Utc>>> {
        self.store.retain_until(&pack_key(id))
    }

    /// The lock copies of pack `id`'s blobs keep (simulated time, for
    /// [`crate::repo::writer::BlobWriter::store_copy`]): the date the pack is
    /// locked until, so a repack or a salvage neither shortens nor lengthens
    /// any blob's lock. `None` without Object Lock or when it is not locked.
    pub fn lock_for_copies(&self, id: &ObjectId) -> Result<Option<DateTime<Utc>>> {
        let Some(lock) = self.object_lock() else {
            return Ok(None);
        };
        Ok(self
            .pack_retain_until(id)?
            .map(|real| lock.to_simulated(real)))
    }

    /// The real retain-until date of a manifest.
    pub fn manifest_retain_until(&self, snapshot: &SnapshotRef) -> Result<Option<DateTime<Utc>>> {
        self.store.retain_until(&snapshot.key)
    }

    /// Delete the old versions and delete markers whose lock has ended,
    /// across the repository.
    pub fn sweep_versions(&self) -> Result<VersionSweep> {
        self.store.sweep_versions("")
    }
}
