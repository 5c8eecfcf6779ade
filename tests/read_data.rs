//! `check --read-data` reads every pack once, verifying every blob in it;
//! `--read-data-subset n/m` and `P%` read a part of the packs, so a week of
//! `1/7` … `7/7` covers the repository; a damaged pack is found by the one
//! part that holds it, named, and its items listed; bad values are one line
//! and exit 2.

mod common;
use common::*;

/// A repository of several packs: one per tenant, plus the trees'.
fn world() -> World {
    let w = World::with_sources(&[("data", "client-data", "tenant = \"first-component\"")]);
    let mut rng = Rng::new(3);
    for t in ["acme", "globex", "initech", "umbrella", "hooli", "wonka"] {
        put(&w.src(), &format!("{t}/doc.bin"), &rng.bytes(40_000));
        put(&w.src(), &format!("{t}/notes.txt"), &rng.text(20_000));
    }
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-11-20T02:00:00Z"]);
    w
}

#[test]
fn a_week_of_subsets_reads_every_pack_once() {
    let w = world();
    let full = w.json(&["check", "--read-data"]);
    let packs = w.packs().len() as u64;
    assert!(packs >= 7, "{packs} packs");
    assert_eq!(full["packs_verified"], packs, "{full}");
    assert_eq!(full["files_verified"], 12, "{full}");
    assert_eq!(full["unindexed_packs"], 0, "{full}");
    assert_eq!(full["unreferenced_packs"], 0, "{full}");
    let mut read = 0;
    for n in 1..=7 {
        let part = w.json(&["check", "--read-data-subset", &format!("{n}/7")]);
        assert_eq!(part["subset"], format!("{n}/7"), "{part}");
        assert_eq!(part["problems"].as_array().unwrap().len(), 0, "{part}");
        read += part["packs_verified"].as_u64().unwrap();
    }
    assert_eq!(read, packs, "every pack read exactly once over the week");

    let half = w.json(&["check", "--read-data-subset", "50%"]);
    let subset = half["subset"].as_str().unwrap();
    assert!(subset.starts_with("50% (seed "), "{half}");
    assert!(half["packs_verified"].as_u64().unwrap() <= packs, "{half}");
    let text = w.ok(&["check", "--read-data-subset", "100%"]);
    assert!(text.contains("read-data subset 100% (seed "), "{text}");
    assert!(text.contains(&format!("read back {packs} packs")), "{text}");
}

#[test]
fn a_damaged_pack_is_found_by_the_part_that_holds_it() {
    let w = world();
    let pack = w.biggest_pack();
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    let before = w.data_objects();
    let mut found = 0;
    for n in 1..=7 {
        let out = w.offsite(&["check", "--read-data-subset", &format!("{n}/7")]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if stdout.contains(&name) {
            found += 1;
            assert_eq!(out.status.code(), Some(1), "{stdout}");
            assert!(stdout.contains("damaged item"), "{stdout}");
        } else {
            assert!(out.status.success(), "{stdout}");
        }
    }
    assert_eq!(found, 1, "exactly one part reads the damaged pack");
    let out = w.offsite(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&name));
    assert_eq!(w.data_objects(), before, "nothing deleted or changed");
}

#[test]
fn bad_subsets_are_one_line_and_exit_2() {
    let w = world();
    for bad in ["0/7", "8/7", "1/0", "7", "x/y", "0%", "101%", "ten%"] {
        let out = w.offsite(&["check", "--read-data-subset", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let line = one_line_error(&out);
        assert!(line.contains("--read-data-subset"), "{bad}: {line}");
    }
}
