//! The repository lock in the types: operations that need it take a guard.
//!
//! [`Repository::shared`] and [`Repository::exclusive`] take the lock (see
//! [`crate::repo::lock`] for the rules) and return a guard that holds it
//! until it is dropped (the lock object is refreshed meanwhile and removed on
//! drop). An operation that must not run beside a prune takes `&Shared`
//! (snapshot, check); one that must run alone takes `&Exclusive` (prune,
//! rebuild-index, repair). Taking either first follows a key rotation made
//! since the repository was opened ([`Repository::follow_key_rotation`]).
//! A guard dereferences to the [`Repository`], and an
//! [`Exclusive`] dereferences to a [`Shared`], so it serves wherever a shared
//! lock is required. A new caller cannot forget the lock:
//!
//! ```compile_fail,E0308
//! # use offsite::repo::Repository;
//! # use offsite::cancel::Cancel;
//! # use chrono::{DateTime, Utc};
//! # fn f(repo: &Repository, config: &offsite::config::Config, now: DateTime<Utc>) {
//! // A bare repository is not a lock: this does not compile.
//! offsite::ops::snapshot::snapshot_source(
//!     repo, "host", &config.sources[0], &config.contracts(), now, &Cancel::new(),
//! );
//! # }
//! ```
//!
//! ```compile_fail,E0308
//! # use offsite::repo::Repository;
//! # use offsite::cancel::Cancel;
//! # use chrono::{DateTime, Utc};
//! # fn f(repo: &Repository, config: &offsite::config::Config, now: DateTime<Utc>) {
//! // Nor can prune run on a bare repository.
//! offsite::ops::prune::prune(repo, config, now, now, &Cancel::new());
//! # }
//! ```
//!
//! With the guards it does (and an exclusive lock serves as a shared one):
//!
//! ```no_run
//! # use offsite::repo::Repository;
//! # use offsite::cancel::Cancel;
//! # use offsite::clock::SystemClock;
//! # use chrono::{DateTime, Utc};
//! # fn f(
//! #     repo: &Repository,
//! #     config: &offsite::config::Config,
//! #     now: DateTime<Utc>,
//! # ) -> offsite::Result<()> {
//! let shared = repo.shared("host", "snapshot", &SystemClock)?;
//! offsite::ops::snapshot::snapshot_source(
//!     &shared, "host", &config.sources[0], &config.contracts(), now, &Cancel::new(),
//! )?;
//! drop(shared);
//! let exclusive = repo.exclusive("host", "prune", &SystemClock)?;
//! offsite::ops::prune::prune(&exclusive, config, now, now, &Cancel::new())?;
//! offsite::ops::check::check(&exclusive, false)?;
//! # Ok(())
//! # }
//! ```

use std::ops::Deref;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::Result;
use crate::repo::lock::{unlock, Lock, LockKind, UnlockReport};
use crate::repo::Repository;

/// The shared repository lock, held: snapshots and checks run beside each
/// other, never beside a prune.
pub struct Shared<'r> {
    repo: &'r Repository,
    _lock: Lock,
}

/// The exclusive repository lock, held: nothing else runs meanwhile.
pub struct Exclusive<'r>(Shared<'r>);

impl Repository {
    /// Take the shared lock for `operation` on behalf of `host`; a live
    /// exclusive lock is a conflict naming its holder.
    pub fn shared(&self, host: &str, operation: &str, clock: &dyn Clock) -> Result<Shared<'_>> {
        let lock = Lock::acquire(
            &self.store,
            self.keys.meta(),
            host,
            LockKind::Shared,
            operation,
            clock.now(),
        )?;
        self.follow_key_rotation()?;
        Ok(Shared {
            repo: self,
            _lock: lock,
        })
    }

    /// Take the exclusive lock for `operation` on behalf of `host`; any
    /// other live lock is a conflict naming its holder.
    pub fn exclusive(
        &self,
        host: &str,
        operation: &str,
        clock: &dyn Clock,
    ) -> Result<Exclusive<'_>> {
        let lock = Lock::acquire(
            &self.store,
            self.keys.meta(),
            host,
            LockKind::Exclusive,
            operation,
            clock.now(),
        )?;
        self.follow_key_rotation()?;
        Ok(Exclusive(Shared {
            repo: self,
            _lock: lock,
        }))
    }

    /// Remove stale locks as judged at `now` (with `force`, every lock):
    /// `offsite unlock`.
    pub fn unlock(&self, host: &str, force: bool, now: DateTime<Utc>) -> Result<UnlockReport> {
        unlock(&self.store, self.keys.meta(), host, force, now)
    }

    /// Store `plaintext` as the lock `name`, sealed as a lock is (tests
    /// plant locks of other holders, readable or not, with it).
    #[doc(hidden)]
    pub fn write_lock_plaintext(&self, name: &str, plaintext: &[u8]) -> Result<()> {
        let sealed = self.keys.meta().seal_bound(
            crate::repo::lock::LOCK_PURPOSE,
            name.as_bytes(),
            plaintext,
        );
        self.store.put(name, bytes::Bytes::from(sealed))
    }
}

impl<'r> Shared<'r> {
    /// The locked repository.
    pub fn repo(&self) -> &'r Repository {
        self.repo
    }
}

impl<'r> Exclusive<'r> {
    /// The locked repository.
    pub fn repo(&self) -> &'r Repository {
        self.0.repo
    }
}

impl Deref for Shared<'_> {
    type Target = Repository;

    fn deref(&self) -> &Repository {
        self.repo
    }
}

impl<'r> Deref for Exclusive<'r> {
    type Target = Shared<'r>;

    fn deref(&self) -> &Shared<'r> {
        &self.0
    }
}
