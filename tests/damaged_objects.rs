//! Acceptance (issue 8, finding 8): one damaged object never stops the
//! service. A manifest, a parent tree, an index file or an activity-log entry
//! that cannot be read is reported (stderr, `--json` `problems`, `check`, the
//! `offsite_repository_problems` metric) and skipped; prune holds back what it
//! cannot judge. The damage is made by editing objects in the local
//! repository directory; every test ends with `check --read-data`, which must
//! report the planted damage and nothing else.

mod common;
use common::*;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use offsite::repo::layout::pack_key;
use offsite::tree::Entry;

const T1: &str = "2026-11-01T02:00:00Z";
const T2: &str = "2026-11-02T02:00:00Z";
const T3: &str = "2026-11-03T02:00:00Z";
const T4: &str = "2026-11-04T02:00:00Z";

/// Two sources over `src/`: `data` (tenant t1) and `mail` (tenant t2), both
/// keeping only their newest snapshot, so a prune would forget and sweep.
fn two_source_world(header: &str, trailer: &str) -> World {
    World::configured(
        header,
        &[
            (
                "data",
                "client-data",
                "include = [\"t1/**\"]\nretention = { keep_last = 1 }",
            ),
            (
                "mail",
                "client-data",
                "include = [\"t2/**\"]\nretention = { keep_last = 1 }",
            ),
        ],
        trailer,
    )
}

/// Three snapshots of both sources at T1..T3; `t1/db/dump.sql` differs in
/// each (returned: its three versions), and each adds a new mail.
fn three_snapshots(w: &World) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(88);
    let mut versions = Vec::new();
    w.ok(&["init"]);
    for (i, time) in [T1, T2, T3].iter().enumerate() {
        let dump = rng.text(300_000);
        put(&w.src(), "t1/db/dump.sql", &dump);
        put(&w.src(), &format!("t2/mail/{i}.eml"), &rng.text(400_000));
        w.ok(&["snapshot", "--time", time]);
        versions.push(dump);
    }
    versions
}

/// The manifest files of `source`, oldest first (keys name hosts and
/// sources by tags, so the crate lists them).
fn manifests(w: &World, source: &str) -> Vec<PathBuf> {
    let mut refs = w
        .open_repo()
        .list_snapshots(Some("test-host"), Some(source))
        .unwrap();
    refs.reverse();
    refs.iter().map(|r| w.repo().join(&r.key)).collect()
}

fn key_of(w: &World, path: &Path) -> String {
    path.strip_prefix(w.repo())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Flip one byte in the newest `data` manifest; returns its key.
fn damage_newest_manifest(w: &World) -> String {
    let newest = manifests(w, "data").pop().unwrap();
    flip_byte(&newest, 40);
    key_of(w, &newest)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `check --read-data` fails, and every problem it prints names `damaged`.
fn assert_check_reports_only(w: &World, damaged: &str) {
    for args in [&["check"][..], &["check", "--read-data"][..]] {
        let out = w.offsite(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let problems: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("problem: "))
            .collect();
        assert!(
            !problems.is_empty(),
            "{args:?} reports the damage: {stdout}"
        );
        for p in problems {
            assert!(
                p.contains(damaged),
                "{args:?}: only the planted damage: {p}"
            );
        }
    }
}

/// The snapshot ids of a `snapshots --json` listing, newest first.
fn listed_ids(listing: &serde_json::Value) -> Vec<String> {
    listing["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn id_of_manifest(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.split_once('-').unwrap().1.to_string()
}

#[test]
fn flipped_byte_in_the_newest_manifest_is_listed_skipped_and_restores_go_on() {
    let w = two_source_world("", "");
    let versions = three_snapshots(&w);
    let data = manifests(&w, "data");
    let intact_parent = id_of_manifest(&data[1]);
    let damaged = damage_newest_manifest(&w);

    // snapshots: the others are listed, the damaged one is named.
    let out = w.offsite(&["--json", "snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains(&damaged),
        "stderr names the damaged manifest: {}",
        stderr(&out)
    );
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed_ids(&listing).len(), 5, "{listing}");
    assert!(!listed_ids(&listing).contains(&id_of_manifest(&data[2])));
    let problems = listing["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{listing}");
    assert_eq!(problems[0]["object"], damaged.as_str());
    let text = w.ok(&["snapshots"]);
    assert!(text.contains("5 snapshots, and 1 whose manifest cannot be read"));

    // restore --item: the damaged newest snapshot is skipped, the older one used.
    let to = w.path("older");
    let out = w.offsite(&[
        "restore",
        "--item",
        "t1/db/dump.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&damaged), "{}", stderr(&out));
    assert!(std::fs::read(to.join("t1/db/dump.sql")).unwrap() == versions[1]);

    // snapshot: proceeds with the newest readable parent, and restores whole.
    let v4 = Rng::new(4).text(300_000);
    put(&w.src(), "t1/db/dump.sql", &v4);
    let out = w.offsite(&["--json", "snapshot", "--source", "data", "--time", T4]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&damaged), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["parent"], intact_parent.as_str());
    assert_eq!(report["problems"][0]["object"], damaged.as_str());
    let to = w.path("newest");
    w.ok(&[
        "restore",
        "--item",
        "t1/db/dump.sql",
        "--snapshot",
        "latest",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(std::fs::read(to.join("t1/db/dump.sql")).unwrap() == v4);

    assert_check_reports_only(&w, &damaged);
}

#[test]
fn item_found_nowhere_says_a_manifest_was_unreadable() {
    let w = two_source_world("", "");
    three_snapshots(&w);
    let damaged = damage_newest_manifest(&w);
    let out = w.offsite(&[
        "restore",
        "--item",
        "t1/db/nothing.sql",
        "--source",
        "data",
        "--to",
        w.path("out").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let last = err.lines().last().unwrap();
    assert!(
        last.contains("not found") && last.contains(&damaged) && last.contains("may hold it"),
        "{err}"
    );
    assert_check_reports_only(&w, &damaged);
}

#[test]
fn prune_with_an_unreadable_manifest_forgets_only_what_it_can_judge_and_deletes_no_pack() {
    let w = two_source_world("", "");
    three_snapshots(&w);
    let damaged = damage_newest_manifest(&w);
    let packs_before = relative_files(&w.repo().join("packs"));

    let out = w.offsite(&["prune", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("packs: none deleted or repacked") && text.contains(&damaged),
        "the dry run says why: {text}"
    );

    let out = w.offsite(&["--json", "prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&damaged), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["packs_deleted"], 0, "{report}");
    assert_eq!(report["packs_repacked"], 0, "{report}");
    assert!(
        report["sweep_held_back"]
            .as_str()
            .unwrap()
            .contains(&damaged),
        "{report}"
    );
    assert_eq!(report["problems"][0]["object"], damaged.as_str());
    // The damaged group forgets nothing; the intact one is judged as usual.
    for d in report["snapshots"].as_array().unwrap() {
        if d["source"] == "data" {
            assert_eq!(d["keep"], true, "{d}");
        }
    }
    assert_eq!(report["snapshots_removed"], 2, "two old mail snapshots");
    assert_eq!(manifests(&w, "data").len(), 3);
    assert_eq!(manifests(&w, "mail").len(), 1);
    assert_eq!(
        relative_files(&w.repo().join("packs")),
        packs_before,
        "no pack deleted"
    );
    assert_check_reports_only(&w, &damaged);
}

/// The agent under test; killed if the test fails before it is stopped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A world whose agent keeps state in the world and serves metrics on `port`.
fn agent_world(port: u16) -> World {
    let w = two_source_world(
        "state_dir = \"STATE\"",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("STATE", w.path("state").to_str().unwrap());
    std::fs::write(&w.config, text).unwrap();
    w
}

/// Start `offsite run` and scrape /metrics until `name` shows up; fails if
/// the agent exits first or nothing answers within 30 s.
fn agent_metric(w: &World, port: u16, name: &str) -> f64 {
    let mut agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_offsite"))
            .arg("--config")
            .arg(&w.config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            let mut err = String::new();
            let _ = agent.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("the agent exited ({status}) instead of starting: {err}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            let value = text
                .lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok());
            if let Some(v) = value {
                return v;
            }
            panic!("{name} is not published: {text}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the metrics endpoint never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn agent_starts_with_an_unreadable_manifest_and_counts_it() {
    let port = free_port();
    let w = agent_world(port);
    three_snapshots(&w);
    let damaged = damage_newest_manifest(&w);
    assert!(agent_metric(&w, port, "offsite_repository_problems") >= 1.0);
    assert_check_reports_only(&w, &damaged);
}

/// The tree of directory `name` in the root of the newest snapshot of `source`.
fn subtree(w: &World, source: &str, name: &str) -> offsite::repo::pack::BlobRef {
    let repo = w.open_repo();
    let newest = repo
        .list_snapshots(Some("test-host"), Some(source))
        .unwrap()
        .remove(0);
    let snap = repo.load_snapshot(&newest).unwrap();
    match repo.read_tree(&snap.tree).unwrap().get(name) {
        Some(Entry::Dir(d)) => d.tree.clone(),
        other => panic!("no directory {name}: {other:?}"),
    }
}

#[test]
fn corrupt_tree_of_the_parent_is_reread_and_the_next_snapshot_is_whole() {
    let w = World::new();
    let mut rng = Rng::new(5);
    let mut files = Vec::new();
    for i in 0..5 {
        let path = format!("t1/emails/{i}.eml");
        let data = rng.text(50_000);
        put(&w.src(), &path, &data);
        files.push((path, data));
    }
    put(&w.src(), "t2/db/dump.sql", &rng.text(200_000));
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", T1]);
    let tree = subtree(&w, "data", "t1");
    let pack = pack_key(&tree.pack);
    flip_byte(
        &w.repo().join(&pack),
        (tree.offset + u64::from(tree.length) / 2) as usize,
    );

    put(&w.src(), "t2/db/dump.sql", &rng.text(200_000));
    let out = w.offsite(&["--json", "snapshot", "--time", T2]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&pack), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["items"], 6, "{report}");
    assert_eq!(
        report["files_new"], 5,
        "the files below the tree are read again"
    );
    assert_eq!(report["problems"][0]["object"], pack.as_str());
    let to = w.path("out");
    for (path, data) in &files {
        w.ok(&[
            "restore",
            "--item",
            path,
            "--snapshot",
            "latest",
            "--to",
            to.to_str().unwrap(),
        ]);
        assert!(std::fs::read(to.join(path)).unwrap() == *data, "{path}");
    }
    assert_check_reports_only(&w, &pack);
}

/// Regression: a damaged leaf page of a big directory was rebuilt byte for
/// byte by the next snapshot, which then pointed at the damaged copy again
/// (only the directory's root page was forgotten).
#[test]
fn a_damaged_page_of_a_big_directory_is_stored_again_by_the_next_snapshot() {
    let w = World::new();
    let mut rng = Rng::new(6);
    let mut files = Vec::new();
    for i in 0..3000 {
        let path = format!("t1/emails/{i:05}.eml");
        let data = rng.text(40);
        put(&w.src(), &path, &data);
        files.push((path, data));
    }
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", T1]);
    let repo = w.open_repo();
    let emails = match repo
        .read_tree(&subtree(&w, "data", "t1"))
        .unwrap()
        .get("emails")
    {
        Some(Entry::Dir(d)) => d.tree.clone(),
        other => panic!("no emails directory: {other:?}"),
    };
    let (_, pages) = offsite::repo::TreeCache::new(&repo)
        .read_tree_pages(&emails)
        .unwrap();
    let leaf = pages
        .iter()
        .find(|p| p.id != emails.id)
        .expect("3000 entries span several pages")
        .clone();
    let pack = pack_key(&leaf.pack);
    flip_byte(
        &w.repo().join(&pack),
        (leaf.offset + u64::from(leaf.length) / 2) as usize,
    );

    let out = w.offsite(&["--json", "snapshot", "--time", T2]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&pack), "{}", stderr(&out));
    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "t1/emails",
        "--snapshot",
        "latest",
        "--to",
        to.to_str().unwrap(),
    ]);
    for (path, data) in &files {
        assert!(std::fs::read(to.join(path)).unwrap() == *data, "{path}");
    }
    assert_check_reports_only(&w, &pack);
}

#[test]
fn garbage_index_file_is_reported_and_snapshot_restore_prune_go_on() {
    let w = two_source_world("", "");
    let versions = three_snapshots(&w);
    let garbage = format!("index/{}", "ab".repeat(32));
    std::fs::write(w.repo().join(&garbage), Rng::new(9).bytes(2000)).unwrap();

    put(&w.src(), "t2/mail/late.eml", b"late mail");
    let out = w.offsite(&["--json", "snapshot", "--source", "mail", "--time", T4]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&garbage), "{}", stderr(&out));
    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "t1/db/dump.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(std::fs::read(to.join("t1/db/dump.sql")).unwrap() == versions[2]);

    let packs_before = relative_files(&w.repo().join("packs"));
    let out = w.offsite(&["--json", "prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["snapshots_removed"], 5, "{report}");
    assert_eq!(report["packs_deleted"], 0, "{report}");
    assert!(
        report["sweep_held_back"]
            .as_str()
            .unwrap()
            .contains(&garbage),
        "{report}"
    );
    assert_eq!(relative_files(&w.repo().join("packs")), packs_before);
    assert!(
        w.repo().join(&garbage).exists(),
        "the garbage is never deleted silently"
    );
    assert_check_reports_only(&w, &garbage);
}

#[test]
fn unparseable_activity_log_entry_is_skipped_with_a_warning() {
    let port = free_port();
    let w = agent_world(port);
    three_snapshots(&w);
    w.ok(&["restore-test", "--seed", "1"]);
    let day = std::fs::read_dir(w.repo().join("log"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Sealed like every entry (the damage is in what it says, not in the seal).
    let bad = day.join("235959.999-0badf00d0badf00d");
    let bad_key = key_of(&w, &bad);
    w.open_repo()
        .write_activity_plaintext(&bad_key, b"{\"time\": not json\n")
        .unwrap();

    let out = w.offsite(&["--json", "log"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&bad_key), "{}", stderr(&out));
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let operations: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert!(operations.contains(&"restore-test"), "{operations:?}");
    assert_eq!(
        operations.iter().filter(|o| **o == "snapshot").count(),
        6,
        "{operations:?}"
    );

    assert!(agent_metric(&w, port, "offsite_repository_problems") >= 1.0);
    assert!(bad.exists(), "the entry is skipped, not deleted");
    w.ok(&["check", "--read-data"]);
}

/// Regression: a restore test that drew the damaged manifest failed (one bad
/// object failed a third of all restore tests); it now skips it and tests a
/// readable snapshot, while `check` still reports the manifest.
#[test]
fn restore_tests_skip_a_damaged_manifest() {
    let w = two_source_world("", "");
    three_snapshots(&w);
    let damaged = damage_newest_manifest(&w);
    let damaged_id = damaged.rsplit('-').next().unwrap().to_string();
    for seed in 0..30 {
        let out = w.offsite(&[
            "--json",
            "restore-test",
            "--source",
            "data",
            "--seed",
            &seed.to_string(),
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "seed {seed}: {report}");
        assert_eq!(report["result"], "ok", "seed {seed}: {report}");
        assert_ne!(
            report["snapshot"].as_str().unwrap(),
            damaged_id,
            "seed {seed}"
        );
    }
    let check = w.offsite(&["check"]);
    assert!(!check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stdout).contains(&damaged)
            || stderr(&check).contains(&damaged),
        "check names {damaged}"
    );
}

/// Review of issue 12: a tree of the newest snapshot that cannot be read
/// (here `t1/`'s, which only that snapshot holds) does not stop a restore
/// without `--snapshot`: that snapshot is skipped with a warning naming it,
/// as a damaged manifest is, and the next older one holding the item is
/// used, for a file, a directory and a whole source alike. Items whose path
/// avoids the damage still come from the newest snapshot.
#[test]
fn a_lost_tree_of_the_newest_snapshot_is_skipped_by_restore() {
    let w = World::new();
    put(&w.src(), "t1/a.txt", b"first a\n");
    put(&w.src(), "t2/b.txt", b"first b\n");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", T1]);
    put(&w.src(), "t1/a.txt", b"second a\n");
    put(&w.src(), "t2/b.txt", b"second b\n");
    w.ok(&["snapshot", "--time", T2]);
    let tree = subtree(&w, "data", "t1");
    let pack = pack_key(&tree.pack);
    flip_byte(
        &w.repo().join(&pack),
        (tree.offset + u64::from(tree.length) / 2) as usize,
    );
    let newest = manifests(&w, "data").pop().unwrap();
    let newest = key_of(&w, &newest);

    for (what, args, file) in [
        ("file", &["--item", "t1/a.txt"][..], "t1/a.txt"),
        ("directory", &["--item", "t1/"][..], "t1/a.txt"),
        ("whole source", &["--source", "data"][..], "t1/a.txt"),
    ] {
        let to = w.path(&format!("out-{}", what.replace(' ', "-")));
        let mut argv = vec!["restore", "--to", to.to_str().unwrap()];
        argv.extend_from_slice(args);
        let out = w.offsite(&argv);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&newest),
            "{what}: warns about the skipped snapshot: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(to.join(file)).unwrap(),
            b"first a\n",
            "{what}"
        );
    }
    let to = w.path("out-b");
    w.ok(&[
        "restore",
        "--item",
        "t2/b.txt",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(to.join("t2/b.txt")).unwrap(), b"second b\n");
    // With `--snapshot` the damage is the answer, not another snapshot.
    let to = w.path("out-latest");
    let out = w.offsite(&[
        "restore",
        "--item",
        "t1/a.txt",
        "--snapshot",
        "latest",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&pack), "{}", stderr(&out));
    assert_check_reports_only(&w, &pack);
}
