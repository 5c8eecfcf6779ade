//! Acceptance: a file deleted from the source is restored from the newest
//! snapshot that still holds it, without naming a snapshot.

mod common;
use common::*;

#[test]
fn deleted_file_comes_back_from_the_older_snapshot() {
    let w = World::new();
    let mut rng = Rng::new(11);
    let gone = rng.text(40_000);
    put(&w.src(), "acme/emails/lost.eml", &gone);
    put(&w.src(), "acme/emails/kept.eml", &rng.text(1000));
    w.ok(&["init"]);
    let first = w.json(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    std::fs::remove_file(w.src().join("acme/emails/lost.eml")).unwrap();
    let second = w.json(&["snapshot", "--time", "2026-11-21T02:00:00Z"]);
    assert_eq!(second["items"], 1);

    let to = w.path("out");
    let r = w.json(&[
        "restore",
        "--item",
        "acme/emails/lost.eml",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(r["snapshot"], first["id"], "found in the older snapshot");
    assert!(std::fs::read(to.join("acme/emails/lost.eml")).unwrap() == gone);

    // Asking for the latest snapshot explicitly does not find it.
    let out = w.offsite(&[
        "restore",
        "--item",
        "acme/emails/lost.eml",
        "--snapshot",
        "latest",
        "--to",
        w.path("out2").to_str().unwrap(),
    ]);
    assert!(one_line_error(&out).contains("not found"));
    // An id prefix selects the snapshot.
    let prefix = &first["id"].as_str().unwrap()[..8];
    w.ok(&[
        "restore",
        "--item",
        "acme/emails/lost.eml",
        "--snapshot",
        prefix,
        "--to",
        w.path("out3").to_str().unwrap(),
    ]);
}

#[test]
fn listing_shows_both_snapshots_newest_first() {
    let w = World::new();
    put(&w.src(), "a/x", b"x");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-01-01T00:00:00Z"]);
    w.ok(&["snapshot", "--time", "2026-02-01T00:00:00+02:00"]);
    let list = w.json(&["snapshots"])["snapshots"].take();
    let times: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["time"].as_str().unwrap())
        .collect();
    assert_eq!(times, ["2026-01-31T22:00:00Z", "2026-01-01T00:00:00Z"]);
    for s in list.as_array().unwrap() {
        assert_eq!(s["host"], "test-host");
        assert_eq!(s["source"], "data");
        assert_eq!(s["items"], 1);
    }
}
