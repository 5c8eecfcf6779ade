//! Acceptance: a flipped byte or a missing pack makes restore and
//! `check --read-data` fail, naming the pack; nothing is deleted.

mod common;
use common::*;

fn world_with_one_data_pack() -> (World, Vec<u8>) {
    let w = World::new();
    let data = Rng::new(21).bytes(3 << 20);
    put(&w.src(), "t1/voice/rec.opus", &data);
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    (w, data)
}

fn pack_name(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

/// Restore of the affected item and the given checks fail and name the pack;
/// nothing is written to the target, nothing in the repository changes.
fn assert_damage_named(w: &World, pack: &std::path::Path, checks: &[&[&str]]) {
    let before = w.data_objects();
    let out = w.offsite(&[
        "restore",
        "--item",
        "t1/voice/rec.opus",
        "--to",
        w.path("out").to_str().unwrap(),
    ]);
    let line = one_line_error(&out);
    assert!(
        line.contains(&pack_name(pack)),
        "restore names the pack: {line}"
    );
    assert!(
        relative_files(&w.path("out")).is_empty(),
        "no corrupt or temporary file is left"
    );
    for args in checks {
        let out = w.offsite(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&pack_name(pack)),
            "{args:?} names the pack: {stdout}"
        );
    }
    assert_eq!(w.data_objects(), before, "nothing deleted or changed");
}

#[test]
fn flipped_byte_is_named_and_nothing_is_deleted() {
    let (w, _) = world_with_one_data_pack();
    let pack = w.biggest_pack();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[1000] ^= 0x40;
    std::fs::write(&pack, &bytes).unwrap();
    assert_damage_named(&w, &pack, &[&["check", "--read-data"]]);
}

#[test]
fn missing_pack_is_named_and_nothing_else_is_deleted() {
    let (w, _) = world_with_one_data_pack();
    let pack = w.biggest_pack();
    std::fs::remove_file(&pack).unwrap();
    assert_damage_named(&w, &pack, &[&["check"], &["check", "--read-data"]]);
}

#[test]
fn corrupt_manifest_is_named() {
    let (w, _) = world_with_one_data_pack();
    // The manifest is sealed: edit its plaintext through the crate and seal
    // it back under the same key.
    let repo = w.open_repo();
    let manifest = repo.list_snapshots(None, None).unwrap().remove(0);
    let text = String::from_utf8(repo.read_manifest_plaintext(&manifest).unwrap()).unwrap();
    assert!(text.contains("\"items\""));
    let text = text.replacen("\"items\"", "\"itemz\"", 1);
    repo.write_manifest_plaintext(&manifest, text.as_bytes())
        .unwrap();
    let out = w.offsite(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("does not match its id"), "{stdout}");
}

#[test]
fn lost_index_is_rebuilt_from_the_packs() {
    let (w, data) = world_with_one_data_pack();
    put(&w.src(), "t2/chats/a.json", b"{\"a\": 1}");
    w.ok(&["snapshot"]);
    for entry in std::fs::read_dir(w.repo().join("index")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let out = w.offsite(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "check notices the missing index"
    );
    let report = w.json(&["rebuild-index"]);
    assert_eq!(report["packs"].as_u64().unwrap(), w.packs().len() as u64);
    w.ok(&["check", "--read-data"]);
    // A snapshot after the rebuild deduplicates against the rebuilt index.
    let next = w.json(&["snapshot"]);
    assert_eq!(next["bytes_read"], 0);
    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "t1/voice/rec.opus",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(std::fs::read(to.join("t1/voice/rec.opus")).unwrap() == data);
}

#[test]
fn rebuild_keeps_old_index_when_a_pack_is_unreadable() {
    let (w, _) = world_with_one_data_pack();
    let pack = w.biggest_pack();
    let len = pack.metadata().unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
    f.set_len(len - 3).unwrap(); // trailer damaged
    let index_before: Vec<_> = relative_files(&w.repo().join("index"));
    let out = w.offsite(&["rebuild-index"]);
    assert_eq!(out.status.code(), Some(1));
    let after = relative_files(&w.repo().join("index"));
    for old in &index_before {
        assert!(after.contains(old), "old index file {old} kept");
    }
}
