//! The activity log: every operation, kept in the repository for 30 days.
//!
//! Object stores cannot append, and several hosts may write at once, so each
//! entry is its own small object under a daily prefix:
//!
//! ```text
//! log/<YYYY-MM-DD>/<HHMMSS.mmm>-<host>-<operation>-<random>.json   one JSON line
//! ```
//!
//! Reading a day is one listing; prune deletes the entries older than
//! `activity_log_days` (default 30), judged by their keys without reading them.
//! An entry that does not parse is skipped with a warning by `offsite log`
//! and the agent's start-up read-back ([`read_tolerant`]), never deleted
//! early: it ages out like any other.

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Days;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::store::Store;

/// One logged operation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Activity {
    pub time: DateTime<Utc>,
    pub host: String,
    pub operation: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Key figures of the operation (its JSON report, or the error).
    pub details: serde_json::Value,
}

/// Append an entry.
pub fn append(store: &Store, entry: &Activity) -> Result<()> {
    let key = format!(
        "log/{}/{}-{}-{}-{}.json",
        entry.time.format("%Y-%m-%d"),
        entry.time.format("%H%M%S%.3f"),
        entry.host,
        entry.operation,
        &ObjectId::random().to_hex()[..8]
    );
    let mut line = serde_json::to_vec(entry).expect("activity serializes");
    line.push(b'\n');
    store.put_new(&key, Bytes::from(line))
}

/// Log an operation's outcome now; a failure to log is a warning (on stderr
/// and in the journal), never a reason to fail the operation itself.
pub fn log(store: &Store, host: &str, operation: &str, outcome: &str, details: serde_json::Value) {
    let entry = Activity {
        time: Utc::now(),
        host: host.to_string(),
        operation: operation.to_string(),
        outcome: outcome.to_string(),
        details,
    };
    if let Err(e) = append(store, &entry) {
        eprintln!("offsite: warning: could not write the activity log: {e}");
    }
}

/// Log a result: `ok` with the report as details, or `failed` with the error.
pub fn log_result<T: Serialize, E: std::fmt::Display>(
    store: &Store,
    host: &str,
    operation: &str,
    result: &std::result::Result<T, E>,
) {
    match result {
        Ok(report) => log(
            store,
            host,
            operation,
            "ok",
            serde_json::to_value(report).unwrap_or_default(),
        ),
        Err(e) => log(
            store,
            host,
            operation,
            "failed",
            serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

/// The day of a log key, if it is one.
fn day_of(key: &str) -> Option<NaiveDate> {
    let day = key.strip_prefix("log/")?.split('/').next()?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// Entries from `since` (a day) on, oldest first; only those of `operation`
/// when given (judged by the key, so others are not read). An entry that
/// cannot be read (does not parse, or is not the operation its key says) is
/// skipped and returned as a problem: one bad entry must not hide the log or
/// stop the agent from starting.
pub fn read_tolerant(
    store: &Store,
    since: Option<NaiveDate>,
    operation: Option<&str>,
) -> Result<(Vec<Activity>, Vec<Problem>)> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for key in selected_keys(store, since, operation)? {
        match read_entry(store, &key, operation) {
            Ok(entry) => out.extend(entry),
            Err(Error::NotFound { .. }) => {} // pruned since the listing
            Err(e) if is_object_damage(&e) => problems.push(Problem::new(&key, &e)),
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|a| a.time);
    Ok((out, problems))
}

/// Keys of the entries from `since` on, of `operation` when given.
fn selected_keys(
    store: &Store,
    since: Option<NaiveDate>,
    operation: Option<&str>,
) -> Result<Vec<String>> {
    Ok(store
        .list("log")?
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| since.is_none_or(|s| day_of(key).is_none_or(|d| d >= s)))
        .filter(|key| operation.is_none_or(|op| key.contains(&format!("-{op}-"))))
        .collect())
}

/// One entry; `None` when it is of another operation than asked for.
fn read_entry(store: &Store, key: &str, operation: Option<&str>) -> Result<Option<Activity>> {
    let bytes = store.get(key)?;
    let entry = parse_entry(key, &bytes)?;
    Ok(operation
        .is_none_or(|op| entry.operation == op)
        .then_some(entry))
}

/// The time of a log key (its day and time of day), if it is one.
fn time_of(key: &str) -> Option<DateTime<Utc>> {
    let day = day_of(key)?;
    let name = key.rsplit('/').next()?;
    let time = chrono::NaiveTime::parse_from_str(name.get(..10)?, "%H%M%S%.3f").ok()?;
    Some(day.and_time(time).and_utc())
}

/// Entries before this time are expired: `keep_days` before `now`, or none
/// (`None`) when that is before the earliest representable time.
pub fn cutoff(now: DateTime<Utc>, keep_days: Days) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(Duration::days(i64::from(keep_days.get())))
}

/// Keys of the entries older than `keep_days` before `now`.
pub fn expired_keys(store: &Store, now: DateTime<Utc>, keep_days: Days) -> Result<Vec<String>> {
    let Some(cutoff) = cutoff(now, keep_days) else {
        return Ok(Vec::new());
    };
    Ok(store
        .list("log")?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| time_of(k).is_some_and(|t| t < cutoff))
        .collect())
}

/// Parse the bytes of the log entry `key` (pure: the fuzz target's entry).
pub fn parse_entry(key: &str, bytes: &[u8]) -> Result<Activity> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt_by(key, "log entry does not parse", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_times_parse() {
        let t = time_of("log/2026-11-27/020304.567-h1-abcd1234.json").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T02:03:04.567+00:00");
        assert!(time_of("log/x/y").is_none());
    }

    #[test]
    fn the_cutoff_at_the_ends_of_time_keeps_everything_or_is_exact() {
        let most = Days::new(i64::from(crate::config::MAX_DAYS), "k").unwrap();
        assert_eq!(cutoff(DateTime::<Utc>::MIN_UTC, most), None);
        let end = DateTime::<Utc>::MAX_UTC;
        assert_eq!(cutoff(end, most), Some(end - Duration::days(36_500)));
    }
}
