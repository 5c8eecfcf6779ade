//! Compression dictionaries (issue 10, repository size): a tenant's small
//! documents are stored with a zstd dictionary trained on the run's first
//! ones; every pack whose blobs use it carries it, so every reader finds it
//! in the pack alone (restore of one item, of a whole source, check
//! --read-data, prune's repack); a damaged dictionary is corruption of its
//! pack, named, and nothing is deleted for it.

mod common;
use common::*;

use offsite::repo::dictionary::SECTION_LEN;
use offsite::repo::layout::{pack_key, parse_pack_key};
use offsite::repo::pack::header_of;

const T1: &str = "2026-11-01T02:00:00Z";
const T2: &str = "2026-11-02T02:00:00Z";
const PRUNE_AT: &str = "2026-11-02T05:00:00Z";

/// More small documents than a dictionary is trained on (2 000), so the
/// later ones are stored with it.
const DOCUMENTS: usize = 2600;

fn world() -> World {
    World::with_sources(&[("mail", "client-data", "retention = { keep_last = 1 }")])
}

/// `DOCUMENTS` e-mails of 1–2 KB under `acme/mail/`; returns their paths
/// relative to the source.
fn documents(w: &World) -> Vec<String> {
    let mut rng = Rng::new(2026);
    (0..DOCUMENTS)
        .map(|i| {
            let rel = format!("acme/mail/{i:05}.eml");
            let len = 1000 + rng.below(1000) as usize;
            put(&w.src(), &rel, &rng.text(len));
            rel
        })
        .collect()
}

/// The packs whose header says they carry a dictionary, as (key, path).
fn packs_with_a_dictionary(w: &World) -> Vec<(String, std::path::PathBuf)> {
    let repo = w.open_repo();
    w.packs()
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(w.repo()).unwrap().display().to_string();
            let id = parse_pack_key(&rel).expect("a pack key");
            let bytes = std::fs::read(&path).unwrap();
            let header = header_of(&id, &bytes, repo.keys().meta()).expect("header opens");
            header.dictionary.then(|| (pack_key(&id), path))
        })
        .collect()
}

fn restore_all(w: &World, to: &str) -> std::process::Output {
    let to = w.path(to);
    w.offsite(&["restore", "--source", "mail", "--to", to.to_str().unwrap()])
}

fn assert_restored(w: &World, to: &str, files: &[String]) {
    for rel in files {
        let a = std::fs::read(w.src().join(rel)).unwrap();
        let b = std::fs::read(w.path(to).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(a == b, "{rel} differs after restore");
    }
}

#[test]
fn documents_after_training_use_the_dictionary_and_every_reader_finds_it() {
    let w = world();
    w.ok(&["init"]);
    let files = documents(&w);
    w.ok(&["snapshot", "--time", T1]);
    let with = packs_with_a_dictionary(&w);
    assert!(
        !with.is_empty(),
        "the later documents' pack has a dictionary"
    );
    for (key, path) in &with {
        let size = path.metadata().unwrap().len() as usize;
        assert!(size > SECTION_LEN, "{key}: {size} bytes");
    }
    // One item read by its location alone (a ranged read of the section),
    // the whole source, and every pack.
    let last = files.last().unwrap();
    let one = w.path("one");
    w.ok(&["restore", "--item", last, "--to", one.to_str().unwrap()]);
    assert_restored(&w, "one", std::slice::from_ref(last));
    assert!(restore_all(&w, "all").status.success());
    assert_restored(&w, "all", &files);
    w.ok(&["check", "--read-data"]);

    // Drop most of the later documents: prune repacks the dictionary pack,
    // compressing its live blobs again for their new pack.
    let (kept, gone) = files.split_at(2100);
    for rel in gone.iter().step_by(2).chain(gone.iter().skip(1).step_by(4)) {
        std::fs::remove_file(w.src().join(rel)).unwrap();
    }
    w.ok(&["snapshot", "--time", T2]);
    let report = w.json(&["prune", "--really-at-now", "--now", PRUNE_AT]);
    assert!(
        report["packs_repacked"].as_u64().unwrap() >= 1,
        "the dictionary pack is repacked: {report}"
    );
    w.ok(&["check", "--read-data"]);
    let left: Vec<String> = kept
        .iter()
        .chain(gone.iter())
        .filter(|rel| w.src().join(rel).exists())
        .cloned()
        .collect();
    assert!(restore_all(&w, "after-prune").status.success());
    assert_restored(&w, "after-prune", &left);
}

#[test]
fn a_damaged_dictionary_is_reported_corrupt_naming_its_pack_and_nothing_is_deleted() {
    let w = world();
    w.ok(&["init"]);
    let files = documents(&w);
    w.ok(&["snapshot", "--time", T1]);
    let (key, path) = packs_with_a_dictionary(&w).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[SECTION_LEN / 2] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let before = w.data_objects();

    let out = w.offsite(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1), "check --read-data flags it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("problem: "))
        .collect();
    assert!(!problems.is_empty(), "{stdout}");
    for p in &problems {
        assert!(p.contains(&key) && p.contains("dictionary"), "{p}");
    }

    let out = restore_all(&w, "all");
    assert!(!out.status.success(), "a restore needing it fails");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(&key) && said.contains("dictionary"), "{said}");
    // The documents stored before the dictionary was trained still restore.
    assert_restored(&w, "all", &files[..100]);
    assert_eq!(w.data_objects(), before, "nothing deleted or rewritten");
}
