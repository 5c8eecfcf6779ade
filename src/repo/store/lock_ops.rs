//! The store's Object Lock operations: locked writes, extensions and the
//! version sweep (see [`crate::repo::s3_lock`] for the requests).
//!
//! Dates given here are *simulated* (the promise's time, see
//! [`crate::object_lock`]); each is mapped to a real date once, and a date
//! that maps to the real past is not locked: its promise is over. Without
//! `object_lock` every write is a plain one and the rest does nothing.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::Store;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::object_lock::ObjectLock;
use crate::repo::s3_lock::Version;

/// What one version sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VersionSweep {
    /// Old versions and delete markers deleted.
    pub deleted: u64,
    /// Bytes of the deleted versions.
    pub bytes: u64,
    /// Old versions whose lock has not ended yet (left for later).
    pub locked: u64,
}

impl Store {
    /// The repository's Object Lock settings, if set.
    pub fn object_lock(&self) -> Option<&ObjectLock> {
        self.locked.as_ref().map(|l| &l.lock)
    }

    /// The real date to lock until for the simulated `until`, when it is
    /// still ahead of the real clock (and the store is locked).
    fn real_until(&self, until: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let lock = self.object_lock()?;
        let real = lock.to_real(until?);
        (real > SystemClock.now()).then_some(real)
    }

    /// [`Store::put`], locked until `until` on a locked store.
    pub fn put_until(&self, key: &str, data: Bytes, until: Option<DateTime<Utc>>) -> Result<()> {
        let (Some(bucket), Some(real)) = (&self.locked, self.real_until(until)) else {
            return self.put(key, data);
        };
        self.retrying(key, || {
            Self::count(&self.requests.put, 1);
            crate::runtime::block_on(bucket.put(key, data.clone(), Some(real))).map(|_| ())
        })
    }

    /// [`Store::put_new`], locked until `until` on a locked store.
    ///
    /// A locked bucket is versioned, and Ceph's gateway ignores
    /// `If-None-Match: *` there (a second PUT only stacks a version), so
    /// create-only is decided after the write: the **oldest** version of the
    /// key is the object. A writer whose version is not the oldest deletes
    /// its own (it was never the object) and, as for a taken key elsewhere,
    /// succeeds only when the object holds exactly its bytes. Every
    /// create-only key is unique to its writer (a content hash or a random
    /// id), so a race here is a retry of our own or a hostile writer.
    pub fn put_new_until(
        &self,
        key: &str,
        data: Bytes,
        until: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let Some(bucket) = &self.locked else {
            return self.put_new(key, data);
        };
        let real = self.real_until(until);
        self.retrying(key, || {
            Self::count(&self.requests.put, 1);
            let ours = crate::runtime::block_on(bucket.put(key, data.clone(), real))?;
            Self::count(&self.requests.list, 1);
            let versions = crate::runtime::block_on(bucket.versions_of(key))?;
            let oldest = versions.last();
            let (Some(ours), Some(oldest)) = (ours, oldest) else {
                return Ok(());
            };
            if *oldest == ours {
                return Ok(());
            }
            Self::count(&self.requests.delete, 1);
            crate::runtime::block_on(bucket.delete_version(key, &ours))?;
            // The object is the oldest version, not the latest one (our own
            // version may still be the latest if its delete was refused).
            Self::count(&self.requests.get, 1);
            if crate::runtime::block_on(bucket.version_holds(key, oldest, &data))? {
                Ok(())
            } else {
                Err(Error::AlreadyExists {
                    what: format!("object {key} already exists"),
                })
            }
        })
    }

    /// The real retain-until date of `key`'s current version (none: not
    /// locked, or the store is not).
    pub fn retain_until(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(bucket) = &self.locked else {
            return Ok(None);
        };
        Self::count(&self.requests.head, 1);
        crate::runtime::block_on(bucket.retain_until(key))
    }

    /// Make sure `key` stays locked until the simulated `until`: one HEAD,
    /// and one PutObjectRetention when its lock ends earlier. Never
    /// shortens. True when it extended.
    pub fn extend_lock(&self, key: &str, until: DateTime<Utc>) -> Result<bool> {
        let (Some(bucket), Some(real)) = (&self.locked, self.real_until(Some(until))) else {
            return Ok(false);
        };
        if self.retain_until(key)?.is_some_and(|now| now >= real) {
            return Ok(false);
        }
        Self::count(&self.requests.retention, 1);
        crate::runtime::block_on(bucket.set_retention(key, real))?;
        Ok(true)
    }

    /// Delete the versions under `prefix` that are no longer current and
    /// whose lock has ended, and the delete markers of keys with no version
    /// left (see [`crate::repo::s3_lock`]). Nothing on an unlocked store.
    pub fn sweep_versions(&self, prefix: &str) -> Result<VersionSweep> {
        let Some(bucket) = &self.locked else {
            return Ok(VersionSweep::default());
        };
        let (mut versions, pages) = crate::runtime::block_on(bucket.versions(prefix))?;
        Self::count(&self.requests.list, pages);
        versions.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out = VersionSweep::default();
        for same_key in versions.chunk_by(|a, b| a.key == b.key) {
            self.sweep_key(bucket, same_key, &mut out)?;
        }
        Ok(out)
    }

    fn sweep_key(
        &self,
        bucket: &crate::repo::s3_lock::LockedBucket,
        versions: &[Version],
        out: &mut VersionSweep,
    ) -> Result<()> {
        let mut left = 0;
        for v in versions.iter().filter(|v| !v.delete_marker) {
            if v.is_latest {
                left += 1;
                continue;
            }
            Self::count(&self.requests.delete, 1);
            if crate::runtime::block_on(bucket.delete_version(&v.key, &v.version_id))? {
                out.deleted += 1;
                out.bytes += v.size;
            } else {
                out.locked += 1;
                left += 1;
            }
        }
        if left == 0 {
            for m in versions.iter().filter(|v| v.delete_marker) {
                Self::count(&self.requests.delete, 1);
                if crate::runtime::block_on(bucket.delete_version(&m.key, &m.version_id))? {
                    out.deleted += 1;
                }
            }
        }
        Ok(())
    }
}
