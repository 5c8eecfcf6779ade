//! Acceptance (issue 11, blobs): every blob is AES-256-GCM ciphertext under
//! its tenant's key, blob ids are keyed per tenant, pack headers are sealed,
//! and any changed byte of a pack is reported as corruption naming the pack,
//! never decrypted into garbage and never a reason to delete anything.

mod common;
use common::*;

use offsite::repo::layout::pack_key;
use offsite::repo::pack::BlobRef;
use offsite::repo::packs::PackVerdict;
use offsite::repo::Repository;
use offsite::tree::{Entry, FileEntry};

fn newest_root(repo: &Repository) -> BlobRef {
    let refs = repo.list_snapshots(None, None).unwrap();
    let newest = refs.iter().max_by_key(|r| r.time).unwrap();
    repo.load_snapshot(newest).unwrap().tree
}

fn file_at(repo: &Repository, path: &str) -> FileEntry {
    let parts: Vec<String> = path.split('/').map(String::from).collect();
    repo.lookup_file(&newest_root(repo), &parts)
        .unwrap()
        .unwrap_or_else(|| panic!("{path} is in the snapshot"))
}

/// The tree blob of the directory `name` just below the root.
fn dir_tree(repo: &Repository, name: &str) -> BlobRef {
    match repo.read_tree(&newest_root(repo)).unwrap().get(name) {
        Some(Entry::Dir(d)) => d.tree.clone(),
        other => panic!("{name}/ is not a directory of the snapshot: {other:?}"),
    }
}

fn pack_path(w: &World, blob: &BlobRef) -> std::path::PathBuf {
    w.repo().join(pack_key(&blob.pack))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn packs_show_no_content_name_or_tenant() {
    let w = World::new();
    let mut content = b"MARKER-IN-CONTENT-5d1c ".to_vec();
    content.extend(Rng::new(3).bytes(100_000)); // incompressible: stored as is
    let text = b"MARKER-IN-TEXT-77a0 ".repeat(2_000); // compressible
    put(
        &w.src(),
        "tenantMARKERq/dir/MARKER-IN-NAME-e3f9.bin",
        &content,
    );
    put(&w.src(), "tenantMARKERq/dir/notes.txt", &text);
    put(&w.src(), "root-MARKER-IN-NAME-2.txt", b"outside any tenant");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let packs = w.packs();
    assert!(packs.len() >= 3, "data and trees of two keys: {packs:?}");
    for pack in &packs {
        let bytes = std::fs::read(pack).unwrap();
        for marker in [
            &b"MARKER-IN-CONTENT"[..],
            b"MARKER-IN-TEXT",
            b"MARKER-IN-NAME",
            b"tenantMARKERq",
            b"\"blobs\"",
        ] {
            assert!(
                !contains(&bytes, marker),
                "{} shows {}",
                pack.display(),
                String::from_utf8_lossy(marker)
            );
        }
    }
    let out = w.path("out");
    w.ok(&["restore", "--source", "data", "--to", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(out.join("tenantMARKERq/dir/MARKER-IN-NAME-e3f9.bin")).unwrap(),
        content
    );
    assert_eq!(
        std::fs::read(out.join("tenantMARKERq/dir/notes.txt")).unwrap(),
        text
    );
}

#[test]
fn the_same_file_in_two_tenants_is_two_unrelated_blobs() {
    let w = World::new();
    let data = Rng::new(8).bytes(300_000);
    put(&w.src(), "acme/same.bin", &data);
    put(&w.src(), "globex/same.bin", &data);
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let repo = w.open_repo();
    let (a, g) = (
        file_at(&repo, "acme/same.bin"),
        file_at(&repo, "globex/same.bin"),
    );
    assert_eq!(a.sha256, g.sha256, "same content");
    // The file is big enough for its chunk list to be stored in pieces.
    let chunks = |f: &FileEntry| repo.all_chunks(&f.chunks).unwrap();
    let ids = |f: &FileEntry| chunks(f).iter().map(|c| c.id).collect::<Vec<_>>();
    assert!(
        ids(&a).iter().all(|id| !ids(&g).contains(id)),
        "no chunk id is shared across tenants"
    );
    assert!(
        chunks(&a)
            .iter()
            .all(|c| chunks(&g).iter().all(|d| d.pack != c.pack)),
        "each tenant's blobs are in its own packs"
    );
    let stored: u64 = w.packs().iter().map(|p| p.metadata().unwrap().len()).sum();
    assert!(stored > 2 * data.len() as u64, "two copies are stored");
    let check = w.json(&["check", "--read-data"]);
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    assert_eq!(check["files_verified"], 2, "{check}");
    let stats = w.json(&["stats"]);
    assert!(stats.to_string().contains("globex"), "{stats}");
}

/// Flip one byte of `pack` at each of `offsets`: `check --read-data` names
/// the pack; when the byte is inside a blob of `item`'s path, restoring it
/// fails naming the pack too; nothing is ever deleted or changed.
fn assert_every_flip_named(w: &World, pack: &std::path::Path, offsets: &[usize], blob_end: usize) {
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    let good = std::fs::read(pack).unwrap();
    for &at in offsets {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(pack, &bad).unwrap();
        let before = w.data_objects();
        let out = w.offsite(&["check", "--read-data"]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(out.status.code(), Some(1), "byte {at}: {stdout}");
        assert!(
            stdout.contains(&name),
            "byte {at}: check names the pack: {stdout}"
        );
        if at < blob_end {
            let target = w.path(&format!("out-{at}"));
            let out = w.offsite(&[
                "restore",
                "--item",
                "t1/doc.bin",
                "--to",
                target.to_str().unwrap(),
            ]);
            let line = one_line_error(&out);
            assert!(
                line.contains(&name),
                "byte {at}: restore names the pack: {line}"
            );
            assert!(
                relative_files(&target).is_empty(),
                "byte {at}: nothing restored"
            );
        }
        assert_eq!(
            w.data_objects(),
            before,
            "byte {at}: nothing deleted or changed"
        );
        std::fs::write(pack, &good).unwrap();
    }
}

/// Offsets to flip in a pack of `len` bytes whose blobs end at `blob_end`:
/// first, middle and last blob bytes, the sealed header, its length and
/// the magic.
fn sample(len: usize, blob_end: usize) -> Vec<usize> {
    vec![
        0,
        blob_end / 2,
        blob_end - 1,
        blob_end,
        (blob_end + len - 12) / 2,
        len - 12,
        len - 9,
        len - 1,
    ]
}

#[test]
fn any_flipped_byte_of_a_data_or_tree_pack_is_named_and_nothing_is_deleted() {
    let w = World::new();
    put(&w.src(), "t1/doc.bin", &Rng::new(5).bytes(200_000));
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let repo = w.open_repo();
    let file = file_at(&repo, "t1/doc.bin");
    let data_end = file
        .chunks
        .inline()
        .unwrap()
        .iter()
        .map(|c| c.range().end)
        .max()
        .unwrap() as usize;
    let data_pack = pack_path(&w, &file.chunks.inline().unwrap()[0]);
    let len = std::fs::metadata(&data_pack).unwrap().len() as usize;
    assert_every_flip_named(&w, &data_pack, &sample(len, data_end), data_end);
    let tree = dir_tree(&repo, "t1");
    let tree_pack = pack_path(&w, &tree);
    let len = std::fs::metadata(&tree_pack).unwrap().len() as usize;
    let tree_end = tree.range().end as usize;
    assert_every_flip_named(&w, &tree_pack, &sample(len, tree_end), tree_end);
    w.ok(&["check", "--read-data"]);
}

#[test]
fn a_moved_blob_or_a_swapped_header_does_not_authenticate() {
    let w = World::new();
    put(&w.src(), "t1/a.txt", b"first tenant's text");
    put(&w.src(), "t2/b.txt", b"second tenant's text");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let repo = w.open_repo();
    let tree = dir_tree(&repo, "t1");
    let path = pack_path(&w, &tree);
    let good = std::fs::read(&path).unwrap();

    // The same bytes one position later: the offset is the nonce.
    let mut shifted = vec![0u8; 16];
    shifted.extend_from_slice(&good);
    std::fs::write(&path, &shifted).unwrap();
    let moved = BlobRef {
        offset: tree.offset + 16,
        ..tree.clone()
    };
    let err = repo.read_tree(&moved).unwrap_err().to_string();
    assert!(err.contains("does not authenticate"), "{err}");
    assert!(err.contains(&pack_key(&tree.pack)), "{err}");
    std::fs::write(&path, &good).unwrap();

    // The same pack under another pack's name: the pack id derives the key.
    let other = dir_tree(&repo, "t2");
    let elsewhere = BlobRef {
        pack: other.pack,
        ..tree.clone()
    };
    let other_path = pack_path(&w, &other);
    let other_good = std::fs::read(&other_path).unwrap();
    std::fs::write(&other_path, &good).unwrap();
    let err = repo.read_tree(&elsewhere).unwrap_err().to_string();
    assert!(err.contains("does not authenticate"), "{err}");
    match repo.verify_pack(other.pack, &good).unwrap() {
        PackVerdict::Damaged { reason, .. } => assert!(reason.contains("authenticate"), "{reason}"),
        v => panic!("a header under another pack's name opened: {v:?}"),
    }
    std::fs::write(&other_path, &other_good).unwrap();

    // One pack's blobs with the other's header (and trailer).
    let header_len = |p: &[u8]| {
        u32::from_le_bytes(p[p.len() - 12..p.len() - 8].try_into().unwrap()) as usize + 12
    };
    let mut swapped = good[..good.len() - header_len(&good)].to_vec();
    swapped.extend_from_slice(&other_good[other_good.len() - header_len(&other_good)..]);
    std::fs::write(&path, &swapped).unwrap();
    let before = w.data_objects();
    let out = w.offsite(&["check", "--read-data"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&pack_key(&tree.pack)), "{stdout}");
    assert_eq!(w.data_objects(), before, "nothing deleted");
    std::fs::write(&path, &good).unwrap();
    w.ok(&["check", "--read-data"]);
}

/// Regression: an unchanged file whose tenant changed (the tenant rule of
/// its source changed) must be read again: the parent's chunks are sealed
/// under the old tenant's key, and reusing them would leave a file nobody
/// can restore.
#[test]
fn an_unchanged_file_of_a_new_tenant_is_read_again() {
    let w = World::with_sources(&[("data", "client-data", "tenant = \"first-component\"")]);
    let data = Rng::new(11).bytes(150_000);
    put(&w.src(), "acme/report.bin", &data);
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    let config = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        config.replace("tenant = \"first-component\"", "tenant = \"fixed:newco\""),
    )
    .unwrap();
    let next = w.json(&["snapshot", "--time", "2026-11-21T02:00:00Z"]);
    assert_eq!(next["files_unchanged"], 0, "{next}");
    assert_eq!(next["files_changed"], 1, "{next}");
    let repo = w.open_repo();
    let file = file_at(&repo, "acme/report.bin");
    assert_eq!(file.tenant.as_deref(), Some("newco"));
    assert!(file
        .chunks
        .inline()
        .unwrap()
        .iter()
        .all(|c| c.tenant.as_deref() == Some("newco")));
    let out = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "acme/report.bin",
        "--to",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(out.join("acme/report.bin")).unwrap(), data);
    let check = w.json(&["check", "--read-data"]);
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
}
