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

use crate::config::TenantContract;
use crate::tree::FileEntry;

/// The contracts in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contracts {
    pub default_days: u32,
    pub tenants: BTreeMap<String, TenantContract>,
}

impl Contracts {
    /// R: the recording retention of `tenant` in days.
    pub fn recording_days(&self, tenant: Option<&str>) -> u32 {
        tenant
            .and_then(|t| self.tenants.get(t))
            .map_or(self.default_days, |c| c.voice_retention_days)
    }

    /// B: how long the backup copy of a recording is kept, in days.
    pub fn backup_days(&self, tenant: Option<&str>) -> u32 {
        let r = self.recording_days(tenant);
        (2 * r).min(r + 365)
    }

    /// When the backup copy of `entry` expires.
    pub fn expires_at(&self, entry: &FileEntry) -> DateTime<Utc> {
        recorded_at(entry) + Duration::days(i64::from(self.backup_days(entry.tenant.as_deref())))
    }

    /// Has the backup copy of `entry` expired at `now`?
    pub fn expired(&self, entry: &FileEntry, now: DateTime<Utc>) -> bool {
        now >= self.expires_at(entry)
    }
}

/// The recording's time: its modification time.
pub fn recorded_at(entry: &FileEntry) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(entry.mtime_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_days_is_twice_r_but_at_most_a_year_longer() {
        let mut tenants = BTreeMap::new();
        for (t, r) in [("a", 30), ("b", 180), ("c", 365), ("d", 730)] {
            tenants.insert(
                t.to_string(),
                TenantContract {
                    voice_retention_days: r,
                },
            );
        }
        let c = Contracts {
            default_days: 90,
            tenants,
        };
        let got: Vec<u32> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| c.backup_days(Some(t)))
            .collect();
        assert_eq!(got, [60, 360, 730, 1095]);
        assert_eq!(c.backup_days(Some("unknown")), 180);
        assert_eq!(c.backup_days(None), 180);
    }
}
