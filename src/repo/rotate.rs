//! Rotating the master key to erase a tenant: the only way to destroy a key
//! that a versioned bucket keeps old copies of.
//!
//! A tenant's data key is wrapped under the master key of the epoch
//! (`keys/tenants/<e>/<tag>`, see [`crate::repo::keys`]). Deleting that wrap
//! is not enough: a bucket with versioning keeps the deleted version, and
//! whoever holds M_e (a key file, a passphrase envelope) unwraps it again.
//! So an erasure destroys M_e itself. [`erase_tenant`], under the exclusive
//! lock, in this order:
//!
//! | step | object | a crash after it leaves |
//! |---|---|---|
//! | 0 | leftovers of an uncommitted epoch e+1 deleted | epoch e, as before |
//! | 1 | every wrap of epoch e copied to `keys/tenants/<e+1>/` under M', T's as a tombstone | epoch e (the copies are leftovers) |
//! | 2 | `keys/link/<e+1>`: M' sealed under M_e | epoch e (a leftover link) |
//! | 3 | `keys/epoch/<e+1>` create-only: **the commit point** | epoch e+1; M_e still opens it by the link |
//! | 4 | the caller stores M' in this host's key file | epoch e+1, this host on M' |
//! | 5 | [`drop_old_keys`]: passphrase envelopes (they hold M_e), then every wrap of an older epoch | done |
//!
//! The repository opens with M_e or M' after a crash at any step: before
//! the commit point nothing of epoch e changed; after it, M_e follows the
//! link. A crash after the commit point leaves the old wraps behind:
//! running the erase again finds the tenant erased and finishes step 5
//! ([`Rotated::old_keys_left`]). Other processes follow the link on their
//! next open or lock ([`Repository::follow_key_rotation`]) and rewrite their
//! own key file (`crate::keyfile`); once every host did, M_e exists nowhere,
//! and an old bucket version of `keys/` opens nothing.
//!
//! [`erased_tenants`] reads the tombstones of the current epoch: prune drops
//! these tenants from every snapshot, restore-test and snapshot skip them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::crypto::Secret;
use crate::error::{Error, Result};
use crate::escape::escaped;
use crate::repo::keys::{self, epoch_key, link_key, wraps_prefix, EpochRecord, MasterKey, Wrap};
use crate::repo::store::Store;
use crate::repo::{Exclusive, Repository};

/// Every epoch's wraps are below this.
const TENANTS: &str = "keys/tenants/";

/// A tenant erased in the current epoch: when and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasedTenant {
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The new master key: the caller stores it in the key file, then calls
    /// [`drop_old_keys`].
    pub master: MasterKey,
    /// The epoch rotated from.
    pub from: u64,
    /// Wraps carried over (the tombstone included).
    pub wraps: usize,
    /// When the tenant was erased (now, or the first time when it already was).
    pub erased_at: DateTime<Utc>,
    pub reason: String,
    /// False when the tenant was erased before and no rotation happened.
    pub rotated: bool,
    /// True when wraps of older epochs are still there (a crash in step 5):
    /// the caller finishes with [`drop_old_keys`].
    pub old_keys_left: bool,
}

/// One wrap of an epoch, authenticated.
struct Listed {
    /// `"key"` (the metadata and shared keys) or `"tenant"`.
    namespace: &'static str,
    name: String,
    wrap: Wrap,
}

fn wrap_name(wrap: &Wrap) -> &str {
    match wrap {
        Wrap::Live { name, .. } | Wrap::Erased { name, .. } => name,
    }
}

/// Every wrap of `master`'s epoch, each opened and checked to be filed
/// under its own name's tag (which also tells its namespace).
fn read_wraps(store: &Store, master: &MasterKey) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for (key, _) in store.list(&wraps_prefix(master.epoch))? {
        out.push(read_wrap(store, master, &key)?);
    }
    Ok(out)
}

fn read_wrap(store: &Store, master: &MasterKey, key: &str) -> Result<Listed> {
    let bytes = store.get(key)?;
    let wrap: Wrap = master
        .open_json("wrap", key, &bytes)?
        .ok_or_else(|| Error::corrupt(key, "key wrap does not authenticate"))?;
    let name = wrap_name(&wrap).to_string();
    let namespace = ["key", "tenant"]
        .into_iter()
        .find(|ns| master.wrap_key(ns, &name) == key)
        .ok_or_else(|| Error::corrupt(key, "key wrap is filed under another name"))?;
    Ok(Listed {
        namespace,
        name,
        wrap,
    })
}

/// The tenants erased in the repository's current epoch, by name. A wrap
/// that does not open (left by an `init` that lost a race or crashed, or
/// damaged) is no tombstone: warned about and passed over, so it stops
/// no snapshot or prune (a rotation still refuses it, [`read_wraps`]).
pub fn erased_tenants(repo: &Repository) -> Result<BTreeMap<String, ErasedTenant>> {
    let mut out = BTreeMap::new();
    let master = repo.keys().master();
    for (key, _) in repo.store.list(&wraps_prefix(master.epoch))? {
        let l = match read_wrap(&repo.store, &master, &key) {
            Ok(l) => l,
            Err(e @ Error::Corrupt { .. }) => {
                tracing::warn!("{e}: not read as a tombstone");
                continue;
            }
            Err(e) => return Err(e),
        };
        if let (
            "tenant",
            Wrap::Erased {
                erased_at, reason, ..
            },
        ) = (l.namespace, l.wrap)
        {
            out.insert(
                l.name,
                ErasedTenant {
                    at: erased_at,
                    reason,
                },
            );
        }
    }
    Ok(out)
}

/// Are there wraps of epochs older than `current`?
fn old_wraps(store: &Store, current: u64) -> Result<Vec<String>> {
    Ok(store
        .list(TENANTS)?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k[TENANTS.len()..]
                .split('/')
                .next()
                .and_then(|e| e.parse::<u64>().ok())
                .is_some_and(|e| e < current)
        })
        .collect())
}

impl Repository {
    /// Follow a key rotation another process made since this one opened
    /// the repository; true when the master key changed (its tenant keys
    /// are read again: an erased one is a tombstone now). Taking a lock
    /// does this, so a long-running agent never writes under a key that was
    /// rotated away.
    pub fn follow_key_rotation(&self) -> Result<bool> {
        let newest = keys::newest_epoch(&self.store)?;
        let mut current = self.keys().master();
        if newest <= current.epoch {
            return Ok(false);
        }
        while current.epoch < newest {
            current = keys::follow_link(&self.store, &current)?;
            keys::verify_epoch(&self.store, self.config.id, &current)?;
        }
        self.keys().adopt(current);
        Ok(true)
    }
}

/// Steps 0–3 of the module docs: rotate to a new master key with `tenant`
/// tombstoned (`reason`, at `now`). A tenant erased before is not rotated
/// again: the result says when it was, and whether old keys are left.
pub fn erase_tenant(
    lock: &Exclusive<'_>,
    tenant: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Rotated> {
    let repo = lock.repo();
    let store = &repo.store;
    let old = &repo.keys().master();
    let newest = keys::newest_epoch(store)?;
    if newest != old.epoch {
        return Err(Error::Conflict(format!(
            "the repository moved to key epoch {newest} while this command ran; run it again"
        )));
    }
    let wraps = read_wraps(store, old)?;
    let target = wraps
        .iter()
        .find(|l| l.namespace == "tenant" && l.name == tenant)
        .ok_or_else(|| {
            Error::Refused(format!(
                "no tenant {} in the repository (nothing was changed; `offsite find '**' --host all` shows the tenants of the items)",
                escaped(tenant)
            ))
        })?;
    if let Wrap::Erased {
        erased_at, reason, ..
    } = &target.wrap
    {
        return Ok(Rotated {
            master: old.clone(),
            from: old.epoch,
            wraps: wraps.len(),
            erased_at: *erased_at,
            reason: reason.clone(),
            rotated: false,
            old_keys_left: !old_wraps(store, old.epoch)?.is_empty(),
        });
    }
    let next = old
        .epoch
        .checked_add(1)
        .ok_or_else(|| Error::corrupt(epoch_key(old.epoch), "key epoch cannot be incremented"))?;
    // Step 0: an earlier rotation that died before its commit point.
    for (key, _) in store.list(&wraps_prefix(next))? {
        store.delete(&key)?;
    }
    store.delete(&link_key(next))?;
    let new = MasterKey {
        secret: Secret::random(),
        epoch: next,
    };
    for l in &wraps {
        let wrap = if l.namespace == "tenant" && l.name == tenant {
            Wrap::Erased {
                name: tenant.to_string(),
                erased_at: now,
                reason: reason.to_string(),
            }
        } else {
            l.wrap.clone()
        };
        store.put_new(
            &new.wrap_key(l.namespace, &l.name),
            new.seal_json("wrap", &wrap),
        )?;
    }
    crate::failpoint::hit("erase-after-wraps");
    store.put_new(
        &link_key(next),
        old.seal_json("link", &hex::encode(new.secret.expose())),
    )?;
    crate::failpoint::hit("erase-after-link");
    let record = EpochRecord {
        repository: repo.config.id,
        epoch: next,
        created: now,
        reason: "erase".into(),
    };
    store.put_new(&epoch_key(next), new.seal_json("epoch", &record))?;
    crate::failpoint::hit("erase-after-epoch");
    Ok(Rotated {
        master: new,
        from: old.epoch,
        wraps: wraps.len(),
        erased_at: now,
        reason: reason.to_string(),
        rotated: true,
        old_keys_left: true,
    })
}

/// Step 5: delete the passphrase envelopes of older keys (each holds an
/// old master key; one sealed for `current` since is kept) and every wrap
/// of an epoch before `current`. Returns how many envelopes went. Call
/// only once the key file holds the master key of `current`.
pub fn drop_old_keys(lock: &Exclusive<'_>, current: u64) -> Result<usize> {
    let store = &lock.repo().store;
    let envelopes = crate::repo::envelopes::older_than(store, current)?;
    for key in &envelopes {
        store.delete(key)?;
    }
    crate::failpoint::hit("erase-after-envelopes");
    for key in old_wraps(store, current)? {
        store.delete(&key)?;
    }
    // On a versioned (Object Lock) bucket a delete leaves the old version:
    // remove those of `keys/` too (never locked), or nothing is erased.
    store.sweep_versions("keys")?;
    Ok(envelopes.len())
}
