//! `offsite run`: the long-running agent.
//!
//! One loop, one job at a time per repository: it sleeps until the next job
//! is due ([`schedule`]), runs it, records the outcome (state file, activity
//! log, metrics: one [`crate::jobs`] function per job, the same the
//! commands call), and goes on. A job that comes due while another runs waits
//! its turn. SIGTERM or SIGINT sets the [`Cancel`] flag: no new job starts,
//! the running one stops at its next safe point (nothing partial is ever
//! committed), and the agent exits 0. Under systemd it reports READY, STATUS
//! and WATCHDOG ([`notify`]). The clock and the random source are inputs
//! ([`crate::clock`], [`crate::ops::restore_test::Rng`]), so tests drive days of
//! schedules in milliseconds. A failed job is retried with backoff within its
//! period ([`schedule`] has the numbers); each failure is logged with its
//! streak and the time of the retry, and the streak is published as
//! `offsite_job_consecutive_failures{operation,source}`. `/metrics` is served
//! by [`http`]. Each job's start and end is an `info` line (job, source,
//! outcome, seconds; a failure is an `error` line), shown by default when
//! the agent runs on a terminal ([`crate::cli`] picks the level).

pub mod http;
pub mod notify;
pub mod schedule;

use std::sync::Arc;

use crate::cancel::Cancel;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jobs::{self, JobContext};
use crate::metrics::Metrics;
use crate::ops::restore_test::Rng;
use crate::ops::snapshot::SnapshotOptions;
use crate::repo::Repository;
use notify::Notifier;
use schedule::{jobs_from_config, Job, JobKind, JobState, Scheduler, State};

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
    /// Stopped on request; it does not count as run.
    Cancelled,
}

/// Runs jobs (the repository in production, a recorder in tests).
pub trait Runner {
    fn run(&mut self, job: &Job, cancel: &Cancel) -> Outcome;

    /// The scheduler's record of `job`: for every job when the loop starts
    /// (as the state file had it), then after each finished run.
    fn recorded(&mut self, _job: &Job, _state: &JobState) {}
}

/// The scheduler loop; returns when `cancel` is set.
pub fn run_loop(
    scheduler: &mut Scheduler,
    runner: &mut dyn Runner,
    clock: &dyn Clock,
    cancel: &Cancel,
    notifier: &Notifier,
) -> Result<()> {
    for job in &scheduler.jobs {
        if let Some(state) = scheduler.state.jobs.get(&job.name) {
            runner.recorded(job, state);
        }
    }
    while !cancel.is_cancelled() {
        let now = clock.now();
        if let Some((i, job)) = scheduler
            .due(now)
            .and_then(|i| Some((i, scheduler.jobs.get(i)?.clone())))
        {
            notifier.send(&format!("STATUS=running {}", job.name));
            tracing::info!(job = %job.name, source = job_source(&job), "job started");
            let started = std::time::Instant::now();
            let state = match runner.run(&job, cancel) {
                Outcome::Cancelled => {
                    tracing::warn!(job = %job.name, "job stopped on request; it will run again");
                    break;
                }
                Outcome::Ok => {
                    tracing::info!(
                        job = %job.name,
                        source = job_source(&job),
                        outcome = %"ok",
                        seconds = %format!("{:.1}", started.elapsed().as_secs_f64()),
                        "job finished"
                    );
                    scheduler.succeeded(i, clock.now())?;
                    scheduler.state.jobs.get(&job.name).cloned()
                }
                Outcome::Failed(e) => {
                    let state = scheduler.failed(i, clock.now())?;
                    log_failure(&job, &e, &state, scheduler, started.elapsed());
                    Some(state)
                }
            };
            if let Some(state) = state {
                runner.recorded(&job, &state);
            }
            continue;
        }
        match scheduler.upcoming() {
            Some((i, at)) => {
                let name = scheduler.jobs.get(i).map_or("", |j| j.name.as_str());
                let retry = scheduler
                    .state
                    .jobs
                    .get(name)
                    .filter(|s| s.retry_at == Some(at))
                    .map_or(String::new(), |s| {
                        format!(" (retry after {} failures)", s.consecutive_failures)
                    });
                notifier.send(&format!(
                    "STATUS=next: {} at {}{retry}",
                    name.replace(':', " "),
                    at.with_timezone(&scheduler.tz).to_rfc3339()
                ));
                clock.sleep_until(at, cancel);
            }
            None => {
                notifier.send("STATUS=no job is scheduled");
                clock.sleep_until(clock.now() + chrono::Duration::hours(1), cancel);
            }
        }
    }
    Ok(())
}

/// The source a job snapshots, for its start and end lines.
fn job_source(job: &Job) -> Option<tracing::field::DisplayValue<&str>> {
    match &job.kind {
        JobKind::Snapshot(source) => Some(tracing::field::display(source)),
        _ => None,
    }
}

/// One log line per failure: the error, the streak, and when the job runs again.
fn log_failure(
    job: &Job,
    error: &str,
    state: &JobState,
    scheduler: &Scheduler,
    took: std::time::Duration,
) {
    let failures = state.consecutive_failures;
    let seconds = format!("{:.1}", took.as_secs_f64());
    match state.retry_at {
        Some(at) => tracing::error!(
            job = %job.name,
            source = job_source(job),
            outcome = %"failed",
            seconds = %seconds,
            error = %crate::escape::Escaped(error),
            consecutive_failures = failures,
            retry_at = %at.with_timezone(&scheduler.tz).to_rfc3339(),
            "job failed; it will be retried"
        ),
        None => {
            let next = scheduler
                .jobs
                .iter()
                .position(|j| j.name == job.name)
                .and_then(|i| scheduler.next_due(i))
                .map_or("never".to_string(), |t| {
                    t.with_timezone(&scheduler.tz).to_rfc3339()
                });
            tracing::error!(
                job = %job.name,
                source = job_source(job),
                outcome = %"failed",
                seconds = %seconds,
                error = %crate::escape::Escaped(error),
                consecutive_failures = failures,
                next_run = %next,
                "job failed; it runs again at its next scheduled time"
            )
        }
    }
}

/// The production runner: the jobs of [`crate::jobs`] on the repository,
/// with the agent's clock and metrics.
pub struct RepoRunner<'a> {
    pub repo: &'a Repository,
    pub config: &'a Config,
    pub metrics: &'a Metrics,
    pub clock: &'a dyn Clock,
    pub rng: Rng,
}

impl RepoRunner<'_> {
    fn run_job(&mut self, job: &Job, cancel: &Cancel) -> Result<()> {
        let ctx = JobContext {
            repo: self.repo,
            config: self.config,
            clock: self.clock,
            as_of: None,
            cancel: cancel.clone(),
            metrics: Some(self.metrics),
            progress: crate::progress::Progress::hidden(),
        };
        match &job.kind {
            JobKind::Snapshot(name) => {
                let source = self.config.source(name)?;
                let options = SnapshotOptions::default();
                jobs::snapshot(&ctx, &[source], None, options, &mut |_, r| r.map(drop))
            }
            JobKind::Prune => jobs::prune(&ctx, false).map(drop),
            JobKind::RestoreTest => {
                let sources: Vec<_> = self.config.sources.iter().collect();
                let report = jobs::restore_test(&ctx, &sources, &mut self.rng);
                report.failure().map_or(Ok(()), Err)
            }
        }
    }
}

impl Runner for RepoRunner<'_> {
    fn run(&mut self, job: &Job, cancel: &Cancel) -> Outcome {
        let before = self.repo.requests();
        let result = self.run_job(job, cancel);
        self.metrics
            .record_requests(&self.repo.requests().since(&before));
        let outcome = match result {
            Ok(()) => Outcome::Ok,
            Err(e) if e.is_cancelled() => return Outcome::Cancelled,
            Err(e) => {
                self.metrics.record_job_failure(job);
                Outcome::Failed(e.to_string())
            }
        };
        if let Err(e) = self.metrics.refresh_repository(self.repo, self.config) {
            tracing::warn!(error = %e, "could not refresh repository metrics");
        }
        outcome
    }

    /// Publish the job's state (failing streak, scheduled since), then the
    /// textfile (after the run's metrics and the state are both in).
    fn recorded(&mut self, job: &Job, state: &JobState) {
        self.metrics.record_job_state(job, state);
        if let Some(path) = &self.config.metrics_textfile {
            if let Err(e) = self.metrics.write_textfile(path) {
                tracing::warn!(error = %e, "could not write the metrics textfile");
            }
        }
    }
}

/// `offsite run` with the system clock, signals, metrics and systemd.
pub fn run_from_cli(config: Config) -> Result<i32> {
    crate::guard::enforce(&config)?;
    crate::config::lint::warn(&crate::config::lint::lint(&config, SystemClock.now()));
    let repo = crate::keyfile::open(&config)?;
    let cancel = Cancel::new();
    cancel.on_signals()?;
    // Bound now (a bad address stops the start), served once the metrics are complete.
    let mut metrics_listener = None;
    let metrics = Arc::new(Metrics::new());
    metrics.load_from_repository(&repo, &config)?;
    if let Some(addr) = config.metrics_listen {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            Error::config("metrics.listen", format!("cannot listen on {addr}: {e}"))
        })?;
        metrics_listener = Some((addr, listener));
    }
    std::fs::create_dir_all(&config.state_dir).map_err(|e| Error::io(&config.state_dir, e))?;
    let state_path = config.state_dir.join("state.json");
    let state = State::load(&state_path)?;
    let mut scheduler = Scheduler::new(
        jobs_from_config(&config),
        config.timezone,
        state,
        Some(state_path),
        SystemClock.now(),
    );
    // Saved now: a job's first-scheduled time (the alert rules' grace) and
    // the first start it counts from survive a restart before its first run.
    if let Some(path) = &scheduler.path {
        scheduler.state.save(path)?;
    }
    metrics.record_agent_start(SystemClock.now());
    metrics.expect_jobs(&scheduler.jobs);
    for job in &scheduler.jobs {
        if let Some(state) = scheduler.state.jobs.get(&job.name) {
            metrics.record_job_state(job, state);
        }
    }
    if let Some((addr, listener)) = metrics_listener {
        http::spawn(listener, metrics.clone())?;
        tracing::info!(%addr, "serving /metrics");
    }
    let notifier = Notifier::from_env();
    if let Some(interval) = Notifier::watchdog_interval() {
        let (watchdog, stop) = (Notifier::from_env(), cancel.clone());
        std::thread::Builder::new()
            .name("offsite-watchdog".into())
            .spawn(move || {
                // Ping at half the interval while the process is alive and not stopping.
                while !stop.wait(interval / 2) {
                    watchdog.send("WATCHDOG=1");
                }
            })
            .map_err(|e| Error::io("watchdog thread", e))?;
        notifier.send("WATCHDOG=1");
    }
    notifier.send("READY=1");
    tracing::info!(host = %config.host, repository = %repo.describe(), jobs = scheduler.jobs.len(), "agent started");
    let mut runner = RepoRunner {
        repo: &repo,
        config: &config,
        metrics: &metrics,
        clock: &SystemClock,
        rng: Rng::from_entropy(),
    };
    run_loop(
        &mut scheduler,
        &mut runner,
        &SystemClock,
        &cancel,
        &notifier,
    )?;
    notifier.send("STOPPING=1");
    tracing::info!("agent stopped");
    Ok(0)
}
