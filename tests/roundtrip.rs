//! Acceptance: every file of a varied tree comes back byte-identical through
//! `restore --item`, with its mode and mtime.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn every_file_of_a_varied_tree_restores_byte_identical() {
    let w = World::new();
    let src = w.src();
    let mut rng = Rng::new(1);
    put(&src, "empty.txt", b"");
    put(&src, "deep/a/b/c/d/e/f/empty-too", b"");
    put(&src, "big/fifty-mib.bin", &rng.bytes(50 << 20));
    put(&src, "big/dump.sql", &rng.text(3 << 20));
    for i in 0..2000 {
        let size = rng.below(20_000) as usize;
        let dir = format!("tenant-{}/chats/{:02}", i % 7, i % 13);
        if i % 2 == 0 {
            put(&src, &format!("{dir}/{i}.json"), &rng.text(size));
        } else {
            put(&src, &format!("{dir}/{i}.bin"), &rng.bytes(size));
        }
    }
    for name in [
        "Ääkköset ja öljy.txt",
        "日本語のファイル.eml",
        "emoji-🎧-call.opus",
        "spaces and 'quotes'.txt",
    ] {
        put(&src, &format!("unicode/{name}"), &rng.text(3000));
    }
    std::fs::create_dir_all(src.join("empty-dir")).unwrap();
    std::fs::set_permissions(
        src.join("empty.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();

    w.ok(&["init"]);
    let report = w.json(&["snapshot"]);
    let files = relative_files(&src);
    assert_eq!(report["items"].as_u64().unwrap(), files.len() as u64);
    assert_eq!(report["warnings"].as_u64().unwrap(), 0);

    let to = w.path("restored");
    for rel in &files {
        w.ok(&["restore", "--item", rel, "--to", to.to_str().unwrap()]);
    }
    for rel in &files {
        let a = std::fs::read(src.join(rel)).unwrap();
        let b = std::fs::read(to.join(rel)).unwrap_or_else(|e| panic!("{rel} not restored: {e}"));
        assert!(a == b, "{rel} differs after restore");
        let (ma, mb) = (
            src.join(rel).metadata().unwrap(),
            to.join(rel).metadata().unwrap(),
        );
        assert_eq!(
            ma.permissions().mode() & 0o7777,
            mb.permissions().mode() & 0o7777,
            "{rel} mode"
        );
        assert_eq!(
            ma.modified().unwrap(),
            mb.modified().unwrap(),
            "{rel} mtime"
        );
    }
    assert_eq!(
        relative_files(&to).len(),
        files.len(),
        "no stray temporary files"
    );
    w.ok(&["check", "--read-data"]);
}

#[test]
fn restore_json_reports_size_and_sha256() {
    let w = World::new();
    put(&w.src(), "t1/voice/rec.opus", &Rng::new(3).bytes(123_456));
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let to = w.path("out");
    let r = w.json(&[
        "restore",
        "--item",
        "t1/voice/rec.opus",
        "--to",
        to.to_str().unwrap(),
        "--reason",
        "ticket 42",
    ]);
    assert_eq!(r["bytes"], 123_456);
    assert_eq!(r["tenant"], "t1");
    let data = std::fs::read(to.join("t1/voice/rec.opus")).unwrap();
    use sha2::Digest;
    assert_eq!(
        r["sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&data))
    );
}
