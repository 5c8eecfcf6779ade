//! One function per command: load what it needs, call one job from
//! [`crate::jobs`], print the report, return the exit code. Grouped by what
//! the operator is doing (setting up, snapshotting, restoring, maintaining
//! the repository, reading the log), one file a group, so a new command is a
//! new function and one line in [`super::run`]'s dispatch.

pub(super) mod erase;
pub(super) mod find;
pub(super) mod key;
pub(super) mod log;
pub(super) mod maintenance;
pub(super) mod restore;
pub(super) mod setup;
pub(super) mod snapshot;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::cancel::Cancel;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::jobs::JobContext;
use crate::progress::Progress;
use crate::repo::Repository;

/// What every command starts from: the loaded config and the output mode.
pub(super) struct Invocation {
    pub config_path: PathBuf,
    pub config: Config,
    /// `--json`: machine-readable output instead of text.
    pub json: bool,
    /// `--quiet`: no progress line.
    pub quiet: bool,
}

impl Invocation {
    /// The repository the config names, opened (not locked).
    pub fn open(&self) -> crate::error::Result<Repository> {
        crate::keyfile::open(&self.config)
    }

    /// The context of a one-shot command: the system clock, retention judged
    /// at `--now` when given, not cancelled (but `snapshot` watches SIGTERM),
    /// no metrics (see
    /// [`crate::jobs`]).
    pub fn context<'a>(
        &'a self,
        repo: &'a Repository,
        as_of: Option<DateTime<Utc>>,
    ) -> JobContext<'a> {
        JobContext {
            repo,
            config: &self.config,
            clock: &SystemClock,
            as_of,
            cancel: Cancel::new(),
            metrics: None,
            progress: Progress::hidden(),
        }
    }

    /// The context of a command that shows progress as `what` on a terminal
    /// (unless `--quiet`).
    pub fn context_showing<'a>(
        &'a self,
        repo: &'a Repository,
        as_of: Option<DateTime<Utc>>,
        what: &str,
    ) -> JobContext<'a> {
        JobContext {
            progress: Progress::on_stderr(what, self.quiet),
            ..self.context(repo, as_of)
        }
    }

    /// Print a report as one line of JSON.
    pub fn print_json<T: serde::Serialize>(&self, value: &T) -> crate::error::Result<()> {
        say!(
            "{}",
            serde_json::to_string(value).expect("output serializes")
        );
        Ok(())
    }
}
