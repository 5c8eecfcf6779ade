//! Acceptance: the plan `prune --dry-run` prints is what the real prune
//! does. On a repository where the real run forgets snapshots, rewrites
//! voice snapshots without expired recordings, deletes and repacks packs,
//! `prune --dry-run --json` and the next `prune --json` report identical
//! plans; the real run deletes exactly the planned packs and no other; every
//! kept snapshot restores; and the next prune finds nothing left to do.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Twelve daily snapshots of client data (a file kept forever beside a file
/// rewritten daily, so forgotten days leave partly used packs) and of voice
/// recordings (the oldest expire: 5-day contracts keep copies 10 days).
fn build() -> (World, std::collections::BTreeMap<String, Vec<u8>>) {
    let w = World::configured(
        "",
        &[
            (
                "data",
                "client-data",
                "include = [\"*/db/**\"]\nretention = { keep_daily = 4 }",
            ),
            ("voice", "voice", "include = [\"*/voice/**\"]"),
        ],
        "[contracts]\ndefault_voice_retention_days = 5\n",
    );
    let mut rng = Rng::new(7);
    let mut recordings = std::collections::BTreeMap::new();
    w.ok(&["init"]);
    for day in 0..12 {
        let t = t0() + Duration::days(day);
        put(
            &w.src(),
            &format!("acme/db/stable-{day}.sql"),
            &rng.bytes(50_000),
        );
        put(&w.src(), "acme/db/daily.sql", &rng.bytes(300_000));
        let rec = format!("acme/voice/{day}.opus");
        let bytes = rng.bytes(20_000);
        put(&w.src(), &rec, &bytes);
        recordings.insert(rec.clone(), bytes);
        std::fs::File::options()
            .write(true)
            .open(w.src().join(&rec))
            .unwrap()
            .set_modified(SystemTime::from(t - Duration::hours(1)))
            .unwrap();
        // Recordings leave the source after two days; the backup carries them.
        if day >= 2 {
            let _ = std::fs::remove_file(w.src().join(format!("acme/voice/{}.opus", day - 2)));
        }
        w.ok(&["snapshot", "--time", &t.to_rfc3339()]);
    }
    (w, recordings)
}

fn pack_ids(w: &World) -> BTreeSet<String> {
    w.packs()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect()
}

fn planned(plan: &serde_json::Value, list: &str) -> BTreeSet<String> {
    plan["sweep"][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pack"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dry_run_plan_is_exactly_what_the_real_prune_does() {
    let (w, recordings) = build();
    let now = (t0() + Duration::days(12)).to_rfc3339();
    let before = pack_ids(&w);
    let dry = w.json(&["prune", "--dry-run", "--now", &now]);
    assert_eq!(pack_ids(&w), before, "a dry run changes nothing");
    let real = w.json(&["prune", "--really-at-now", "--now", &now]);

    assert_eq!(
        dry["plan"], real["plan"],
        "dry run: {dry}\nreal run: {real}"
    );
    for field in [
        "snapshots_removed",
        "snapshots_rewritten",
        "packs_deleted",
        "packs_repacked",
        "bytes_freed",
        "log_entries_deleted",
    ] {
        assert_eq!(dry[field], real[field], "{field}");
    }
    let plan = &real["plan"];
    assert!(!plan["forget"].as_array().unwrap().is_empty(), "{plan}");
    assert!(!plan["rewrite"].as_array().unwrap().is_empty(), "{plan}");
    let deleted = planned(plan, "delete");
    let repacked = planned(plan, "repack");
    assert!(!deleted.is_empty(), "{plan}");
    assert!(!repacked.is_empty(), "{plan}");
    assert!(
        plan["sweep"]["delete"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["reason"] == "superseded"),
        "packs only the rewrites leave unused are planned too: {plan}"
    );

    // Exactly the planned packs are gone; every other pack is still there.
    let after = pack_ids(&w);
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    let expected: BTreeSet<String> = deleted.union(&repacked).cloned().collect();
    assert_eq!(gone, expected);

    w.ok(&["check", "--read-data"]);
    let to = w.path("out");
    for item in [
        "acme/db/daily.sql",
        "acme/db/stable-0.sql",
        "acme/db/stable-11.sql",
        "acme/voice/11.opus",
        "acme/voice/8.opus",
    ] {
        w.ok(&[
            "restore",
            "--item",
            item,
            "--to",
            to.to_str().unwrap(),
            "--force",
        ]);
        let original = recordings
            .get(item)
            .cloned()
            .unwrap_or_else(|| std::fs::read(w.src().join(item)).unwrap());
        assert!(
            std::fs::read(to.join(item)).unwrap() == original,
            "{item} differs"
        );
    }

    // Nothing was left behind for the next prune.
    let again = w.json(&["prune", "--dry-run", "--now", &now]);
    for list in ["forget", "rewrite", "repoint", "delete_duplicates"] {
        assert!(
            again["plan"][list].as_array().unwrap().is_empty(),
            "{list}: {again}"
        );
    }
    assert!(planned(&again["plan"], "delete").is_empty(), "{again}");
    assert!(planned(&again["plan"], "repack").is_empty(), "{again}");
}
