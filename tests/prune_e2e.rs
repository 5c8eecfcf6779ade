//! Acceptance: prune end to end. 400 daily snapshots, then prune: exactly the
//! snapshots the default policy describes remain, the repository passes
//! `check --read-data`, and its stored bytes shrink. Activity-log entries
//! older than 30 days go; younger ones stay.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, Utc};

/// The newest snapshot of each of the last `n` periods, keyed by `key`.
fn newest_per_period(
    times: &[DateTime<Utc>],
    n: usize,
    key: impl Fn(&DateTime<Utc>) -> String,
) -> BTreeSet<DateTime<Utc>> {
    let mut newest: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for t in times {
        let e = newest.entry(key(t)).or_insert(*t);
        if t > e {
            *e = *t;
        }
    }
    let mut by_time: Vec<DateTime<Utc>> = newest.into_values().collect();
    by_time.sort_by(|a, b| b.cmp(a));
    by_time.into_iter().take(n).collect()
}

#[test]
fn four_hundred_daily_snapshots_prune_to_the_promise() {
    let w = World::new();
    let mut rng = Rng::new(400);
    w.ok(&["init"]);
    let start = DateTime::parse_from_rfc3339("2025-10-01T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut times = Vec::new();
    for day in 0..400 {
        // Every day a new e-mail, and the dump changes.
        put(&w.src(), &format!("acme/emails/{day}.eml"), &rng.text(3000));
        put(&w.src(), "acme/db/dump.sql", &rng.text(20_000));
        if day >= 5 {
            let _ = std::fs::remove_file(w.src().join(format!("acme/emails/{}.eml", day - 5)));
        }
        let t = start + Duration::days(day);
        w.ok(&["snapshot", "--time", &t.to_rfc3339()]);
        times.push(t);
    }
    let mut expected = newest_per_period(&times, 31, |t| t.format("%Y-%m-%d").to_string());
    expected.extend(newest_per_period(&times, 12, |t| {
        let w = t.iso_week();
        format!("{}-{:02}", w.year(), w.week())
    }));
    expected.extend(newest_per_period(&times, 3, |t| {
        t.format("%Y-%m").to_string()
    }));

    let before = w.data_objects().iter().map(|(_, n)| n).sum::<u64>();
    let now = (*times.last().unwrap() + Duration::hours(3)).to_rfc3339();
    let report = w.json(&["prune", "--really-at-now", "--now", &now]);
    assert_eq!(
        report["snapshots_removed"].as_u64().unwrap() as usize,
        400 - expected.len()
    );
    let remaining: BTreeSet<DateTime<Utc>> = w.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            DateTime::parse_from_rfc3339(s["time"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect();
    assert_eq!(remaining, expected);
    assert!(
        expected.len() >= 31 + 8 && expected.len() <= 31 + 12 + 3,
        "overlaps counted once: {}",
        expected.len()
    );
    w.ok(&["check", "--read-data"]);
    let after = w.data_objects().iter().map(|(_, n)| n).sum::<u64>();
    assert!(
        after < before,
        "stored bytes decreased: {before} -> {after}"
    );
    assert!(report["packs_deleted"].as_u64().unwrap() > 0);

    // The oldest kept snapshot still restores its files byte-identical.
    let oldest = remaining.iter().next().unwrap();
    let day = (*oldest - start).num_days();
    let list = w.json(&["snapshots"])["snapshots"].take();
    let id = list.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        &format!("acme/emails/{day}.eml"),
        "--snapshot",
        &id,
        "--to",
        to.to_str().unwrap(),
        "--force",
    ]);
    // A second prune at the same time changes nothing.
    let again = w.json(&["prune", "--really-at-now", "--now", &now]);
    assert_eq!(again["snapshots_removed"], 0);
    assert_eq!(again["packs_deleted"], 0);
}

#[test]
fn activity_log_entries_older_than_30_days_are_pruned() {
    let w = World::new();
    put(&w.src(), "a/b", b"x");
    w.ok(&["init"]);
    let now = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let repo = w.open_repo();
    for days in [45, 31, 30, 29, 10, 1] {
        let entry = offsite::activity::Activity {
            time: now - Duration::days(days) + Duration::minutes(1),
            host: "test-host".into(),
            operation: offsite::activity::Operation::Other(format!("op-{days}")),
            outcome: offsite::activity::Outcome::Ok,
            details: serde_json::json!({}),
        };
        repo.append_activity(&entry).unwrap();
    }
    let report = w.json(&["prune", "--really-at-now", "--now", &now.to_rfc3339()]);
    assert_eq!(report["log_entries_deleted"], 2);
    let ops: Vec<String> = w
        .activity()
        .iter()
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect();
    for gone in ["op-45", "op-31"] {
        assert!(!ops.contains(&gone.to_string()), "{gone} pruned: {ops:?}");
    }
    for kept in ["op-30", "op-29", "op-10", "op-1", "prune"] {
        assert!(ops.contains(&kept.to_string()), "{kept} kept: {ops:?}");
    }
}
