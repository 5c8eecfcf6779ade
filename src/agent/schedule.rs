//! When each job runs: cron schedules in the configured time zone, and the
//! persisted state that makes restarts neither skip nor repeat a run.
//!
//! A job is due at the first time of its schedule after the last time it ran
//! for. When the agent was down across several scheduled times, the job runs
//! once at start (the missed runs collapse into one). A job that has never
//! run starts counting from the agent's first start (saved at once, with the
//! job's `since`, the alert rules' day-one grace), so installing the agent
//! does not trigger a backlog. The state is written atomically (temp file,
//! rename) after every job; only a finished (not a cancelled) job counts.
//!
//! A failed run is retried within its period: [`RETRY_FIRST`] (1 min) after
//! the failure, then each wait twice the one before up to [`RETRY_MAX`]
//! (1 min, 2, 4, 8, 16, 32, 60, 60 … min), as long as the retry comes before
//! the job's next scheduled time; otherwise the next scheduled run is the
//! retry. A snapshot that lost a lock race to another host's prune runs again
//! minutes later, not the next day. The failing streak (`consecutive_failures`)
//! and the pending retry (`retry_at`) are in the state file, so a restart
//! neither forgets the retry nor repeats a success; the streak sets the wait,
//! so a job that keeps failing is retried hourly, and a success resets it.
//! A `retry_at` read back is never later than the next scheduled time (a
//! damaged state file cannot postpone a job past its schedule).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::operation::{Operation, Outcome};

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    Snapshot(String),
    Prune,
    RestoreTest,
}

/// A scheduled job.
#[derive(Debug, Clone)]
pub struct Job {
    /// `snapshot:<source>`, `prune` or `restore-test`.
    pub name: String,
    pub kind: JobKind,
    pub schedule: cron::Schedule,
}

impl Job {
    /// What the job does: the `operation` label of its metrics.
    pub fn operation(&self) -> Operation {
        match self.kind {
            JobKind::Snapshot(_) => Operation::Snapshot,
            JobKind::Prune => Operation::Prune,
            JobKind::RestoreTest => Operation::RestoreTest,
        }
    }
}

/// The jobs a config asks for: a snapshot per source, prune, restore-test.
pub fn jobs_from_config(config: &Config) -> Vec<Job> {
    let mut jobs: Vec<Job> = config
        .sources
        .iter()
        .map(|s| Job {
            name: format!("{}:{}", Operation::Snapshot, s.name),
            kind: JobKind::Snapshot(s.name.clone()),
            schedule: s.schedule.clone(),
        })
        .collect();
    jobs.push(Job {
        name: Operation::Prune.to_string(),
        kind: JobKind::Prune,
        schedule: config.prune_schedule.clone(),
    });
    jobs.push(Job {
        name: Operation::RestoreTest.to_string(),
        kind: JobKind::RestoreTest,
        schedule: config.restore_test_schedule.clone(),
    });
    jobs
}

/// The wait before the first retry of a failed job.
pub const RETRY_FIRST: chrono::Duration = chrono::Duration::minutes(1);
/// The longest wait between two retries.
pub const RETRY_MAX: chrono::Duration = chrono::Duration::hours(1);

/// The wait after the `failures`-th failure in a row: [`RETRY_FIRST`],
/// doubling with each further failure, at most [`RETRY_MAX`].
pub fn retry_delay(failures: u32) -> chrono::Duration {
    // 2^6 minutes already exceed the hour; the cap keeps the shift small.
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST
        .checked_mul(1i32 << doublings)
        .unwrap_or(RETRY_MAX)
        .min(RETRY_MAX)
}

/// What the state file remembers of one job.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct JobState {
    /// The scheduled time the last finished run was for.
    pub last_scheduled: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_outcome: Option<Outcome>,
    /// Failed runs since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// When a failed run is tried again, if before the next scheduled time.
    #[serde(default)]
    pub retry_at: Option<DateTime<Utc>>,
    /// When the agent first scheduled the job: the alert rules judge a job
    /// that never succeeded from here, so neither a fresh install nor a new
    /// source pages on its first day, and a restart does not restart the
    /// grace. A state file written before this field: from the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

/// The state file.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct State {
    pub jobs: BTreeMap<String, JobState>,
}

impl State {
    /// Read the state; a missing file is a fresh start.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::corrupt(
                    path.display().to_string(),
                    format!("agent state does not parse ({e}); remove it to start afresh"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Write atomically: a crash leaves the old or the new state.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| Error::io(path, e))
    }
}

/// Jobs, their schedules and their state.
pub struct Scheduler {
    pub jobs: Vec<Job>,
    pub tz: Tz,
    pub state: State,
    pub path: Option<PathBuf>,
}

impl Scheduler {
    /// Jobs that never ran count from `now`, and are scheduled since `now`.
    pub fn new(
        jobs: Vec<Job>,
        tz: Tz,
        mut state: State,
        path: Option<PathBuf>,
        now: DateTime<Utc>,
    ) -> Self {
        for job in &jobs {
            let known = state
                .jobs
                .entry(job.name.clone())
                .or_insert_with(|| JobState {
                    last_scheduled: Some(now),
                    ..JobState::default()
                });
            known.since.get_or_insert(now);
        }
        Scheduler {
            jobs,
            tz,
            state,
            path,
        }
    }

    fn after(&self, job: &Job, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        job.schedule
            .after(&t.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }

    /// When job `i` is next due: its pending retry, or else its next
    /// scheduled time, whichever is first.
    pub fn next_due(&self, i: usize) -> Option<DateTime<Utc>> {
        let job = self.jobs.get(i)?;
        let state = self.state.jobs.get(&job.name)?;
        let scheduled = state.last_scheduled.and_then(|t| self.after(job, t));
        match (state.retry_at, scheduled) {
            (Some(retry), Some(scheduled)) => Some(retry.min(scheduled)),
            (retry, scheduled) => retry.or(scheduled),
        }
    }

    /// The job to run now: the one due earliest (config order on ties).
    pub fn due(&self, now: DateTime<Utc>) -> Option<usize> {
        (0..self.jobs.len())
            .filter_map(|i| self.next_due(i).filter(|t| *t <= now).map(|t| (t, i)))
            .min()
            .map(|(_, i)| i)
    }

    /// The next job to come due and when.
    pub fn upcoming(&self) -> Option<(usize, DateTime<Utc>)> {
        (0..self.jobs.len())
            .filter_map(|i| self.next_due(i).map(|t| (t, i)))
            .min()
            .map(|(t, i)| (i, t))
    }

    /// The last scheduled time of `job` at or before `now`: every one up to
    /// now counts as done by a run that finishes now (missed runs collapse).
    fn caught_up(&self, job: &Job, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut last = self
            .state
            .jobs
            .get(&job.name)
            .and_then(|s| s.last_scheduled)
            .unwrap_or(now);
        while let Some(t) = self.after(job, last).filter(|t| *t <= now) {
            last = t;
        }
        last
    }

    /// Record that job `i` succeeded at `now`. Persisted.
    pub fn succeeded(&mut self, i: usize, now: DateTime<Utc>) -> Result<()> {
        let Some(job) = self.jobs.get(i).cloned() else {
            return Ok(());
        };
        let state = JobState {
            last_scheduled: Some(self.caught_up(&job, now)),
            last_finished: Some(now),
            last_outcome: Some(Outcome::Ok),
            consecutive_failures: 0,
            retry_at: None,
            since: self.since(&job),
        };
        self.record(&job, state)
    }

    /// Record that job `i` failed at `now`, and when it is tried again (see
    /// the module doc). Persisted; returns the job's new state.
    pub fn failed(&mut self, i: usize, now: DateTime<Utc>) -> Result<JobState> {
        let Some(job) = self.jobs.get(i).cloned() else {
            return Ok(JobState::default());
        };
        let failures = self
            .state
            .jobs
            .get(&job.name)
            .map_or(0, |s| s.consecutive_failures)
            .saturating_add(1);
        let last = self.caught_up(&job, now);
        let next_scheduled = self.after(&job, last);
        let retry_at = now
            .checked_add_signed(retry_delay(failures))
            .filter(|retry| next_scheduled.is_none_or(|s| *retry < s));
        let state = JobState {
            last_scheduled: Some(last),
            last_finished: Some(now),
            last_outcome: Some(Outcome::Failed),
            consecutive_failures: failures,
            retry_at,
            since: self.since(&job),
        };
        self.record(&job, state.clone())?;
        Ok(state)
    }

    fn since(&self, job: &Job) -> Option<DateTime<Utc>> {
        self.state.jobs.get(&job.name).and_then(|s| s.since)
    }

    fn record(&mut self, job: &Job, state: JobState) -> Result<()> {
        self.state.jobs.insert(job.name.clone(), state);
        match &self.path {
            Some(path) => self.state.save(path),
            None => Ok(()),
        }
    }
}
