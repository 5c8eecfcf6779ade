//! Acceptance (issue 8, finding 2): after any single pack is lost or
//! damaged, the next snapshot is whole again: every file restores
//! byte-identical, including a voice recording that never changed. `check`
//! names the older snapshots and items that are damaged, and `repair`
//! quarantines a damaged pack (never deletes it) and reports per snapshot.

mod common;
use common::*;

use serde_json::Value;

const CONTRACTS: &str = "[contracts]\ndefault_voice_retention_days = 365\n";

/// Client data and voice over `src/`, each snapshotted once.
fn world() -> (World, Vec<(String, Vec<u8>)>) {
    let w = World::configured(
        "",
        &[
            ("data", "client-data", "include = [\"*/db/**\"]"),
            ("voice", "voice", "include = [\"*/voice/**\"]"),
        ],
        CONTRACTS,
    );
    let mut rng = Rng::new(81);
    let files = vec![
        ("t1/db/dump.sql".to_string(), rng.text(150_000)),
        ("t1/db/small.sql".to_string(), rng.text(3_000)),
        ("t1/voice/2026/11/28/a.opus".to_string(), rng.bytes(300_000)),
        ("t1/voice/2026/11/28/b.opus".to_string(), rng.bytes(200_000)),
    ];
    for (path, data) in &files {
        put(&w.src(), path, data);
    }
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    (w, files)
}

/// Every file restores byte-identical from the newest snapshot of its source.
fn assert_latest_restores(w: &World, files: &[(String, Vec<u8>)], round: &str) {
    for (i, (path, data)) in files.iter().enumerate() {
        let source = if path.contains("/voice/") {
            "voice"
        } else {
            "data"
        };
        let to = w.path(&format!("out-{round}-{i}"));
        w.ok(&[
            "restore",
            "--source",
            source,
            "--snapshot",
            "latest",
            "--item",
            path,
            "--to",
            to.to_str().unwrap(),
        ]);
        let got = std::fs::read(to.join(path)).unwrap();
        assert!(got == *data, "{path} restores byte-identical ({round})");
    }
}

/// `offsite --json args` that may fail: (exit code, parsed stdout).
fn json_any(w: &World, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = w.offsite(&all);
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{args:?}: no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), value)
}

/// Snapshot ids of `source`, newest first.
fn snapshot_ids(w: &World, source: &str) -> Vec<String> {
    w.json(&["snapshots", "--source", source])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// The damaged snapshots in a check or repair report: id → items.
fn damaged(report: &Value) -> Vec<(String, Vec<String>)> {
    report["damaged"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|d| {
                    let items = d["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i.as_str().unwrap().to_string())
                        .collect();
                    (d["snapshot"].as_str().unwrap().to_string(), items)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Snapshot both sources again; every file restores from the new snapshots,
/// and `check` names damage only in snapshots older than them.
fn heal_and_verify(w: &World, files: &[(String, Vec<u8>)], round: &str) {
    let out = w.ok(&["--json", "snapshot"]);
    let reports: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2, "{out}");
    for r in &reports {
        assert_eq!(r["items"], 2, "no file left out: {r}");
    }
    assert_latest_restores(w, files, round);
    let newest: Vec<String> = ["data", "voice"]
        .iter()
        .map(|s| snapshot_ids(w, s)[0].clone())
        .collect();
    let (_, report) = json_any(w, &["check", "--read-data"]);
    for (id, items) in damaged(&report) {
        assert!(
            !newest.contains(&id),
            "the new snapshot {id} is whole, but check says {items:?} ({round})"
        );
    }
}

fn lose_one_pack(index: usize, rebuild: bool) {
    let (w, files) = world();
    let packs = w.packs();
    assert!(packs.len() >= 4, "a data and a tree pack per source");
    let Some(pack) = packs.get(index) else {
        return;
    };
    let round = format!("pack{index}-rebuild{rebuild}");
    std::fs::remove_file(pack).unwrap();
    if rebuild {
        w.ok(&["rebuild-index"]);
    }
    let (code, report) = json_any(&w, &["check"]);
    assert_eq!(code, Some(1), "check notices the lost pack ({round})");
    let hit = damaged(&report);
    assert!(!hit.is_empty(), "check names a damaged snapshot ({round})");
    assert!(
        hit.iter().all(|(_, items)| !items.is_empty()),
        "and its items ({round}): {hit:?}"
    );
    heal_and_verify(&w, &files, &round);
}

#[test]
fn any_lost_pack_heals_at_the_next_snapshot() {
    for index in 0..6 {
        lose_one_pack(index, false);
    }
}

#[test]
fn any_lost_pack_heals_after_rebuild_index_too() {
    for index in 0..6 {
        lose_one_pack(index, true);
    }
}

#[test]
fn lost_voice_pack_names_the_older_snapshot_and_its_recordings() {
    let (w, files) = world();
    let voice_before = snapshot_ids(&w, "voice")[0].clone();
    std::fs::remove_file(w.biggest_pack()).unwrap(); // the recordings' chunks
    let (code, report) = json_any(&w, &["check"]);
    assert_eq!(code, Some(1));
    let hit = damaged(&report);
    let (_, items) = hit
        .iter()
        .find(|(id, _)| *id == voice_before)
        .unwrap_or_else(|| panic!("the voice snapshot is named: {hit:?}"));
    assert!(items.contains(&"t1/voice/2026/11/28/a.opus".to_string()));
    assert!(items.contains(&"t1/voice/2026/11/28/b.opus".to_string()));
    let text = String::from_utf8_lossy(&w.offsite(&["check"]).stdout).to_string();
    assert!(
        text.contains(&format!("damaged snapshot {}", &voice_before[..8]))
            && text.contains("damaged item: t1/voice/2026/11/28/a.opus"),
        "text output names them too: {text}"
    );
    let next = w.json(&["snapshot", "--source", "voice"]);
    assert_eq!(next["healed"], 2, "both unchanged recordings read again");
    assert_eq!(next["files_unchanged"], 2);
    assert_latest_restores(&w, &files[2..], "voice");
}

#[test]
fn carried_recording_whose_pack_is_lost_is_left_out_loudly() {
    let (w, files) = world();
    std::fs::remove_file(w.src().join("t1/voice/2026/11/28/b.opus")).unwrap();
    std::fs::remove_file(w.biggest_pack()).unwrap();
    let next = w.json(&["snapshot", "--source", "voice"]);
    assert_eq!(next["lost"], 1, "{next}");
    assert_eq!(next["items"], 1, "the lost recording is not referenced");
    assert!(next["warnings"].as_u64().unwrap() >= 1);
    let samples = next["warning_samples"].to_string();
    assert!(samples.contains("b.opus"), "{samples}");
    assert_latest_restores(&w, &files[2..3], "carried");
}

#[test]
fn flipped_byte_is_quarantined_by_repair_and_the_next_snapshot_heals() {
    let (w, files) = world();
    let voice_before = snapshot_ids(&w, "voice")[0].clone();
    let pack = w.biggest_pack();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[1000] ^= 0x40;
    std::fs::write(&pack, &bytes).unwrap();

    let (code, report) = json_any(&w, &["check", "--read-data"]);
    assert_eq!(code, Some(1));
    let hit = damaged(&report);
    // The byte lies in the first blob of the pack: one of the two recordings.
    let bad_item = match hit.as_slice() {
        [(id, items)] if *id == voice_before && items.len() == 1 => items[0].clone(),
        other => panic!("check --read-data names the voice snapshot and one recording: {other:?}"),
    };
    assert!(bad_item.starts_with("t1/voice/2026/11/28/"), "{bad_item}");

    let packs_before: Vec<String> = w
        .packs()
        .iter()
        .map(|p| p.strip_prefix(w.repo()).unwrap().display().to_string())
        .collect();
    let report = w.json(&["repair"]);
    let quarantined = report["quarantined"].as_array().unwrap();
    assert_eq!(quarantined.len(), 1, "{report}");
    let key = quarantined[0]["pack"].as_str().unwrap();
    assert!(!w.repo().join(key).exists(), "moved out of packs/");
    let kept = w.repo().join("quarantine").join(key);
    assert!(
        std::fs::read(&kept).unwrap() == bytes,
        "kept byte for byte in quarantine/"
    );
    for old in &packs_before {
        assert!(
            w.repo().join(old).exists() || old == key,
            "{old}: only the damaged pack left packs/"
        );
    }
    assert_eq!(
        quarantined[0]["blobs_salvaged"], 1,
        "the other recording's chunk verified"
    );
    // The old snapshot's trees point into the quarantined pack for both
    // recordings; the salvaged copy serves only the snapshots to come.
    assert_eq!(
        damaged(&report),
        vec![(
            voice_before.clone(),
            vec![
                "t1/voice/2026/11/28/a.opus".to_string(),
                "t1/voice/2026/11/28/b.opus".to_string()
            ]
        )],
        "repair reports the damaged snapshot and its items"
    );

    let next = w.json(&["snapshot", "--source", "voice"]);
    assert_eq!(
        next["healed"], 1,
        "only the damaged recording is read again"
    );
    heal_and_verify(&w, &files, "flipped");
}

#[test]
fn reread_reads_every_file_again() {
    let (w, files) = world();
    let total: usize = files.iter().map(|(_, d)| d.len()).sum();
    let plain = w.ok(&["--json", "snapshot"]);
    let plain_read: u64 = plain
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["bytes_read"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(plain_read, 0, "unchanged files are reused");
    let out = w.ok(&["--json", "snapshot", "--reread"]);
    let mut read = 0;
    for line in out.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        read += r["bytes_read"].as_u64().unwrap();
        assert_eq!(r["reread"], 2, "{r}");
        assert_eq!(r["files_unchanged"], 2, "{r}");
        assert_eq!(r["bytes_added"], 0, "nothing new to store: {r}");
    }
    assert_eq!(read, total as u64);
    assert_latest_restores(&w, &files, "reread");
    w.ok(&["check", "--read-data"]);
}
