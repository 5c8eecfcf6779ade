//! Snapshot memory does not grow with the repository's index (issue 10,
//! "bounded memory"): index entries live in an on-disk table, RAM keeps a
//! few bits per blob. The test grows a repository's index by two million
//! synthetic blob entries (index files written through the crate API, over
//! small stand-in pack objects that are never read) and measures the peak
//! RSS of the `offsite snapshot` child before and after: the growth must stay
//! under ~10 MiB per million blobs (the old in-memory index cost ~270 MiB
//! per million).

mod common;

use common::World;
use offsite::id::ObjectId;
use offsite::repo::index::IndexedPack;
use offsite::repo::layout::pack_key;
use offsite::repo::pack::{BlobKind, Compression, PackedBlob};

const BLOBS_PER_PACK: u32 = 2_000;
const PACKS_PER_INDEX_FILE: usize = 50;
/// Stand-in packs are this many bytes (their content is never read).
const FAKE_PACK_LEN: u64 = 16;

/// Add `blobs` synthetic blob entries: packs that exist (so the snapshot
/// trusts them) and index files listing random ids in them.
fn add_index_entries(w: &World, blobs: u32) {
    let repo = w.open_repo();
    let mut batch = Vec::new();
    for _ in 0..blobs / BLOBS_PER_PACK {
        let id = ObjectId::random();
        let path = w.repo().join(pack_key(&id));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0u8; FAKE_PACK_LEN as usize]).unwrap();
        batch.push(IndexedPack {
            id,
            size: FAKE_PACK_LEN,
            tenant: None,
            blobs: (0..BLOBS_PER_PACK)
                .map(|i| PackedBlob {
                    id: ObjectId::random(),
                    kind: BlobKind::Data,
                    offset: u64::from(i) * 100,
                    length: 100,
                    raw_length: 200,
                    compression: Compression::Zstd,
                })
                .collect(),
        });
        if batch.len() == PACKS_PER_INDEX_FILE {
            repo.write_index_file(std::mem::take(&mut batch)).unwrap();
        }
    }
    if !batch.is_empty() {
        repo.write_index_file(batch).unwrap();
    }
}

/// The largest peak RSS of any child waited for so far, in KiB.
fn children_peak_rss_kib() -> i64 {
    // SAFETY: `getrusage` only writes the `rusage` it is handed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage fails");
    usage.ru_maxrss
}

/// New source content, so the snapshot looks every chunk up in the index.
fn write_source(w: &World, round: u32) {
    for i in 0..200u32 {
        let body: Vec<u8> = (0..20_000u32)
            .map(|j| (j.wrapping_mul(2_654_435_761) ^ (i << 8) ^ round) as u8)
            .collect();
        std::fs::write(w.src().join(format!("f{i}")), body).unwrap();
    }
}

#[test]
fn snapshot_peak_memory_does_not_grow_with_the_index() {
    let w = World::new();
    w.ok(&["init"]);
    add_index_entries(&w, 1_000_000);
    write_source(&w, 1);
    w.ok(&["snapshot"]);
    let at_one_million = children_peak_rss_kib();
    add_index_entries(&w, 2_000_000);
    write_source(&w, 2);
    w.ok(&["snapshot"]);
    let at_three_million = children_peak_rss_kib();
    let growth_kib = at_three_million - at_one_million;
    eprintln!(
        "snapshot peak RSS: {} MiB at 1 M blobs, {} MiB at 3 M blobs",
        at_one_million >> 10,
        at_three_million >> 10
    );
    assert!(
        growth_kib <= 2 * 10 * 1024,
        "peak RSS grew by {} MiB for 2 M more blobs ({} → {} MiB)",
        growth_kib >> 10,
        at_one_million >> 10,
        at_three_million >> 10
    );
}
