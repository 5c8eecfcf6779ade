//! Acceptance: voice recordings are kept exactly as long as the contract says.
//! Tenants with R = 30, 180, 365 and 730 days (B = 60, 360, 730, 1095);
//! recordings spread over four years; half of them deleted from the source.
//! At several prune times an item is restorable exactly while
//! `now < recorded_at + B`, deleted or not; a contract change applies at the
//! next prune.

mod common;
use common::*;

use chrono::{DateTime, Duration, Utc};
use std::time::SystemTime;

const TENANTS: [(&str, i64); 4] = [("t30", 60), ("t180", 360), ("t365", 730), ("t730", 1095)];

fn contracts(t365_days: u32) -> String {
    format!(
        "[contracts]\ndefault_voice_retention_days = 365\n[contracts.tenants]\nt30 = {{ voice_retention_days = 30 }}\n\
         t180 = {{ voice_retention_days = 180 }}\nt365 = {{ voice_retention_days = {t365_days} }}\nt730 = {{ voice_retention_days = 730 }}\n"
    )
}

struct Recording {
    path: String,
    recorded_at: DateTime<Utc>,
    backup_days: i64,
}

fn restorable(w: &World, rec: &Recording, n: &mut usize) -> bool {
    *n += 1;
    let to = w.path(&format!("out-{n}"));
    let out = w.offsite(&[
        "restore",
        "--force",
        "--item",
        &rec.path,
        "--to",
        to.to_str().unwrap(),
    ]);
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not found"),
        "{}: unexpected failure {err}",
        rec.path
    );
    false
}

#[test]
fn recordings_live_exactly_as_long_as_their_contract() {
    let w = World::configured("", &[("voice", "voice", "")], &contracts(365));
    let t0 = DateTime::parse_from_rfc3339("2026-11-01T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut rng = Rng::new(30);
    let mut recs = Vec::new();
    for (tenant, backup_days) in TENANTS {
        for k in 0..24i64 {
            let recorded_at = t0 - Duration::days(k * 61 + 1) - Duration::hours(k);
            let path = format!("{tenant}/voice/{k:02}.opus");
            put(&w.src(), &path, &rng.bytes(2000 + k as usize));
            let f = std::fs::File::options()
                .write(true)
                .open(w.src().join(&path))
                .unwrap();
            f.set_modified(SystemTime::from(recorded_at)).unwrap();
            recs.push(Recording {
                path,
                recorded_at,
                backup_days,
            });
        }
    }
    w.ok(&["init"]);
    let first = w.json(&["snapshot", "--time", &t0.to_rfc3339()]);
    let expired_at_t0 = recs
        .iter()
        .filter(|r| r.recorded_at + Duration::days(r.backup_days) <= t0)
        .count();
    assert_eq!(
        first["expired"].as_u64().unwrap() as usize,
        expired_at_t0,
        "expired recordings are not backed up"
    );
    // Half the recordings are deleted from the source; the next snapshot carries them.
    for (i, r) in recs.iter().enumerate() {
        if i % 2 == 1 {
            std::fs::remove_file(w.src().join(&r.path)).unwrap();
        }
    }
    let second = w.json(&["snapshot", "--time", &(t0 + Duration::days(1)).to_rfc3339()]);
    assert!(second["carried"].as_u64().unwrap() > 0);

    let mut n = 0;
    for days in [1i64, 100, 400, 800, 1200] {
        let now = t0 + Duration::days(days);
        let report = w.json(&["prune", "--really-at-now", "--now", &now.to_rfc3339()]);
        for r in &recs {
            let should = now < r.recorded_at + Duration::days(r.backup_days)
                && t0 < r.recorded_at + Duration::days(r.backup_days);
            assert_eq!(
                restorable(&w, r, &mut n),
                should,
                "{} at now = t0 + {days} d (recorded {}, B {} d)",
                r.path,
                r.recorded_at,
                r.backup_days
            );
        }
        for item in report["expired_items"].as_array().unwrap() {
            let expires =
                DateTime::parse_from_rfc3339(item["expires_at"].as_str().unwrap()).unwrap();
            assert!(expires <= now, "only expired items are listed: {item}");
        }
        w.ok(&["check", "--read-data"]);
    }
}

#[test]
fn a_contract_change_applies_at_the_next_prune() {
    let w = World::configured("", &[("voice", "voice", "")], &contracts(365));
    let t0 = DateTime::parse_from_rfc3339("2026-11-01T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let recorded = t0 - Duration::days(100);
    let path = "t365/voice/call.opus";
    put(&w.src(), path, &Rng::new(1).bytes(5000));
    std::fs::File::options()
        .write(true)
        .open(w.src().join(path))
        .unwrap()
        .set_modified(SystemTime::from(recorded))
        .unwrap();
    w.ok(&["init"]);
    w.ok(&["snapshot", "--time", &t0.to_rfc3339()]);
    let rec = Recording {
        path: path.into(),
        recorded_at: recorded,
        backup_days: 730,
    };
    let mut n = 0;
    let now = (t0 + Duration::days(1)).to_rfc3339();
    w.ok(&["prune", "--really-at-now", "--now", &now]);
    assert!(restorable(&w, &rec, &mut n), "kept under R = 365 (B = 730)");
    // Restore without --force is refused once the contract says it expired.
    std::fs::write(
        &w.config,
        std::fs::read_to_string(&w.config).unwrap().replace(
            "t365 = { voice_retention_days = 365 }",
            "t365 = { voice_retention_days = 30 }",
        ),
    )
    .unwrap();
    let out = w.offsite(&[
        "restore",
        "--now",
        &now,
        "--item",
        path,
        "--to",
        w.path("refused").to_str().unwrap(),
    ]);
    assert!(
        one_line_error(&out).contains("expired"),
        "restore refuses an expired recording"
    );
    let report = w.json(&["prune", "--really-at-now", "--now", &now]);
    assert_eq!(report["expired_items"].as_array().unwrap().len(), 1);
    assert!(
        !restorable(&w, &rec, &mut n),
        "gone under R = 30 (B = 60) at the next prune"
    );
    w.ok(&["check", "--read-data"]);
}
