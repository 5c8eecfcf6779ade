//! Storage of the activity log: one small object per entry.
//!
//! Object stores cannot append, and several hosts may write at once, so each
//! entry ([`Activity`]) is its own object under a daily prefix (keys in
//! [`crate::repo::layout`]): reading a day is one listing, and prune deletes
//! the entries older than `activity_log_days` (restore and erase entries:
//! `audit_log_days`), judged by their keys without reading them. An entry that does not parse is skipped and reported
//! ([`Repository::read_activity_tolerant`]), never deleted early: it ages out
//! like any other.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};

use crate::activity::{cutoff, parse_entry, Activity, AUDIT_OPERATIONS};
use crate::days::Days;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::repo::layout::{self, ObjectKind};
use crate::repo::Repository;

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

/// Whether the log key names an audit entry (restore, erase).
fn is_audit_key(key: &str) -> bool {
    AUDIT_OPERATIONS
        .iter()
        .any(|op| layout::log_key_is_of(key, op))
}

impl Repository {
    /// Append an entry (create-only, under a fresh random name).
    pub fn append_activity(&self, entry: &Activity) -> Result<()> {
        let key = layout::log_key(
            &entry.time,
            &entry.host,
            entry.operation.as_str(),
            &ObjectId::random().to_hex()[..8],
        );
        let mut line = serde_json::to_vec(entry).expect("activity serializes");
        line.push(b'\n');
        self.store.put_new(&key, Bytes::from(line))
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
    /// `operation` when given (judged by the key, so others are not read). An
    /// entry that cannot be read (does not parse, or is not the operation its
    /// key says) is skipped and returned as a problem: one bad entry must not
    /// hide the log or stop the agent from starting.
    pub fn read_activity_tolerant(
        &self,
        since: Option<NaiveDate>,
        operation: Option<&str>,
    ) -> Result<(Vec<Activity>, Vec<Problem>)> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let selected = self.list_activity()?.into_iter().filter(|e| {
            since.is_none_or(|s| layout::log_day(&e.key).is_none_or(|d| d >= s))
                && operation.is_none_or(|op| layout::log_key_is_of(&e.key, op))
        });
        for entry in selected {
            match self.read_activity(&entry, operation) {
                Ok(read) => out.extend(read),
                Err(Error::NotFound { .. }) => {} // pruned since the listing
                Err(e) if is_object_damage(&e) => problems.push(Problem::new(&entry.key, &e)),
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|a| a.time);
        Ok((out, problems))
    }

    /// One entry; `None` when it is of another operation than asked for.
    fn read_activity(
        &self,
        entry: &LogEntryRef,
        operation: Option<&str>,
    ) -> Result<Option<Activity>> {
        let bytes = self.store.get(&entry.key)?;
        let read = parse_entry(&entry.key, &bytes)?;
        Ok(operation
            .is_none_or(|op| read.operation.as_str() == op)
            .then_some(read))
    }

    /// The entries older than `keep_days` before `now`, and the audit
    /// entries ([`AUDIT_OPERATIONS`]) older than `audit_days` (or `keep_days` if
    /// longer); judged by their keys, without reading them.
    pub fn expired_activity(
        &self,
        now: DateTime<Utc>,
        keep_days: Days,
        audit_days: Days,
    ) -> Result<Vec<LogEntryRef>> {
        let operational = cutoff(now, keep_days);
        let audit = cutoff(now, audit_days.max(keep_days));
        Ok(self
            .list_activity()?
            .into_iter()
            .filter(|e| {
                let audited = is_audit_key(&e.key);
                let limit = if audited { audit } else { operational };
                limit.is_some_and(|c| layout::log_time(&e.key).is_some_and(|t| t < c))
            })
            .collect())
    }

    /// Delete an entry (a missing one is not an error).
    pub fn delete_activity(&self, entry: &LogEntryRef) -> Result<()> {
        self.store.delete(&entry.key)
    }
}
