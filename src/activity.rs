//! The activity log: every operation, kept in the repository for 30 days;
//! restores, erasures and changes to the key's copies for the audit, ten years.
//!
//! This is the entry type and how entries are made; storing, listing and
//! expiring them is the repository's ([`crate::repo::log`]): one sealed JSON line
//! per object under a daily prefix, read back tolerantly (an entry that does
//! not parse is skipped with a warning by `offsite log` and the agent's
//! start-up read-back, never deleted early), and deleted by prune after
//! `activity_log_days` (default 30). Who restored what and why, and what was
//! erased, is evidence a client or an auditor may ask for years later: the
//! entries of [`AUDIT_OPERATIONS`] are deleted only after `audit_log_days`
//! (default 3650, and never before `activity_log_days`). They are few, so
//! keeping them costs nothing worth counting.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::days::Days;
use crate::error::{Error, Result};
pub use crate::operation::{Operation, Outcome};
use crate::repo::Repository;

/// The operations whose entries are kept for the audit (`erase`: a
/// tenant's key destroyed or items removed on request, [`crate::ops::erase`];
/// `key`: who added, removed, exported or recovered a copy of the key).
pub const AUDIT_OPERATIONS: [&str; 3] = ["restore", "erase", "key"];

/// One logged operation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Activity {
    /// When it ended, by the caller's clock ([`crate::clock`]).
    pub time: DateTime<Utc>,
    pub host: String,
    pub operation: Operation,
    pub outcome: Outcome,
    /// Key figures of the operation (its JSON report, or the error).
    pub details: serde_json::Value,
}

impl Activity {
    /// The entry for `result`: `ok` with the report as details, or `failed`
    /// with the error as `{"error": …}`.
    pub fn of_result<T: Serialize, E: std::fmt::Display>(
        time: DateTime<Utc>,
        host: &str,
        operation: Operation,
        result: &std::result::Result<T, E>,
    ) -> Activity {
        let (outcome, details) = match result {
            Ok(report) => (
                Outcome::Ok,
                serde_json::to_value(report).unwrap_or_default(),
            ),
            Err(e) => (
                Outcome::Failed,
                serde_json::json!({ "error": e.to_string() }),
            ),
        };
        Activity {
            time,
            host: host.to_string(),
            operation,
            outcome,
            details,
        }
    }
}

/// Append `entry`; a failure to log is a warning (on stderr and in the
/// journal), never a reason to fail the operation itself.
pub fn log(repo: &Repository, entry: &Activity) {
    if let Err(e) = repo.append_activity(entry) {
        eprintln!("offsite: warning: could not write the activity log: {e}");
    }
}

/// Entries before this time are expired: `keep_days` before `now`, or none
/// (`None`) when that is before the earliest representable time.
pub fn cutoff(now: DateTime<Utc>, keep_days: Days) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(Duration::days(i64::from(keep_days.get())))
}

/// Parse the bytes of the log entry `key` (pure: the fuzz target's entry).
pub fn parse_entry(key: &str, bytes: &[u8]) -> Result<Activity> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt_by(key, "log entry does not parse", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_at_the_ends_of_time_keeps_everything_or_is_exact() {
        let most = Days::new(i64::from(crate::days::MAX_DAYS), "k").unwrap();
        assert_eq!(cutoff(DateTime::<Utc>::MIN_UTC, most), None);
        let end = DateTime::<Utc>::MAX_UTC;
        assert_eq!(cutoff(end, most), Some(end - Duration::days(36_500)));
    }
}
