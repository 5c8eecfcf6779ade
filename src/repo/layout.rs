//! Object keys: the one place that spells them.
//!
//! | kind | key |
//! |---|---|
//! | [`ObjectKind::Config`] | `config` |
//! | [`ObjectKind::Pack`] | `packs/<hh>/<id>` (`hh`: the id's first two hex digits) |
//! | [`ObjectKind::Index`] | `index/<id>` (SHA-256 of the stored bytes) |
//! | [`ObjectKind::Snapshot`] | `snapshots/<htag>/<stag>/<YYYYMMDDTHHMMSS.mmmZ>-<id>` |
//! | [`ObjectKind::Lock`] | `locks/<id>` (random) |
//! | [`ObjectKind::Log`] | `log/<YYYY-MM-DD>/<HHMMSS.mmm>-<random>` |
//! | [`ObjectKind::Quarantine`] | `quarantine/packs/<hh>/<id>` |
//!
//! Builders turn typed values into keys; parsers take keys from a listing,
//! which whoever writes the bucket controls, and return `None` for anything
//! not of the exact shape (never panic). A key that does not parse is not an
//! object of that kind and is left alone.
//!
//! No key names a host, source, tenant or operation: the manifest keys carry
//! *tags* instead (`htag`, `stag`: keyed hashes of the names under the
//! metadata key, see [`crate::repo::snapshots`]), so one host's (or one
//! source's) manifests are still one prefix listing, but only a holder of the
//! key can tell which names they stand for. What keys still show: the kind of
//! each object, the time of each snapshot and log entry, how many there are of
//! each, and which manifests share a host and source.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::id::ObjectId;

/// The kinds of object a repository holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Config,
    Pack,
    Index,
    Snapshot,
    Lock,
    Log,
    Quarantine,
}

/// The key of the repository's config object.
pub const CONFIG: &str = "config";

const PACKS: &str = "packs";
const INDEX: &str = "index";
const SNAPSHOTS: &str = "snapshots";
const LOCKS: &str = "locks";
const LOG: &str = "log";
const QUARANTINE: &str = "quarantine";

/// Time in a manifest key (UTC, milliseconds).
const SNAPSHOT_TIME: &str = "%Y%m%dT%H%M%S%.3fZ";
const LOG_DAY: &str = "%Y-%m-%d";
const LOG_TIME: &str = "%H%M%S%.3f";

impl ObjectKind {
    /// The listing prefix of every object of this kind.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            ObjectKind::Config => CONFIG,
            ObjectKind::Pack => PACKS,
            ObjectKind::Index => INDEX,
            ObjectKind::Snapshot => SNAPSHOTS,
            ObjectKind::Lock => LOCKS,
            ObjectKind::Log => LOG,
            ObjectKind::Quarantine => QUARANTINE,
        }
    }

    /// The kind of the object `key` names, judged by its first component.
    pub fn of(key: &str) -> Option<ObjectKind> {
        let first = key.split('/').next()?;
        [
            ObjectKind::Config,
            ObjectKind::Pack,
            ObjectKind::Index,
            ObjectKind::Snapshot,
            ObjectKind::Lock,
            ObjectKind::Log,
            ObjectKind::Quarantine,
        ]
        .into_iter()
        .find(|k| k.prefix() == first && (*k == ObjectKind::Config) == (first == key))
    }
}

/// Whether `key` is read at its first version on a versioned bucket (see
/// [`crate::repo::store`]'s `put_new_until`): the keys written create-only
/// (the config, manifests, log entries, everything under `keys/`) and index
/// files (named by their content, few, read whole). Packs, also named by
/// their content, are read in ranges many times: at their latest version
/// (one that does not authenticate is reported as corruption). Locks are
/// rewritten in place.
pub fn is_create_only(key: &str) -> bool {
    matches!(
        ObjectKind::of(key),
        Some(ObjectKind::Config | ObjectKind::Snapshot | ObjectKind::Log | ObjectKind::Index)
    ) || key.starts_with("keys/")
}

/// Whether `key` is rewritten in place (locks, refreshed by their holder):
/// every other key is written once, and on a versioned bucket its first
/// version since it was last deleted is the object (a later one is a retry
/// with the same bytes, or foreign).
pub fn is_rewritten(key: &str) -> bool {
    ObjectKind::of(key) == Some(ObjectKind::Lock)
}

/// `packs/<hh>/<id>`.
pub fn pack_key(id: &ObjectId) -> String {
    let hex = id.to_hex();
    format!("{PACKS}/{}/{hex}", &hex[..2])
}

/// The id of a pack key; `None` unless the key is exactly `packs/<hh>/<id>`
/// with `hh` the id's first two digits.
pub fn parse_pack_key(key: &str) -> Option<ObjectId> {
    let rest = key.strip_prefix(PACKS)?.strip_prefix('/')?;
    let (hh, name) = rest.split_once('/')?;
    let id: ObjectId = name.parse().ok()?;
    (id.to_hex().get(..2) == Some(hh)).then_some(id)
}

/// `index/<id>`.
pub fn index_key(id: &ObjectId) -> String {
    format!("{INDEX}/{id}")
}

/// The id of an index key, if it is exactly `index/<id>`.
pub fn parse_index_key(key: &str) -> Option<ObjectId> {
    key.strip_prefix(INDEX)?.strip_prefix('/')?.parse().ok()
}

/// `quarantine/packs/<hh>/<id>`: where a damaged pack is kept.
pub fn quarantine_key(pack: &ObjectId) -> String {
    format!("{QUARANTINE}/{}", pack_key(pack))
}

/// `locks/<id>`.
pub fn lock_key(id: &ObjectId) -> String {
    format!("{LOCKS}/{id}")
}

/// The parts of a manifest key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotKey {
    /// The tag of the host (32 hex digits).
    pub host_tag: String,
    /// The tag of the source (32 hex digits).
    pub source_tag: String,
    pub time: DateTime<Utc>,
    pub id: ObjectId,
}

/// `snapshots/<htag>/<stag>/<time>`: the key of a manifest without its id
/// (what its seal is bound to).
pub fn snapshot_stem(host_tag: &str, source_tag: &str, time: &DateTime<Utc>) -> String {
    format!(
        "{SNAPSHOTS}/{host_tag}/{source_tag}/{}",
        time.format(SNAPSHOT_TIME)
    )
}

/// `snapshots/<htag>/<stag>/<time>-<id>`.
pub fn snapshot_key(
    host_tag: &str,
    source_tag: &str,
    time: &DateTime<Utc>,
    id: &ObjectId,
) -> String {
    format!("{}-{id}", snapshot_stem(host_tag, source_tag, time))
}

/// The stem of a manifest key (see [`snapshot_stem`]).
pub fn snapshot_key_stem(key: &str) -> Option<&str> {
    key.rsplit_once('-').map(|(stem, _)| stem)
}

/// The listing prefix of the manifests of a host tag (and source tag), or of all.
pub(crate) fn snapshot_prefix(host_tag: Option<&str>, source_tag: Option<&str>) -> String {
    match (host_tag, source_tag) {
        (Some(h), Some(s)) => format!("{SNAPSHOTS}/{h}/{s}"),
        (Some(h), None) => format!("{SNAPSHOTS}/{h}"),
        _ => SNAPSHOTS.to_string(),
    }
}

/// A tag: 32 lowercase hex digits.
fn is_tag(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parse a manifest key; keys of another shape are not snapshots.
pub fn parse_snapshot_key(key: &str) -> Option<SnapshotKey> {
    let rest = key.strip_prefix(SNAPSHOTS)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (host, source, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_tag(host) || !is_tag(source) {
        return None;
    }
    let (stamp, id) = name.split_once('-')?;
    let time = NaiveDateTime::parse_from_str(stamp, SNAPSHOT_TIME)
        .ok()?
        .and_utc();
    Some(SnapshotKey {
        host_tag: host.to_string(),
        source_tag: source.to_string(),
        time,
        id: id.parse().ok()?,
    })
}

/// True when the manifest `key` is under the host tag `host_tag`.
pub fn is_snapshot_of_host(key: &str, host_tag: &str) -> bool {
    parse_snapshot_key(key).is_some_and(|k| k.host_tag == host_tag)
}

/// `log/<day>/<time>-<random>`: the host and operation are only inside the
/// sealed entry.
pub fn log_key(time: &DateTime<Utc>, random: &str) -> String {
    format!(
        "{LOG}/{}/{}-{random}",
        time.format(LOG_DAY),
        time.format(LOG_TIME),
    )
}

/// The day of a log key, if it is one.
pub fn log_day(key: &str) -> Option<NaiveDate> {
    let day = key
        .strip_prefix(LOG)?
        .strip_prefix('/')?
        .split('/')
        .next()?;
    NaiveDate::parse_from_str(day, LOG_DAY).ok()
}

/// The time of a log key (its day and time of day), if it is one.
pub fn log_time(key: &str) -> Option<DateTime<Utc>> {
    let day = log_day(key)?;
    let name = key.rsplit('/').next()?;
    let time = NaiveTime::parse_from_str(name.get(..10)?, LOG_TIME).ok()?;
    Some(day.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_keys_round_trip_and_foreign_shapes_are_refused() {
        let id = ObjectId::hash(b"x");
        let key = pack_key(&id);
        assert_eq!(parse_pack_key(&key), Some(id));
        let hex = id.to_hex();
        for bad in [
            format!("packs/zz/{hex}"),
            format!("packs/{hex}"),
            format!("packs/{}/{hex}/x", &hex[..2]),
            format!("index/{hex}"),
            format!("packs/{}/{}", &hex[..2], &hex[..10]),
            "packs/".to_string(),
            "packs/é/é".to_string(),
        ] {
            assert_eq!(parse_pack_key(&bad), None, "{bad}");
        }
        assert_eq!(parse_index_key(&index_key(&id)), Some(id));
        assert_eq!(parse_index_key(&format!("index/{hex}/x")), None);
        assert_eq!(quarantine_key(&id), format!("quarantine/{key}"));
    }

    #[test]
    fn snapshot_keys_round_trip() {
        let id = ObjectId::hash(b"m");
        let time = DateTime::parse_from_rfc3339("2026-11-27T02:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let (h, s) = ("0123456789abcdef".repeat(2), "fedcba9876543210".repeat(2));
        let key = snapshot_key(&h, &s, &time, &id);
        assert_eq!(key, format!("snapshots/{h}/{s}/20261127T020000.123Z-{id}"));
        let parsed = parse_snapshot_key(&key).unwrap();
        assert_eq!(
            (parsed.host_tag.as_str(), parsed.source_tag.as_str()),
            (h.as_str(), s.as_str())
        );
        assert_eq!((parsed.time, parsed.id), (time, id));
        assert_eq!(
            snapshot_key_stem(&key),
            Some(snapshot_stem(&h, &s, &time).as_str())
        );
        assert!(is_snapshot_of_host(&key, &h));
        assert!(!is_snapshot_of_host(&key, &s));
        assert!(key.starts_with(&snapshot_prefix(Some(&h), Some(&s))));
        assert!(!key.starts_with(&snapshot_prefix(Some(&s), None)));
        assert!(parse_snapshot_key("snapshots/h1/x").is_none());
        assert!(parse_snapshot_key(&format!("{key}/more")).is_none());
        let named = format!("snapshots/h1/data/20261127T020000.123Z-{id}");
        assert!(parse_snapshot_key(&named).is_none(), "names are not tags");
    }

    #[test]
    fn log_key_times_parse() {
        let t = log_time("log/2026-11-27/020304.567-abcd1234").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T02:03:04.567+00:00");
        assert!(log_time("log/x/y").is_none());
        assert!(log_time("log/2026-11-27/é").is_none());
        let key = log_key(&t, "0badf00d");
        assert_eq!(key, "log/2026-11-27/020304.567-0badf00d");
        assert_eq!(log_time(&key), Some(t));
        assert_eq!(log_day(&key), Some(t.date_naive()));
    }

    #[test]
    fn kinds_are_judged_by_the_first_component() {
        let id = ObjectId::hash(b"k");
        assert_eq!(ObjectKind::of(&pack_key(&id)), Some(ObjectKind::Pack));
        assert_eq!(ObjectKind::of(&index_key(&id)), Some(ObjectKind::Index));
        assert_eq!(ObjectKind::of(CONFIG), Some(ObjectKind::Config));
        assert_eq!(ObjectKind::of("config/x"), None);
        assert_eq!(ObjectKind::of("log/2026-11-27/x"), Some(ObjectKind::Log));
        assert_eq!(ObjectKind::of("elsewhere/x"), None);
    }

    #[test]
    fn keys_read_at_their_first_version_and_keys_rewritten() {
        let id = ObjectId::hash(b"x");
        for yes in [
            CONFIG.to_string(),
            "snapshots/a/b/20300101T000000.000Z-x".to_string(),
            "log/2026-11-27/x".to_string(),
            "keys/epoch/0000000001".to_string(),
            "keys/envelopes/x".to_string(),
            index_key(&id),
        ] {
            assert!(is_create_only(&yes), "{yes}");
        }
        for no in [pack_key(&id), lock_key(&id), quarantine_key(&id)] {
            assert!(!is_create_only(&no), "{no}");
        }
        assert!(!is_create_only("config/x") && !is_create_only("keysx/y"));
        assert!(is_rewritten(&lock_key(&id)));
        assert!(!is_rewritten(&pack_key(&id)) && !is_rewritten(CONFIG));
    }
}
