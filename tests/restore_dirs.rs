//! Restoring many files at once with the real binary: a deleted folder, a
//! glob, a tenant, a whole source; the safety rules of a single-item restore
//! hold for every file, and a `--snapshot` that does not exist says so.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// What a tree holds, per path: kind, permission bits, mtime (ns) and content.
type Listing = BTreeMap<String, (char, u32, i128, Vec<u8>)>;

/// Everything below `root` (files and directories, not `root` itself).
fn listing(root: &Path) -> Listing {
    let mut out = Listing::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            let mode = meta.mode() & 0o7777;
            if meta.is_dir() {
                out.insert(rel, ('d', mode, mtime, Vec::new()));
                stack.push(path);
            } else {
                out.insert(rel, ('f', mode, mtime, std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// Set the permission bits and mtime (seconds since the epoch plus `nanos`) of `path`.
fn stamp(path: &Path, mode: u32, secs: u64, nanos: u32) {
    let file = std::fs::File::open(path).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::new(secs, nanos))
        .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// 500 small e-mails of tenant acme with varied modes and mtimes, in a
/// folder with its own mode and mtime; one file of tenant globex.
fn world_with_mail() -> World {
    let w = World::new();
    let mut rng = Rng::new(5);
    for i in 0..500u32 {
        let rel = format!("acme/emails/{i:03}.eml");
        put(&w.src(), &rel, &rng.text(100 + (i as usize * 37) % 3000));
        let mode = [0o600, 0o644, 0o640][i as usize % 3];
        stamp(
            &w.src().join(&rel),
            mode,
            1_790_000_000 + u64::from(i),
            i * 1000,
        );
    }
    put(&w.src(), "globex/db/dump.sql", &rng.text(5000));
    stamp(&w.src().join("acme/emails"), 0o750, 1_790_001_000, 0);
    w.ok(&["init"]);
    w
}

#[test]
fn a_deleted_folder_of_500_files_comes_back_byte_identical_with_modes_and_mtimes() {
    let w = world_with_mail();
    let before = listing(&w.src().join("acme/emails"));
    let first = w.json(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    std::fs::remove_dir_all(w.src().join("acme/emails")).unwrap();
    w.ok(&["snapshot", "--time", "2026-11-21T02:00:00Z"]);

    for (item, out) in [("acme/emails/", "out"), ("acme/emails", "out2")] {
        let to = w.path(out);
        let r = w.json(&[
            "restore",
            "--item",
            item,
            "--to",
            to.to_str().unwrap(),
            "--reason",
            "ticket 12",
        ]);
        assert_eq!(r["files"], 500, "{r}");
        assert_eq!(r["skipped"], 0, "{r}");
        assert_eq!(r["failed"], 0, "{r}");
        assert!(r["threads"].as_u64().unwrap() >= 1, "{r}");
        assert_eq!(
            r["from"][0]["snapshot"], first["id"],
            "the newest snapshot holding the folder"
        );
        let restored = listing(&to.join("acme/emails"));
        assert_eq!(restored.len(), 500);
        assert!(
            restored == before,
            "{item}: contents, modes or mtimes differ"
        );
        let dir = std::fs::metadata(to.join("acme/emails")).unwrap();
        assert_eq!(dir.mode() & 0o7777, 0o750, "the folder's mode");
        assert_eq!(dir.mtime(), 1_790_001_000, "the folder's mtime");
    }
    let entry = w.activity().into_iter().last().unwrap();
    assert_eq!(entry["operation"], "restore", "{entry}");
    let details = &entry["details"];
    assert_eq!(details["reason"], "ticket 12", "{entry}");
    assert_eq!(details["request"]["item"], "acme/emails", "{entry}");
    assert_eq!(details["summary"]["files"], 500, "{entry}");
}

#[test]
fn a_glob_restores_one_date_folder() {
    let w = World::new();
    let mut rng = Rng::new(7);
    for day in ["06", "07", "08"] {
        for n in 0..4 {
            put(
                &w.src(),
                &format!("acme/voice/2026/10/{day}/call-{n}.opus"),
                &rng.bytes(2000),
            );
        }
    }
    put(&w.src(), "acme/voice/2026/10/07/notes/agent.txt", b"anna");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let to = w.path("out");
    let r = w.json(&[
        "restore",
        "--glob",
        "acme/voice/2026/10/07/**",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(r["files"], 5, "{r}");
    let mut expected: Vec<String> = (0..4)
        .map(|n| format!("acme/voice/2026/10/07/call-{n}.opus"))
        .collect();
    expected.push("acme/voice/2026/10/07/notes/agent.txt".into());
    assert_eq!(relative_files(&to), expected);
    for rel in &expected {
        assert_eq!(
            std::fs::read(to.join(rel)).unwrap(),
            std::fs::read(w.src().join(rel)).unwrap()
        );
    }
    let none = w.offsite(&["restore", "--glob", "acme/voice/2027/**", "--to", "x"]);
    assert!(one_line_error(&none).contains("matching"));
}

#[test]
fn a_whole_source_restores_equal_to_the_source_tree() {
    let w = world_with_mail();
    std::fs::create_dir_all(w.src().join("acme/empty/deeper")).unwrap();
    stamp(&w.src().join("acme/empty/deeper"), 0o700, 1_790_002_000, 5);
    stamp(&w.src().join("acme/empty"), 0o711, 1_790_003_000, 0);
    stamp(&w.src().join("globex/db"), 0o755, 1_790_004_000, 0);
    stamp(&w.src().join("acme"), 0o755, 1_790_005_000, 0);
    w.ok(&["snapshot"]);
    let to = w.path("out");
    let r = w.json(&["restore", "--source", "data", "--to", to.to_str().unwrap()]);
    assert_eq!(r["files"], 501, "{r}");
    assert_eq!(r["dirs"], 6, "{r}");
    let (src, out) = (listing(&w.src()), listing(&to));
    assert_eq!(
        src.keys().collect::<Vec<_>>(),
        out.keys().collect::<Vec<_>>()
    );
    for (path, want) in &src {
        assert!(out[path] == *want, "{path} differs");
    }
}

#[test]
fn restore_without_anything_named_is_a_usage_error() {
    let w = world_with_mail();
    w.ok(&["snapshot"]);
    let out = w.offsite(&["restore", "--to", w.path("o").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("--source"));
    let out = w.offsite(&["restore", "--item", "a", "--glob", "b", "--to", "o"]);
    assert!(usage_error(&out).contains("cannot be used with"));
}

#[test]
fn a_directory_item_cannot_escape_the_target() {
    let w = world_with_mail();
    w.ok(&["snapshot"]);
    let to = w.path("out");
    for item in ["../x/", "acme/../../x/", "/acme/"] {
        let out = w.offsite(&["restore", "--item", item, "--to", to.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{item}");
        one_line_error(&out);
    }
    assert!(!to.exists() || relative_files(&to).is_empty());
    assert!(!w.path("x").exists());

    // A symlink in the target that leads outside stops the restore.
    let outside = w.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&to).unwrap();
    std::os::unix::fs::symlink(&outside, to.join("acme")).unwrap();
    let out = w.offsite(&["restore", "--item", "acme/", "--to", to.to_str().unwrap()]);
    assert!(one_line_error(&out).contains("symlink"));
    assert!(
        relative_files(&outside).is_empty(),
        "wrote outside the target"
    );
}

#[test]
fn existing_files_are_kept_without_overwrite_and_the_rest_restored() {
    let w = world_with_mail();
    w.ok(&["snapshot"]);
    let to = w.path("out");
    put(&to, "acme/emails/007.eml", b"local edits");
    let out = w.offsite(&[
        "restore",
        "--item",
        "acme/emails/",
        "--to",
        to.to_str().unwrap(),
    ]);
    let line = one_line_error(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        line.contains("1 existing files kept") && line.contains("--overwrite"),
        "{line}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("restored 499 files"), "{stdout}");
    assert!(
        stdout.contains("acme/emails/007.eml exists, kept"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(to.join("acme/emails/007.eml")).unwrap(),
        b"local edits"
    );
    assert_eq!(
        relative_files(&to.join("acme/emails")).len(),
        500,
        "no temporary files"
    );

    let r = w.json(&[
        "restore",
        "--item",
        "acme/emails/",
        "--to",
        to.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(
        (r["files"].as_u64(), r["skipped"].as_u64()),
        (Some(500), Some(0))
    );
    assert!(listing(&to.join("acme/emails")) == listing(&w.src().join("acme/emails")));
}

#[test]
fn an_unknown_snapshot_id_names_the_newest_snapshot_not_the_item() {
    // Two sources: the id is looked for in each (regression: it said
    // "item … not found" when no source had the snapshot).
    let w = World::with_sources(&[
        ("data", "client-data", "include = [\"*/emails/**\"]"),
        ("db", "client-data", "include = [\"*/db/**\"]"),
    ]);
    put(&w.src(), "acme/emails/a.eml", b"mail");
    put(&w.src(), "acme/db/dump.sql", b"dump");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    let newest = w.json(&[
        "snapshot",
        "--source",
        "db",
        "--time",
        "2026-11-21T02:00:00Z",
    ]);
    let newest_id = newest[0]["id"].as_str().or(newest["id"].as_str()).unwrap();
    let to = w.path("out");
    for args in [
        vec!["--item", "acme/emails/a.eml"],
        vec!["--item", "acme/emails/"],
        vec!["--glob", "**"],
        vec!["--source", "db"],
    ] {
        let mut all = vec![
            "restore",
            "--snapshot",
            "00000000",
            "--to",
            to.to_str().unwrap(),
        ];
        all.extend(args.iter().copied());
        let out = w.offsite(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let line = one_line_error(&out);
        assert!(line.contains("no snapshot 00000000 in source"), "{line}");
        assert!(line.contains("on host test-host; the newest is"), "{line}");
        assert!(line.contains(&newest_id[..8]), "{line}");
        assert!(!line.contains("not found"), "{line}");
    }
    assert!(!to.exists() || relative_files(&to).is_empty());
}

#[test]
fn a_tenant_restore_writes_only_that_tenants_files() {
    let w = World::with_sources(&[
        (
            "data",
            "client-data",
            "include = [\"*/db/**\", \"*/emails/**\"]",
        ),
        ("voice", "voice", "include = [\"*/voice/**\"]"),
    ]);
    let mut rng = Rng::new(3);
    let files = [
        "acme/db/dump.sql",
        "acme/emails/x.eml",
        "acme/voice/2026/11/01/a.opus",
        "globex/db/dump.sql",
        "globex/voice/2026/11/01/b.opus",
    ];
    for rel in files {
        put(&w.src(), rel, &rng.text(3000));
    }
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-27T02:00:00Z"]);
    let to = w.path("out");
    let r = w.json(&["restore", "--tenant", "acme", "--to", to.to_str().unwrap()]);
    assert_eq!(r["files"], 3, "{r}");
    assert_eq!(r["from"].as_array().unwrap().len(), 2, "both sources: {r}");
    assert_eq!(
        relative_files(&to),
        [
            "acme/db/dump.sql",
            "acme/emails/x.eml",
            "acme/voice/2026/11/01/a.opus"
        ]
    );
    for rel in relative_files(&to) {
        assert_eq!(
            std::fs::read(to.join(&rel)).unwrap(),
            std::fs::read(w.src().join(&rel)).unwrap()
        );
    }
}

#[test]
fn a_damaged_file_fails_alone_and_the_rest_is_restored() {
    let w = World::new();
    let mut rng = Rng::new(9);
    for n in 0..5 {
        put(&w.src(), &format!("acme/a/{n}.bin"), &rng.bytes(50_000));
    }
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let packs_before = w.packs();
    put(&w.src(), "acme/b/big.bin", &rng.bytes(300_000));
    w.ok(&["snapshot"]);
    let new_pack = w
        .packs()
        .into_iter()
        .filter(|p| !packs_before.contains(p))
        .max_by_key(|p| p.metadata().unwrap().len())
        .expect("the second snapshot wrote a pack");
    let mut bytes = std::fs::read(&new_pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&new_pack, bytes).unwrap();

    let to = w.path("out");
    let out = w.offsite(&[
        "--json",
        "restore",
        "--item",
        "acme/",
        "--to",
        to.to_str().unwrap(),
    ]);
    let line = one_line_error(&out);
    assert_eq!(out.status.code(), Some(1), "{line}");
    assert!(line.contains("1 files failed"), "{line}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["files"].as_u64(), r["failed"].as_u64()),
        (Some(5), Some(1)),
        "{r}"
    );
    assert!(
        r["samples"][0].as_str().unwrap().contains("acme/b/big.bin"),
        "{r}"
    );
    assert_eq!(relative_files(&to.join("acme/a")).len(), 5);
    for n in 0..5 {
        let rel = format!("acme/a/{n}.bin");
        assert_eq!(
            std::fs::read(to.join(&rel)).unwrap(),
            std::fs::read(w.src().join(&rel)).unwrap()
        );
    }
    assert!(
        relative_files(&to.join("acme/b")).is_empty(),
        "nothing half-written"
    );
}

#[test]
fn files_past_the_data_retention_are_refused_unless_forced() {
    let w = World::configured(
        "data_retention_months = 12",
        &[("data", "client-data", "")],
        "",
    );
    put(&w.src(), "acme/old/2019.sql", b"old");
    put(&w.src(), "acme/old/fresh.sql", b"fresh");
    stamp(&w.src().join("acme/old/2019.sql"), 0o644, 1_560_000_000, 0);
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let to = w.path("out");
    let out = w.offsite(&[
        "--json",
        "restore",
        "--item",
        "acme/old",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(one_line_error(&out).contains("1 files past their retention"));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["files"].as_u64(), r["refused"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(relative_files(&to), ["acme/old/fresh.sql"]);
    let forced = w.path("forced");
    let r = w.json(&[
        "restore",
        "--item",
        "acme/old/",
        "--to",
        forced.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(
        (r["files"].as_u64(), r["refused"].as_u64()),
        (Some(2), Some(0)),
        "{r}"
    );
    assert_eq!(
        std::fs::read(forced.join("acme/old/2019.sql")).unwrap(),
        b"old"
    );
}

/// Regression: `--now` set before an item's retention ended used to restore
/// it without `--force` (retention was judged at `--now` alone); restore now
/// judges at the later of `--now` and the clock.
#[test]
fn an_earlier_now_does_not_restore_an_item_past_its_retention() {
    let w = World::configured(
        "data_retention_months = 12",
        &[("data", "client-data", "")],
        "",
    );
    put(&w.src(), "acme/old/2019.sql", b"old");
    stamp(&w.src().join("acme/old/2019.sql"), 0o644, 1_560_000_000, 0);
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let to = w.path("out");
    let out = w.offsite(&[
        "restore",
        "--now",
        "2019-07-01T00:00:00Z",
        "--item",
        "acme/old/2019.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "refused like without --now");
    assert!(
        one_line_error(&out).contains("retention"),
        "{}",
        one_line_error(&out)
    );
    assert!(!to.join("acme/old/2019.sql").exists());
}
