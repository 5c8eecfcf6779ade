//! Snapshot manifests: listed by key, read and verified, written
//! create-only, replaced by write-then-delete.
//!
//! Keys name hosts and sources by tags (see [`crate::snapshot`]): listing one
//! host's or one source's manifests is a prefix listing, as ever, but only
//! reading a manifest tells whose it is, so listing every host reads every
//! manifest (restic does the same).

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::repo::{layout, parallel, Repository};
use crate::snapshot::{host_tag, source_tag, Snapshot, SnapshotRef, MANIFEST_PURPOSE};

/// A snapshot with its manifest.
pub type LoadedSnapshot = (SnapshotRef, Snapshot);

/// Snapshots with their manifests, and those whose manifest cannot be read.
#[derive(Debug, Default)]
pub struct SnapshotListing {
    /// Newest first.
    pub readable: Vec<LoadedSnapshot>,
    /// Newest first, each with what is wrong with its manifest.
    pub unreadable: Vec<(SnapshotRef, Problem)>,
}

impl SnapshotListing {
    /// The unreadable manifests as problems.
    pub fn problems(&self) -> Vec<Problem> {
        self.unreadable.iter().map(|(_, p)| p.clone()).collect()
    }
}

impl Repository {
    /// Snapshots, newest first, optionally of one host (and source); only
    /// the listing, except for a source of every host: the names are only
    /// in the manifests, so those are read (the unreadable ones left out).
    pub fn list_snapshots(
        &self,
        host: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<SnapshotRef>> {
        let listed = self.list_tagged(host, source)?;
        if host.is_some() || source.is_none() {
            return Ok(listed);
        }
        let loaded = self.load_listed(listed, source)?;
        Ok(loaded.readable.into_iter().map(|(r, _)| r).collect())
    }

    /// The manifests under the tags of `host` (and `source`), or all;
    /// newest first.
    fn list_tagged(&self, host: Option<&str>, source: Option<&str>) -> Result<Vec<SnapshotRef>> {
        let meta = self.keys.meta();
        let htag = host.map(|h| host_tag(meta, h));
        let stag = host.zip(source).map(|(h, s)| source_tag(meta, h, s));
        let prefix = layout::snapshot_prefix(htag.as_deref(), stag.as_deref());
        let mut out: Vec<SnapshotRef> = self
            .store
            .list(&prefix)?
            .into_iter()
            .filter_map(|(key, _)| SnapshotRef::parse(&key))
            .collect();
        out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.key.cmp(&a.key)));
        Ok(out)
    }

    /// Read and verify a manifest.
    pub fn load_snapshot(&self, r: &SnapshotRef) -> Result<Snapshot> {
        let bytes = self.store.get(&r.key)?;
        r.decode(self.keys.meta(), &bytes)
    }

    /// Snapshots, newest first, with their manifests; a manifest that cannot
    /// be read is reported in `unreadable` and skipped, so one damaged
    /// manifest does not hide the others. A manifest gone since the listing
    /// (a concurrent prune) is left out silently. Errors of the store itself
    /// (unreachable, denied) still fail. With a source but no host, an
    /// unreadable manifest of any source is reported (its source is unknown).
    pub fn load_snapshots_tolerant(
        &self,
        host: Option<&str>,
        source: Option<&str>,
    ) -> Result<SnapshotListing> {
        self.load_listed(self.list_tagged(host, source)?, source)
    }

    /// Read the manifests `listed` (a few at a time), keeping those of
    /// `source` when given.
    fn load_listed(
        &self,
        listed: Vec<SnapshotRef>,
        source: Option<&str>,
    ) -> Result<SnapshotListing> {
        let mut listing = SnapshotListing::default();
        let loaded = parallel::map(&listed, |r| self.load_snapshot(r));
        for (r, loaded) in listed.into_iter().zip(loaded) {
            match loaded {
                Ok(snap) if source.is_some_and(|s| snap.source != s) => {}
                Ok(snap) => listing.readable.push((r, snap)),
                Err(Error::NotFound { .. }) => {}
                Err(e) if is_object_damage(&e) => {
                    let problem = Problem::new(&r.key, &e);
                    listing.unreadable.push((r, problem));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(listing)
    }

    /// The newest snapshot of a group whose manifest reads, reading manifests
    /// newest first and only as far as needed; the unreadable ones on the way
    /// are returned as problems.
    pub fn newest_readable_snapshot(
        &self,
        host: &str,
        source: &str,
    ) -> Result<(Option<LoadedSnapshot>, Vec<Problem>)> {
        let mut problems = Vec::new();
        for r in self.list_snapshots(Some(host), Some(source))? {
            match self.load_snapshot(&r) {
                Ok(snap) => return Ok((Some((r, snap)), problems)),
                Err(Error::NotFound { .. }) => {}
                Err(e) if is_object_damage(&e) => problems.push(Problem::new(&r.key, &e)),
                Err(e) => return Err(e),
            }
        }
        Ok((None, problems))
    }

    /// Pick a snapshot from `candidates` (newest first) by id prefix or `latest`.
    pub fn select_snapshot<'a>(
        candidates: &'a [SnapshotRef],
        selector: &str,
    ) -> Result<&'a SnapshotRef> {
        if selector == "latest" {
            return candidates.first().ok_or_else(|| Error::NotFound {
                what: "any snapshot".into(),
            });
        }
        let matching: Vec<&SnapshotRef> = candidates
            .iter()
            .filter(|r| r.id.to_hex().starts_with(selector))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::NotFound {
                what: format!("snapshot {selector}"),
            }),
            _ => Err(Error::Usage(format!(
                "snapshot id {selector:?} is ambiguous; give more digits"
            ))),
        }
    }

    /// Write a manifest, sealed (create-only); returns its id and how a
    /// listing shows it.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<(ObjectId, SnapshotRef)> {
        self.save_snapshot_until(snap, None)
    }

    /// [`Repository::save_snapshot`], Object-Locked until `until` where the
    /// repository locks.
    pub fn save_snapshot_until(
        &self,
        snap: &Snapshot,
        until: Option<DateTime<Utc>>,
    ) -> Result<(ObjectId, SnapshotRef)> {
        let (saved, sealed) = snap.seal(self.keys.meta());
        self.store
            .put_new_until(&saved.key, Bytes::from(sealed), until)?;
        Ok((saved.id, saved))
    }

    /// Delete a manifest (a missing one is not an error). Only prune (and
    /// a rewrite, after its replacement is written) deletes manifests.
    pub fn delete_snapshot(&self, snapshot: &SnapshotRef) -> Result<()> {
        self.store.delete(&snapshot.key)
    }

    /// Replace the manifest `old` by `new`: create-only write of the new one,
    /// then delete the old one, so a crash between the two leaves a
    /// duplicate (which retention counts once), never a gap. Returns the new id.
    pub fn replace_snapshot(&self, old: &SnapshotRef, new: &Snapshot) -> Result<ObjectId> {
        let (id, _) = self.save_snapshot(new)?;
        crate::failpoint::hit("rewrite-after-new-manifest");
        self.delete_snapshot(old)?;
        Ok(id)
    }

    /// The plaintext (JSON) of the manifest `r`, not checked against its id
    /// or tags (tests that edit a manifest use it and
    /// [`Repository::write_manifest_plaintext`]).
    #[doc(hidden)]
    pub fn read_manifest_plaintext(&self, r: &SnapshotRef) -> Result<Vec<u8>> {
        let stem = layout::snapshot_key_stem(&r.key).unwrap_or_default();
        let sealed = self.store.get(&r.key)?;
        self.keys
            .meta()
            .open_bound(MANIFEST_PURPOSE, stem.as_bytes(), &r.key, &sealed)
    }

    /// Store `plaintext` (any bytes) under `r`'s key, sealed as a manifest
    /// there is: it opens, but no longer matches the id in the key.
    #[doc(hidden)]
    pub fn write_manifest_plaintext(&self, r: &SnapshotRef, plaintext: &[u8]) -> Result<()> {
        let stem = layout::snapshot_key_stem(&r.key).unwrap_or_default();
        let sealed = self
            .keys
            .meta()
            .seal_bound(MANIFEST_PURPOSE, stem.as_bytes(), plaintext);
        self.store.put(&r.key, Bytes::from(sealed))
    }
}
