//! Snapshot manifests: listed by key, read and verified, written
//! create-only, replaced by write-then-delete.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::repo::{layout, Repository};
use crate::snapshot::{Snapshot, SnapshotRef};

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
    /// Snapshots, newest first, optionally of one host and/or source.
    pub fn list_snapshots(
        &self,
        host: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<SnapshotRef>> {
        let prefix = layout::snapshot_prefix(host, source);
        let mut out: Vec<SnapshotRef> = self
            .store
            .list(&prefix)?
            .into_iter()
            .filter_map(|(key, _)| SnapshotRef::parse(&key))
            .filter(|r| source.is_none_or(|s| r.source == s))
            .collect();
        out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.key.cmp(&a.key)));
        Ok(out)
    }

    /// Read and verify a manifest.
    pub fn load_snapshot(&self, r: &SnapshotRef) -> Result<Snapshot> {
        let bytes = self.store.get(&r.key)?;
        r.decode(&bytes)
    }

    /// Snapshots, newest first, with their manifests; a manifest that cannot
    /// be read is reported in `unreadable` and skipped, so one damaged
    /// manifest does not hide the others. A manifest gone since the listing
    /// (a concurrent prune) is left out silently. Errors of the store itself
    /// (unreachable, denied) still fail.
    pub fn load_snapshots_tolerant(
        &self,
        host: Option<&str>,
        source: Option<&str>,
    ) -> Result<SnapshotListing> {
        let mut listing = SnapshotListing::default();
        for r in self.list_snapshots(host, source)? {
            match self.load_snapshot(&r) {
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

    /// Write a manifest (create-only); returns its id and how a listing
    /// shows it.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<(ObjectId, SnapshotRef)> {
        let bytes = snap.to_bytes();
        let id = ObjectId::hash(&bytes);
        let key = snap.key(&id);
        self.store.put_new(&key, Bytes::from(bytes))?;
        let saved = SnapshotRef {
            key,
            id,
            host: snap.host.clone(),
            source: snap.source.clone(),
            time: snap.time,
        };
        Ok((id, saved))
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
}
