//! A 4 GiB sparse file with a few data regions: the snapshot stores its
//! holes as references to the zero blob without reading them, the restore
//! is byte-identical and sparse, and a second snapshot after a few changed
//! regions stores only those.

mod common;
use common::*;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use offsite::sparse::ZERO_BLOB;

const SIZE: u64 = 4 << 30;

fn write_at(path: &Path, at: u64, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(data).unwrap();
}

fn same_content(a: &Path, b: &Path) {
    let (mut a, mut b) = (File::open(a).unwrap(), File::open(b).unwrap());
    assert_eq!(a.metadata().unwrap().len(), b.metadata().unwrap().len());
    let (mut x, mut y) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        b.read_exact(&mut y[..n]).unwrap();
        assert!(x[..n] == y[..n], "restored content differs");
        if n == 0 {
            break;
        }
    }
}

/// The zero-blob references of `disk.img` in the newest snapshot.
fn hole_refs(w: &World) -> usize {
    let repo = w.open_repo();
    let refs = repo.list_snapshots(None, None).unwrap();
    let newest = refs.iter().max_by_key(|r| r.time).unwrap();
    let root = repo.load_snapshot(newest).unwrap().tree;
    let file = repo
        .lookup_file(&root, &["disk.img".into()])
        .unwrap()
        .unwrap();
    let chunks = repo.all_chunks(&file.chunks).unwrap();
    let zero = chunks
        .iter()
        .find(|c| c.raw_length == ZERO_BLOB)
        .expect("a zero blob");
    chunks.iter().filter(|c| c.id == zero.id).count()
}

#[test]
fn a_sparse_file_is_stored_and_restored_sparse() {
    let w = World::new();
    let disk = w.src().join("disk.img");
    File::create(&disk).unwrap().set_len(SIZE).unwrap();
    let mut rng = Rng::new(5);
    for at in [0, (1 << 30) + 12_345, SIZE - 100_000] {
        write_at(&disk, at, &rng.bytes(300_000));
    }
    w.ok(&["init"]);
    let first = w.json(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    assert!(first["bytes_added"].as_u64().unwrap() < 4 << 20, "{first}");
    // Nearly 4 GiB of holes, one reference per MiB, none of it read.
    assert!(hole_refs(&w) > 4000, "holes stored as the zero blob");

    // A few changed regions: only they are stored again.
    write_at(&disk, 2 << 30, &rng.bytes(100_000));
    write_at(&disk, (1 << 30) + 20_000, &rng.bytes(50_000));
    let second = w.json(&["snapshot", "--time", "2026-11-21T02:00:00Z"]);
    assert_eq!(second["files_changed"], 1, "{second}");
    let added = second["bytes_added"].as_u64().unwrap();
    assert!(added < 2 << 20, "only the changed regions: {second}");
    let out = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "disk.img",
        "--to",
        out.to_str().unwrap(),
    ]);
    let restored = out.join("disk.img");
    same_content(&disk, &restored);
    let blocks = std::fs::metadata(&restored).unwrap().blocks() * 512;
    assert!(
        blocks < 64 << 20,
        "restored sparse: {blocks} bytes allocated"
    );
    w.ok(&["check", "--read-data"]);
}
