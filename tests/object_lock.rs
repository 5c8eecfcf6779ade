//! Acceptance: S3 Object Lock that follows the retention promises, on the
//! Ceph gateway of the test suite (`.ci/ceph`).
//!
//! Simulated time: the repositories here use `object_lock.test_clock`, so a
//! simulated day lasts `SECONDS_PER_DAY` real seconds from `T0` (a little
//! after the test starts): the locks of a few simulated weeks end within a
//! minute, and the test buckets keep nothing locked for long (governance
//! mode, no bypass needed for cleanup).

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::locked::*;
use offsite::object_lock::{expiry_day, voice_until};
use offsite::repo::s3_lock::Version;

/// Every pack a snapshot references, with the date the invariant gives it:
/// the snapshot's date for trees (and client data), the start of the
/// expiry day for voice chunks.
fn expected_packs(
    w: &World,
    source: &str,
    snapshot_until: DateTime<Utc>,
    out: &mut HashMap<String, DateTime<Utc>>,
) {
    let config = offsite::config::Config::load(&w.config).unwrap();
    let contracts = config.contracts();
    let repo = w.open_repo();
    let listing = repo.load_snapshots_tolerant(None, Some(source)).unwrap();
    let mut later = |key: String, until: DateTime<Utc>| {
        let slot = out.entry(key).or_insert(until);
        *slot = (*slot).max(until);
    };
    for (_, snap) in &listing.readable {
        later(pack_key(&snap.tree.pack), snapshot_until);
        let mut files = Vec::new();
        repo.for_each_file(&snap.tree, &mut |_, f| files.push(f))
            .unwrap();
        for f in files {
            let until = if source == "voice" {
                voice_until(expiry_day(contracts.expires_at(&f)))
            } else {
                snapshot_until
            };
            for c in repo.all_chunks(&f.chunks).unwrap() {
                later(pack_key(&c.pack), until);
            }
        }
    }
}

#[test]
fn init_refuses_a_bucket_without_object_lock_in_one_line() {
    let bucket = new_bucket("nolock");
    let w = World::s3(&bucket, "object_lock = { mode = \"compliance\" }");
    let out = w.offsite(&["init"]);
    assert_eq!(out.status.code(), Some(2));
    let line = one_line_error(&out);
    assert!(
        line.contains("no Object Lock enabled") && line.contains(&bucket),
        "{line}"
    );
    let out = w.offsite(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "config check refuses too");
}

#[test]
fn object_lock_needs_an_s3_repository_and_test_clock_needs_governance() {
    let w = World::configured("", &[("data", "client-data", "")], "");
    let text = std::fs::read_to_string(&w.config).unwrap();
    let with = |extra: &str| {
        let t = text.replace("[repository]\n", &format!("[repository]\n{extra}\n"));
        std::fs::write(&w.config, t).unwrap();
        let out = w.offsite(&["config", "check"]);
        assert_eq!(out.status.code(), Some(2));
        one_line_error(&out)
    };
    assert!(with("object_lock = { mode = \"governance\" }").contains("needs an S3 repository"));
    let bucket = new_bucket("lockcfg");
    w.point_at_s3(&bucket, "object_lock = { mode = \"compliance\", test_clock = { simulated = \"2030-01-01T00:00:00Z\", real = \"2030-01-01T00:00:00Z\", seconds_per_day = 1 } }");
    let out = w.offsite(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("test suite only"));
    w.point_at_s3(&bucket, "object_lock = { mode = \"sometimes\" }");
    let out = w.offsite(&["config", "check"]);
    assert!(one_line_error(&out).contains("object_lock.mode"));
}

/// The acceptance lines of issue 13, in one simulated fortnight.
#[test]
fn locks_follow_the_promises_and_end_with_them() {
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() + 60, 0).unwrap();
    let (w, name, lock) = locked_world(t0);
    let b = bucket(&name, &lock);
    let real = |sim: &str| lock.to_real(at(sim));
    let mut rng = Rng::new(13);
    put(&w.src(), "data/db/dump.sql", &rng.text(2 << 20));
    for i in 0..20 {
        put(&w.src(), &format!("data/emails/{i}.eml"), &rng.text(3000));
    }
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
        "2030-01-02T06:00:00Z",
    );
    w.ok(&["init"]);
    w.ok(&[
        "snapshot",
        "--source",
        "data",
        "--time",
        "2030-01-01T12:00:00Z",
    ]);
    w.ok(&[
        "snapshot",
        "--source",
        "voice",
        "--time",
        "2030-01-02T12:00:00Z",
    ]);

    // Inside its promise nothing can be deleted, not even by version id,
    // and an overwrite only stacks a new version on the locked one.
    let first = versions(&b);
    let locked: Vec<&Version> = first
        .iter()
        .filter(|v| {
            v.key.starts_with("packs/")
                || v.key.starts_with("snapshots/")
                || v.key.starts_with("index/")
        })
        .collect();
    assert!(locked.len() >= 5, "{first:?}");
    for v in &locked {
        let deleted = offsite::runtime::block_on(b.delete_version(&v.key, &v.version_id)).unwrap();
        assert!(!deleted, "{} deleted inside its promise", v.key);
    }
    let store_loc = {
        let mut l = s3_location(&name, "offsite");
        l.object_lock = Some(lock.clone());
        l
    };
    let store =
        offsite::repo::store::Store::connect(&offsite::repo::store::Location::S3(store_loc), false)
            .unwrap();
    store
        .put(&locked[0].key, bytes::Bytes::from_static(b"overwritten"))
        .unwrap();
    assert!(
        versions(&b)
            .iter()
            .any(|v| v.version_id == locked[0].version_id),
        "the locked version stays"
    );
    // Put things back as the operator would: delete the new version.
    let stacked: Vec<Version> = versions(&b)
        .into_iter()
        .filter(|v| v.key == locked[0].key && v.version_id != locked[0].version_id)
        .collect();
    assert_eq!(stacked.len(), 1, "{stacked:?}");
    let gone = offsite::runtime::block_on(b.delete_version(&locked[0].key, &stacked[0].version_id));
    assert!(gone.unwrap(), "the unlocked overwrite can be deleted");
    assert_eq!(
        store.get(&locked[0].key).unwrap().len() as u64,
        locked[0].size
    );

    // Every object's retain-until is what the invariant says.
    let mut want = HashMap::new();
    expected_packs(&w, "data", at("2030-01-04T00:00:00Z"), &mut want);
    expected_packs(&w, "voice", at("2030-01-04T00:00:00Z"), &mut want);
    for (key, until) in &want {
        assert_eq!(retain_until(&b, key), Some(lock.to_real(*until)), "{key}");
    }
    let voice_days: Vec<DateTime<Utc>> = want
        .values()
        .copied()
        .filter(|u| *u < at("2030-01-04T00:00:00Z"))
        .collect();
    assert!(
        !voice_days.is_empty(),
        "a voice pack locked for its expiry day: {want:?}"
    );
    for v in versions(&b)
        .iter()
        .filter(|v| v.key.starts_with("index/") || v.key.starts_with("snapshots/"))
    {
        assert_eq!(
            retain_until(&b, &v.key),
            Some(real("2030-01-04T00:00:00Z")),
            "{}",
            v.key
        );
    }

    // A week later the data snapshot of the first week is promoted to weekly:
    // prune extends its manifest and every pack it references.
    w.ok(&[
        "snapshot",
        "--source",
        "data",
        "--time",
        "2030-01-06T12:00:00Z",
    ]);
    let report = w.json(&["prune", "--really-at-now", "--now", "2030-01-08T00:00:00Z"]);
    let locks = &report["object_lock"];
    assert!(locks["extended"].as_u64().unwrap() >= 2, "{locks}");
    let mut promoted = HashMap::new();
    expected_packs(&w, "data", at("2030-01-14T00:00:00Z"), &mut promoted);
    for key in promoted.keys() {
        assert_eq!(
            retain_until(&b, key),
            Some(real("2030-01-14T00:00:00Z")),
            "{key}"
        );
    }
    let checked = w.json(&["check", "--read-data", "--now", "2030-01-08T00:00:00Z"]);
    assert!(
        checked.get("object_lock").is_none(),
        "no lock shorter or longer than its promise: {checked}"
    );

    // Four more days with a changed e-mail each push the first week's
    // daily snapshots out; a prune far in the future forgets them (and their
    // packs) but deletes no version that is still locked.
    for day in 9..=12 {
        put(&w.src(), "data/emails/today.eml", &rng.text(5000));
        w.ok(&[
            "snapshot",
            "--source",
            "data",
            "--time",
            &format!("2030-01-{day:02}T12:00:00Z"),
        ]);
    }
    let current: BTreeMap<String, (String, u64, Option<DateTime<Utc>>)> = versions(&b)
        .iter()
        .filter(|v| v.is_latest && !v.delete_marker)
        .map(|v| {
            (
                v.version_id.clone(),
                (v.key.clone(), v.size, retain_until(&b, &v.key)),
            )
        })
        .collect();
    let started = Utc::now();
    let far = w.json(&["prune", "--really-at-now", "--now", "2031-06-01T00:00:00Z"]);
    assert!(far["snapshots_removed"].as_u64().unwrap() >= 2, "{far}");
    assert!(
        far["object_lock"]["versions_locked"].as_u64().unwrap() > 0,
        "{far}"
    );
    let after = versions(&b);
    let mut still_locked = 0;
    for (id, (key, _, until)) in &current {
        if until.is_some_and(|u| u > started + chrono::Duration::seconds(2)) {
            still_locked += 1;
            assert!(
                after.iter().any(|a| a.version_id == *id),
                "{key} went while locked"
            );
        }
    }
    assert!(still_locked >= 3, "{current:?}");
    w.ok(&["check", "--read-data"]);

    // Once the locks end, prune removes the old versions and the delete
    // markers: the bucket shrinks to what the kept snapshots hold.
    let stored = |vs: &[Version]| vs.iter().map(|v| v.size).sum::<u64>();
    let full = stored(&after);
    assert!(full >= current.values().map(|(_, size, _)| size).sum::<u64>() / 2);
    wait_until(
        Duration::from_secs(240),
        "the locks to end and prune to free the bytes",
        || {
            // A prune may fail while the gateway is busy: the next round retries.
            let _ = w.offsite(&["prune", "--really-at-now", "--now", "2031-06-01T00:00:00Z"]);
            let left = versions(&b);
            // (The prune's own lock object is released after its sweep: the next one removes it.)
            let old = left
                .iter()
                .filter(|v| (!v.is_latest || v.delete_marker) && !v.key.starts_with("locks/"))
                .count();
            old == 0 && stored(&left) < full
        },
    );
    w.ok(&["check", "--read-data"]);
}

/// Regression: Ceph ignores `If-None-Match: *` on a versioned bucket (a
/// second PUT only stacks a version), which let two threads each create a
/// tenant's key, and packs got sealed under the one that lost. Create-only
/// now holds there too: the oldest version is the object.
#[test]
fn create_only_holds_on_a_versioned_bucket() {
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() + 60, 0).unwrap();
    let (_w, name, lock) = locked_world(t0);
    let mut loc = s3_location(&name, "offsite");
    loc.object_lock = Some(lock.clone());
    let store =
        offsite::repo::store::Store::connect(&offsite::repo::store::Location::S3(loc), false)
            .unwrap();
    let results: Vec<bool> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..6u8)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || {
                    store
                        .put_new("keys/race", bytes::Bytes::from(vec![i; 1000]))
                        .is_ok()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
    let winner = results.iter().position(|ok| *ok).unwrap() as u8;
    assert_eq!(
        store.get("keys/race").unwrap(),
        bytes::Bytes::from(vec![winner; 1000])
    );
    let again = store.put_new("keys/race", bytes::Bytes::from(vec![winner; 1000]));
    assert!(again.is_ok(), "the same bytes again are ours: {again:?}");
    let b = bucket(&name, &lock);
    assert_eq!(
        versions(&b).iter().filter(|v| v.key == "keys/race").count(),
        1
    );
}

/// Regression: a voice snapshot's locks were extended for its directory
/// pages only, so the chunk list of a big recording (in pieces, in a tree
/// pack an earlier snapshot wrote) kept the earlier snapshot's shorter lock
/// once the directory changed.
#[test]
fn a_big_recordings_chunk_list_is_locked_as_long_as_the_snapshots_naming_it() {
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() + 120, 0).unwrap();
    let (w, name, lock) = locked_world(t0);
    let b = bucket(&name, &lock);
    let mut rng = Rng::new(29);
    // Voice chunks average 2–3 MiB: 128 MiB is more than 32 chunks, in pieces.
    record(
        &w,
        "voice/big.opus",
        &rng.bytes(128 << 20),
        "2030-01-01T06:00:00Z",
    );
    w.ok(&["init"]);
    let snapshot = |time: &str| w.ok(&["snapshot", "--source", "voice", "--time", time]);
    snapshot("2030-01-01T12:00:00Z");
    record(
        &w,
        "voice/small.opus",
        &rng.bytes(300_000),
        "2030-01-02T06:00:00Z",
    );
    snapshot("2030-01-02T12:00:00Z");
    w.ok(&["prune", "--really-at-now", "--now", "2030-01-02T13:00:00Z"]);

    let repo = w.open_repo();
    let listing = repo.load_snapshots_tolerant(None, Some("voice")).unwrap();
    let (_, latest) = listing
        .readable
        .iter()
        .max_by_key(|(_, s)| s.time)
        .expect("two voice snapshots");
    let mut files = Vec::new();
    repo.for_each_file(&latest.tree, &mut |_, f| files.push(f))
        .unwrap();
    let big = files
        .iter()
        .find(|f| f.name == "big.opus")
        .expect("big.opus");
    let offsite::tree::ChunkList::Pieces { list, .. } = &big.chunks else {
        panic!("128 MiB of voice is stored in pieces: {:?}", big.chunks);
    };
    assert_ne!(
        list.pack, latest.tree.pack,
        "the directory changed: a new page pack"
    );
    let page_lock = retain_until(&b, &pack_key(&latest.tree.pack)).expect("pages locked");
    let list_lock = retain_until(&b, &pack_key(&list.pack)).expect("the list locked");
    assert!(
        list_lock >= page_lock,
        "the chunk list is locked until {list_lock}, the snapshot naming it until {page_lock}"
    );
}
