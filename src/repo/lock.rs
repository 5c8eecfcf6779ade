//! Repository locks: snapshots share, prune is alone.
//!
//! Prune deletes packs that no snapshot references. A snapshot that is still
//! running references blobs before its manifest exists, so prune must never
//! run beside one. Each operation that writes puts a lock object under
//! `locks/` (JSON: host, pid, boot id, PID namespace, kind, operation,
//! time; sealed under the metadata key for [`LOCK_PURPOSE`], bound to its
//! key) and then lists the others: a shared lock (snapshot, check) conflicts
//! only with an exclusive one (prune, rebuild-index); an exclusive lock
//! conflicts with every other. On a conflict the newcomer removes its own lock
//! and fails with the holder's name, so two racing writers both back off
//! rather than both proceed.
//!
//! # Staleness
//!
//! Operations hold a lock through the guards of [`crate::repo::locked`]
//! ([`Shared`](crate::repo::Shared), [`Exclusive`](crate::repo::Exclusive)).
//! The time written inside a lock is the caller's clock at acquisition,
//! advanced by the monotonic time since at each refresh.
//!
//! A lock is refreshed (rewritten) every [`REFRESH`] while held. It is stale,
//! and removed by the next operation that meets it, when either
//!
//! * it was **not refreshed for [`STALE_AFTER`]**: the refresh time is the
//!   object's last-modified time as the store lists it (the store's clock,
//!   one clock for every host), not the time written inside the lock by the
//!   holder's clock. A holder whose clock is skewed (a lock dated a year
//!   ahead) therefore blocks no longer than a crashed one; or
//! * its process is gone, and the lock was taken on the **same host, the same
//!   boot and the same PID namespace** as ours (host name, `boot_id`, and the
//!   `/proc/self/ns/pid` link). A PID means nothing elsewhere: the same
//!   `host` in a container, or one config copied to several machines, must
//!   not make a running snapshot's lock look dead. Locks from elsewhere (and
//!   locks of older versions, which carry no boot id) are judged by age only.
//!
//! A lock refreshed more than [`STALE_AFTER`] ahead of our clock means our
//! clock (or the store's) is wrong: it is not trusted as stale; the conflict
//! message says so. `offsite unlock` removes stale locks; `unlock --force`
//! removes every lock (for a holder known to be gone), and both are logged.
//!
//! A lock that does not open or parse (damaged, or sealed under another
//! repository's key) cannot say who holds it or what kind it is: it is taken
//! for a live exclusive lock of an unknown holder, judged by its age alone,
//! so it blocks every writer (with a message naming it) until it turns stale
//! or `offsite unlock --force` removes it. Ignoring it could let a prune run
//! beside a snapshot.

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::keys::DataKey;
use crate::repo::layout::{self, ObjectKind};
use crate::repo::store::{Listed, Store};

/// What lock objects are sealed for.
pub const LOCK_PURPOSE: &str = "offsite2/lock";

/// How often a held lock is rewritten with a fresh time.
pub const REFRESH: Duration = Duration::from_secs(300);
/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(30);

/// Shared or exclusive.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// The content of a lock object.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id` of the holder (absent in old locks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The holder's PID namespace, as `readlink /proc/self/ns/pid` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    pub kind: LockKind,
    pub operation: String,
    /// The holder's clock at the last refresh (informative; see the module docs).
    pub time: DateTime<Utc>,
}

/// Where a process runs, as far as its PID means anything: host name, boot
/// and PID namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcessSpace {
    boot_id: Option<String>,
    pid_namespace: Option<String>,
}

fn own_space() -> &'static ProcessSpace {
    static SPACE: OnceLock<ProcessSpace> = OnceLock::new();
    SPACE.get_or_init(|| ProcessSpace {
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        pid_namespace: std::fs::read_link("/proc/self/ns/pid")
            .ok()
            .and_then(|p| p.to_str().map(String::from)),
    })
}

/// Why a lock is (or is not) stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    /// Refreshed recently enough: it holds.
    Live,
    /// Refreshed more than [`STALE_AFTER`] ahead of our clock: it holds, but
    /// a clock is wrong.
    Future,
    /// Not refreshed for longer than [`STALE_AFTER`].
    Expired,
    /// Its process is gone (same host, boot and PID namespace).
    ProcessGone,
}

impl Staleness {
    pub fn is_stale(&self) -> bool {
        matches!(self, Staleness::Expired | Staleness::ProcessGone)
    }
}

impl LockInfo {
    /// True when the holder's PID is evidence here: same host, boot and PID
    /// namespace, all known.
    fn pid_is_meaningful(&self, own_host: &str, own: &ProcessSpace) -> bool {
        self.host == own_host
            && self.boot_id.is_some()
            && self.boot_id == own.boot_id
            && self.pid_namespace.is_some()
            && self.pid_namespace == own.pid_namespace
    }

    /// Judge the lock as refreshed at `refreshed` (the store's time), at `now`.
    fn staleness(&self, refreshed: DateTime<Utc>, own_host: &str, now: DateTime<Utc>) -> Staleness {
        judge(Some(self), refreshed, own_host, own_space(), now)
    }
}

fn judge(
    info: Option<&LockInfo>,
    refreshed: DateTime<Utc>,
    own_host: &str,
    own: &ProcessSpace,
    now: DateTime<Utc>,
) -> Staleness {
    if let Some(info) = info {
        if info.pid_is_meaningful(own_host, own)
            && !std::path::Path::new(&format!("/proc/{}", info.pid)).exists()
        {
            return Staleness::ProcessGone;
        }
    }
    let age = now.signed_duration_since(refreshed);
    if age > STALE_AFTER {
        Staleness::Expired
    } else if -age > STALE_AFTER {
        Staleness::Future
    } else {
        Staleness::Live
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn kind_name(kind: LockKind) -> &'static str {
    match kind {
        LockKind::Shared => "shared",
        LockKind::Exclusive => "exclusive",
    }
}

/// The conflict a live lock causes: who holds it and what to do.
fn conflict(key: &str, theirs: &LockInfo, refreshed: DateTime<Utc>, state: &Staleness) -> Error {
    let advice = match state {
        Staleness::Future => format!(
            "it was refreshed at {} by the store's clock, more than {} min ahead of this host's \
             clock: fix the clock (NTP), or if that process is gone run `offsite unlock --force`",
            rfc3339(&refreshed),
            STALE_AFTER.num_minutes()
        ),
        _ => format!(
            "try again when it is done; if that process is gone, the lock turns stale at {} \
             (or run `offsite unlock --force`)",
            refreshed
                .checked_add_signed(STALE_AFTER)
                .map_or_else(|| "never".to_string(), |t| rfc3339(&t))
        ),
    };
    Error::Conflict(format!(
        "repository is locked by {} on {} (pid {}, {} lock {key}, last refreshed {}); {advice}",
        theirs.operation,
        theirs.host,
        theirs.pid,
        kind_name(theirs.kind),
        rfc3339(&refreshed),
    ))
}

/// The conflict an unreadable lock causes (see the module docs).
fn unreadable_conflict(key: &str, refreshed: DateTime<Utc>, why: &Error) -> Error {
    Error::Conflict(format!(
        "repository is locked by an unreadable lock {key} ({why}), last refreshed {}; \
         it turns stale at {} (or run `offsite unlock --force` if no other offsite is running)",
        rfc3339(&refreshed),
        refreshed
            .checked_add_signed(STALE_AFTER)
            .map_or_else(|| "never".to_string(), |t| rfc3339(&t))
    ))
}

/// A held lock; released on drop.
pub struct Lock {
    store: Store,
    key: String,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

/// The stored bytes of the lock `key`: its JSON, sealed under `meta`.
fn lock_bytes(meta: &DataKey, key: &str, info: &LockInfo) -> Bytes {
    let json = serde_json::to_vec(info).expect("lock serializes");
    Bytes::from(meta.seal_bound(LOCK_PURPOSE, key.as_bytes(), &json))
}

/// Open and parse the stored bytes of the lock `key`.
pub(crate) fn open_lock(meta: &DataKey, key: &str, stored: &[u8]) -> Result<LockInfo> {
    let json = meta.open_bound(LOCK_PURPOSE, key.as_bytes(), key, stored)?;
    parse_lock(key, &json)
}

impl Lock {
    /// Take a lock of `kind` for `operation` on behalf of `host`, at `now`
    /// (the caller's clock; refreshes advance it by the monotonic time since).
    pub(crate) fn acquire(
        store: &Store,
        meta: &Arc<DataKey>,
        host: &str,
        kind: LockKind,
        operation: &str,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let key = layout::lock_key(&ObjectId::random());
        let space = own_space();
        let info = LockInfo {
            host: host.to_string(),
            pid: std::process::id(),
            boot_id: space.boot_id.clone(),
            pid_namespace: space.pid_namespace.clone(),
            kind,
            operation: operation.to_string(),
            time: now,
        };
        let taken = Instant::now();
        store.put_new(&key, lock_bytes(meta, &key, &info))?;
        if let Err(e) = check_others(store, meta, &key, host, kind, now) {
            let _ = store.delete(&key);
            return Err(e);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let refresher = {
            let (store, key, meta) = (store.clone(), key.clone(), meta.clone());
            std::thread::Builder::new()
                .name("offsite-lock".into())
                .spawn(move || {
                    // Refresh every REFRESH until the lock is dropped (the sender goes away).
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH) {
                        let held = chrono::Duration::from_std(taken.elapsed())
                            .unwrap_or(chrono::Duration::MAX);
                        let fresh = LockInfo {
                            time: info.time.checked_add_signed(held).unwrap_or(info.time),
                            ..info.clone()
                        };
                        if let Err(e) = store.put(&key, lock_bytes(&meta, &key, &fresh)) {
                            tracing::warn!(error = %e, "could not refresh the repository lock");
                        }
                    }
                })
                .ok()
        };
        Ok(Lock {
            store: store.clone(),
            key,
            stop: Some(stop),
            refresher,
        })
    }
}

/// After writing `own`, look at every other lock: remove stale ones, fail on
/// a live one that conflicts with `kind` (or that cannot be read), judged at
/// `now`.
fn check_others(
    store: &Store,
    meta: &DataKey,
    own: &str,
    host: &str,
    kind: LockKind,
    now: DateTime<Utc>,
) -> Result<()> {
    for listed in store.list_with_times(ObjectKind::Lock.prefix())? {
        if listed.key == own {
            continue;
        }
        let Ok(bytes) = store.get(&listed.key) else {
            continue; // released meanwhile
        };
        let theirs = match open_lock(meta, &listed.key, &bytes) {
            Ok(theirs) => theirs,
            Err(e) => {
                let state = judge(None, listed.modified, host, own_space(), now);
                if state.is_stale() {
                    tracing::warn!(lock = %listed.key, error = %e, "removing stale unreadable lock");
                    let _ = store.delete(&listed.key);
                    continue;
                }
                return Err(unreadable_conflict(&listed.key, listed.modified, &e));
            }
        };
        if theirs.time.signed_duration_since(now) > STALE_AFTER {
            tracing::info!(lock = %listed.key, holder = %theirs.host, time = %rfc3339(&theirs.time),
                "lock written by a clock far ahead of ours; judged by the store's time instead");
        }
        let state = theirs.staleness(listed.modified, host, now);
        if state.is_stale() {
            tracing::warn!(lock = %listed.key, holder = %theirs.host, pid = theirs.pid,
                operation = %theirs.operation, reason = ?state, "removing stale lock");
            let _ = store.delete(&listed.key);
            continue;
        }
        if kind == LockKind::Exclusive || theirs.kind == LockKind::Exclusive {
            return Err(conflict(&listed.key, &theirs, listed.modified, &state));
        }
    }
    Ok(())
}

/// One lock as `offsite unlock` saw it.
#[derive(Serialize, Debug, Clone)]
pub struct LockSummary {
    pub key: String,
    /// `None` when the object does not parse as a lock.
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub operation: Option<String>,
    pub kind: Option<LockKind>,
    /// The store's last-modified time of the object.
    pub refreshed: DateTime<Utc>,
    /// `live`, `future`, `expired` or `process gone`.
    pub state: String,
}

/// What `offsite unlock` did.
#[derive(Serialize, Debug, Default)]
pub struct UnlockReport {
    pub force: bool,
    pub removed: Vec<LockSummary>,
    pub kept: Vec<LockSummary>,
}

/// Remove stale locks (with `force`, every lock). An object that does not
/// open or parse is judged by its age alone.
pub(crate) fn unlock(
    store: &Store,
    meta: &DataKey,
    host: &str,
    force: bool,
    now: DateTime<Utc>,
) -> Result<UnlockReport> {
    let mut report = UnlockReport {
        force,
        ..UnlockReport::default()
    };
    for Listed { key, modified, .. } in store.list_with_times(ObjectKind::Lock.prefix())? {
        let info = match store.get(&key) {
            Ok(bytes) => match open_lock(meta, &key, &bytes) {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!(lock = %key, error = %e, "unreadable lock, judged by its age");
                    None
                }
            },
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let state = judge(info.as_ref(), modified, host, own_space(), now);
        let summary = LockSummary {
            key: key.clone(),
            host: info.as_ref().map(|i| i.host.clone()),
            pid: info.as_ref().map(|i| i.pid),
            operation: info.as_ref().map(|i| i.operation.clone()),
            kind: info.as_ref().map(|i| i.kind),
            refreshed: modified,
            state: match state {
                Staleness::Live => "live",
                Staleness::Future => "future",
                Staleness::Expired => "expired",
                Staleness::ProcessGone => "process gone",
            }
            .to_string(),
        };
        if state.is_stale() || force {
            tracing::warn!(lock = %key, holder = ?summary.host, state = %summary.state, force, "unlock: removing lock");
            store.delete(&key)?;
            report.removed.push(summary);
        } else {
            report.kept.push(summary);
        }
    }
    Ok(report)
}

impl Drop for Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.refresher.take() {
            let _ = handle.join();
        }
        if let Err(e) = self.store.delete(&self.key) {
            tracing::warn!(error = %e, lock = %self.key, "could not remove the repository lock");
        }
    }
}

/// Parse the opened bytes (JSON) of the lock object `key` (pure: the fuzz
/// target's entry).
pub fn parse_lock(key: &str, bytes: &[u8]) -> Result<LockInfo> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt_by(key, "lock does not parse", e))
}

#[cfg(test)]
mod tests;
