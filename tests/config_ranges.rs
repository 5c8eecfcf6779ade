//! Regression (issue 8, finding 3): every number in the config has a sane
//! range that `offsite config check` enforces (exit 2, one line naming the
//! key), and date arithmetic on the numbers that pass, on `--now` and on
//! recording times never panics nor expires anything before its promise.

mod common;
use common::*;

use chrono::{DateTime, Utc};
use std::time::SystemTime;

/// `offsite config check` must refuse with exit 2 and one line naming `key`.
fn refused(w: &World, key: &str) {
    let out = w.offsite(&["config", "check"]);
    let line = one_line_error(&out);
    assert_eq!(out.status.code(), Some(2), "{line}");
    assert!(line.contains(key), "{key} not named in: {line}");
}

fn voice_world(contracts: &str) -> World {
    World::configured("", &[("voice", "voice", "")], contracts)
}

#[test]
fn voice_retention_days_that_would_overflow_are_refused() {
    for days in ["2147483648", "100000000", "4294967295", "36501"] {
        let w = voice_world(&format!(
            "[contracts]\ndefault_voice_retention_days = {days}\n"
        ));
        refused(&w, "contracts.default_voice_retention_days");
        let w = voice_world(&format!(
            "[contracts.tenants]\nacme = {{ voice_retention_days = {days} }}\n"
        ));
        refused(&w, "contracts.tenants.acme.voice_retention_days");
    }
}

#[test]
fn negative_or_huge_numbers_name_their_key() {
    let w = voice_world("[contracts]\ndefault_voice_retention_days = -1\n");
    refused(&w, "default_voice_retention_days");
    let w = World::configured(
        "activity_log_days = 99999999999",
        &[("d", "client-data", "")],
        "",
    );
    refused(&w, "activity_log_days");
    let w = World::with_sources(&[("d", "client-data", "retention = { keep_daily = -1 }")]);
    refused(&w, "keep_daily");
}

#[test]
fn activity_log_days_that_would_overflow_are_refused() {
    for days in ["4000000000", "36501"] {
        let w = World::configured(
            &format!("activity_log_days = {days}"),
            &[("data", "client-data", "")],
            "",
        );
        refused(&w, "activity_log_days");
    }
}

#[test]
fn keep_within_beyond_a_century_is_refused() {
    for within in [
        "300000y",
        "200000000d",
        "4294967295y",
        "101y",
        "36526d",
        "5218w",
    ] {
        let w = World::with_sources(&[(
            "data",
            "client-data",
            &format!("retention = {{ keep_within = \"{within}\" }}"),
        )]);
        refused(&w, "source[0].retention.keep_within");
    }
}

#[test]
fn keep_counts_beyond_the_bound_are_refused() {
    let w = World::with_sources(&[(
        "data",
        "client-data",
        "retention = { keep_daily = 4000000000 }",
    )]);
    refused(&w, "source[0].retention.keep_daily");
}

#[test]
fn metrics_port_zero_is_refused() {
    let w = World::configured(
        "",
        &[("data", "client-data", "")],
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    refused(&w, "metrics.listen");
}

#[test]
fn the_largest_accepted_values_prune_without_panic_at_extreme_times() {
    let w = World::configured(
        "activity_log_days = 36500",
        &[
            ("voice", "voice", "retention = { keep_within = \"100y\" }"),
            (
                "data",
                "client-data",
                "retention = { keep_within = \"1200m\", keep_daily = 1000000 }",
            ),
        ],
        "[contracts]\ndefault_voice_retention_days = 36500\n",
    );
    w.ok(&["config", "check"]);
    put(&w.src(), "acme/voice/a.opus", b"recording");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-01T00:00:00Z"]);
    w.ok(&["snapshot", "--time", "0001-01-01T00:00:00Z"]);
    w.ok(&["snapshot", "--time", "2100-01-01T00:00:00Z"]);
    let data_at_end = [
        "snapshot",
        "--source",
        "data",
        "--time",
        "9999-12-31T23:59:59Z",
    ];
    w.ok(&data_at_end);
    // The recording (mtime now, B = 36865 days) is in the 2026 and 2100
    // voice snapshots (listed once); keep_within 100y of 2100 keeps those,
    // not 0001.
    for (now, expired) in [("0001-01-01T00:00:00Z", 0), ("9999-12-31T23:59:59Z", 1)] {
        let plan = w.json(&["prune", "--dry-run", "--now", now]);
        let snaps = plan["snapshots"].as_array().unwrap();
        assert_eq!(snaps.len(), 7, "{plan}");
        let kept = |source: &str| -> Vec<&str> {
            snaps
                .iter()
                .filter(|s| s["source"] == source && s["keep"] == true)
                .map(|s| s["time"].as_str().unwrap())
                .collect()
        };
        assert_eq!(kept("data").len(), 4, "{plan}");
        assert_eq!(
            kept("voice"),
            ["2100-01-01T00:00:00Z", "2026-11-01T00:00:00Z"],
            "{plan}"
        );
        let items = plan["expired_items"].as_array().unwrap();
        assert_eq!(items.len(), expired, "{plan}");
    }
    w.ok(&["check", "--read-data"]);
}

#[test]
fn a_recording_dated_beyond_2262_is_kept_not_panicked_on() {
    let w = voice_world("[contracts]\ndefault_voice_retention_days = 30\n");
    put(&w.src(), "acme/voice/future.opus", b"from the future");
    put(&w.src(), "acme/voice/now.opus", b"recorded now");
    let far = DateTime::parse_from_rfc3339("2400-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let f = std::fs::File::options()
        .write(true)
        .open(w.src().join("acme/voice/future.opus"))
        .unwrap();
    f.set_modified(SystemTime::from(far)).unwrap();
    drop(f);
    let got: DateTime<Utc> = std::fs::metadata(w.src().join("acme/voice/future.opus"))
        .unwrap()
        .modified()
        .unwrap()
        .into();
    assert_eq!(got, far, "the file system must hold a year-2400 mtime");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-01T00:00:00Z"]);
    let plan = w.json(&["prune", "--dry-run", "--now", "2300-01-01T00:00:00Z"]);
    let expired: Vec<&str> = plan["expired_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(expired, ["acme/voice/now.opus"], "{plan}");
    w.ok(&["check", "--read-data"]);
}
