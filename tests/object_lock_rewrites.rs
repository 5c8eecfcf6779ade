//! Object Lock on what is written after a snapshot, on the Ceph gateway of
//! the test suite (`.ci/ceph`): repack copies, index files written on the
//! way, versions stacked on create-only keys, what `check --now` reports and
//! what the extensions cost. Simulated days last a few real seconds, as in
//! `tests/object_lock.rs`; `T0` is five minutes ahead, so no lock asserted
//! here ends while the test runs.

mod common;
use common::locked::*;
use common::*;

use chrono::{DateTime, Utc};
use offsite::id::ObjectId;
use offsite::repo::pack::BlobKind;
use offsite::repo::s3_lock::Version;
use offsite::repo::writer::{BlobWriter, Compress};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() + 300, 0).unwrap()
}

/// The pack holding file `name` of the newest snapshot of `source` (one
/// chunk).
fn pack_of(w: &World, source: &str, name: &str) -> ObjectId {
    let repo = w.open_repo();
    let listing = repo.load_snapshots_tolerant(None, Some(source)).unwrap();
    let (_, latest) = listing
        .readable
        .iter()
        .max_by_key(|(_, s)| s.time)
        .expect("a snapshot");
    let mut files = Vec::new();
    repo.for_each_file(&latest.tree, &mut |_, f| files.push(f))
        .unwrap();
    let file = files.iter().find(|f| f.name == name).expect("the file");
    let chunks = repo.all_chunks(&file.chunks).unwrap();
    assert_eq!(chunks.len(), 1, "{name} is one chunk");
    chunks[0].pack
}

fn findings(checked: &serde_json::Value) -> Vec<String> {
    checked["object_lock"]
        .as_array()
        .map(|a| a.iter().map(|f| f.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Regression: prune's repack copied live voice blobs into packs with no
/// expiry day and never locked them, so a recording that outlived a
/// neighbour in its pack lost its lock.
#[test]
fn repacked_voice_recordings_stay_locked_until_their_expiry_day() {
    let t0 = t0();
    let (w, name, lock) = locked_world(t0);
    let b = bucket(&name, &lock);
    let mut rng = Rng::new(41);
    // Both expire on 2030-01-03 (a 1-day contract is backed up 2 days).
    record(
        &w,
        "voice/a.opus",
        &rng.bytes(300_000),
        "2030-01-01T06:00:00Z",
    );
    record(
        &w,
        "voice/b.opus",
        &rng.bytes(300_000),
        "2030-01-01T07:00:00Z",
    );
    w.ok(&["init"]);
    let snapshot = |time: &str| w.ok(&["snapshot", "--source", "voice", "--time", time]);
    snapshot("2030-01-01T12:00:00Z");
    let first = pack_of(&w, "voice", "b.opus");
    assert_eq!(pack_of(&w, "voice", "a.opus"), first, "one expiry day");
    // Between the two expiries prune drops a.opus: half of the pack is
    // unused and b.opus is copied to a new pack. (The simulated day has
    // begun, the real lock of its start has not: T0 is ahead.)
    let report = w.json(&["prune", "--really-at-now", "--now", "2030-01-03T06:30:00Z"]);
    assert!(report["packs_repacked"].as_u64().unwrap() >= 1, "{report}");
    let copy = pack_of(&w, "voice", "b.opus");
    assert_ne!(copy, first, "b.opus was repacked");
    assert_eq!(
        retain_until(&b, &pack_key(&copy)),
        Some(lock.to_real(at("2030-01-03T00:00:00Z"))),
        "the copy of b.opus is locked until the start of its expiry day"
    );
    let checked = w.json(&["check", "--now", "2030-01-03T06:30:00Z"]);
    assert_eq!(findings(&checked), Vec::<String>::new(), "{checked}");
}

/// Regression: the index files a snapshot writes every so many packs (and
/// at checkpoints) were written unlocked, while its final index was locked.
#[test]
fn index_files_written_on_the_way_are_locked_like_the_packs() {
    let t0 = t0();
    let (w, name, lock) = locked_world(t0);
    let b = bucket(&name, &lock);
    w.ok(&["init"]);
    let repo = w.open_repo();
    let until = at("2030-01-04T00:00:00Z");
    let writer = BlobWriter::new(&repo, at("2030-01-01T12:00:00Z"))
        .with_index_every(1)
        .with_lock_until(Some(until));
    let mut rng = Rng::new(43);
    for _ in 0..3 {
        let raw = rng.bytes(5 << 20);
        writer
            .store(None, BlobKind::Data, &raw, Compress::Never)
            .unwrap();
    }
    assert!(writer.finish().unwrap().is_empty(), "every pack indexed");
    let index: Vec<Version> = versions(&b)
        .into_iter()
        .filter(|v| v.key.starts_with("index/"))
        .collect();
    assert_eq!(index.len(), 3, "one index file per pack: {index:?}");
    for v in &index {
        assert_eq!(
            retain_until(&b, &v.key),
            Some(lock.to_real(until)),
            "{}",
            v.key
        );
    }
}

/// Regression: on a versioned bucket the oldest version of a create-only
/// key is the object, but readers read the latest, and the version sweep
/// kept the latest and deleted the object once its lock ended (at once for
/// the unlocked config and keys). A version stacked later (a retry that lost
/// and could not delete its own, or a hostile writer) took the repository.
#[test]
fn readers_of_create_only_keys_read_the_version_that_won() {
    let t0 = t0();
    let (w, name, lock) = locked_world(t0);
    let b = bucket(&name, &lock);
    put(&w.src(), "data/a.txt", b"the original");
    w.ok(&["init"]);
    w.ok(&[
        "snapshot",
        "--source",
        "data",
        "--time",
        "2030-01-01T12:00:00Z",
    ]);
    let originals: Vec<Version> = versions(&b)
        .into_iter()
        .filter(|v| {
            v.key == "config" || v.key.starts_with("snapshots/") || v.key.starts_with("keys/")
        })
        .collect();
    for kind in ["config", "snapshots/", "keys/"] {
        assert!(
            originals.iter().any(|v| v.key.starts_with(kind)),
            "{kind}: {originals:?}"
        );
    }
    let store = locked_store(&name, &lock);
    for v in &originals {
        store
            .put(
                &v.key,
                bytes::Bytes::from_static(b"stacked by a writer that lost"),
            )
            .unwrap();
    }
    w.ok(&["check", "--read-data"]);
    // Index files are named by their content and read at their first
    // version too.
    let named: Vec<Version> = versions(&b)
        .into_iter()
        .filter(|v| v.key.starts_with("index/"))
        .collect();
    assert!(!named.is_empty(), "{named:?}");
    for v in &named {
        store
            .put(&v.key, bytes::Bytes::from_static(b"stacked on an index"))
            .unwrap();
    }
    w.ok(&["check", "--read-data"]);
    let originals: Vec<Version> = originals.into_iter().chain(named).collect();
    // The sweep deletes the stacked versions and keeps the objects.
    w.ok(&["prune", "--really-at-now", "--now", "2030-01-01T13:00:00Z"]);
    let after = versions(&b);
    for v in &originals {
        let left: Vec<&str> = after
            .iter()
            .filter(|a| a.key == v.key && !a.delete_marker)
            .map(|a| a.version_id.as_str())
            .collect();
        assert_eq!(left, vec![v.version_id.as_str()], "{}", v.key);
    }
    w.ok(&["check", "--read-data"]);
}

/// `check --now` reports objects locked for less than their promise, and a
/// voice pack locked past the expiry of a recording it holds (a recording
/// deduplicated into the pack of a later expiry day).
#[test]
fn check_reports_short_locks_and_locks_past_a_recordings_expiry() {
    let t0 = t0();
    let (w, name, _lock) = locked_world(t0);
    let mut rng = Rng::new(47);
    // Written before object_lock was set: nothing is locked.
    w.point_at_s3(&name, "");
    put(&w.src(), "data/a.txt", &rng.text(5000));
    w.ok(&["init"]);
    w.ok(&[
        "snapshot",
        "--source",
        "data",
        "--time",
        "2030-01-01T12:00:00Z",
    ]);
    w.point_at_s3(&name, &lock_line(t0));
    let short = findings(&w.json(&["check", "--now", "2030-01-01T13:00:00Z"]));
    for kind in ["manifest ", "pack "] {
        assert!(
            short
                .iter()
                .any(|f| f.starts_with(kind)
                    && f.contains("is not locked, shorter than its promise")),
            "{kind}: {short:?}"
        );
    }
    w.ok(&["prune", "--really-at-now", "--now", "2030-01-01T13:00:00Z"]);
    let checked = w.json(&["check", "--now", "2030-01-01T13:00:00Z"]);
    assert_eq!(
        findings(&checked),
        Vec::<String>::new(),
        "prune locked them"
    );

    let recording = rng.bytes(300_000);
    record(&w, "voice/late.opus", &recording, "2030-01-02T06:00:00Z");
    w.ok(&[
        "snapshot",
        "--source",
        "voice",
        "--time",
        "2030-01-02T12:00:00Z",
    ]);
    record(&w, "voice/early.opus", &recording, "2030-01-01T06:00:00Z");
    w.ok(&[
        "snapshot",
        "--source",
        "voice",
        "--time",
        "2030-01-02T13:00:00Z",
    ]);
    assert_eq!(
        pack_of(&w, "voice", "early.opus"),
        pack_of(&w, "voice", "late.opus")
    );
    let past = findings(&w.json(&["check", "--now", "2030-01-02T14:00:00Z"]));
    assert!(
        past.iter().any(|f| f.starts_with("voice pack ")
            && f.contains("past the expiry of a recording it holds")),
        "{past:?}"
    );
}

/// Extensions are counted as `op="retention"` and cost at most one request
/// per object per promotion: none when the same promotion is seen again.
#[test]
fn retention_requests_are_counted_and_at_most_one_per_object_per_promotion() {
    let t0 = t0();
    let (w, _name, _lock) = locked_world(t0);
    let mut rng = Rng::new(53);
    put(&w.src(), "data/db/dump.sql", &rng.text(2 << 20));
    for i in 0..10 {
        put(&w.src(), &format!("data/emails/{i}.eml"), &rng.text(3000));
    }
    w.ok(&["init"]);
    for time in ["2030-01-01T12:00:00Z", "2030-01-06T12:00:00Z"] {
        w.ok(&["snapshot", "--source", "data", "--time", time]);
    }
    let config = offsite::config::Config::load(&w.config).unwrap();
    let repo = w.open_repo();
    let now = at("2030-01-08T00:00:00Z");
    let extend = || {
        let before = repo.requests();
        let report = offsite::ops::lock_extend::run(&repo, &config, now).unwrap();
        (report, repo.requests().since(&before))
    };
    let (report, sent) = extend();
    assert!(
        report.extended >= 2,
        "the weekly promotion extends a manifest and its packs: {report:?}"
    );
    assert_eq!(sent.retention, report.extended, "{sent:?}");
    assert!(sent.retention <= report.checked, "{sent:?} {report:?}");
    let metrics = offsite::metrics::Metrics::new();
    metrics.record_requests(&sent);
    let text = metrics.encode();
    let line = format!(
        "offsite_s3_requests_total{{op=\"retention\"}} {}",
        sent.retention
    );
    assert!(text.contains(&line), "{line} in\n{text}");
    let (again, sent) = extend();
    assert_eq!((again.extended, sent.retention), (0, 0), "{again:?}");
}

/// Regression: packs were read, listed, lock-extended and copied under the
/// lock of their **latest** version, so a version stacked on a pack by
/// whoever holds the agent's credentials made `check --read-data` and
/// restores fail until an operator deleted it, and an extension could lock
/// the stacked bytes instead of the pack. The pack is its first version.
#[test]
fn packs_are_read_and_locked_at_their_first_version() {
    let t0 = t0();
    let (w, name, lock) = locked_world(t0);
    let b = bucket(&name, &lock);
    let mut rng = Rng::new(59);
    let dump = rng.text(2 << 20);
    put(&w.src(), "data/db/dump.sql", &dump);
    w.ok(&["init"]);
    for time in ["2030-01-01T12:00:00Z", "2030-01-06T12:00:00Z"] {
        w.ok(&["snapshot", "--source", "data", "--time", time]);
    }
    let packs: Vec<Version> = versions(&b)
        .into_iter()
        .filter(|v| v.key.starts_with("packs/"))
        .collect();
    assert!(!packs.is_empty());
    let store = locked_store(&name, &lock);
    for v in &packs {
        store
            .put(&v.key, bytes::Bytes::from_static(b"stacked on a pack"))
            .unwrap();
    }
    w.ok(&["check", "--read-data"]);
    let to = w.path("restored");
    w.ok(&[
        "restore",
        "--item",
        "data/db/dump.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(to.join("data/db/dump.sql")).unwrap(), dump);
    // The weekly promotion extends the packs' own versions, not the
    // stacked ones.
    let until_of = |v: &Version| {
        offsite::runtime::block_on(b.retain_until_of(&v.key, Some(&v.version_id))).unwrap()
    };
    let before: Vec<_> = packs.iter().map(until_of).collect();
    w.ok(&["prune", "--really-at-now", "--now", "2030-01-08T00:00:00Z"]);
    let after = versions(&b);
    let mut extended = 0;
    for (v, was) in packs.iter().zip(&before) {
        let now = until_of(v);
        assert!(now >= *was, "{}: never shortened", v.key);
        extended += usize::from(now > *was);
        let left: Vec<&str> = after
            .iter()
            .filter(|a| a.key == v.key && !a.delete_marker)
            .map(|a| a.version_id.as_str())
            .collect();
        assert_eq!(left, vec![v.version_id.as_str()], "{}: swept", v.key);
    }
    assert!(extended >= 1, "the promotion extended a pack");
    w.ok(&["check", "--read-data"]);
}
