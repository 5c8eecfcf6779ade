//! Prune and snapshot exclude each other through repository locks (stale
//! locks are cleared), and restore refuses client data past the platform's
//! data retention unless forced.

mod common;
use common::*;

use chrono::{Duration, Utc};

fn write_lock(w: &World, host: &str, pid: u32, kind: &str, age: Duration) {
    // Written from this boot and PID namespace: a dead PID of this host is evidence.
    let info = serde_json::json!({
        "host": host, "pid": pid, "kind": kind, "operation": "prune",
        "time": (Utc::now() - age).to_rfc3339(),
        "boot_id": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim(),
        "pid_namespace": std::fs::read_link("/proc/self/ns/pid").unwrap().to_str().unwrap(),
    });
    let key = format!("locks/{}", "ab".repeat(32));
    // Sealed as a lock is, through the crate.
    w.open_repo()
        .write_lock_plaintext(&key, info.to_string().as_bytes())
        .unwrap();
    // Age is judged by the store's last-modified time (the file's mtime here).
    std::fs::File::options()
        .write(true)
        .open(w.repo().join(key))
        .unwrap()
        .set_modified((Utc::now() - age).into())
        .unwrap();
}

#[test]
fn a_live_exclusive_lock_blocks_snapshot_and_prune_without_harm() {
    let w = World::new();
    put(&w.src(), "a/b.txt", b"hello");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    write_lock(&w, "other-host", 1, "exclusive", Duration::minutes(1));
    let before = w.data_objects();
    for args in [&["snapshot"][..], &["prune"][..], &["check"][..]] {
        let out = w.offsite(args);
        let line = one_line_error(&out);
        assert!(
            line.contains("locked by prune on other-host"),
            "{args:?}: {line}"
        );
    }
    assert_eq!(w.data_objects(), before, "nothing written or deleted");
    // Reading needs no lock.
    w.ok(&[
        "restore",
        "--item",
        "a/b.txt",
        "--to",
        w.path("out").to_str().unwrap(),
    ]);
    w.ok(&["snapshots"]);
}

#[test]
fn a_shared_lock_blocks_prune_but_not_another_snapshot() {
    let w = World::new();
    put(&w.src(), "a/b.txt", b"hello");
    w.ok(&["init"]);
    write_lock(&w, "other-host", 1, "shared", Duration::minutes(1));
    w.ok(&["snapshot"]);
    let out = w.offsite(&["prune"]);
    assert!(one_line_error(&out).contains("locked by"));
}

#[test]
fn stale_locks_are_cleared() {
    let w = World::new();
    put(&w.src(), "a/b.txt", b"hello");
    w.ok(&["init"]);
    // Old lock of another host, then a lock of this host whose process is gone.
    write_lock(&w, "other-host", 1, "exclusive", Duration::hours(2));
    w.ok(&["snapshot"]);
    write_lock(
        &w,
        "test-host",
        4_000_000,
        "exclusive",
        Duration::minutes(1),
    );
    w.ok(&["prune"]);
    assert!(
        relative_files(&w.repo().join("locks")).is_empty(),
        "no lock left behind"
    );
}

#[test]
fn client_data_past_the_platform_retention_needs_force() {
    let w = World::configured(
        "data_retention_months = 12",
        &[("data", "client-data", "")],
        "",
    );
    put(&w.src(), "acme/emails/old.eml", b"old mail");
    put(&w.src(), "acme/emails/new.eml", b"new mail");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(400 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(w.src().join("acme/emails/old.eml"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let to = w.path("out");
    let out = w.offsite(&[
        "restore",
        "--item",
        "acme/emails/old.eml",
        "--to",
        to.to_str().unwrap(),
    ]);
    let line = one_line_error(&out);
    assert!(
        line.contains("12 months") && line.contains("--force"),
        "{line}"
    );
    assert!(!to.join("acme/emails/old.eml").exists());
    w.ok(&[
        "restore",
        "--item",
        "acme/emails/new.eml",
        "--to",
        to.to_str().unwrap(),
    ]);
    w.ok(&[
        "restore",
        "--item",
        "acme/emails/old.eml",
        "--to",
        to.to_str().unwrap(),
        "--force",
        "--reason",
        "legal hold",
    ]);
    assert_eq!(
        std::fs::read(to.join("acme/emails/old.eml")).unwrap(),
        b"old mail"
    );
    let log = w.activity();
    let restores: Vec<&serde_json::Value> =
        log.iter().filter(|e| e["operation"] == "restore").collect();
    assert_eq!(restores.len(), 3);
    assert_eq!(restores[0]["outcome"], "failed");
    assert_eq!(restores[2]["details"]["reason"], "legal hold");
    assert_eq!(restores[2]["details"]["forced"], true);
}
