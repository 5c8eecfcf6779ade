//! `offsite stats`: per source and per tenant, figures that add up: items
//! and logical bytes are the snapshots' summaries summed, stored bytes count
//! each blob once and never exceed what the packs hold.

mod common;
use common::*;

use serde_json::Value;

fn rows(report: &Value, table: &str) -> Vec<Value> {
    report[table].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], field: &str, value: &str) -> &'a Value {
    rows.iter()
        .find(|r| r[field] == value)
        .unwrap_or_else(|| panic!("no {field} {value} in {rows:?}"))
}

fn sum(rows: &[Value], field: &str) -> u64 {
    rows.iter().map(|r| r[field].as_u64().unwrap()).sum()
}

#[test]
fn figures_add_up_to_the_snapshot_summaries_and_the_packs() {
    let w = World::with_sources(&[
        (
            "data",
            "client-data",
            "include = [\"*/emails/**\", \"*/db/**\"]",
        ),
        ("voice", "voice", "include = [\"*/voice/**\"]"),
    ]);
    let mut rng = Rng::new(5);
    // The same 60 kB in both tenants: stored once per tenant (blobs are
    // sealed and named under each tenant's own key), billed to each.
    let shared = rng.bytes(60_000);
    put(&w.src(), "acme/emails/big.eml", &shared);
    put(&w.src(), "globex/emails/big.eml", &shared);
    put(&w.src(), "acme/db/dump.sql", &rng.text(200_000));
    put(&w.src(), "globex/emails/small.eml", b"hi");
    put(&w.src(), "acme/voice/2026/10/07/a.opus", &rng.bytes(30_000));
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", "2026-10-08T02:00:00Z"]);
    put(&w.src(), "acme/db/dump.sql", &rng.text(210_000));
    put(
        &w.src(),
        "globex/voice/2026/10/08/b.opus",
        &rng.bytes(20_000),
    );
    w.ok(&["snapshot", "--time", "2026-10-09T02:00:00Z"]);

    let stats = w.json(&["stats"]);
    let snaps = w.json(&["snapshots"])["snapshots"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(stats["snapshots"], snaps.len() as u64);
    let sources = rows(&stats, "sources");
    for source in ["data", "voice"] {
        let of: Vec<Value> = snaps
            .iter()
            .filter(|s| s["source"] == source)
            .cloned()
            .collect();
        let r = row(&sources, "source", source);
        assert_eq!(r["items"].as_u64().unwrap(), sum(&of, "items"), "{source}");
        assert_eq!(
            r["logical_bytes"].as_u64().unwrap(),
            sum(&of, "bytes"),
            "{source}"
        );
    }
    let tenants = rows(&stats, "tenants");
    assert_eq!(sum(&tenants, "items"), sum(&snaps, "items"));
    assert_eq!(sum(&tenants, "logical_bytes"), sum(&snaps, "bytes"));
    assert_eq!(sum(&tenants, "stored_bytes"), sum(&sources, "stored_bytes"));
    assert_eq!(
        sum(&rows(&stats, "detail"), "stored_bytes"),
        sum(&sources, "stored_bytes")
    );

    // Stored bytes: each blob once, never more than the packs hold.
    let pack_bytes: u64 = w
        .objects()
        .iter()
        .filter(|(k, _)| k.starts_with("packs/"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(stats["repository_bytes"], pack_bytes);
    let stored = sum(&sources, "stored_bytes");
    assert!(
        stored > 0 && stored <= pack_bytes,
        "{stored} of {pack_bytes}"
    );
    assert_eq!(
        stats["unattributed_bytes"].as_u64().unwrap(),
        pack_bytes - stored
    );
    let shares: f64 = sources.iter().map(|r| r["share"].as_f64().unwrap()).sum();
    assert!((shares - stored as f64 / pack_bytes as f64).abs() < 1e-9);

    let acme = row(&tenants, "tenant", "acme");
    let globex = row(&tenants, "tenant", "globex");
    assert!(acme["stored_bytes"].as_u64().unwrap() > 60_000, "{acme}");
    assert!(
        globex["stored_bytes"].as_u64().unwrap() >= 80_000,
        "its own copy of the e-mail and its own recording: {globex}"
    );

    let table = w.ok(&["stats"]);
    assert!(
        table.contains("test-host/data") && table.contains("globex"),
        "{table}"
    );
}

#[test]
fn an_empty_repository_has_no_rows() {
    let w = World::new();
    w.ok(&["init"]);
    let stats = w.json(&["stats"]);
    assert!(rows(&stats, "sources").is_empty());
    assert_eq!(stats["snapshots"], 0);
    assert_eq!(stats["unattributed_bytes"], stats["repository_bytes"]);
}
