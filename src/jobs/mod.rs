//! Jobs: an operation with everything around it, written once for the CLI
//! and the agent.
//!
//! A job takes the repository lock the operation needs, runs it, writes its
//! activity-log entry and records its metrics. `offsite snapshot`, `prune`,
//! `restore-test`, `check`, … ([`crate::cli`]) and the agent's scheduled jobs
//! ([`crate::agent`]) both call the functions here, so a prune logs the same
//! entry and a snapshot records the same metrics however it ran. The
//! operations ([`crate::ops`]) stay free of all three concerns; the callers
//! only decide what is printed (CLI) or when to run (agent).
//!
//! # The context ([`JobContext`])
//!
//! * `clock`: the wall clock, when things happen — the time of an activity
//!   entry, of a snapshot taken without `--time`, of a restore test, of a
//!   prune in metrics; the age of locks (`unlock`) and the grace period of
//!   young packs (prune). [`crate::clock::SystemClock`] on the command line
//!   and in the agent, a manual clock in tests.
//! * `as_of`: the time retention and expiry are judged at (`--now`): prune's
//!   snapshot policy, voice expiry and activity-log expiry, restore's
//!   retention check (restore judges at the later of `--now` and the clock:
//!   an earlier `--now` would be a silent `--force`). `None` means the
//!   clock's now. It never moves the wall
//!   clock: a prune `--now` a year ahead still keeps packs young by the real
//!   clock.
//! * `cancel`: set by SIGTERM in the agent and in the command line's
//!   `snapshot` (which checkpoints what it uploaded, see
//!   [`crate::ops::snapshot`]), never in other commands. A
//!   cancelled job writes no activity entry: nothing was done, and it runs
//!   again.
//! * `metrics`: the agent's registry. A one-shot command has none: the agent
//!   owns `/metrics` and the node_exporter textfile, and a command writing
//!   the textfile would replace the agent's with a registry that knows only
//!   that one run. The agent reads what commands did back from the
//!   repository (last snapshots, prunes and restore tests) when it starts,
//!   and its snapshot counts and stored bytes after each of its own jobs.
//! * `progress`: the line the operator sees on a terminal
//!   ([`crate::progress`]), handed to the operation; hidden in the agent.
//!
//! # Locks
//!
//! Taken here only, by `JobContext::shared` and `JobContext::exclusive`
//! (guards the operations require, [`crate::repo::locked`]): `snapshot` and
//! `check` share the repository; `prune` (not `--dry-run`), `repair`,
//! `rebuild-index` and `erase` (not `--dry-run`) hold it alone. `restore`, `restore-test` and `unlock`
//! take none. The lock is released when the job returns, before its caller
//! prints anything, except for `snapshot`, whose caller sees each source's
//! report while the lock is held (see [`snapshot`]).

mod erase;
mod operator;
mod scheduled;

pub use erase::{erase_items, erase_tenant};
pub use operator::{check, rebuild_index, repair, restore, unlock, RestoreOutcome, RestoreRequest};
pub use scheduled::{prune, prune_summary, restore_test, snapshot};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::activity::{self, Activity, Operation};
use crate::cancel::Cancel;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::repo::{Exclusive, Repository, Shared};

/// What every job runs with (see the module docs).
pub struct JobContext<'a> {
    pub repo: &'a Repository,
    pub config: &'a Config,
    /// The wall clock.
    pub clock: &'a dyn Clock,
    /// Judge retention and expiry as of this time (`--now`); `None`: the clock's now.
    pub as_of: Option<DateTime<Utc>>,
    pub cancel: Cancel,
    /// The agent's metrics; `None` for a one-shot command.
    pub metrics: Option<&'a Metrics>,
    /// The operator's progress line; hidden in the agent and off a terminal.
    pub progress: Progress,
}

impl<'a> JobContext<'a> {
    /// The time retention and expiry are judged at.
    pub fn retention_time(&self) -> DateTime<Utc> {
        self.as_of.unwrap_or_else(|| self.clock.now())
    }

    /// The shared repository lock for `operation` (one of the two places a
    /// job takes a lock).
    /// Either lock follows a key rotation made meanwhile, and this host's
    /// key file follows it too ([`crate::keyfile::adopt_current`]).
    fn shared(&self, operation: Operation) -> Result<Shared<'a>> {
        let lock = self
            .repo
            .shared(&self.config.host, operation.as_str(), self.clock)?;
        crate::keyfile::adopt_current(self.config, self.repo);
        Ok(lock)
    }

    /// The exclusive repository lock for `operation`.
    fn exclusive(&self, operation: Operation) -> Result<Exclusive<'a>> {
        let lock = self
            .repo
            .exclusive(&self.config.host, operation.as_str(), self.clock)?;
        crate::keyfile::adopt_current(self.config, self.repo);
        Ok(lock)
    }

    /// Log `result` of `operation` now: `ok` with `details` of the report
    /// (e.g. [`whole`]), `failed` with the error. A cancelled job is not logged.
    fn record<T>(
        &self,
        operation: Operation,
        result: &Result<T>,
        details: impl FnOnce(&T) -> serde_json::Value,
    ) {
        if result.as_ref().is_err_and(Error::is_cancelled) {
            return;
        }
        let result = result.as_ref().map(details);
        self.log(Activity::of_result(
            self.clock.now(),
            &self.config.host,
            operation,
            &result,
        ));
    }

    /// Append `entry` to the activity log (a failure is a warning).
    fn log(&self, entry: Activity) {
        activity::log(self.repo, &entry);
    }
}

/// A whole report as activity details.
fn whole<T: Serialize>(report: &T) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or_default()
}
