//! The jobs layer: a job run by the agent and by the command line leaves the
//! same traces (activity entry, time from the caller's clock), and a command
//! whose output goes nowhere releases its lock before it exits.

mod common;

use chrono::{DateTime, Utc};
use offsite::agent::schedule::jobs_from_config;
use offsite::agent::{Outcome, RepoRunner, Runner};
use offsite::cancel::Cancel;
use offsite::clock::ManualClock;
use offsite::config::Config;
use offsite::metrics::Metrics;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Run the agent's job `name` once on `w`'s repository with `clock`.
fn agent_runs(w: &common::World, name: &str, clock: &ManualClock) {
    let config = Config::load(&w.config).unwrap();
    let repo = offsite::keyfile::open(&config).unwrap();
    let metrics = Metrics::new();
    let job = jobs_from_config(&config)
        .into_iter()
        .find(|j| j.name == name)
        .unwrap();
    let mut runner = RepoRunner {
        repo: &repo,
        config: &config,
        metrics: &metrics,
        clock,
        rng: offsite::ops::restore_test::Rng::seeded(1),
    };
    assert_eq!(runner.run(&job, &Cancel::new()), Outcome::Ok);
}

/// The sorted keys of an activity entry's details (none if not an object).
fn detail_keys(entry: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = entry["details"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[test]
fn a_prune_logs_the_same_entry_whether_the_agent_or_the_command_ran_it() {
    let w = common::World::new();
    common::put(&w.src(), "t1/db/dump.sql", b"client data");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    w.ok(&["prune"]);
    // Months before the command's prune, so the agent's prune keeps its entry.
    let clock = ManualClock::new(utc("2026-06-01T03:00:00Z"));
    agent_runs(&w, "prune", &clock);

    let prunes: Vec<serde_json::Value> = w
        .activity()
        .into_iter()
        .filter(|e| e["operation"] == "prune")
        .collect();
    assert_eq!(prunes.len(), 2, "{prunes:?}");
    let (by_agent, by_command) = (&prunes[0], &prunes[1]);
    assert_eq!(
        by_agent["time"], "2026-06-01T03:00:00Z",
        "the agent's entry is dated by the agent's clock"
    );
    assert_eq!(by_agent["outcome"], "ok");
    assert_eq!(by_command["outcome"], "ok");
    let keys = detail_keys(by_command);
    assert!(keys.contains(&"snapshots_removed".to_string()), "{keys:?}");
    assert_eq!(detail_keys(by_agent), keys, "{by_agent} vs {by_command}");
}

/// The lock objects left in `w`'s repository.
fn locks(w: &common::World) -> Vec<(String, u64)> {
    w.objects()
        .into_iter()
        .filter(|(key, _)| key.starts_with("locks/"))
        .collect()
}

#[test]
fn a_snapshot_printing_into_a_closed_pipe_releases_its_lock_and_exits_141() {
    let w = common::World::new();
    common::put(&w.src(), "t1/db/dump.sql", b"client data");
    w.ok(&["init"]);
    // A pipe whose reader is gone before offsite starts: its first line of
    // output (the report, printed while the shared lock is held) fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offsite"))
        .arg("--config")
        .arg(&w.config)
        .arg("snapshot")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "quiet");
    assert_eq!(locks(&w), vec![], "the lock was released");
    // The snapshot itself was committed (and logged) before the output failed.
    assert_eq!(
        w.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    w.ok(&["check", "--read-data"]);
}
