//! Snapshot manifests: the last object a snapshot writes.
//!
//! A manifest names the root tree and records who, what and when. It is
//! JSON sealed under the metadata key (purpose [`MANIFEST_PURPOSE`], bound to
//! its key without the id); its id is the SHA-256 of the stored (sealed)
//! bytes. Its key sorts by host, source and time, so a listing alone orders
//! the snapshots of a group and a restore reads only the manifests it needs,
//! but names them by tags (keyed hashes under the metadata key, see
//! [`host_tag`], [`source_tag`]), never by name:
//!
//! ```text
//! snapshots/<htag>/<stag>/<YYYYMMDDTHHMMSS.mmmZ>-<id>
//! ```
//!
//! A listing therefore knows the tags but not the names: a [`SnapshotRef`]
//! carries the tags, and the names come from the manifest, which must hash to
//! the tags of its key ([`SnapshotRef::decode`]): a manifest moved under
//! another host's prefix is corrupt, not believed.
//!
//! It is written create-only after every pack and the index it depends on, so
//! a manifest that exists always describes a complete snapshot.
//!
//! # Identity across rewrites
//!
//! Prune rewrites a manifest (dropped voice items, repacked blobs): the new
//! one has a new id but the same time, and records every id the snapshot had
//! before in `previous_ids` (oldest first; the first is the id `snapshots`
//! showed when it was taken) with `rewritten_at`. So one *logical* snapshot
//! is named by [`Snapshot::logical_id`]; when a prune dies between writing
//! the new manifest and deleting the old one, both exist, and
//! [`split_duplicates`] recognises them (same host, source, time and logical
//! id): retention counts them once and prune deletes the older copies. An
//! old id keeps resolving to its rewrite.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SourceClass;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::keys::DataKey;
use crate::repo::layout;
use crate::repo::pack::BlobRef;

/// What manifests are sealed for (an object sealed for another purpose
/// does not open as a manifest).
pub const MANIFEST_PURPOSE: &str = "offsite2/manifest";

/// The tag of `host` in manifest keys.
pub fn host_tag(meta: &DataKey, host: &str) -> String {
    meta.tag(&format!("host\0{host}"))
}

/// The tag of `source` of `host` in manifest keys.
pub fn source_tag(meta: &DataKey, host: &str, source: &str) -> String {
    meta.tag(&format!("source\0{host}\0{source}"))
}

/// The stem of the manifest key a snapshot of `source` of `host` taken at
/// `time` will have: what its index files are tagged with before the
/// manifest exists ([`crate::repo::index::IndexFile::run`]).
pub fn run_stem(meta: &DataKey, host: &str, source: &str, time: &DateTime<Utc>) -> String {
    layout::snapshot_stem(&host_tag(meta, host), &source_tag(meta, host, source), time)
}

/// Manifest format version.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Snapshot times are kept to the millisecond, as their keys are.
pub fn truncate_to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).expect("time in range")
}

/// What one snapshot run did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Files in the snapshot.
    pub items: u64,
    pub dirs: u64,
    /// Sum of the files' sizes.
    pub bytes: u64,
    /// Bytes read from the source (changed and new files only).
    pub bytes_read: u64,
    /// Bytes stored in the repository by this snapshot (new blobs, as stored).
    pub bytes_added: u64,
    /// Blobs stored by this snapshot (new ones: file chunks and trees).
    #[serde(default)]
    pub blobs_added: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    /// Voice recordings gone from the source, carried forward from the parent.
    #[serde(default)]
    pub carried: u64,
    /// Voice recordings not backed up because their backup copy has expired.
    #[serde(default)]
    pub expired: u64,
    /// Files whose metadata matched the parent's but that were read again
    /// (`--reread`, or a chunk they had is lost); counted as unchanged.
    #[serde(default)]
    pub reread: u64,
    /// Of `reread`: files read again because a chunk they had is lost.
    #[serde(default)]
    pub healed: u64,
    /// Voice recordings gone from the source whose backup copy is lost
    /// (a pack missing): left out of this snapshot, each with a warning.
    #[serde(default)]
    pub lost: u64,
    /// Files that could not be read, and other warnings (listed, capped, in
    /// `warning_samples`).
    pub warnings: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warning_samples: Vec<String>,
    pub duration_seconds: f64,
}

impl Summary {
    /// Files the snapshot found in its source: its items less the voice
    /// recordings carried forward from the parent (gone from the source).
    pub fn items_from_source(&self) -> u64 {
        self.items.saturating_sub(self.carried)
    }
}

/// A snapshot manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    pub time: DateTime<Utc>,
    pub host: String,
    pub source: String,
    pub class: SourceClass,
    /// The source directory on the host.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ObjectId>,
    pub tree: BlobRef,
    pub summary: Summary,
    /// Ids this snapshot had before prune rewrote it, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_ids: Vec<ObjectId>,
    /// When prune last rewrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten_at: Option<DateTime<Utc>>,
    /// The tenant whose key seals the root tree (a `fixed:` tenant rule),
    /// copied into `tree.tenant` when the manifest is parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_tenant: Option<String>,
}

/// At most this many previous ids are kept: the original and the latest.
pub const MAX_PREVIOUS_IDS: usize = 64;

impl Snapshot {
    /// The id of the logical snapshot: the first id it ever had (`own` is
    /// the id of this manifest).
    pub fn logical_id(&self, own: ObjectId) -> ObjectId {
        self.previous_ids.first().copied().unwrap_or(own)
    }

    /// True when this manifest was once known as an id starting with `prefix`.
    pub fn was_known_as(&self, prefix: &str) -> bool {
        self.previous_ids
            .iter()
            .any(|id| id.to_hex().starts_with(prefix))
    }

    /// The manifest that replaces this one (read as `own`): same snapshot,
    /// `own` appended to its history (capped, keeping the original).
    pub fn rewritten(&self, own: ObjectId, at: DateTime<Utc>) -> Snapshot {
        let mut next = self.clone();
        if !next.previous_ids.contains(&own) {
            next.previous_ids.push(own);
        }
        if next.previous_ids.len() > MAX_PREVIOUS_IDS {
            let excess = next.previous_ids.len() - MAX_PREVIOUS_IDS;
            next.previous_ids.drain(1..=excess);
        }
        next.rewritten_at = Some(truncate_to_millis(at));
        next
    }

    /// Serialize (the plaintext that is sealed).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serializes")
    }

    /// Seal under the metadata key: how a listing will show the manifest,
    /// and the bytes to store under its key.
    pub fn seal(&self, meta: &DataKey) -> (SnapshotRef, Vec<u8>) {
        let (host_tag, source_tag) = (
            host_tag(meta, &self.host),
            source_tag(meta, &self.host, &self.source),
        );
        let stem = layout::snapshot_stem(&host_tag, &source_tag, &self.time);
        let sealed = meta.seal_bound(MANIFEST_PURPOSE, stem.as_bytes(), &self.to_bytes());
        let id = ObjectId::hash(&sealed);
        let key = layout::snapshot_key(&host_tag, &source_tag, &self.time, &id);
        let listed = SnapshotRef {
            key,
            id,
            time: self.time,
            host_tag,
            source_tag,
        };
        (listed, sealed)
    }
}

/// A snapshot as a listing shows it, before its manifest is read: its key,
/// id and time, and the tags of its host and source (the names are only in
/// the manifest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRef {
    pub key: String,
    pub id: ObjectId,
    pub time: DateTime<Utc>,
    pub host_tag: String,
    pub source_tag: String,
}

impl SnapshotRef {
    /// Parse a manifest key (see [`crate::repo::layout`]); keys of another
    /// shape are not snapshots.
    pub fn parse(key: &str) -> Option<Self> {
        let parsed = layout::parse_snapshot_key(key)?;
        Some(SnapshotRef {
            key: key.to_string(),
            id: parsed.id,
            time: parsed.time,
            host_tag: parsed.host_tag,
            source_tag: parsed.source_tag,
        })
    }

    /// Open and parse the manifest bytes read from this key: they must hash
    /// to its id, authenticate under `meta` for this key, and name a host
    /// and source whose tags are the key's.
    pub fn decode(&self, meta: &DataKey, stored: &[u8]) -> Result<Snapshot> {
        if ObjectId::hash(stored) != self.id {
            return Err(Error::corrupt(&self.key, "manifest does not match its id"));
        }
        let stem = layout::snapshot_key_stem(&self.key).unwrap_or_default();
        let json = meta.open_bound(MANIFEST_PURPOSE, stem.as_bytes(), &self.key, stored)?;
        let snap = parse_manifest(&self.key, &json)?;
        if host_tag(meta, &snap.host) != self.host_tag
            || source_tag(meta, &snap.host, &snap.source) != self.source_tag
        {
            return Err(Error::corrupt(
                &self.key,
                "manifest names another host or source than its key",
            ));
        }
        Ok(snap)
    }
}

/// Parse an opened manifest of the object `key` (pure: the fuzz target's entry).
pub fn parse_manifest(key: &str, json: &[u8]) -> Result<Snapshot> {
    let mut snap: Snapshot = serde_json::from_slice(json)
        .map_err(|e| Error::corrupt_by(key, "manifest does not parse", e))?;
    snap.tree.tenant = snap.tree_tenant.as_deref().map(Into::into);
    if snap.version != SNAPSHOT_VERSION {
        return Err(Error::corrupt(
            key,
            format!("unsupported manifest version {}", snap.version),
        ));
    }
    Ok(snap)
}

/// An older copy of a logical snapshot that a newer rewrite replaces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Duplicate {
    /// The older manifest (to delete).
    pub id: ObjectId,
    #[serde(skip)]
    pub manifest: SnapshotRef,
    /// The manifest that stays.
    pub kept: ObjectId,
}

/// Split manifests into one per logical snapshot (the newest rewrite) and
/// the older copies that a prune killed between writing a rewrite and
/// deleting its original left behind. Copies are the same snapshot only when
/// host, source, time and logical id agree.
pub fn split_duplicates(
    all: Vec<(SnapshotRef, Snapshot)>,
) -> (Vec<(SnapshotRef, Snapshot)>, Vec<Duplicate>) {
    use std::collections::HashMap;
    type Group = (String, String, DateTime<Utc>, ObjectId);
    let newer = |a: &(SnapshotRef, Snapshot), b: &(SnapshotRef, Snapshot)| {
        (a.1.rewritten_at, a.1.previous_ids.len(), &a.0.key)
            > (b.1.rewritten_at, b.1.previous_ids.len(), &b.0.key)
    };
    let mut best: HashMap<Group, usize> = HashMap::new();
    let group_of = |(r, s): &(SnapshotRef, Snapshot)| -> Group {
        (s.host.clone(), s.source.clone(), r.time, s.logical_id(r.id))
    };
    for (i, item) in all.iter().enumerate() {
        let slot = best.entry(group_of(item)).or_insert(i);
        if let (Some(current), true) = (all.get(*slot), *slot != i) {
            if newer(item, current) {
                *slot = i;
            }
        }
    }
    let mut kept = Vec::new();
    let mut duplicates = Vec::new();
    for (i, item) in all.iter().enumerate() {
        match best
            .get(&group_of(item))
            .and_then(|&b| all.get(b).map(|w| (b, w)))
        {
            Some((b, winner)) if b != i => duplicates.push(Duplicate {
                id: item.0.id,
                manifest: item.0.clone(),
                kept: winner.0.id,
            }),
            _ => kept.push(item.clone()),
        }
    }
    (kept, duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(tree: &[u8]) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            time: "2026-11-27T02:00:00Z".parse().unwrap(),
            host: "h1".into(),
            source: "data".into(),
            class: SourceClass::ClientData,
            path: "/src".into(),
            parent: None,
            tree: BlobRef {
                id: ObjectId::hash(tree),
                pack: ObjectId::hash(b"pack"),
                offset: 0,
                length: 1,
                raw_length: 1,
                compression: Default::default(),
                tenant: None,
            },
            summary: Summary::default(),
            previous_ids: Vec::new(),
            rewritten_at: None,
            tree_tenant: None,
        }
    }

    fn meta() -> DataKey {
        DataKey::from_secret(&crate::crypto::Secret::random())
    }

    fn stored(snap: Snapshot) -> (SnapshotRef, Snapshot) {
        (snap.seal(&meta()).0, snap)
    }

    #[test]
    fn rewrites_are_one_logical_snapshot_and_the_newest_copy_stays() {
        let (orig_ref, orig) = stored(manifest(b"t1"));
        let first = orig.rewritten(orig_ref.id, "2026-11-28T00:00:00Z".parse().unwrap());
        let (first_ref, first) = stored(Snapshot {
            tree: manifest(b"t2").tree,
            ..first
        });
        let second = first.rewritten(first_ref.id, "2026-11-29T00:00:00Z".parse().unwrap());
        let (second_ref, second) = stored(Snapshot {
            tree: manifest(b"t3").tree,
            ..second
        });
        assert_eq!(second.previous_ids, vec![orig_ref.id, first_ref.id]);
        assert!(second.was_known_as(&first_ref.id.to_hex()[..8]));
        let other = stored(manifest(b"another snapshot, same time"));
        let with = vec![
            (first_ref.clone(), first),
            (orig_ref.clone(), orig),
            (second_ref.clone(), second),
            other.clone(),
        ];
        let (kept, duplicates) = split_duplicates(with);
        let kept: Vec<ObjectId> = kept.iter().map(|(r, _)| r.id).collect();
        assert_eq!(kept, vec![second_ref.id, other.0.id]);
        let mut gone: Vec<ObjectId> = duplicates.iter().map(|d| d.id).collect();
        gone.sort();
        let mut expected = vec![orig_ref.id, first_ref.id];
        expected.sort();
        assert_eq!(gone, expected);
        assert!(duplicates.iter().all(|d| d.kept == second_ref.id));
    }

    #[test]
    fn sealed_manifest_round_trips_through_listing_and_names_no_name() {
        let meta = meta();
        let snap = manifest(b"x");
        let (listed, sealed) = snap.seal(&meta);
        let r = SnapshotRef::parse(&listed.key).unwrap();
        assert_eq!(r, listed);
        assert_eq!(r.decode(&meta, &sealed).unwrap(), snap);
        for name in ["h1", "data", "/src"] {
            assert!(!r.key.contains(name), "{}", r.key);
            assert!(!sealed.windows(name.len()).any(|w| w == name.as_bytes()));
        }
        let err = r.decode(&super::tests::meta(), &sealed).unwrap_err();
        assert!(err.to_string().contains("does not authenticate"), "{err}");
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(r.decode(&meta, &flipped).is_err());
    }

    #[test]
    fn an_object_sealed_for_another_purpose_does_not_open_as_a_manifest() {
        let meta = meta();
        let (listed, _) = manifest(b"x").seal(&meta);
        let stem = layout::snapshot_key_stem(&listed.key).unwrap();
        let json = manifest(b"x").to_bytes();
        for purpose in [
            crate::repo::index::INDEX_PURPOSE,
            crate::repo::log::LOG_PURPOSE,
        ] {
            let other = meta.seal_bound(purpose, stem.as_bytes(), &json);
            let id = ObjectId::hash(&other);
            let key = layout::snapshot_key(&listed.host_tag, &listed.source_tag, &listed.time, &id);
            let err = SnapshotRef::parse(&key)
                .unwrap()
                .decode(&meta, &other)
                .unwrap_err();
            assert!(
                err.to_string().contains("does not authenticate"),
                "{purpose}: {err}"
            );
        }
    }

    #[test]
    fn a_manifest_under_another_hosts_tags_is_corrupt() {
        let meta = meta();
        let (listed, sealed) = manifest(b"x").seal(&meta);
        let other = host_tag(&meta, "h2");
        let moved = SnapshotRef::parse(&listed.key.replacen(&listed.host_tag, &other, 1)).unwrap();
        assert!(moved.decode(&meta, &sealed).is_err());
        // Even sealed for the other key (a forger with the key but a wrong name):
        let stem = layout::snapshot_key_stem(&moved.key).unwrap();
        let forged = meta.seal_bound(
            MANIFEST_PURPOSE,
            stem.as_bytes(),
            &manifest(b"x").to_bytes(),
        );
        let id = ObjectId::hash(&forged);
        let key = layout::snapshot_key(&other, &moved.source_tag, &moved.time, &id);
        let err = SnapshotRef::parse(&key)
            .unwrap()
            .decode(&meta, &forged)
            .unwrap_err();
        assert!(err.to_string().contains("another host"), "{err}");
    }
}
