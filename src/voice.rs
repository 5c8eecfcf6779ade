//! Voice recordings: how long a backup copy lives, from the tenant's contract.
//!
//! For a tenant whose contract keeps recordings R days, the backup copy is
//! kept `B = min(2·R, R + 365)` days from the recording's time (its mtime).
//! Never early: until then some snapshot holds it (voice snapshots carry
//! forward items gone from the source). Never late: after then no snapshot
//! holds it (snapshots skip expired items, prune drops them). R is read from
//! the config each time, so a contract change applies at the next prune.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::days::Days;
use crate::tree::FileEntry;

/// The contracts in force (every R already checked to `1..=MAX_DAYS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contracts {
    pub default_days: Days,
    pub tenants: BTreeMap<String, Days>,
}

impl Contracts {
    /// R: the recording retention of `tenant` in days.
    pub fn recording_days(&self, tenant: Option<&str>) -> u32 {
        tenant
            .and_then(|t| self.tenants.get(t))
            .map_or(self.default_days, |d| *d)
            .get()
    }

    /// B: how long the backup copy of a recording is kept, in days. R is at
    /// most `MAX_DAYS`, so neither sum can overflow.
    pub fn backup_days(&self, tenant: Option<&str>) -> u32 {
        let r = self.recording_days(tenant);
        r.saturating_mul(2).min(r.saturating_add(365))
    }

    /// When the backup copy of `entry` expires. A recording at the end of
    /// the `i64` span (`i64::MAX`, where later mtimes are clamped) never
    /// does: its real time, and so its promise, is unknown but later.
    pub fn expires_at(&self, entry: &FileEntry) -> DateTime<Utc> {
        if entry.mtime_ns == i64::MAX {
            return DateTime::<Utc>::MAX_UTC;
        }
        let days = Duration::days(i64::from(self.backup_days(entry.tenant.as_deref())));
        recorded_at(entry)
            .checked_add_signed(days)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Has the backup copy of `entry` expired at `now`?
    pub fn expired(&self, entry: &FileEntry, now: DateTime<Utc>) -> bool {
        now >= self.expires_at(entry)
    }
}

/// The recording's time: its modification time. Every `i64` is a valid
/// time (1677 to 2262), so an mtime from an untrusted tree cannot fail here;
/// source files outside that span are clamped when snapshotted
/// (`mtime_ns` in `ops::snapshot`), a later one to `i64::MAX`, which never
/// expires.
pub fn recorded_at(entry: &FileEntry) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(entry.mtime_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contracts(default: i64, tenants: &[(&str, i64)]) -> Contracts {
        Contracts {
            default_days: Days::new(default, "d").unwrap(),
            tenants: tenants
                .iter()
                .map(|(t, r)| (t.to_string(), Days::new(*r, "t").unwrap()))
                .collect(),
        }
    }

    fn recording(mtime_ns: i64) -> FileEntry {
        FileEntry {
            name: "r.opus".into(),
            size: 1,
            mtime_ns,
            mode: 0o644,
            inode: 1,
            tenant: None,
            sha256: crate::id::ObjectId::hash(b"r"),
            chunks: crate::tree::ChunkList::empty(),
            carried: false,
        }
    }

    #[test]
    fn the_longest_contract_at_the_ends_of_time_neither_panics_nor_expires_early() {
        let c = contracts(36_500, &[]);
        assert_eq!(c.backup_days(None), 36_865);
        let end = recording(i64::MAX);
        assert!(!c.expired(&end, DateTime::<Utc>::MAX_UTC - Duration::days(1)));
        let short = contracts(1, &[]);
        assert!(!short.expired(&end, DateTime::<Utc>::MAX_UTC - Duration::days(1)));
        let start = recording(i64::MIN);
        let promise = recorded_at(&start) + Duration::days(36_865);
        assert!(!c.expired(&start, promise - Duration::nanoseconds(1)));
        assert!(c.expired(&start, promise));
    }

    #[test]
    fn backup_days_is_twice_r_but_at_most_a_year_longer() {
        let c = contracts(90, &[("a", 30), ("b", 180), ("c", 365), ("d", 730)]);
        let got: Vec<u32> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| c.backup_days(Some(t)))
            .collect();
        assert_eq!(got, [60, 360, 730, 1095]);
        assert_eq!(c.backup_days(Some("unknown")), 180);
        assert_eq!(c.backup_days(None), 180);
    }
}
