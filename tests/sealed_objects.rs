//! Acceptance (issue 11, sealed metadata): manifests, index files, locks and
//! activity-log entries are sealed under the repository's metadata key, and
//! no object key names a host, source or operation.
//!
//! * Markers planted as the host name, the source name and an operation name
//!   appear in no object key and in no stored byte of those objects (local
//!   directory here; one run on the Ceph gateway), while every command still
//!   reads them back.
//! * One flipped byte anywhere in a manifest, an index file, a lock or a log
//!   entry (a sample of offsets, the first and last among them) is reported
//!   like corruption, and nothing is deleted.

mod common;
use common::*;

use offsite::clock::SystemClock;
use offsite::repo::store::{Location, Store};

const HOST: &str = "hostmarkerq7z2";
const SOURCE: &str = "sourcemarkerx94";
const OPERATION: &str = "opmarkerk38w";

/// A world whose host and source are named by the markers.
fn marked(w: World) -> World {
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("host = \"test-host\"", &format!("host = \"{HOST}\""))
        .replace("name = \"data\"", &format!("name = \"{SOURCE}\""));
    std::fs::write(&w.config, text).unwrap();
    w
}

/// Objects whose content is sealed metadata (packs are the blob layer's).
fn is_metadata(key: &str) -> bool {
    ["snapshots/", "index/", "locks/", "log/"]
        .iter()
        .any(|p| key.starts_with(p))
}

/// Every marker (and operation name) found in `key` or, for metadata, `bytes`.
fn leaks(key: &str, bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for marker in [HOST, SOURCE, OPERATION, "restore-test"] {
        let inside =
            is_metadata(key) && bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
        if key.contains(marker) || inside {
            found.push(format!("{marker} in {key}"));
        }
    }
    found
}

/// Snapshot, restore test, and a lock held (in process) for the marker
/// operation; `scan` looks at every object meanwhile.
fn exercise(w: &World, scan: &dyn Fn() -> (usize, Vec<String>)) {
    let init = w.offsite(&["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    w.ok(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    w.ok(&["snapshot", "--time", "2026-11-21T02:00:00Z"]);
    w.ok(&["restore-test", "--seed", "1"]);
    let repo = w.open_repo();
    let _lock = repo.shared(HOST, OPERATION, &SystemClock).unwrap();
    let (scanned, leaks) = scan();
    assert!(leaks.is_empty(), "{leaks:#?}");
    assert!(
        scanned >= 6,
        "manifests, index, lock and log entries scanned: {scanned}"
    );
    // Everything still reads back by name.
    let listed = w.json(&["snapshots", "--source", SOURCE]);
    let snaps = listed["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2, "{listed}");
    assert!(snaps
        .iter()
        .all(|s| s["source"] == SOURCE && s["host"] == HOST));
    let log = w.activity();
    assert!(log
        .iter()
        .any(|e| e["operation"] == "restore-test" && e["host"] == HOST));
    let only = w.json(&["log", "--operation", "restore-test"]);
    assert_eq!(only.as_array().unwrap().len(), 1, "{only}");
    let out = w.offsite(&["prune"]);
    assert!(
        one_line_error(&out).contains(&format!("locked by {OPERATION} on {HOST}")),
        "the sealed lock still names its holder"
    );
}

#[test]
fn no_name_in_any_key_or_metadata_byte_on_the_local_store() {
    let w = marked(World::new());
    put(&w.src(), "acme/db/dump.sql", b"one dump\n");
    put(&w.src(), "acme/emails/1.eml", b"one mail\n");
    let repo_dir = w.repo();
    exercise(&w, &|| {
        let mut scanned = 0;
        let mut found = Vec::new();
        walk_files(&repo_dir, &mut |p| {
            let key = p
                .strip_prefix(&repo_dir)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            scanned += usize::from(is_metadata(&key));
            found.extend(leaks(&key, &std::fs::read(p).unwrap()));
        });
        (scanned, found)
    });
}

#[test]
fn no_name_in_any_key_or_metadata_byte_on_ceph() {
    let bucket = new_bucket("sealed");
    let w = marked(World::s3(&bucket, ""));
    put(&w.src(), "acme/db/dump.sql", b"one dump\n");
    put(&w.src(), "acme/voice/2026/11/01/call.opus", b"one call\n");
    let store = Store::connect(&Location::S3(s3_location(&bucket, "offsite")), false).unwrap();
    exercise(&w, &|| {
        let mut scanned = 0;
        let mut found = Vec::new();
        for (key, _) in store.list("").unwrap() {
            scanned += usize::from(is_metadata(&key));
            found.extend(leaks(&key, &store.get(&key).unwrap()));
        }
        (scanned, found)
    });
}

/// Offsets to flip in an object of `len` bytes: the first, the last, and a
/// spread between (the salt, the sealed body, the tag).
fn offsets(len: usize) -> Vec<usize> {
    let mut at = vec![
        0,
        1,
        15,
        16,
        17,
        len / 3,
        len / 2,
        len - 17,
        len - 16,
        len - 1,
    ];
    at.retain(|&i| i < len);
    at.sort_unstable();
    at.dedup();
    at
}

fn flipped(path: &std::path::Path, at: usize, f: impl FnOnce()) {
    let good = std::fs::read(path).unwrap();
    let mut bad = good.clone();
    bad[at] ^= 0x01;
    std::fs::write(path, &bad).unwrap();
    f();
    assert!(path.exists(), "{} is never deleted", path.display());
    std::fs::write(path, good).unwrap();
}

fn one_of(w: &World, dir: &str) -> (String, std::path::PathBuf) {
    let mut all = Vec::new();
    walk_files(&w.repo().join(dir), &mut |p| all.push(p.to_path_buf()));
    let path = all.pop().unwrap_or_else(|| panic!("no object under {dir}"));
    let key = path
        .strip_prefix(w.repo())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (key, path)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_flipped_byte_in_any_sealed_object_is_reported_and_nothing_is_deleted() {
    let w = World::new();
    put(&w.src(), "acme/db/dump.sql", b"one dump\n");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    w.ok(&["restore-test", "--seed", "1"]);
    let before: Vec<String> = w.objects().into_iter().map(|(k, _)| k).collect();

    let (manifest, path) = one_of(&w, "snapshots");
    for at in offsets(std::fs::metadata(&path).unwrap().len() as usize) {
        flipped(&path, at, || {
            let out = w.offsite(&["check"]);
            assert_eq!(out.status.code(), Some(1), "manifest byte {at}");
            assert!(
                stdout(&out).contains(&manifest),
                "byte {at}: {}",
                stdout(&out)
            );
            let out = w.offsite(&["snapshots"]);
            assert!(
                stderr(&out).contains(&manifest),
                "skipped and named: {}",
                stderr(&out)
            );
        });
    }

    let (index, path) = one_of(&w, "index");
    for at in offsets(std::fs::metadata(&path).unwrap().len() as usize) {
        flipped(&path, at, || {
            let out = w.offsite(&["check"]);
            assert_eq!(out.status.code(), Some(1), "index byte {at}");
            assert!(stdout(&out).contains(&index), "byte {at}: {}", stdout(&out));
        });
    }

    let (entry, path) = one_of(&w, "log");
    for at in offsets(std::fs::metadata(&path).unwrap().len() as usize) {
        flipped(&path, at, || {
            let out = w.offsite(&["log"]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(stderr(&out).contains(&entry), "byte {at}: {}", stderr(&out));
        });
    }

    // A lock (sealed while held in process; damaged, it is taken for a live
    // lock of an unknown holder until it turns stale).
    let repo = w.open_repo();
    let lock = repo.shared("test-host", "check", &SystemClock).unwrap();
    let (lock_key, path) = one_of(&w, "locks");
    let held = std::fs::read(&path).unwrap();
    drop(lock);
    for at in offsets(held.len()) {
        let mut bad = held.clone();
        bad[at] ^= 0x01;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bad).unwrap();
        let out = w.offsite(&["snapshot"]);
        let line = one_line_error(&out);
        assert!(
            line.contains("unreadable lock") && line.contains(&lock_key),
            "byte {at}: {line}"
        );
        assert!(
            path.exists(),
            "the lock is not removed while it may be live"
        );
    }
    let out = w.json(&["unlock"]);
    assert_eq!(out["kept"].as_array().unwrap().len(), 1, "{out}");
    w.ok(&["unlock", "--force"]);
    assert!(!path.exists());
    let after: Vec<String> = w.objects().into_iter().map(|(k, _)| k).collect();
    let lost: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
    assert!(lost.is_empty(), "nothing deleted: {lost:?}");
    w.ok(&["check", "--read-data"]);
}
