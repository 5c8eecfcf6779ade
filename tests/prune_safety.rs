//! Prune beside a running snapshot, duplicate manifests, and a full store
//! (issue 8, findings 4, 5 and 9):
//!
//! * a prune in another PID namespace (same host name) must not take a
//!   running snapshot's lock for stale and delete its packs;
//! * a snapshot whose packs vanished before its manifest fails loudly;
//! * unindexed young packs survive even a prune that runs after an operator
//!   forced the lock away (grace period);
//! * a lock dated in the future blocks only while it is refreshed;
//!   `offsite unlock` removes stale locks, `--force` the rest;
//! * duplicate manifests of one snapshot count once, are cleaned, and an
//!   old id keeps resolving;
//! * prune on a full repository frees space before it writes.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

/// A snapshot stopped at a pause point until released.
struct Paused {
    child: Child,
    file: PathBuf,
}

impl Paused {
    fn start(w: &World, point: &str) -> Self {
        let file = w.path(&format!("paused-at-{point}"));
        let child = Command::new(env!("CARGO_BIN_EXE_offsite"))
            .arg("--config")
            .arg(&w.config)
            .args(["--json", "snapshot"])
            .env("OFFSITE_PAUSEPOINT", point)
            .env("OFFSITE_PAUSE_FILE", &file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start snapshot");
        let mut child = child;
        wait_until(
            Duration::from_secs(120),
            &format!("the snapshot to pause at {point}"),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
                    panic!("the snapshot ended ({status}) before pausing at {point}: {err}");
                }
                file.exists()
            },
        );
        assert!(
            !relative_files(&w.repo().join("locks")).is_empty(),
            "the paused snapshot holds a lock"
        );
        Paused { child, file }
    }

    fn release(self) -> Output {
        std::fs::remove_file(&self.file).unwrap();
        self.child.wait_with_output().unwrap()
    }
}

fn pack_set(w: &World) -> Vec<String> {
    relative_files(&w.repo().join("packs"))
}

fn restore_and_compare(w: &World, item: &str, snapshot: Option<&str>, expected: &[u8]) {
    let to = w.path(&format!("out-{}", snapshot.unwrap_or("newest")));
    let mut args = vec!["restore", "--item", item, "--to", to.to_str().unwrap()];
    if let Some(id) = snapshot {
        args.extend(["--snapshot", id]);
    }
    w.ok(&args);
    assert_eq!(std::fs::read(to.join(item)).unwrap(), expected, "{item}");
}

fn set_mtime(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[test]
fn prune_in_another_pid_namespace_does_not_break_a_running_snapshots_lock() {
    let w = World::new();
    let data = Rng::new(41).bytes(3 << 20);
    put(&w.src(), "acme/db/dump.bin", &data);
    w.ok(&["init"]);
    let paused = Paused::start(&w, "snapshot-before-index");
    let packs = pack_set(&w);
    assert!(!packs.is_empty(), "the snapshot wrote its packs");

    // Same host name, same boot, other PID namespace: the snapshot's PID is
    // not visible there, which must not make its lock look stale.
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_offsite"))
        .arg("--config")
        .arg(&w.config)
        .arg("prune")
        .output()
        .expect("run unshare");
    let line = one_line_error(&out);
    assert!(line.contains("locked by snapshot on test-host"), "{line}");
    assert_eq!(pack_set(&w), packs, "the snapshot's packs are untouched");

    let out = paused.release();
    assert!(
        out.status.success(),
        "snapshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.ok(&["check", "--read-data"]);
    restore_and_compare(&w, "acme/db/dump.bin", None, &data);
}

#[test]
fn a_snapshot_whose_packs_vanish_before_its_manifest_fails_loudly() {
    let w = World::new();
    put(&w.src(), "acme/db/dump.bin", &Rng::new(42).bytes(2 << 20));
    w.ok(&["init"]);
    let paused = Paused::start(&w, "snapshot-before-manifest");
    // What a prune that ignored the lock would have done.
    for pack in w.packs() {
        std::fs::remove_file(pack).unwrap();
    }
    let out = paused.release();
    assert!(
        !out.status.success(),
        "a snapshot referencing deleted packs must not exit 0"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not committed") && err.contains("packs/"),
        "{err}"
    );
    assert!(w.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .is_empty());
    // The index still names the lost packs; rebuilding it from the packs heals that.
    w.ok(&["rebuild-index"]);
    w.ok(&["snapshot"]);
    w.ok(&["check", "--read-data"]);
}

#[test]
fn unindexed_young_packs_survive_prune_even_after_a_forced_unlock() {
    let w = World::new();
    let data = Rng::new(43).bytes(2 << 20);
    put(&w.src(), "acme/db/dump.bin", &data);
    w.ok(&["init"]);

    // An unindexed pack: young, it may belong to a running snapshot; past
    // the grace period it is a crash leftover and collected.
    let key = format!("packs/ee/{}", "ee".repeat(32));
    let leftover = w.repo().join(&key);
    put(&w.repo(), &key, b"leftover");
    w.ok(&["prune"]);
    assert!(
        leftover.exists(),
        "a young leftover waits for the grace period"
    );
    set_mtime(&leftover, Duration::from_secs(3 * 3600));
    let report = w.json(&["prune"]);
    assert_eq!(report["packs_deleted"], 1, "{report}");
    assert!(!leftover.exists());

    // An operator forced the running snapshot's lock away: the prune that
    // follows still keeps the snapshot's packs (not indexed yet, young).
    let paused = Paused::start(&w, "snapshot-before-index");
    let packs = pack_set(&w);
    let unlocked = w.json(&["unlock", "--force"]);
    assert_eq!(
        unlocked["removed"].as_array().unwrap().len(),
        1,
        "{unlocked}"
    );
    let report = w.json(&["prune"]);
    assert_eq!(report["packs_deleted"], 0, "{report}");
    assert_eq!(pack_set(&w), packs, "young unindexed packs are kept");
    let out = paused.release();
    assert!(
        out.status.success(),
        "snapshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.ok(&["check", "--read-data"]);
    restore_and_compare(&w, "acme/db/dump.bin", None, &data);
    let forced = w
        .activity()
        .into_iter()
        .find(|e| e["operation"] == "unlock")
        .expect("the forced unlock is logged");
    assert_eq!(forced["details"]["force"], true);
}

fn write_lock(w: &World, name: &str, time: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let info = serde_json::json!({
        "host": "other-host", "pid": 1, "kind": "exclusive", "operation": "prune",
        "time": time.to_rfc3339(),
    });
    let key = format!("locks/{}", name.repeat(32));
    // Sealed as a lock is, through the crate.
    w.open_repo()
        .write_lock_plaintext(&key, info.to_string().as_bytes())
        .unwrap();
    w.repo().join(key)
}

#[test]
fn a_lock_dated_in_the_future_blocks_only_while_refreshed_and_unlock_clears_locks() {
    let w = World::new();
    put(&w.src(), "a/b.txt", b"hello");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let next_year = chrono::Utc::now() + chrono::Duration::days(365);

    // Written by a clock a year ahead, not refreshed for two hours: stale.
    let lock = write_lock(&w, "aa", next_year);
    set_mtime(&lock, Duration::from_secs(2 * 3600));
    w.ok(&["prune"]);
    assert!(!lock.exists(), "the stale future-dated lock was removed");

    // Refreshed just now: it holds, and the message says who and what to do.
    let lock = write_lock(&w, "bb", next_year);
    let line = one_line_error(&w.offsite(&["prune"]));
    assert!(
        line.contains("locked by prune on other-host") && line.contains("offsite unlock --force"),
        "{line}"
    );
    let stale = write_lock(&w, "cc", chrono::Utc::now());
    set_mtime(&stale, Duration::from_secs(2 * 3600));
    let report = w.json(&["unlock"]);
    assert_eq!(report["removed"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["kept"].as_array().unwrap().len(), 1, "{report}");
    assert!(
        !stale.exists() && lock.exists(),
        "only the stale lock is removed"
    );
    let text = w.ok(&["unlock"]);
    assert!(text.contains("unlock --force"), "{text}");
    assert!(lock.exists());
    let report = w.json(&["unlock", "--force"]);
    assert_eq!(report["removed"][0]["host"], "other-host", "{report}");
    assert!(!lock.exists());
    w.ok(&["prune"]);
    let unlocks: Vec<serde_json::Value> = w
        .activity()
        .into_iter()
        .filter(|e| e["operation"] == "unlock")
        .collect();
    assert_eq!(unlocks.len(), 3, "every unlock is logged");
    w.ok(&["check", "--read-data"]);
}

fn snapshot_ids(w: &World) -> Vec<String> {
    w.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn duplicate_manifests_left_by_a_killed_rewrite_count_once_and_old_ids_resolve() {
    let w = World::with_sources(&[("data", "client-data", "retention = { keep_last = 3 }")]);
    let keep = Rng::new(44).bytes(200 << 10);
    put(&w.src(), "acme/keep.bin", &keep);
    put(&w.src(), "acme/gone.bin", &Rng::new(45).bytes(2 << 20));
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-01T02:00:00Z"]);
    std::fs::remove_file(w.src().join("acme/gone.bin")).unwrap();
    for (day, seed) in [(2, 46), (3, 47), (4, 48)] {
        put(
            &w.src(),
            &format!("acme/day{day}.bin"),
            &Rng::new(seed).bytes(4096),
        );
        w.ok(&["snapshot", "--time", &format!("2026-11-0{day}T02:00:00Z")]);
    }
    let before = snapshot_ids(&w);
    assert_eq!(before.len(), 4);

    // The first snapshot goes; repacking keep.bin rewrites the other three.
    // Die right after the first rewrite was written, before its original went.
    let out = w.offsite_env(
        &["prune"],
        &[("OFFSITE_FAILPOINT", "rewrite-after-new-manifest")],
    );
    assert!(!out.status.success(), "the prune was killed");
    let now = snapshot_ids(&w);
    assert_eq!(
        now.len(),
        4,
        "one snapshot forgotten, one rewritten twice listed: {now:?}"
    );

    let plan = w.json(&["prune", "--dry-run"]);
    let decisions = plan["snapshots"].as_array().unwrap();
    assert_eq!(
        decisions.len(),
        3,
        "one decision per logical snapshot: {plan}"
    );
    assert!(
        decisions.iter().all(|d| d["keep"] == true),
        "keep_last 3 keeps all three: {plan}"
    );
    assert_eq!(plan["duplicates"].as_array().unwrap().len(), 1, "{plan}");

    let report = w.json(&["prune"]);
    assert_eq!(report["snapshots_removed"], 0, "{report}");
    let after = snapshot_ids(&w);
    assert_eq!(after.len(), 3, "the older copy is deleted: {after:?}");
    w.ok(&["check", "--read-data"]);
    // Every id `snapshots` ever showed still resolves, to its rewrite.
    let shown: std::collections::BTreeSet<&String> = before[..3].iter().chain(&now).collect();
    assert_eq!(shown.len(), 4, "three original ids and one rewrite");
    for old in shown {
        restore_and_compare(&w, "acme/keep.bin", Some(&old[..12]), &keep);
    }
    let out = w.offsite(&[
        "restore",
        "--item",
        "acme/keep.bin",
        "--snapshot",
        &before[3][..12],
        "--to",
        w.path("x").to_str().unwrap(),
    ]);
    // Issue 12: an id that names no snapshot says so, naming the newest.
    let line = one_line_error(&out);
    assert!(
        line.contains(&format!("no snapshot {}", &before[3][..12]))
            && line.contains("the newest is"),
        "the forgotten snapshot is gone: {line}"
    );
}

#[test]
fn a_duplicate_manifest_is_counted_once_by_keep_last_and_cleaned() {
    let w = World::with_sources(&[("data", "client-data", "retention = { keep_last = 3 }")]);
    w.ok(&["init"]);
    for day in 1..=3 {
        put(
            &w.src(),
            &format!("acme/day{day}.txt"),
            format!("day {day}").as_bytes(),
        );
        w.ok(&["snapshot", "--time", &format!("2026-11-0{day}T02:00:00Z")]);
    }
    // The copy a prune killed between writing a rewrite and deleting the
    // original leaves: same snapshot, new id, the old id in its history.
    let ids = snapshot_ids(&w);
    let oldest = ids[2].clone();
    // (Manifests are sealed: the copy is made through the crate.)
    let repo = w.open_repo();
    let original = repo
        .list_snapshots(Some("test-host"), Some("data"))
        .unwrap()
        .into_iter()
        .find(|r| r.id.to_hex() == oldest)
        .unwrap();
    let mut manifest = repo.load_snapshot(&original).unwrap();
    manifest.previous_ids = vec![original.id];
    manifest.rewritten_at = Some("2026-11-20T03:00:00Z".parse().unwrap());
    let (copy, saved) = repo.save_snapshot(&manifest).unwrap();
    let copy = copy.to_hex();
    assert_eq!(saved.time, original.time, "same snapshot, new id");
    assert_eq!(snapshot_ids(&w).len(), 4);

    let plan = w.json(&["prune", "--dry-run"]);
    let decisions = plan["snapshots"].as_array().unwrap();
    assert_eq!(decisions.len(), 3, "{plan}");
    assert!(
        decisions.iter().all(|d| d["keep"] == true),
        "keep_last 3 keeps all: {plan}"
    );
    assert_eq!(plan["duplicates"][0]["id"], oldest.as_str(), "{plan}");
    w.ok(&["prune"]);
    let after = snapshot_ids(&w);
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        after.contains(&copy) && !after.contains(&oldest),
        "{after:?}"
    );
    // The id `snapshots` showed first resolves to the rewrite.
    restore_and_compare(&w, "acme/day1.txt", Some(&oldest[..12]), b"day 1");
    w.ok(&["check", "--read-data"]);
}

/// A small tmpfs mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs (the test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }

    fn free_bytes(&self) -> u64 {
        let path = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn prune_on_a_full_repository_deletes_before_it_repacks() {
    let w = World::with_sources(&[("data", "client-data", "retention = { keep_last = 1 }")]);
    let mnt = Tmpfs::mount(w.path("mnt"), "64m");
    let repo = mnt.0.join("repo");
    let text = std::fs::read_to_string(&w.config).unwrap();
    let text = text.replace(
        &format!("file://{}", w.repo().display()),
        &format!("file://{}", repo.display()),
    );
    std::fs::write(&w.config, text).unwrap();
    w.ok(&["init"]);

    // 24 MiB, then the same file with its last half replaced: the old tail's
    // packs are wholly dead, the pack across the middle is half dead.
    let old = Rng::new(50).bytes(24 << 20);
    put(&w.src(), "acme/db/dump.bin", &old);
    w.ok(&["snapshot", "--time", "2026-11-01T02:00:00Z"]);
    let mut new = old[..12 << 20].to_vec();
    new.extend(Rng::new(51).bytes(12 << 20));
    put(&w.src(), "acme/db/dump.bin", &new);
    w.ok(&["snapshot", "--time", "2026-11-02T02:00:00Z"]);
    let plan = w.json(&["prune", "--dry-run"]);
    assert!(plan["packs_deleted"].as_u64().unwrap() > 0, "{plan}");
    assert!(plan["packs_repacked"].as_u64().unwrap() > 0, "{plan}");

    // Fill the store up to 1 MiB: no room for a repacked pack.
    let filler = mnt.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0x5a; 1 << 20];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
    }
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len.saturating_sub(1 << 20))
        .unwrap();
    let free_before = mnt.free_bytes();
    assert!(
        free_before <= 2 << 20,
        "the store is full: {free_before} bytes free"
    );

    let report = w.json(&["prune"]);
    assert_eq!(report["snapshots_removed"], 1, "{report}");
    assert!(report["packs_repacked"].as_u64().unwrap() > 0, "{report}");
    assert!(
        mnt.free_bytes() > free_before + (4 << 20),
        "prune freed space: {} -> {}",
        free_before,
        mnt.free_bytes()
    );
    w.ok(&["check", "--read-data"]);
    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "acme/db/dump.bin",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(std::fs::read(to.join("acme/db/dump.bin")).unwrap() == new);
}
