//! Acceptance: a prune that dies at any step (a failpoint aborts the process
//! between two steps of the commit order, or SIGKILL at a random moment)
//! leaves every kept snapshot restorable byte-identical, and after the next
//! prune `check --read-data` passes. The same for a snapshot that dies
//! between its packs, its index and its manifest.

mod common;
use common::*;

use chrono::{DateTime, Duration, Utc};
use std::process::Command;
use std::time::SystemTime;

const POINTS: &[&str] = &[
    "prune-after-forget",
    "prune-reclaim-after-index",
    "prune-reclaim-before-pack-deletion",
    "prune-reclaim-mid-pack-deletion",
    "prune-before-manifests",
    "prune-after-one-manifest",
    "rewrite-after-new-manifest",
    "sweep-before-index",
    "sweep-after-new-index",
    "sweep-before-pack-deletion",
    "sweep-mid-pack-deletion",
    "prune-before-log-cleanup",
];

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Twenty daily snapshots of client data (a stable file per day beside a
/// file rewritten daily, so forgotten days leave partly used packs to
/// repack) and of voice recordings (some expiring).
fn build() -> World {
    let w = World::configured(
        "",
        &[
            (
                "data",
                "client-data",
                "include = [\"*/db/**\"]\nretention = { keep_daily = 5 }",
            ),
            ("voice", "voice", "include = [\"*/voice/**\"]"),
        ],
        "[contracts]\ndefault_voice_retention_days = 10\n",
    );
    let mut rng = Rng::new(99);
    w.ok(&["init"]);
    for day in 0..20 {
        let t = t0() + Duration::days(day);
        put(
            &w.src(),
            &format!("acme/db/stable-{day}.sql"),
            &rng.bytes(60_000),
        );
        put(&w.src(), "acme/db/daily.sql", &rng.bytes(400_000));
        let rec = format!("acme/voice/{day}.opus");
        put(&w.src(), &rec, &rng.bytes(30_000));
        let f = std::fs::File::options()
            .write(true)
            .open(w.src().join(&rec))
            .unwrap();
        f.set_modified(SystemTime::from(t - Duration::hours(1)))
            .unwrap();
        w.ok(&["snapshot", "--time", &t.to_rfc3339()]);
    }
    w
}

fn prune_now() -> String {
    (t0() + Duration::days(20)).to_rfc3339()
}

/// Every listed snapshot's files verify (`check --read-data` compares each
/// file with the SHA-256 recorded at backup time), and the items the
/// prune must keep restore byte-identical to the source.
fn assert_kept_snapshots_restore(w: &World, label: &str) {
    let out = w.offsite(&["check", "--read-data"]);
    assert!(
        out.status.success(),
        "{label}: check --read-data: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let to = w.path(&format!("restore-{label}"));
    for item in [
        "acme/db/daily.sql",
        "acme/db/stable-0.sql",
        "acme/db/stable-19.sql",
        "acme/voice/19.opus",
    ] {
        let out = w.offsite(&[
            "restore",
            "--item",
            item,
            "--to",
            to.to_str().unwrap(),
            "--force",
        ]);
        assert!(
            out.status.success(),
            "{label}: restore {item}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            std::fs::read(to.join(item)).unwrap() == std::fs::read(w.src().join(item)).unwrap(),
            "{label}: {item} differs"
        );
    }
}

#[test]
fn prune_killed_between_any_two_steps_leaves_kept_snapshots_whole() {
    for point in POINTS {
        let w = build();
        let out = Command::new(env!("CARGO_BIN_EXE_offsite"))
            .arg("--config")
            .arg(&w.config)
            .args(["prune", "--really-at-now", "--now", &prune_now()])
            .env("OFFSITE_FAILPOINT", point)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: the prune must have been stopped there"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(point),
            "{point} reached"
        );
        assert_kept_snapshots_restore(&w, point);
        let report = w.json(&["prune", "--really-at-now", "--now", &prune_now()]);
        assert_kept_snapshots_restore(&w, &format!("{point}-after-prune"));
        let snaps = w.json(&["snapshots"])["snapshots"].take();
        let data = snaps
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["source"] == "data")
            .count();
        assert_eq!(
            data, 5,
            "{point}: keep_daily = 5 holds after the next prune ({report})"
        );
        let again = w.json(&["prune", "--really-at-now", "--now", &prune_now()]);
        assert_eq!(
            again["packs_deleted"], 0,
            "{point}: nothing left to collect"
        );
    }
}

#[test]
fn prune_finishes_with_repacking_and_voice_rewrites() {
    let w = build();
    let report = w.json(&["prune", "--really-at-now", "--now", &prune_now()]);
    // 15 client-data snapshots past keep_daily = 5, 17 voice snapshots past the default keep_last = 3
    assert_eq!(report["snapshots_removed"], 15 + 17);
    assert!(report["packs_repacked"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["snapshots_rewritten"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(!report["expired_items"].as_array().unwrap().is_empty());
    assert_kept_snapshots_restore(&w, "clean");
}

#[test]
fn sigkill_at_random_moments_during_prune() {
    for delay_ms in [5u64, 15, 30, 60] {
        let w = build();
        let mut child = Command::new(env!("CARGO_BIN_EXE_offsite"))
            .arg("--config")
            .arg(&w.config)
            .args(["prune", "--really-at-now", "--now", &prune_now()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        assert_kept_snapshots_restore(&w, &format!("kill-{delay_ms}"));
        w.ok(&["prune", "--really-at-now", "--now", &prune_now()]);
        assert_kept_snapshots_restore(&w, &format!("kill-{delay_ms}-after"));
    }
}

#[test]
fn snapshot_killed_before_its_index_or_manifest_lists_nothing_partial() {
    for point in ["snapshot-before-index", "snapshot-before-manifest"] {
        let w = World::new();
        put(&w.src(), "acme/db/dump.sql", &Rng::new(5).text(300_000));
        w.ok(&["init"]);
        let out = Command::new(env!("CARGO_BIN_EXE_offsite"))
            .arg("--config")
            .arg(&w.config)
            .arg("snapshot")
            .env("OFFSITE_FAILPOINT", point)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            w.json(&["snapshots"])["snapshots"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{point}: no partial snapshot"
        );
        w.ok(&["check", "--read-data"]);
        let next = w.json(&["snapshot"]);
        // Orphaned packs (no index file lists them) are adopted by the next
        // snapshot (see ops::live_index), not uploaded again.
        assert_eq!(next["bytes_added"], 0, "{point}: {next}");
        w.ok(&["check", "--read-data"]);
        // Past the grace period (2 h) prune may collect unindexed packs, but
        // these are indexed and referenced now: nothing is deleted.
        for pack in w.packs() {
            std::fs::File::options()
                .write(true)
                .open(pack)
                .unwrap()
                .set_modified(
                    std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 3600),
                )
                .unwrap();
        }
        let report = w.json(&["prune"]);
        assert_eq!(report["packs_deleted"], 0, "{point}: {report}");
        w.ok(&["check", "--read-data"]);
    }
}
