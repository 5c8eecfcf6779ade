//! Storage of the activity log: one small sealed object per entry.
//!
//! Object stores cannot append, and several hosts may write at once, so each
//! entry ([`Activity`]) is its own object under a daily prefix (keys in
//! [`crate::repo::layout`]): reading a day is one listing. An entry is JSON
//! sealed under the metadata key for [`LOG_PURPOSE`], bound to its own key
//! (moved under another name or day, it no longer opens); its key shows only
//! when it was written, so the host and operation are known only by reading
//! it. Entries are small: filtering by operation reads them all, a few at a
//! time ([`crate::repo::parallel`]).
//!
//! Prune deletes the entries older than `activity_log_days`, judged by their
//! keys; of those, the ones not yet past `audit_log_days` are read first, and
//! only those that open and are not audit entries (restore, erase) go. An
//! entry that cannot be read is skipped and reported
//! ([`Repository::read_activity_tolerant`]), never deleted early: it is kept
//! until `audit_log_days`, as if it were an audit entry.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};

use crate::activity::{cutoff, parse_entry, Activity, AUDIT_OPERATIONS};
use crate::days::Days;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::repo::layout::{self, ObjectKind};
use crate::repo::{parallel, Repository};

/// What log entries are sealed for.
pub const LOG_PURPOSE: &str = "offsite2/log";

/// One entry of the log as a listing shows it, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntryRef {
    key: String,
}

impl LogEntryRef {
    /// The entry's object name, for messages.
    pub fn name(&self) -> &str {
        &self.key
    }
}

impl Repository {
    /// Append an entry (sealed, create-only, under a fresh random name).
    pub fn append_activity(&self, entry: &Activity) -> Result<()> {
        let key = layout::log_key(&entry.time, &ObjectId::random().to_hex()[..16]);
        self.store
            .put_new(&key, Bytes::from(self.seal_activity(&key, entry)))
    }

    /// The stored bytes of `entry` under `key`.
    fn seal_activity(&self, key: &str, entry: &Activity) -> Vec<u8> {
        let mut line = serde_json::to_vec(entry).expect("activity serializes");
        line.push(b'\n');
        self.keys
            .meta()
            .seal_bound(LOG_PURPOSE, key.as_bytes(), &line)
    }

    /// Every entry of the log, in key order.
    fn list_activity(&self) -> Result<Vec<LogEntryRef>> {
        Ok(self
            .store
            .list(ObjectKind::Log.prefix())?
            .into_iter()
            .map(|(key, _)| LogEntryRef { key })
            .collect())
    }

    /// Entries from `since` (a day) on, oldest first; only those of
    /// `operation` when given. An entry that cannot be read (does not open or
    /// parse) is skipped and returned as a problem: one bad entry must not
    /// hide the log or stop the agent from starting.
    pub fn read_activity_tolerant(
        &self,
        since: Option<NaiveDate>,
        operation: Option<&str>,
    ) -> Result<(Vec<Activity>, Vec<Problem>)> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let selected: Vec<LogEntryRef> = self
            .list_activity()?
            .into_iter()
            .filter(|e| since.is_none_or(|s| layout::log_day(&e.key).is_none_or(|d| d >= s)))
            .collect();
        let read = parallel::map(&selected, |entry| self.read_activity(entry));
        for (entry, read) in selected.iter().zip(read) {
            match read {
                Ok(read) if operation.is_none_or(|op| read.operation.as_str() == op) => {
                    out.push(read)
                }
                Ok(_) | Err(Error::NotFound { .. }) => {} // another operation; pruned since the listing
                Err(e) if is_object_damage(&e) => problems.push(Problem::new(&entry.key, &e)),
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|a| a.time);
        Ok((out, problems))
    }

    /// Read and open one entry.
    fn read_activity(&self, entry: &LogEntryRef) -> Result<Activity> {
        let sealed = self.store.get(&entry.key)?;
        let line =
            self.keys
                .meta()
                .open_bound(LOG_PURPOSE, entry.key.as_bytes(), &entry.key, &sealed)?;
        parse_entry(&entry.key, &line)
    }

    /// The entries older than `keep_days` before `now`, but the audit
    /// entries ([`AUDIT_OPERATIONS`]) only once older than `audit_days` (or
    /// `keep_days` if longer). Times come from the keys; whether an entry is
    /// an audit entry from reading it, so only the entries between the two
    /// limits are read, and one that cannot be read is kept like an audit
    /// entry.
    pub fn expired_activity(
        &self,
        now: DateTime<Utc>,
        keep_days: Days,
        audit_days: Days,
    ) -> Result<Vec<LogEntryRef>> {
        let operational = cutoff(now, keep_days);
        let audit = cutoff(now, audit_days.max(keep_days));
        let before = |limit: Option<DateTime<Utc>>, e: &LogEntryRef| {
            limit.is_some_and(|c| layout::log_time(&e.key).is_some_and(|t| t < c))
        };
        let (mut expired, undecided): (Vec<LogEntryRef>, Vec<LogEntryRef>) = self
            .list_activity()?
            .into_iter()
            .filter(|e| before(operational, e))
            .partition(|e| before(audit, e));
        let read = parallel::map(&undecided, |entry| self.read_activity(entry));
        for (entry, read) in undecided.into_iter().zip(read) {
            match read {
                Ok(a) if !AUDIT_OPERATIONS.contains(&a.operation.as_str()) => expired.push(entry),
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) if is_object_damage(&e) => {
                    tracing::warn!(entry = %entry.key, error = %e,
                        "unreadable log entry kept until audit_log_days");
                }
                Err(e) => return Err(e),
            }
        }
        expired.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(expired)
    }

    /// Delete an entry (a missing one is not an error).
    pub fn delete_activity(&self, entry: &LogEntryRef) -> Result<()> {
        self.store.delete(&entry.key)
    }

    /// The plaintext of the log entry `name` (tests that damage an entry's
    /// content use it and [`Repository::write_activity_plaintext`]).
    #[doc(hidden)]
    pub fn read_activity_plaintext(&self, name: &str) -> Result<Vec<u8>> {
        let sealed = self.store.get(name)?;
        self.keys
            .meta()
            .open_bound(LOG_PURPOSE, name.as_bytes(), name, &sealed)
    }

    /// Store `plaintext`, sealed as the log entry `name` (any bytes: tests
    /// plant entries that do not parse).
    #[doc(hidden)]
    pub fn write_activity_plaintext(&self, name: &str, plaintext: &[u8]) -> Result<()> {
        let sealed = self
            .keys
            .meta()
            .seal_bound(LOG_PURPOSE, name.as_bytes(), plaintext);
        self.store.put(name, Bytes::from(sealed))
    }
}
