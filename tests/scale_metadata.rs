//! Acceptance (issue 10, "Metadata that scales"): a directory of 1 000 000
//! files is snapshotted, and one item of it is found reading at most 1 MiB
//! of metadata (the pages on its path, not the directory) and restored.
//!
//! `OFFSITE_SCALE_FILES` sets the number of files (default 1 000 000, what
//! CI runs); a smaller number runs the same test faster while working.

mod common;
use common::*;

use offsite::repo::pack::BlobRef;
use offsite::repo::Repository;
use offsite::tree::page::{self, Page, PieceRef};
use offsite::tree::read::{lookup, PageSource};
use offsite::tree::Entry;

/// Reads pages from the repository, counting the bytes fetched.
struct Counting<'r> {
    repo: &'r Repository,
    bytes: u64,
    pages: u64,
}

impl Counting<'_> {
    fn read(&mut self, blob: &BlobRef) -> offsite::error::Result<Vec<u8>> {
        self.bytes += u64::from(blob.length);
        self.pages += 1;
        self.repo.read_blob(blob)
    }
}

impl PageSource for Counting<'_> {
    fn page(&mut self, blob: &BlobRef) -> offsite::error::Result<Page> {
        let bytes = self.read(blob)?;
        page::decode(blob, &bytes)
    }
    fn piece(&mut self, blob: &BlobRef) -> offsite::error::Result<Vec<BlobRef>> {
        let bytes = self.read(blob)?;
        page::decode_piece(blob, &bytes)
    }
    fn piece_list(&mut self, blob: &BlobRef, chunks: u64) -> offsite::error::Result<Vec<PieceRef>> {
        let bytes = self.read(blob)?;
        page::decode_piece_list(blob, chunks, &bytes)
    }
}

/// Peak resident memory of the biggest child process waited for, in bytes.
fn children_peak_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn one_item_of_a_directory_of_a_million_files_reads_at_most_1_mib_of_metadata() {
    let files: usize = std::env::var("OFFSITE_SCALE_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let w = World::new();
    let big = w.src().join("mail");
    std::fs::create_dir_all(&big).unwrap();
    let started = std::time::Instant::now();
    for i in 0..files {
        std::fs::File::create(big.join(format!("{i:07}.eml"))).unwrap();
    }
    let wanted = format!("{:07}.eml", files / 2);
    std::fs::write(big.join(&wanted), b"the one e-mail asked for\n").unwrap();
    eprintln!("{files} files created in {:?}", started.elapsed());
    w.ok(&["init"]);
    let started = std::time::Instant::now();
    w.ok(&["snapshot"]);
    let rss = children_peak_rss();
    eprintln!(
        "snapshot of {files} files: {:?}, peak RSS {} MiB",
        started.elapsed(),
        rss >> 20
    );
    // The whole directory's entries are in memory once during the walk
    // (~400 B each); the pages are written as they close.
    let limit = (256 << 20) + files as u64 * 1024;
    assert!(rss < limit, "snapshot peak RSS {rss} B over {limit} B");

    let repo = w.open_repo();
    let refs = repo.list_snapshots(None, None).unwrap();
    let snapshot = repo.load_snapshot(&refs[0]).unwrap();
    let mut counting = Counting {
        repo: &repo,
        bytes: 0,
        pages: 0,
    };
    let Some(Entry::Dir(mail)) = lookup(&mut counting, &snapshot.tree, "mail").unwrap() else {
        panic!("mail/ is not in the snapshot");
    };
    assert_eq!(mail.files_below, files as u64);
    let Some(Entry::File(item)) = lookup(&mut counting, &mail.tree, &wanted).unwrap() else {
        panic!("{wanted} is not in mail/");
    };
    assert_eq!(item.size, 25);
    eprintln!(
        "one item: {} pages, {} bytes of metadata",
        counting.pages, counting.bytes
    );
    assert!(
        counting.bytes <= 1 << 20,
        "{} bytes of metadata read for one item",
        counting.bytes
    );
    // And the CLI restores it.
    let to = w.path("restored");
    let item_path = format!("mail/{wanted}");
    w.ok(&[
        "restore",
        "--item",
        &item_path,
        "--to",
        to.to_str().unwrap(),
    ]);
    let restored = std::fs::read(to.join(&wanted))
        .or_else(|_| std::fs::read(to.join(&item_path)))
        .unwrap();
    assert_eq!(restored, b"the one e-mail asked for\n");
}

/// One changed byte in the middle of a big file stores the changed chunk and
/// a few pieces of its chunk list, not the whole list again (~10 000
/// references, ~450 KB, in format 2's single list).
#[test]
fn a_one_byte_change_in_a_big_file_stores_only_a_few_chunk_list_pieces() {
    let w = World::new();
    let mut data = Rng::new(7).bytes(80 << 20);
    put(&w.src(), "db/dump.sql", &data);
    w.ok(&["init"]);
    let first = w.json(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    assert!(first["bytes_added"].as_u64().unwrap() > 80 << 20);
    let repo = w.open_repo();
    let refs = repo.list_snapshots(None, None).unwrap();
    let snap = repo.load_snapshot(&refs[0]).unwrap();
    let file = repo
        .lookup_file(&snap.tree, &["db".into(), "dump.sql".into()])
        .unwrap()
        .unwrap();
    let chunks = file.chunks.len();
    assert!(chunks > 5_000, "{chunks} chunks");
    assert!(file.chunks.inline().is_none(), "a long list is in pieces");

    let middle = data.len() / 2;
    data[middle] ^= 0xFF;
    put(&w.src(), "db/dump.sql", &data);
    let second = w.json(&["snapshot", "--time", "2026-11-21T02:00:00Z"]);
    let added = second["bytes_added"].as_u64().unwrap();
    // One or two new chunks (at most 64 KiB each, random data does not
    // compress), a few pieces of ~6 KB, the piece list and two pages.
    assert!(
        added < 256 << 10,
        "{added} bytes added for one changed byte"
    );
    let check = w.json(&["check", "--read-data"]);
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    let to = w.path("restored");
    w.ok(&[
        "restore",
        "--item",
        "db/dump.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    let restored = std::fs::read(to.join("dump.sql"))
        .or_else(|_| std::fs::read(to.join("db/dump.sql")))
        .unwrap();
    assert!(restored == data, "the changed file restores");
}
