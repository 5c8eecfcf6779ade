//! `offsite find` and `offsite ls`: items found by glob, tenant, mtime and
//! deletion across snapshots, an item's history, directory listings, and the
//! cost rules (only trees on the glob's prefix, a shared tree read once).

mod common;
use common::*;

use chrono::{DateTime, Utc};
use serde_json::Value;

fn at(t: &str) -> std::time::SystemTime {
    DateTime::parse_from_rfc3339(t)
        .unwrap()
        .with_timezone(&Utc)
        .into()
}

/// Write `data` at `root/rel` with the modification time `mtime`.
fn put_at(root: &std::path::Path, rel: &str, data: &[u8], mtime: &str) {
    put(root, rel, data);
    std::fs::File::options()
        .write(true)
        .open(root.join(rel))
        .unwrap()
        .set_modified(at(mtime))
        .unwrap();
}

fn paths(report: &Value) -> Vec<String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

fn restore_args(row: &Value) -> Vec<String> {
    row["restore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Two tenants with e-mails and a dump; one snapshot.
fn two_tenants() -> World {
    let w = World::new();
    put_at(&w.src(), "acme/emails/a.eml", b"a", "2026-10-01T10:00:00Z");
    put_at(&w.src(), "acme/emails/b.eml", b"bb", "2026-10-07T10:00:00Z");
    put_at(
        &w.src(),
        "acme/db/dump.sql",
        b"dump",
        "2026-10-09T10:00:00Z",
    );
    put_at(
        &w.src(),
        "globex/emails/c.eml",
        b"ccc",
        "2026-10-08T10:00:00Z",
    );
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-01T02:00:00Z"]);
    w
}

#[test]
fn find_by_glob_tenant_and_mtime() {
    let w = two_tenants();
    let all = w.json(&["find", "**/*.eml"]);
    assert_eq!(
        paths(&all),
        [
            "acme/emails/a.eml",
            "acme/emails/b.eml",
            "globex/emails/c.eml"
        ]
    );
    let row = &all["rows"][2];
    assert_eq!(row["tenant"], "globex");
    assert_eq!(row["size"], 3);
    assert_eq!(row["source"], "data");
    assert_eq!(row["host"], "test-host");
    assert_eq!(row["mtime"], "2026-10-08T10:00:00Z");
    assert_eq!(row["deleted"], false);
    assert_eq!(row["snapshot_time"], "2026-11-01T02:00:00Z");

    assert_eq!(
        paths(&w.json(&["find", "acme/**"])),
        ["acme/db/dump.sql", "acme/emails/a.eml", "acme/emails/b.eml"]
    );
    assert_eq!(
        paths(&w.json(&["find", "**", "--tenant", "globex"])),
        ["globex/emails/c.eml"]
    );
    // --newer is "at or after", --older "before"; a date is UTC midnight.
    assert_eq!(
        paths(&w.json(&[
            "find",
            "**",
            "--newer",
            "2026-10-07T10:00:00Z",
            "--older",
            "2026-10-09"
        ])),
        ["acme/emails/b.eml", "globex/emails/c.eml"]
    );
    assert!(paths(&w.json(&["find", "nothing/**"])).is_empty());
}

#[test]
fn a_file_deleted_from_the_source_is_found_with_deleted_and_restored_with_the_printed_arguments() {
    let w = World::new();
    let mut rng = Rng::new(7);
    let gone = rng.text(30_000);
    put_at(
        &w.src(),
        "acme/emails/2026/10/07/call.eml",
        &gone,
        "2026-10-07T09:30:00Z",
    );
    put(&w.src(), "acme/emails/2026/10/07/kept.eml", b"kept");
    w.ok(&["init"]);
    let first = w.json(&["snapshot", "--time", "2026-10-08T02:00:00Z"]);
    std::fs::remove_file(w.src().join("acme/emails/2026/10/07/call.eml")).unwrap();
    w.ok(&["snapshot", "--time", "2026-10-09T02:00:00Z"]);

    let found = w.json(&["find", "acme/emails/2026/10/07/**", "--deleted"]);
    assert_eq!(paths(&found), ["acme/emails/2026/10/07/call.eml"]);
    let row = &found["rows"][0];
    assert_eq!(
        row["snapshot"], first["id"],
        "the newest snapshot holding it"
    );
    assert_eq!(row["deleted"], true);
    // Without --deleted the kept file is listed too, not marked deleted.
    let both = w.json(&["find", "acme/emails/2026/10/07/**"]);
    assert_eq!(both["rows"].as_array().unwrap().len(), 2);
    assert_eq!(both["rows"][1]["deleted"], false);

    let to = w.path("out");
    let mut args = vec!["restore".to_string()];
    args.extend(restore_args(row));
    args.extend(["--to".into(), to.to_str().unwrap().into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.ok(&args);
    assert!(std::fs::read(to.join("acme/emails/2026/10/07/call.eml")).unwrap() == gone);

    // The table prints the same arguments.
    let table = w.ok(&["find", "acme/emails/2026/10/07/**", "--deleted"]);
    assert!(
        table.contains(&format!(
            "offsite restore --source data --snapshot {} --item acme/emails/2026/10/07/call.eml --to DIR",
            first["id"].as_str().unwrap()
        )),
        "{table}"
    );
}

#[test]
fn a_deleted_recording_carried_by_voice_snapshots_is_found_with_deleted() {
    let w = World::with_sources(&[("voice", "voice", "")]);
    put_at(
        &w.src(),
        "acme/voice/2026/10/07/anna-1.opus",
        b"hello anna",
        "2026-10-07T11:00:00Z",
    );
    put_at(
        &w.src(),
        "acme/voice/2026/10/07/bob-1.opus",
        b"hello bob",
        "2026-10-07T12:00:00Z",
    );
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-10-08T02:00:00Z"]);
    std::fs::remove_file(w.src().join("acme/voice/2026/10/07/anna-1.opus")).unwrap();
    let newest = w.json(&["snapshot", "--time", "2026-10-09T02:00:00Z"]);
    let found = w.json(&["find", "acme/voice/2026/10/07/**", "--deleted"]);
    assert_eq!(paths(&found), ["acme/voice/2026/10/07/anna-1.opus"]);
    let row = &found["rows"][0];
    assert_eq!(
        row["carried"], true,
        "kept in voice snapshots until it expires"
    );
    assert_eq!(row["snapshot"], newest["id"]);
    assert_eq!(row["tenant"], "acme");
    let to = w.path("out");
    let mut args = vec!["restore".to_string()];
    args.extend(restore_args(row));
    args.extend(["--to".into(), to.to_str().unwrap().into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.ok(&args);
    assert_eq!(
        std::fs::read(to.join("acme/voice/2026/10/07/anna-1.opus")).unwrap(),
        b"hello anna"
    );
}

#[test]
fn history_lists_each_version_of_an_edited_file_with_its_snapshots() {
    let w = World::new();
    put_at(
        &w.src(),
        "acme/db/dump.sql",
        b"version one",
        "2026-10-01T00:00:00Z",
    );
    put(&w.src(), "acme/other", b"o");
    w.ok(&["init"]);
    let s1 = w.json(&["snapshot", "--time", "2026-10-01T02:00:00Z"]);
    let s2 = w.json(&["snapshot", "--time", "2026-10-02T02:00:00Z"]);
    put_at(
        &w.src(),
        "acme/db/dump.sql",
        b"version two!",
        "2026-10-02T12:00:00Z",
    );
    let s3 = w.json(&["snapshot", "--time", "2026-10-03T02:00:00Z"]);

    let h = w.json(&["find", "--history", "acme/db/dump.sql"]);
    let versions = h["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{h}");
    assert_eq!(versions[0]["size"], 12);
    assert_eq!(versions[0]["mtime"], "2026-10-02T12:00:00Z");
    assert_eq!(versions[0]["snapshots"][0]["snapshot"], s3["id"]);
    assert_eq!(versions[0]["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(versions[1]["size"], 11);
    let holders: Vec<&Value> = versions[1]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["snapshot"])
        .collect();
    assert_eq!(holders, [&s2["id"], &s1["id"]]);
    assert_ne!(versions[0]["sha256"], versions[1]["sha256"]);
    // s2's trees are s1's (nothing changed): root, acme and acme/db are
    // read for s1 only; s3 changed all three.
    assert_eq!(h["trees_read"], 3 + 3, "{h}");
}

#[test]
fn ls_lists_a_directory_a_file_and_recursively() {
    let w = two_tenants();
    let root = w.json(&["ls"]);
    let names: Vec<(&str, &str)> = root["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("acme", "dir"), ("globex", "dir")]);

    let dir = w.json(&["ls", "acme/emails"]);
    assert_eq!(dir["trees_read"], 3, "only the trees on the path");
    let e = &dir["entries"][1];
    assert_eq!(e["path"], "acme/emails/b.eml");
    assert_eq!(e["size"], 2);
    assert_eq!(e["tenant"], "acme");
    assert_eq!(e["mtime"], "2026-10-07T10:00:00Z");
    assert_eq!(e["mode"].as_u64().unwrap() & 0o777, 0o644);

    let file = w.json(&["ls", "latest", "acme/db/dump.sql"]);
    assert_eq!(file["entries"].as_array().unwrap().len(), 1);
    assert_eq!(file["entries"][0]["size"], 4);

    let id = root["snapshot"].as_str().unwrap();
    let deep = w.json(&["ls", &id[..10], "acme", "-r"]);
    let all: Vec<&str> = deep["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        all,
        [
            "acme/db",
            "acme/db/dump.sql",
            "acme/emails",
            "acme/emails/a.eml",
            "acme/emails/b.eml"
        ]
    );
    let out = w.offsite(&["ls", "acme/nope"]);
    assert!(one_line_error(&out).contains("not found"));
    let out = w.offsite(&["ls", "deadbeef", "acme"]);
    assert!(one_line_error(&out).contains("snapshot deadbeef"));
}

#[test]
fn names_with_control_characters_are_printed_escaped() {
    let w = World::new();
    put(&w.src(), "acme/evil\x1b[31mred.eml", b"x");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    for out in [w.ok(&["find", "**"]), w.ok(&["ls", "-r"])] {
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(out.contains("evil\\x1b[31mred.eml"), "{out}");
    }
}

/// Tenants `a`…`e`, each with three directories of two files.
fn wide_tree(w: &World) {
    for t in ["a", "b", "c", "d", "e"] {
        for d in ["x", "y", "z"] {
            for f in ["1", "2"] {
                put(
                    &w.src(),
                    &format!("{t}/{d}/{f}.txt"),
                    format!("{t}{d}{f}").as_bytes(),
                );
            }
        }
    }
}

#[test]
fn a_literal_prefix_reads_only_the_trees_on_it() {
    let w = World::new();
    wide_tree(&w);
    put(&w.src(), "a/x/deeper/3.txt", b"3");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let r = w.json(&["find", "a/x/**"]);
    assert_eq!(paths(&r), ["a/x/1.txt", "a/x/2.txt", "a/x/deeper/3.txt"]);
    // root, a, a/x, a/x/deeper: of 1 + 5 + 15 + 1 trees.
    assert_eq!(r["trees_read"], 4);
    let everything = w.json(&["find", "**"]);
    assert_eq!(everything["trees_read"], 22);
    // `*` in the first component still narrows below it.
    assert_eq!(w.json(&["find", "*/y/1.txt"])["trees_read"], 1 + 5 + 5);
}

#[test]
fn a_tree_shared_by_many_snapshots_is_read_once() {
    let w = World::new();
    wide_tree(&w);
    w.ok(&["init"]);
    let n = 6;
    for i in 0..n {
        // Only tenant e changes; a's trees are the same blobs in every snapshot.
        put(&w.src(), "e/x/1.txt", format!("edit {i}").as_bytes());
        w.ok(&[
            "snapshot",
            "--time",
            &format!("2026-10-0{}T02:00:00Z", i + 1),
        ]);
    }
    let r = w.json(&["find", "a/**"]);
    assert_eq!(r["snapshots"], n);
    assert_eq!(
        r["rows"].as_array().unwrap().len(),
        6,
        "one row per version"
    );
    // One root per snapshot, then a, a/x, a/y, a/z once.
    assert_eq!(r["trees_read"], n + 4);
    // The rows name the newest snapshot holding each version.
    let newest = w.json(&["snapshots"])["snapshots"][0]["id"].clone();
    assert!(r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row["snapshot"] == newest));
    // Six versions of e/x/1.txt, each from its own snapshot.
    assert_eq!(
        w.json(&["find", "e/x/1.txt"])["rows"]
            .as_array()
            .unwrap()
            .len(),
        n
    );
}

#[test]
fn bad_patterns_and_dates_are_one_line_errors() {
    let w = two_tenants();
    assert!(one_line_error(&w.offsite(&["find", "/abs/**"])).contains("leading '/'"));
    assert!(one_line_error(&w.offsite(&["find", "a**b"])).contains("whole path component"));
    assert!(
        usage_error(&w.offsite(&["find", "**", "--newer", "yesterday"])).contains("not a date")
    );
    assert!(one_line_error(&w.offsite(&["find", "--history", "../etc/passwd"])).contains(".."));
}

#[test]
fn a_tree_at_the_same_place_in_two_sources_is_read_once() {
    let w = World::with_sources(&[
        ("only-a", "client-data", "include = [\"a/**\"]"),
        ("all", "client-data", ""),
    ]);
    wide_tree(&w);
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let r = w.json(&["find", "a/**"]);
    let sources: Vec<&str> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 12, "six files in each source: {r}");
    assert_eq!(sources.iter().filter(|s| **s == "all").count(), 6);
    // Two roots; a, a/x, a/y, a/z once for both sources.
    assert_eq!(r["trees_read"], 2 + 4);
}

#[test]
fn a_snapshot_whose_trees_are_lost_is_a_problem_and_the_others_are_still_searched() {
    use offsite::repo::layout::pack_key;
    let w = World::new();
    put(&w.src(), "acme/emails/old.eml", b"old");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-10-01T02:00:00Z"]);
    put(&w.src(), "acme/emails/new.eml", b"new");
    w.ok(&["snapshot", "--time", "2026-10-02T02:00:00Z"]);
    // Lose the pack holding the older snapshot's root tree.
    let repo = w.open_repo();
    let refs = repo.list_snapshots(None, None).unwrap();
    let older = repo.load_snapshot(&refs[1]).unwrap();
    let newer = repo.load_snapshot(&refs[0]).unwrap();
    assert_ne!(
        older.tree.pack, newer.tree.pack,
        "each snapshot wrote its own trees"
    );
    std::fs::remove_file(w.repo().join(pack_key(&older.tree.pack))).unwrap();

    for args in [vec!["find", "**"], vec!["stats"]] {
        let out = w.offsite(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&refs[1].key),
            "{args:?} names the snapshot: {err}"
        );
    }
    let r = w.json(&["find", "**"]);
    assert_eq!(paths(&r), ["acme/emails/new.eml", "acme/emails/old.eml"]);
    assert_eq!(r["snapshots"], 1);
    assert_eq!(r["problems"].as_array().unwrap().len(), 1);
}

#[test]
fn find_searches_this_host_unless_told_another_or_all() {
    let w = World::new();
    put(&w.src(), "acme/emails/a.eml", b"a");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-10-01T02:00:00Z"]);
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        text.replace("host = \"test-host\"", "host = \"other-host\""),
    )
    .unwrap();
    put(&w.src(), "acme/emails/b.eml", b"b");
    w.ok(&["snapshot", "--time", "2026-10-02T02:00:00Z"]);

    let hosts = |r: &Value| -> Vec<(String, String)> {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let host = row["host"].as_str().unwrap().to_string();
                (host, row["path"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let mine = w.json(&["find", "**"]);
    assert!(
        hosts(&mine).iter().all(|(h, _)| h == "other-host"),
        "{mine}"
    );
    assert_eq!(hosts(&mine).len(), 2);
    assert_eq!(
        hosts(&w.json(&["find", "**", "--host", "test-host"])).len(),
        1
    );
    let all = w.json(&["find", "**", "--host", "all"]);
    assert_eq!(hosts(&all).len(), 3);
    let theirs = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == "test-host")
        .unwrap();
    assert_eq!(restore_args(theirs)[..2], ["--host", "test-host"]);
    let table = w.ok(&["find", "**", "--host", "all"]);
    assert!(
        table.contains("offsite restore --host test-host --source data"),
        "{table}"
    );
}
