//! Acceptance: a failed job is retried within its period, with waits of 1,
//! 2, 4 … minutes capped at an hour, on the scheduler's manual clock; on a
//! real repository too (a snapshot locked out by another host's prune
//! succeeds once the lock is gone), with the streak in the metrics and the
//! log, and a restart that neither forgets the retry nor repeats a success.

mod common;

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use offsite::agent::notify::Notifier;
use offsite::agent::schedule::{jobs_from_config, Job, JobKind, JobState, Scheduler, State};
use offsite::agent::{run_loop, Outcome, RepoRunner, Runner};
use offsite::cancel::Cancel;
use offsite::clock::{Clock, ManualClock};
use offsite::config::Config;
use offsite::metrics::Metrics;

fn job(name: &str, cron: &str) -> Job {
    Job {
        name: name.into(),
        kind: JobKind::Snapshot(name.into()),
        schedule: cron::Schedule::from_str(cron).unwrap(),
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Fails every run (each takes no time); records run times and the streaks
/// the scheduler reports.
struct AlwaysFails<'c> {
    clock: &'c ManualClock,
    until: DateTime<Utc>,
    runs: Vec<DateTime<Utc>>,
    states: Vec<JobState>,
    cancel: Cancel,
}

impl Runner for AlwaysFails<'_> {
    fn run(&mut self, _job: &Job, _cancel: &Cancel) -> Outcome {
        if self.clock.now() >= self.until {
            self.cancel.cancel();
            return Outcome::Cancelled;
        }
        self.runs.push(self.clock.now());
        Outcome::Failed("always".into())
    }

    fn recorded(&mut self, _job: &Job, state: &JobState) {
        self.states.push(state.clone());
    }
}

/// Run times and recorded states of an always-failing daily job at 02:00 UTC.
fn drive_failing(
    state: State,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, Vec<JobState>) {
    let clock = ManualClock::new(start);
    let cancel = Cancel::new();
    let mut scheduler = Scheduler::new(
        vec![job("snap", "0 0 2 * * *")],
        chrono_tz::UTC,
        state,
        None,
        start,
    );
    let mut runner = AlwaysFails {
        clock: &clock,
        until,
        runs: Vec::new(),
        states: Vec::new(),
        cancel: cancel.clone(),
    };
    run_loop(
        &mut scheduler,
        &mut runner,
        &clock,
        &cancel,
        &Notifier::from_env(),
    )
    .unwrap();
    (runner.runs, runner.states)
}

#[test]
fn a_failing_job_is_retried_with_doubling_waits_capped_at_an_hour_within_its_period() {
    let day1 = utc("2026-06-01T02:00:00Z");
    let (runs, states) = drive_failing(
        State::default(),
        day1 - Duration::hours(1),
        day1 + Duration::days(1) + Duration::hours(2),
    );
    // Minutes after 02:00: 0, 1, 3, 7, 15, 31, 63, then hourly while before the next 02:00.
    let mut want = vec![0, 1, 3, 7, 15, 31, 63];
    while want.last().unwrap() + 60 < 24 * 60 {
        want.push(want.last().unwrap() + 60);
    }
    // The next day's scheduled run, then hourly retries (the streak goes on).
    want.extend([24 * 60, 25 * 60]);
    let got: Vec<i64> = runs.iter().map(|t| (*t - day1).num_minutes()).collect();
    assert_eq!(got, want);
    let streaks: Vec<u32> = states.iter().map(|s| s.consecutive_failures).collect();
    let counted: Vec<u32> = (0..=want.len() as u32).collect();
    assert_eq!(
        streaks, counted,
        "the start-up record, then one more per failure"
    );
    let last_of_day1 = &states[want.iter().position(|m| *m == 1383).unwrap() + 1];
    assert_eq!(
        last_of_day1.retry_at, None,
        "a retry past the next scheduled time is left to that run"
    );
}

#[test]
fn a_retry_time_read_back_never_postpones_the_schedule_and_old_state_files_load() {
    // A state file from before retries existed: no streak, no retry.
    let old: State = serde_json::from_str(
        r#"{"jobs":{"snap":{"last_scheduled":"2026-06-01T02:00:00Z","last_finished":"2026-06-01T02:05:00Z","last_outcome":"ok"}}}"#,
    )
    .unwrap();
    assert_eq!(old.jobs["snap"].consecutive_failures, 0);
    assert_eq!(old.jobs["snap"].retry_at, None);

    // A damaged retry time far in the future: the job still runs on schedule.
    let mut state = old.clone();
    state.jobs.get_mut("snap").unwrap().retry_at = Some(utc("2100-01-01T00:00:00Z"));
    let start = utc("2026-06-01T12:00:00Z");
    let (runs, _) = drive_failing(state, start, start + Duration::hours(15));
    assert_eq!(runs.first(), Some(&utc("2026-06-02T02:00:00Z")));
}

/// The production runner on a real repository, on the manual clock; a lock
/// of another host's prune sits in the repository until `unlock_at`.
struct LockedOut<'a> {
    inner: RepoRunner<'a>,
    clock: &'a ManualClock,
    lock: std::path::PathBuf,
    unlock_at: DateTime<Utc>,
    until: DateTime<Utc>,
    cancel: Cancel,
    /// (time, succeeded)
    attempts: Vec<(DateTime<Utc>, bool)>,
    /// `offsite_job_consecutive_failures{operation="snapshot",source="data"}` after each record.
    gauges: Vec<f64>,
}

impl Runner for LockedOut<'_> {
    fn run(&mut self, job: &Job, cancel: &Cancel) -> Outcome {
        let now = self.clock.now();
        if now >= self.until {
            self.cancel.cancel();
            return Outcome::Cancelled;
        }
        if now >= self.unlock_at {
            let _ = std::fs::remove_file(&self.lock); // the other host's prune is done
        }
        let outcome = self.inner.run(job, cancel);
        self.attempts.push((now, outcome == Outcome::Ok));
        outcome
    }

    fn recorded(&mut self, job: &Job, state: &JobState) {
        self.inner.recorded(job, state);
        let text = self.inner.metrics.encode_classic();
        assert_eq!(job.name, "snapshot:data");
        let line = "offsite_job_consecutive_failures{operation=\"snapshot\",source=\"data\"} ";
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .unwrap_or_else(|| panic!("no {line} in {text}"));
        self.gauges.push(value.parse().unwrap());
    }
}

/// Log lines written by the scheduler loop on this thread.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Life {
    attempts: Vec<(DateTime<Utc>, bool)>,
    gauges: Vec<f64>,
    log: String,
}

/// One life of the agent's loop from `start` until the first run due at or
/// after `until`, with the state file of `w`.
fn live(
    w: &common::World,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    unlock_at: DateTime<Utc>,
) -> Life {
    let config = Config::load(&w.config).unwrap();
    let repo = offsite::keyfile::open(&config).unwrap();
    let metrics = Metrics::new();
    let state_path = w.path("state.json");
    let jobs = jobs_from_config(&config)
        .into_iter()
        .filter(|j| j.name == "snapshot:data")
        .collect();
    let state = State::load(&state_path).unwrap();
    let mut scheduler = Scheduler::new(jobs, config.timezone, state, Some(state_path), start);
    let clock = ManualClock::new(start);
    let cancel = Cancel::new();
    let mut runner = LockedOut {
        inner: RepoRunner {
            repo: &repo,
            config: &config,
            metrics: &metrics,
            clock: &clock,
            rng: offsite::ops::restore_test::Rng::seeded(1),
        },
        clock: &clock,
        lock: w.repo().join("locks").join("ab".repeat(32)),
        unlock_at,
        until,
        cancel: cancel.clone(),
        attempts: Vec::new(),
        gauges: Vec::new(),
    };
    let log = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        run_loop(
            &mut scheduler,
            &mut runner,
            &clock,
            &cancel,
            &Notifier::from_env(),
        )
        .unwrap()
    });
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    Life {
        attempts: runner.attempts,
        gauges: runner.gauges,
        log,
    }
}

#[test]
fn a_snapshot_locked_out_by_another_host_is_retried_and_a_restart_keeps_the_retry() {
    let w = common::World::with_sources(&[("data", "client-data", "schedule = \"0 0 2 * * *\"")]);
    common::put(&w.src(), "t1/db/dump.sql", b"client data");
    w.ok(&["init"]);
    let lock = serde_json::json!({
        "host": "other-host", "pid": 4242, "kind": "exclusive", "operation": "prune",
        "time": Utc::now().to_rfc3339(),
    });
    // Sealed as a lock is, through the crate.
    w.open_repo()
        .write_lock_plaintext(
            &format!("locks/{}", "ab".repeat(32)),
            lock.to_string().as_bytes(),
        )
        .unwrap();
    let at = |m: i64| utc("2026-06-01T02:00:00Z") + Duration::minutes(m);
    let never = at(100_000);

    // First life: locked out at 02:00 and 02:01, stopped with a retry pending at 02:03.
    let first = live(&w, at(-60), at(2), never);
    assert_eq!(first.attempts, vec![(at(0), false), (at(1), false)]);
    assert_eq!(first.gauges, vec![0.0, 1.0, 2.0], "the streak is published");
    assert_eq!(
        first.log.matches("job failed; it will be retried").count(),
        2,
        "each failure is logged: {}",
        first.log
    );
    assert!(
        first.log.contains("consecutive_failures=2"),
        "{}",
        first.log
    );
    assert!(
        first.log.contains("locked by prune on other-host"),
        "{}",
        first.log
    );
    let saved = State::load(&w.path("state.json")).unwrap().jobs["snapshot:data"].clone();
    assert_eq!(saved.consecutive_failures, 2);
    assert_eq!(saved.retry_at, Some(at(3)));

    // Restart: the retry is not forgotten; the lock goes at 02:10; 02:15 succeeds.
    let second = live(&w, at(2) + Duration::seconds(30), at(16), at(10));
    assert_eq!(
        second.attempts,
        vec![(at(3), false), (at(7), false), (at(15), true)]
    );
    assert_eq!(
        second.gauges,
        vec![2.0, 3.0, 4.0, 0.0],
        "the streak survives the restart and resets on success"
    );

    // Restart after the success: nothing repeats before the next day's run.
    let third = live(&w, at(20), at(24 * 60 + 60), never);
    assert_eq!(third.attempts, vec![(at(24 * 60), true)]);
    assert_eq!(third.gauges, vec![0.0, 0.0]);

    let snapshots = w.json(&["snapshots"]);
    assert_eq!(snapshots["snapshots"].as_array().unwrap().len(), 2);
    w.ok(&["check", "--read-data"]);
}
