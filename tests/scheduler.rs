//! Acceptance: the scheduler, driven by a manual clock. Jobs run at their
//! cron times in the configured zone (across DST changes too), one at a time
//! (a job due during another waits its turn), a run missed while the agent
//! was down runs once at start, and a restart never repeats a finished run.
//! Retries of failed jobs: `tests/retry.rs`.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Helsinki;
use offsite::agent::notify::Notifier;
use offsite::agent::schedule::{Job, JobKind, Scheduler, State};
use offsite::agent::{run_loop, Outcome, Runner};
use offsite::cancel::Cancel;
use offsite::clock::{Clock, ManualClock};

/// A recorded run: job name, start, end.
type Run = (String, DateTime<Utc>, DateTime<Utc>);

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

/// Records runs; each job "takes" a fixed time on the manual clock; stops the
/// loop at the first job due at or after `until` (that one does not run).
struct Recorder<'c> {
    clock: &'c ManualClock,
    until: DateTime<Utc>,
    takes: Duration,
    runs: Vec<Run>,
    cancel: Cancel,
}

impl Runner for Recorder<'_> {
    fn run(&mut self, job: &Job, _cancel: &Cancel) -> Outcome {
        let start = self.clock.now();
        if start >= self.until {
            self.cancel.cancel();
            return Outcome::Cancelled;
        }
        if let Some((_, _, end)) = self.runs.last() {
            assert!(*end <= start, "two jobs at once");
        }
        self.clock.advance(self.takes);
        self.runs.push((job.name.clone(), start, self.clock.now()));
        Outcome::Ok
    }
}

fn drive(
    jobs: Vec<Job>,
    state: State,
    path: Option<std::path::PathBuf>,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    takes: Duration,
) -> (Vec<Run>, State) {
    let clock = ManualClock::new(start);
    let cancel = Cancel::new();
    let mut scheduler = Scheduler::new(jobs, Helsinki, state, path, start);
    let mut rec = Recorder {
        clock: &clock,
        until,
        takes,
        runs: Vec::new(),
        cancel: cancel.clone(),
    };
    run_loop(
        &mut scheduler,
        &mut rec,
        &clock,
        &cancel,
        &Notifier::from_env(),
    )
    .unwrap();
    (rec.runs, scheduler.state)
}

/// 02:30 Helsinki time on each day, in UTC.
fn local_0230(days: impl Iterator<Item = NaiveDate>) -> Vec<DateTime<Utc>> {
    days.map(|d| {
        Helsinki
            .from_local_datetime(&d.and_hms_opt(2, 30, 0).unwrap())
            .single()
            .unwrap()
            .with_timezone(&Utc)
    })
    .collect()
}

#[test]
fn runs_at_local_cron_times_across_both_dst_changes() {
    for (start, days) in [("2026-03-25T12:00:00Z", 8), ("2026-10-21T12:00:00Z", 8)] {
        let start = utc(start);
        let until = start + Duration::days(days);
        let (runs, _) = drive(
            vec![job("snap", "0 30 2 * * *")],
            State::default(),
            None,
            start,
            until,
            Duration::minutes(5),
        );
        let got: Vec<DateTime<Utc>> = runs.iter().map(|r| r.1).collect();
        let first_day = start.with_timezone(&Helsinki).date_naive() + Duration::days(1);
        let want = local_0230((0..days).map(|i| first_day + Duration::days(i)));
        assert_eq!(
            got, want,
            "one run a day at 02:30 local, UTC offset changing with DST"
        );
        let offsets: std::collections::BTreeSet<i64> = got
            .iter()
            .map(|t| (t.with_timezone(&Helsinki).naive_local() - t.naive_utc()).num_hours())
            .collect();
        assert_eq!(offsets.len(), 2, "the week spans a DST change");
    }
}

#[test]
fn a_job_due_while_another_runs_waits_its_turn() {
    let start = utc("2026-06-01T12:00:00Z");
    let jobs = vec![job("long", "0 0 2 * * *"), job("short", "0 30 2 * * *")];
    let (runs, _) = drive(
        jobs,
        State::default(),
        None,
        start,
        start + Duration::days(2),
        Duration::minutes(45),
    );
    let day = |name: &str| {
        runs.iter()
            .filter(|r| r.0 == name)
            .map(|r| r.1)
            .collect::<Vec<_>>()
    };
    let long = day("long");
    let short = day("short");
    assert_eq!(long.len(), 2);
    assert_eq!(short.len(), 2);
    for (l, s) in long.iter().zip(&short) {
        assert_eq!(
            *s,
            *l + Duration::minutes(45),
            "short starts when long ends, not at 02:30"
        );
    }
}

#[test]
fn missed_runs_catch_up_once_and_a_restart_never_repeats_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let jobs = || vec![job("snap", "0 0 2 * * *")];
    // First life: runs on June 1st at 02:00 local, then stops.
    let start = utc("2026-05-31T12:00:00Z");
    let (runs, _) = drive(
        jobs(),
        State::default(),
        Some(path.clone()),
        start,
        start + Duration::hours(15),
        Duration::minutes(5),
    );
    assert_eq!(runs.len(), 1);
    let first_run = runs[0].1;

    // Restart five minutes after that run: nothing runs before the next day.
    let state = State::load(&path).unwrap();
    let restart = runs[0].2 + Duration::minutes(5);
    let (runs, _) = drive(
        jobs(),
        state,
        Some(path.clone()),
        restart,
        restart + Duration::hours(2),
        Duration::minutes(5),
    );
    assert!(
        runs.is_empty() || runs[0].1 > first_run + Duration::hours(23),
        "no repeat after restart: {runs:?}"
    );

    // Down for three days: one catch-up run at start, then the normal schedule.
    let state = State::load(&path).unwrap();
    let back = first_run + Duration::days(3) + Duration::hours(8);
    let (runs, _) = drive(
        jobs(),
        state,
        Some(path.clone()),
        back,
        back + Duration::days(1),
        Duration::minutes(5),
    );
    assert_eq!(runs[0].1, back, "the missed runs run once, at start");
    assert_eq!(
        runs.len(),
        2,
        "one catch-up, then the next scheduled run: {runs:?}"
    );
    assert_eq!(runs[1].1, first_run + Duration::days(4));
}

#[test]
fn a_job_that_never_ran_starts_counting_from_the_first_start() {
    let start = utc("2026-06-01T12:00:00Z");
    let (runs, _) = drive(
        vec![job("snap", "0 0 2 * * *")],
        State::default(),
        None,
        start,
        start + Duration::days(1),
        Duration::minutes(5),
    );
    // 02:00 Helsinki (EEST) on June 2, not at start for June 1's 02:00.
    let starts: Vec<DateTime<Utc>> = runs.iter().map(|r| r.1).collect();
    assert_eq!(
        starts,
        [utc("2026-06-01T23:00:00Z")],
        "no backlog on first start"
    );
}

#[test]
fn an_hour_that_dst_skips_or_repeats_runs_at_most_once_a_day() {
    for start in ["2026-03-26T12:00:00Z", "2026-10-22T12:00:00Z"] {
        let start = utc(start);
        let (runs, _) = drive(
            vec![job("snap", "0 30 3 * * *")],
            State::default(),
            None,
            start,
            start + Duration::days(6),
            Duration::minutes(5),
        );
        let days: Vec<NaiveDate> = runs
            .iter()
            .map(|r| r.1.with_timezone(&Helsinki).date_naive())
            .collect();
        let mut unique = days.clone();
        unique.dedup();
        assert_eq!(days, unique, "never twice on one local day");
        assert!(days.len() >= 5, "every other day runs: {days:?}");
    }
}
