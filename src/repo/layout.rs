//! Object keys: the one place that spells them.
//!
//! | kind | key |
//! |---|---|
//! | [`ObjectKind::Config`] | `config` |
//! | [`ObjectKind::Pack`] | `packs/<hh>/<id>` (`hh`: the id's first two hex digits) |
//! | [`ObjectKind::Index`] | `index/<id>` (SHA-256 of the stored bytes) |
//! | [`ObjectKind::Snapshot`] | `snapshots/<host>/<source>/<YYYYMMDDTHHMMSS.mmmZ>-<id>` |
//! | [`ObjectKind::Lock`] | `locks/<id>` (random) |
//! | [`ObjectKind::Log`] | `log/<YYYY-MM-DD>/<HHMMSS.mmm>-<host>-<operation>-<random>.json` |
//! | [`ObjectKind::Quarantine`] | `quarantine/packs/<hh>/<id>` |
//!
//! Builders turn typed values into keys; parsers take keys from a listing,
//! which whoever writes the bucket controls, and return `None` for anything
//! not of the exact shape (never panic). A key that does not parse is not an
//! object of that kind and is left alone.

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
    pub host: String,
    pub source: String,
    pub time: DateTime<Utc>,
    pub id: ObjectId,
}

/// `snapshots/<host>/<source>/<time>-<id>`.
pub fn snapshot_key(host: &str, source: &str, time: &DateTime<Utc>, id: &ObjectId) -> String {
    format!(
        "{SNAPSHOTS}/{host}/{source}/{}-{id}",
        time.format(SNAPSHOT_TIME)
    )
}

/// The listing prefix of the manifests of `host` (and `source`), or of all.
pub(crate) fn snapshot_prefix(host: Option<&str>, source: Option<&str>) -> String {
    match (host, source) {
        (Some(h), Some(s)) => format!("{SNAPSHOTS}/{h}/{s}"),
        (Some(h), None) => format!("{SNAPSHOTS}/{h}"),
        _ => SNAPSHOTS.to_string(),
    }
}

/// Parse a manifest key; keys of another shape are not snapshots.
pub fn parse_snapshot_key(key: &str) -> Option<SnapshotKey> {
    let rest = key.strip_prefix(SNAPSHOTS)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (host, source, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (stamp, id) = name.split_once('-')?;
    let time = NaiveDateTime::parse_from_str(stamp, SNAPSHOT_TIME)
        .ok()?
        .and_utc();
    Some(SnapshotKey {
        host: host.to_string(),
        source: source.to_string(),
        time,
        id: id.parse().ok()?,
    })
}

/// True when the manifest `key` belongs to `host`.
pub fn is_snapshot_of_host(key: &str, host: &str) -> bool {
    key.strip_prefix(SNAPSHOTS)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(host))
        .is_some_and(|r| r.starts_with('/'))
}

/// `log/<day>/<time>-<host>-<operation>-<random>.json`.
pub fn log_key(time: &DateTime<Utc>, host: &str, operation: &str, random: &str) -> String {
    format!(
        "{LOG}/{}/{}-{host}-{operation}-{random}.json",
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

/// Whether the log key names an entry of `operation` (judged by the key,
/// without reading the entry): the name ends `-{operation}-{random}.json`,
/// so `restore` does not match a `restore-test` entry, nor a host named
/// `db-restore`.
pub fn log_key_is_of(key: &str, operation: &str) -> bool {
    key.strip_suffix(".json")
        .and_then(|k| k.rsplit_once('-'))
        .and_then(|(rest, _random)| rest.strip_suffix(operation))
        .is_some_and(|rest| rest.ends_with('-'))
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
        let key = snapshot_key("h1", "client-data", &time, &id);
        assert_eq!(
            key,
            format!("snapshots/h1/client-data/20261127T020000.123Z-{id}")
        );
        let parsed = parse_snapshot_key(&key).unwrap();
        assert_eq!(
            (parsed.host.as_str(), parsed.time, parsed.id),
            ("h1", time, id)
        );
        assert!(is_snapshot_of_host(&key, "h1"));
        assert!(!is_snapshot_of_host(&key, "h"));
        assert!(parse_snapshot_key("snapshots/h1/x").is_none());
        assert!(parse_snapshot_key(&format!("{key}/more")).is_none());
    }

    #[test]
    fn log_key_times_parse() {
        let t = log_time("log/2026-11-27/020304.567-h1-abcd1234.json").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T02:03:04.567+00:00");
        assert!(log_time("log/x/y").is_none());
        assert!(log_time("log/2026-11-27/é").is_none());
        let key = log_key(&t, "h1", "prune", "0badf00d");
        assert_eq!(log_time(&key), Some(t));
        assert!(log_key_is_of(&key, "prune"));
        let test = log_key(&t, "db-restore", "restore-test", "0badf00d");
        assert!(log_key_is_of(&test, "restore-test"));
        assert!(!log_key_is_of(&test, "restore"), "{test}");
        let restore = log_key(&t, "db-restore", "snapshot", "0badf00d");
        assert!(!log_key_is_of(&restore, "restore"));
        assert!(log_key_is_of(
            &log_key(&t, "h", "restore", "01234567"),
            "restore"
        ));
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
}
