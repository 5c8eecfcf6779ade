//! Restore (and erase) entries are kept for the audit after prune deletes
//! the operational entries of the activity log: a prune after
//! `activity_log_days` deletes snapshot, check and restore-test entries but
//! keeps restore entries until `audit_log_days`.
//!
//! The entries are aged by moving their objects to an older day (the key
//! carries the time prune judges them by), so the prune runs on the real
//! clock, as an operator's would.

mod common;

use chrono::{Duration, Utc};
use common::{put, walk_files, World};

/// Move every activity-log entry to `days` ago (its key and its time): the
/// entries are sealed, bound to their keys, so through the crate.
fn age_log(w: &World, days: i64) {
    let then = Utc::now() - Duration::days(days);
    let day = w
        .repo()
        .join("log")
        .join(then.format("%Y-%m-%d").to_string());
    std::fs::create_dir_all(&day).unwrap();
    let mut entries = Vec::new();
    walk_files(&w.repo().join("log"), &mut |p| {
        entries.push(p.to_path_buf())
    });
    let repo = w.open_repo();
    let key = |p: &std::path::Path| {
        p.strip_prefix(w.repo())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    for (i, old) in entries.iter().enumerate() {
        let name = old.file_name().unwrap().to_str().unwrap();
        // `HHMMSS.mmm-random`: a new time, the rest kept.
        let (_, rest) = name.split_once('-').unwrap();
        let time = then + Duration::milliseconds(i as i64);
        let new = day.join(format!("{}-{rest}", time.format("%H%M%S%.3f")));
        let mut entry: serde_json::Value =
            serde_json::from_slice(&repo.read_activity_plaintext(&key(old)).unwrap()).unwrap();
        entry["time"] = serde_json::json!(time);
        repo.write_activity_plaintext(&key(&new), format!("{entry}\n").as_bytes())
            .unwrap();
        if old != &new {
            std::fs::remove_file(old).unwrap();
        }
    }
}

/// Operations of the entries in the log, oldest first.
fn operations(w: &World) -> Vec<String> {
    w.activity()
        .iter()
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect()
}

fn world(header: &str) -> World {
    let w = World::configured(header, &[("data", "client-data", "")], "");
    put(&w.src(), "acme/a.txt", b"a");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    w.ok(&["restore-test"]);
    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "acme/a.txt",
        "--to",
        to.to_str().unwrap(),
        "--reason",
        "ticket 7",
    ]);
    w
}

#[test]
fn a_prune_past_activity_log_days_keeps_restore_entries() {
    let w = world("activity_log_days = 30\n");
    age_log(&w, 400);
    assert_eq!(operations(&w), ["snapshot", "restore-test", "restore"]);
    let report = w.json(&["prune"]);
    assert_eq!(report["log_entries_deleted"], 2, "{report}");
    let left = w.activity();
    let ops: Vec<&str> = left
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["restore", "prune"]);
    assert_eq!(left[0]["details"]["reason"], "ticket 7");
}

#[test]
fn restore_entries_go_after_audit_log_days() {
    let w = world("activity_log_days = 30\naudit_log_days = 60\n");
    age_log(&w, 45);
    w.ok(&["prune"]);
    assert_eq!(operations(&w), ["restore", "prune"]);
    age_log(&w, 100);
    w.ok(&["prune"]);
    assert_eq!(operations(&w), ["prune"], "the new prune's own entry");
}

#[test]
fn audit_log_days_is_checked_like_the_other_day_counts() {
    for bad in ["0", "36501", "-1"] {
        let w = World::configured(&format!("audit_log_days = {bad}\n"), &[], "");
        let out = w.offsite(&["config", "check"]);
        let line = common::one_line_error(&out);
        assert!(line.contains("audit_log_days"), "{line}");
        assert_eq!(out.status.code(), Some(2));
    }
    let w = World::configured("", &[("data", "client-data", "")], "");
    let shown = w.ok(&["config", "check"]);
    assert!(shown.contains("audit_log_days = 3650"), "{shown}");
}

/// Plant an entry that does not open, `days` ago; returns its path.
fn unreadable_entry(w: &World, days: i64) -> std::path::PathBuf {
    let then = Utc::now() - Duration::days(days);
    let name = format!(
        "{}/{}-feedfacefeedface",
        then.format("%Y-%m-%d"),
        then.format("%H%M%S%.3f")
    );
    let path = w.repo().join("log").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"not a sealed entry").unwrap();
    path
}

#[test]
fn an_unreadable_entry_is_kept_until_audit_log_days() {
    let w = world("activity_log_days = 30\naudit_log_days = 60\n");
    age_log(&w, 45);
    let recent = unreadable_entry(&w, 45);
    let report = w.json(&["prune"]);
    assert_eq!(report["log_entries_deleted"], 2, "{report}");
    assert!(recent.exists(), "it might be a restore entry: kept");
    assert_eq!(operations(&w), ["restore", "prune"]);
    let old = unreadable_entry(&w, 100);
    w.ok(&["prune"]);
    assert!(!old.exists(), "past audit_log_days, whatever it was");
    assert!(recent.exists());
}
