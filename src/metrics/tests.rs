//! What a fresh agent exports, before any job ran.

use super::*;
use crate::agent::schedule::{Job, JobKind};

fn job(name: &str, kind: JobKind) -> Job {
    Job {
        name: name.to_string(),
        kind,
        schedule: "0 0 2 * * *".parse().unwrap(),
    }
}

#[test]
fn a_fresh_agent_reports_zero_counts_and_no_restore_test_result() {
    let m = Metrics::new();
    let jobs = [
        job("snapshot:data", JobKind::Snapshot("data".into())),
        job("prune", JobKind::Prune),
        job("restore-test", JobKind::RestoreTest),
    ];
    m.expect_jobs(&jobs);
    let text = m.encode_classic();
    for line in [
        "offsite_job_failures_total{operation=\"snapshot\",source=\"data\"} 0",
        "offsite_job_failures_total{operation=\"prune\"} 0",
        "offsite_job_failures_total{operation=\"restore-test\"} 0",
        "offsite_job_consecutive_failures{operation=\"prune\"} 0",
        "offsite_restore_test_runs_total{result=\"ok\"} 0",
        "offsite_restore_test_runs_total{result=\"failed\"} 0",
        "offsite_s3_requests_total{op=\"put\"} 0",
        "offsite_erasures_total{kind=\"tenant\"} 0",
        "offsite_erasures_total{kind=\"item\"} 0",
        "offsite_restore_test_last_success_timestamp_seconds 0.0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    for absent in [
        "offsite_restore_test_success ",
        "offsite_restore_test_last_run_timestamp_seconds ",
        "offsite_agent_start_timestamp_seconds ",
        "job=",
        "instance=",
    ] {
        let mut samples = text.lines().filter(|l| !l.starts_with('#'));
        assert!(!samples.any(|l| l.contains(absent)), "{absent} in\n{text}");
    }

    m.record_job_failure(&jobs[1]);
    m.record_agent_start(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let text = m.encode_classic();
    assert!(text.contains("offsite_job_failures_total{operation=\"prune\"} 1\n"));
    assert!(text.contains("offsite_agent_start_timestamp_seconds 1800000000.0\n"));
}

#[test]
fn erasures_are_counted_from_the_log_by_kind_repeats_and_failures_not() {
    let entry = |outcome: Outcome, details: serde_json::Value| activity::Activity {
        time: chrono::DateTime::UNIX_EPOCH,
        host: "h".into(),
        operation: Operation::Erase,
        outcome,
        details,
    };
    let m = Metrics::new();
    m.count_erasures(&[
        entry(
            Outcome::Ok,
            serde_json::json!({"kind": "tenant", "rotated": true}),
        ),
        entry(
            Outcome::Ok,
            serde_json::json!({"kind": "tenant", "rotated": false}),
        ),
        entry(Outcome::Ok, serde_json::json!({"kind": "item"})),
        entry(Outcome::Ok, serde_json::json!({"kind": "item"})),
        entry(Outcome::Failed, serde_json::json!({"error": "x"})),
    ]);
    let text = m.encode_classic();
    for line in [
        "offsite_erasures_total{kind=\"tenant\"} 1",
        "offsite_erasures_total{kind=\"item\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
}
