//! Repository locks: snapshots share, prune is alone.
//!
//! Prune deletes packs that no snapshot references. A snapshot that is still
//! running references blobs before its manifest exists, so prune must never
//! run beside one. Each operation that writes puts a lock object
//! `locks/<id>` (JSON: host, pid, kind, time) and then lists the others:
//! a shared lock (snapshot, check) conflicts only with an exclusive one
//! (prune, rebuild-index); an exclusive lock conflicts with every other. On a
//! conflict the newcomer removes its own lock and fails with the holder's
//! name, so two racing writers both back off rather than both proceed.
//!
//! A lock is refreshed every [`REFRESH`] while held. It is stale, and
//! ignored (then removed), when its time is older than [`STALE_AFTER`], or
//! when it belongs to this host and its process no longer exists: a crashed
//! or killed operation never blocks the repository for long.

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::Store;

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
    pub kind: LockKind,
    pub operation: String,
    pub time: DateTime<Utc>,
}

impl LockInfo {
    fn is_stale(&self, own_host: &str, now: DateTime<Utc>) -> bool {
        now - self.time > STALE_AFTER
            || (self.host == own_host
                && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists())
    }
}

/// A held lock; released on drop.
pub struct Lock {
    store: Store,
    key: String,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl Lock {
    /// Take a lock of `kind` for `operation` on behalf of `host`.
    pub fn acquire(store: &Store, host: &str, kind: LockKind, operation: &str) -> Result<Self> {
        let key = format!("locks/{}", ObjectId::random());
        let info = LockInfo {
            host: host.to_string(),
            pid: std::process::id(),
            kind,
            operation: operation.to_string(),
            time: Utc::now(),
        };
        store.put_new(
            &key,
            Bytes::from(serde_json::to_vec(&info).expect("lock serializes")),
        )?;
        let release_and = |e: Error| {
            let _ = store.delete(&key);
            e
        };
        let now = Utc::now();
        for (other, _) in store.list("locks").map_err(release_and)? {
            if other == key {
                continue;
            }
            let Ok(bytes) = store.get(&other) else {
                continue;
            }; // released meanwhile
            let Ok(theirs) = serde_json::from_slice::<LockInfo>(&bytes) else {
                tracing::warn!(lock = %other, "unreadable lock object ignored");
                continue;
            };
            if theirs.is_stale(host, now) {
                tracing::warn!(lock = %other, holder = %theirs.host, pid = theirs.pid, "removing stale lock");
                let _ = store.delete(&other);
                continue;
            }
            if kind == LockKind::Exclusive || theirs.kind == LockKind::Exclusive {
                let _ = store.delete(&key);
                return Err(Error::Conflict(format!(
                    "repository is locked by {} on {} (pid {}, {} lock since {}); try again when it is done",
                    theirs.operation,
                    theirs.host,
                    theirs.pid,
                    match theirs.kind {
                        LockKind::Shared => "shared",
                        LockKind::Exclusive => "exclusive",
                    },
                    theirs.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )));
            }
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let refresher = {
            let (store, key) = (store.clone(), key.clone());
            std::thread::Builder::new()
                .name("offsite-lock".into())
                .spawn(move || {
                    // Refresh every REFRESH until the lock is dropped (the sender goes away).
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH) {
                        let fresh = LockInfo {
                            time: Utc::now(),
                            ..info.clone()
                        };
                        let bytes =
                            Bytes::from(serde_json::to_vec(&fresh).expect("lock serializes"));
                        if let Err(e) = store.put(&key, bytes) {
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

/// Parse the bytes of the lock object `key` (pure: the fuzz target's entry).
pub fn parse_lock(key: &str, bytes: &[u8]) -> Result<LockInfo> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(key, format!("lock does not parse: {e}")))
}
