//! Acceptance: restore tests choose across sources and tenants, verify end to
//! end, and fail (naming the object, deleting nothing) when a pack is
//! corrupt or gone.

mod common;
use common::*;

use std::collections::BTreeSet;

fn world() -> World {
    let w = World::with_sources(&[
        (
            "data",
            "client-data",
            "include = [\"*/db/**\", \"*/chats/**\"]",
        ),
        ("voice", "voice", "include = [\"*/voice/**\"]"),
    ]);
    let mut rng = Rng::new(12);
    for t in ["acme", "beta", "gamma", "delta"] {
        put(&w.src(), &format!("{t}/db/dump.sql"), &rng.text(150_000));
        for i in 0..3 {
            put(&w.src(), &format!("{t}/chats/{i}.json"), &rng.text(2_000));
            put(
                &w.src(),
                &format!("{t}/voice/2026/11/0{i}/call.opus"),
                &rng.bytes(200_000),
            );
        }
    }
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    put(&w.src(), "acme/chats/new.json", b"{}");
    w.ok(&["snapshot", "--time", "2026-11-21T02:00:00Z"]);
    w
}

fn run(w: &World, seed: u64) -> (bool, serde_json::Value) {
    let out = w.offsite(&["--json", "restore-test", "--seed", &seed.to_string()]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a JSON report, even on failure");
    (out.status.success(), report)
}

#[test]
fn two_hundred_seeded_runs_cover_every_source_and_tenant() {
    let w = world();
    let mut sources = BTreeSet::new();
    let mut tenants = BTreeSet::new();
    let mut snapshots = BTreeSet::new();
    let mut items = BTreeSet::new();
    for seed in 0..200 {
        let (ok, r) = run(&w, seed);
        assert!(ok && r["result"] == "ok", "seed {seed}: {r}");
        assert!(
            r["bytes"].as_u64().unwrap() > 0 || r["item"].as_str().unwrap().ends_with("new.json")
        );
        assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
        sources.insert(r["source"].as_str().unwrap().to_string());
        tenants.insert(r["tenant"].as_str().unwrap().to_string());
        snapshots.insert(r["snapshot"].as_str().unwrap().to_string());
        items.insert(r["item"].as_str().unwrap().to_string());
    }
    // Every recording is drawn, not only the first or last of a tenant
    // (about 25 draws each over 3 recordings; the seeds are fixed).
    let recordings = items.iter().filter(|i| i.ends_with(".opus")).count();
    assert_eq!(recordings, 4 * 3, "{items:?}");
    assert_eq!(
        sources,
        BTreeSet::from(["data".to_string(), "voice".to_string()])
    );
    assert_eq!(tenants.len(), 4, "{tenants:?}");
    assert_eq!(snapshots.len(), 4, "old and new snapshots of both sources");
    // The same seed makes the same choice.
    assert_eq!(run(&w, 7).1["item"], run(&w, 7).1["item"]);
}

fn check_failures_name(w: &World, pack_name: &str) {
    let before = w.data_objects();
    let (mut failed, mut passed) = (0, 0);
    for seed in 0..60 {
        let (ok, r) = run(w, seed);
        if ok {
            passed += 1;
            continue;
        }
        failed += 1;
        assert_eq!(r["result"], "failed");
        let error = r["error"].as_str().unwrap();
        assert!(
            error.contains(pack_name),
            "seed {seed}: the report names the pack: {error}"
        );
    }
    assert!(failed > 0, "tests that touch the pack fail");
    assert!(passed > 0, "tests that do not touch it pass");
    assert_eq!(w.data_objects(), before, "nothing deleted");
}

#[test]
fn a_corrupt_pack_fails_the_tests_that_touch_it() {
    let w = world();
    let pack = w.biggest_pack();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    check_failures_name(&w, pack.file_name().unwrap().to_str().unwrap());
}

#[test]
fn a_missing_pack_fails_the_tests_that_touch_it() {
    let w = world();
    let pack = w.biggest_pack();
    std::fs::remove_file(&pack).unwrap();
    check_failures_name(&w, pack.file_name().unwrap().to_str().unwrap());
}
