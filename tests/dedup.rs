//! Acceptance: deduplication. An unchanged tree adds almost nothing; a
//! contiguous 1 % rewrite or a 1 % append of a 100 MiB text file adds a small
//! fraction of it.

mod common;
use common::*;

fn added(w: &World) -> u64 {
    w.json(&["snapshot"])["bytes_added"].as_u64().unwrap()
}

#[test]
fn unchanged_tree_adds_less_than_one_percent() {
    let w = World::new();
    let mut rng = Rng::new(5);
    put(&w.src(), "voice/a.opus", &rng.bytes(20 << 20));
    for i in 0..500 {
        put(&w.src(), &format!("chats/{i}.json"), &rng.text(8000));
    }
    w.ok(&["init"]);
    added(&w);
    let size = 20u64 << 20;
    let second = added(&w);
    assert!(
        second * 100 < size,
        "second snapshot added {second} bytes of {size}"
    );
}

#[test]
fn one_percent_rewrite_or_append_of_a_100_mib_text_file_adds_under_five_percent() {
    let w = World::new();
    let mut rng = Rng::new(9);
    let size = 100usize << 20;
    let original = rng.text(size);
    put(&w.src(), "db/dump.sql", &original);
    w.ok(&["init"]);
    let first = added(&w);
    assert!(first < size as u64, "text is compressed: {first}");

    // A contiguous 1 % rewritten in the middle (same length).
    let mut edited = original.clone();
    let start = size / 2;
    edited[start..start + size / 100].copy_from_slice(&rng.text(size / 100));
    put(&w.src(), "db/dump.sql", &edited);
    let rewrite = added(&w);
    eprintln!("rewrite of 1 % added {rewrite} bytes");
    assert!(
        rewrite * 20 < size as u64,
        "rewrite added {rewrite} of {size}"
    );

    // 1 % appended.
    edited.extend_from_slice(&rng.text(size / 100));
    put(&w.src(), "db/dump.sql", &edited);
    let append = added(&w);
    eprintln!("append of 1 % added {append} bytes");
    assert!(append * 20 < size as u64, "append added {append} of {size}");
    assert!(append > 0 && rewrite > 0, "changes must store something");

    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "db/dump.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(std::fs::read(to.join("db/dump.sql")).unwrap() == edited);
}
