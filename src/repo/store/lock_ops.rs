//! The store's Object Lock operations: locked writes, extensions and the
//! version sweep (see [`crate::repo::s3_lock`] for the requests).
//!
//! Dates given here are *simulated* (the promise's time, see
//! [`crate::object_lock`]); each is mapped to a real date once, and a date
//! that maps to the real past is not locked: its promise is over. Without
//! `object_lock` every write is a plain one and the rest does nothing.
//!
//! **Which version is the object.** A locked bucket is versioned, so a key
//! may hold several versions. Of a key written once (every key but a lock)
//! the oldest version since the key was last deleted is the object
//! ([`Store::put_new_until`]); a later one is a retry with the same bytes,
//! a create-only writer that lost and could not delete its own version, or
//! a hostile writer (whoever holds the agent's credentials can stack a
//! version on any key, though not delete a locked one). Every reader goes to
//! the object, never to a version stacked on it: `get`, `get_range`, the
//! listing's sizes and times, the lock's date and its extension, and the
//! lock a repack copy keeps. For create-only keys and index files
//! ([`crate::repo::layout::is_create_only`]) that costs one
//! ListObjectVersions per read. Packs are read in ranges many times, so
//! their object's version id is learned once per process ([`Pins`]): from
//! the listing of `packs/` (which a locked store sends as ListObjectVersions,
//! one request per 1000 versions as before), or, for a pack read before any
//! listing, from one listing of that key's versions. The version sweep keeps
//! the object of every key and deletes the versions stacked on it once their
//! own lock (if any) allows. Locks are rewritten in place: the latest is
//! theirs.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::Store;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::object_lock::ObjectLock;
use crate::repo::layout::{is_create_only, is_rewritten, ObjectKind};
use crate::repo::s3_lock::Version;
use crate::repo::store::Listed;

/// Pack key → the id of the version that is the pack, on a locked store:
/// learned once per process, so ranged reads do not list versions each time.
/// About 100 bytes per pack (a million packs of 16 MiB, 16 TB: ~100 MB,
/// locked stores only); a pack deleted by this process is forgotten.
#[derive(Debug, Default)]
pub(crate) struct Pins(Mutex<HashMap<String, String>>);

impl Pins {
    fn get(&self, key: &str) -> Option<String> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn pin(&self, key: &str, version: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key.to_string(), version.to_string());
        }
    }

    pub(super) fn forget(&self, key: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }
}

/// Whether the object of `key` is read at its winning version on a locked
/// store: every key written once whose readers care (packs and the
/// create-only keys).
fn reads_winner(key: &str) -> bool {
    is_create_only(key) || ObjectKind::of(key) == Some(ObjectKind::Pack)
}

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
            let (versions, pages) = crate::runtime::block_on(bucket.versions(key))?;
            Self::count(&self.requests.list, pages);
            let (Some(ours), Some(oldest)) = (ours, winner_of(&versions, key)) else {
                return Ok(());
            };
            if oldest == ours {
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

    /// On a locked store, the version of the create-only key or pack `key`
    /// that is the object (see the module docs); `None`: the latest is (no
    /// lock, or another kind of key). A key whose latest entry is a delete
    /// marker, or with no version, is not found.
    pub(super) fn winner(&self, key: &str) -> Result<Option<String>> {
        let Some(bucket) = self.locked.as_ref().filter(|_| reads_winner(key)) else {
            return Ok(None);
        };
        let is_pack = ObjectKind::of(key) == Some(ObjectKind::Pack);
        if let Some(pinned) = self.pins.get(key).filter(|_| is_pack) {
            return Ok(Some(pinned));
        }
        let (versions, pages) = crate::runtime::block_on(bucket.versions(key))?;
        Self::count(&self.requests.list, pages);
        match winner_of(&versions, key) {
            Some(v) => {
                if is_pack {
                    self.pins.pin(key, v);
                }
                Ok(Some(v.to_string()))
            }
            None => Err(Error::NotFound {
                what: format!("object {key}"),
            }),
        }
    }

    /// Read one version of `key`, whole or `range` (locked store only).
    pub(super) fn get_version_range(
        &self,
        key: &str,
        version: &str,
        range: Option<Range<u64>>,
    ) -> Result<Bytes> {
        let Some(bucket) = &self.locked else {
            return Err(Error::NotFound {
                what: format!("object {key} version {version}"),
            });
        };
        Self::count(&self.requests.get, 1);
        crate::runtime::block_on(bucket.get_version(key, version, range))
    }

    /// On a locked store, the packs under `prefix` as [`Store::list_with_times`]
    /// gives them, each at the version that is the object (its size and time,
    /// pinned for later reads); `None` for other prefixes and stores.
    pub(super) fn list_pinned(&self, prefix: &str) -> Result<Option<Vec<Listed>>> {
        let Some(bucket) = &self.locked else {
            return Ok(None);
        };
        let packs = ObjectKind::Pack.prefix();
        if !(prefix == packs || prefix.starts_with(&format!("{packs}/"))) {
            return Ok(None);
        }
        let (mut versions, pages) = crate::runtime::block_on(bucket.versions(prefix))?;
        Self::count(&self.requests.list, pages);
        versions.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out = Vec::new();
        for same_key in versions.chunk_by(|a, b| a.key == b.key) {
            let key = &same_key[0].key;
            let Some(id) = winner_of(same_key, key) else {
                continue;
            };
            let Some(object) = same_key.iter().find(|v| v.version_id == id) else {
                continue;
            };
            self.pins.pin(key, id);
            out.push(Listed {
                key: key.clone(),
                size: object.size,
                // No time reported: as new as can be, so no grace ends early.
                modified: DateTime::from_timestamp_millis(object.modified_ms)
                    .filter(|_| object.modified_ms > 0)
                    .unwrap_or_else(|| SystemClock.now()),
            });
        }
        Ok(Some(out))
    }

    /// The real retain-until date of the object `key` (none: not locked, or
    /// the store is not).
    pub fn retain_until(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(bucket) = &self.locked else {
            return Ok(None);
        };
        let version = self.winner(key)?;
        Self::count(&self.requests.head, 1);
        crate::runtime::block_on(bucket.retain_until_of(key, version.as_deref()))
    }

    /// Make sure the object `key` stays locked until the simulated `until`:
    /// one HEAD (and for a create-only key one listing of its versions), and
    /// one PutObjectRetention when its lock ends earlier. Never shortens.
    /// True when it extended.
    pub fn extend_lock(&self, key: &str, until: DateTime<Utc>) -> Result<bool> {
        let (Some(bucket), Some(real)) = (&self.locked, self.real_until(Some(until))) else {
            return Ok(false);
        };
        let version = self.winner(key)?;
        Self::count(&self.requests.head, 1);
        let have = crate::runtime::block_on(bucket.retain_until_of(key, version.as_deref()))?;
        if have.is_some_and(|now| now >= real) {
            return Ok(false);
        }
        Self::count(&self.requests.retention, 1);
        crate::runtime::block_on(bucket.set_retention(key, version.as_deref(), real))?;
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
        let Some(first) = versions.first() else {
            return Ok(());
        };
        // The object: the first version of a key written once (the
        // versions stacked on it later go), the latest of a lock; none when
        // the key is deleted.
        let object = if !is_rewritten(&first.key) {
            winner_of(versions, &first.key)
        } else {
            versions
                .iter()
                .find(|v| v.is_latest && !v.delete_marker)
                .map(|v| v.version_id.as_str())
        };
        let mut left = 0;
        for v in versions.iter().filter(|v| !v.delete_marker) {
            if object == Some(v.version_id.as_str()) {
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

/// The version of the create-only `key` that is the object, among
/// `versions` as [`crate::repo::s3_lock::LockedBucket::versions`] lists them
/// (newest first): the oldest written since the key's last delete marker
/// (a key erased and created again is the new one), none when the key's
/// latest entry is a delete marker (deleted). When no version is strictly
/// later than the marker (a delete and a new write within one tick of the
/// store's clock, or gateways whose clocks differ), the latest version is
/// the object: the key was written again after it was deleted, and taking
/// none would make the key look missing and let the sweep delete it.
fn winner_of<'a>(versions: &'a [Version], key: &str) -> Option<&'a str> {
    let mine = || versions.iter().filter(move |v| v.key == key);
    if mine().any(|v| v.delete_marker && v.is_latest) {
        return None;
    }
    let deleted = mine()
        .filter(|v| v.delete_marker)
        .map(|v| v.modified_ms)
        .max()
        .filter(|d| *d > 0);
    // Oldest first on equal times: the listing is newest first.
    mine()
        .rev()
        .filter(|v| !v.delete_marker && deleted.is_none_or(|d| v.modified_ms > d))
        .min_by_key(|v| v.modified_ms)
        .or_else(|| mine().find(|v| v.is_latest && !v.delete_marker))
        .map(|v| v.version_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, latest: bool, marker: bool, ms: i64) -> Version {
        Version {
            key: "snapshots/x".into(),
            version_id: id.into(),
            is_latest: latest,
            delete_marker: marker,
            size: 1,
            modified_ms: ms,
        }
    }

    #[test]
    fn the_object_is_the_oldest_version_since_the_last_delete() {
        let stacked = [
            v("c", true, false, 30),
            v("b", false, false, 20),
            v("a", false, false, 10),
        ];
        assert_eq!(winner_of(&stacked, "snapshots/x"), Some("a"));
        assert_eq!(winner_of(&stacked, "snapshots/y"), None, "another key");
        let deleted = [v("b", false, false, 20), v("m", true, true, 30)];
        assert_eq!(winner_of(&deleted, "snapshots/x"), None);
        let again = [
            v("c", true, false, 40),
            v("b", false, false, 30),
            v("a", false, false, 10),
            v("m", false, true, 20),
        ];
        assert_eq!(winner_of(&again, "snapshots/x"), Some("b"), "created again");
        let same_time = [v("b", true, false, 10), v("a", false, false, 10)];
        assert_eq!(winner_of(&same_time, "snapshots/x"), Some("a"));
        // Deleted and written again within one tick: the new write is the
        // object, not nothing (the key would look missing and be swept).
        let same_tick = [
            v("b", true, false, 20),
            v("a", false, false, 10),
            v("m", false, true, 20),
        ];
        assert_eq!(winner_of(&same_tick, "snapshots/x"), Some("b"));
    }
}
