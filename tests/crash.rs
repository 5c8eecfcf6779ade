//! Acceptance: `offsite snapshot` killed with SIGKILL at several points leaves
//! no partial snapshot, a repository that passes `check --read-data`, and the
//! next snapshot completes.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigkill_during_snapshot_leaves_a_readable_repository() {
    let w = World::new();
    let mut rng = Rng::new(77);
    for i in 0..12 {
        put(
            &w.src(),
            &format!("t{}/voice/rec-{i}.opus", i % 3),
            &rng.bytes(12 << 20),
        );
    }
    for i in 0..3000 {
        put(
            &w.src(),
            &format!("t{}/chats/{i}.json", i % 3),
            &rng.text(6000),
        );
    }
    w.ok(&["init"]);
    // A first complete snapshot, so later kills also hit incremental runs.
    put(&w.src(), "t0/db/dump.sql", &rng.text(30 << 20));
    let base = w.json(&["snapshot"]);
    // New data so the next runs have real work to do.
    for i in 0..8 {
        put(
            &w.src(),
            &format!("t1/voice/new-{i}.opus"),
            &rng.bytes(12 << 20),
        );
    }
    let mut killed_mid_run = 0;
    for delay_ms in [20u64, 80, 200, 400, 700] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_offsite"))
            .arg("--config")
            .arg(&w.config)
            .arg("snapshot")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_mid_run += 1;
        }
        let status = child.wait().unwrap();
        eprintln!(
            "delay {delay_ms} ms: {status:?} after {:?}",
            started.elapsed()
        );
        let list = w.json(&["snapshots"])["snapshots"].take();
        for s in list.as_array().unwrap() {
            assert!(
                s["items"].as_u64().unwrap() >= base["items"].as_u64().unwrap(),
                "no partial snapshot: {s}"
            );
        }
        w.ok(&["check", "--read-data"]);
        if status.success() {
            break; // the machine was faster than the delays; later ones would not kill
        }
    }
    assert!(
        killed_mid_run >= 2,
        "the test must kill snapshots mid-run (killed {killed_mid_run})"
    );
    let last = w.json(&["snapshot"]);
    assert_eq!(
        last["items"].as_u64().unwrap(),
        base["items"].as_u64().unwrap() + 8
    );
    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "t1/voice/new-7.opus",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(to.join("t1/voice/new-7.opus")).unwrap()
            == std::fs::read(w.src().join("t1/voice/new-7.opus")).unwrap()
    );
    w.ok(&["check", "--read-data"]);
}
