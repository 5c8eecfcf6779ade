//! Acceptance: properties of the retention decision over many random inputs
//! (a seeded generator, so a failure reproduces): the input order does not
//! matter; `keep_last = N` keeps the N newest; every decision and its
//! reasons match an independent oracle written from DESIGN §3.

mod common;
use common::Rng;

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use offsite::config::RetentionPolicy;
use offsite::id::ObjectId;
use offsite::retention::{apply, Policy};

fn random_policy(rng: &mut Rng) -> Policy {
    let mut pick = |max: u64| {
        if rng.below(3) == 0 {
            0
        } else {
            rng.below(max) as u32
        }
    };
    let raw = RetentionPolicy {
        keep_last: pick(6),
        keep_hourly: pick(30),
        keep_daily: pick(40),
        keep_weekly: pick(15),
        keep_monthly: pick(6),
        keep_yearly: pick(3),
        keep_within: None,
    };
    Policy::try_from(&raw).unwrap_or_else(|_| Policy {
        daily: 1,
        ..Policy::default()
    })
}

fn random_snapshots(rng: &mut Rng) -> Vec<(ObjectId, DateTime<Utc>)> {
    let start = DateTime::parse_from_rfc3339("2025-12-20T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let n = 1 + rng.below(120);
    (0..n)
        .map(|i| {
            let t = start + Duration::minutes(rng.below(60 * 24 * 500) as i64);
            (ObjectId::hash(format!("{i}-{t}").as_bytes()), t)
        })
        .collect()
}

/// DESIGN §3 for the count rules, stated independently of `apply`: keys
/// from chrono's format strings (`%G-W%V` for ISO weeks); per rule with
/// count N, the newest snapshot of each of the first N distinct keys, newest
/// first, gets `rule k`; if fewer than N keys exist, the oldest snapshot
/// gets `oldest (rule)` unless it already is the newest of its key. Kept
/// means some rule gave a reason. Newest first, ties by id.
fn oracle(
    snaps: &[(ObjectId, DateTime<Utc>)],
    policy: &Policy,
    tz: chrono_tz::Tz,
) -> Vec<(ObjectId, bool, Vec<String>)> {
    let mut list = snaps.to_vec();
    list.sort_by_key(|s| std::cmp::Reverse((s.1, s.0)));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); list.len()];
    let rules = [
        ("last", policy.last, None),
        ("hourly", policy.hourly, Some("%Y-%m-%d %H")),
        ("daily", policy.daily, Some("%Y-%m-%d")),
        ("weekly", policy.weekly, Some("%G-W%V")),
        ("monthly", policy.monthly, Some("%Y-%m")),
        ("yearly", policy.yearly, Some("%Y")),
    ];
    for (name, n, format) in rules {
        let key = |i: usize| match format {
            None => i.to_string(),
            Some(f) => list[i].1.with_timezone(&tz).format(f).to_string(),
        };
        let mut seen = HashSet::new();
        let newest_of_key: Vec<usize> = (0..list.len()).filter(|&i| seen.insert(key(i))).collect();
        for (k, &i) in newest_of_key.iter().take(n as usize).enumerate() {
            reasons[i].push(format!("{name} {}", k + 1));
        }
        let oldest = list.len() - 1;
        if newest_of_key.len() < n as usize && !newest_of_key.contains(&oldest) {
            reasons[oldest].push(format!("oldest ({name})"));
        }
    }
    list.iter()
        .zip(reasons)
        .map(|((id, _), r)| (*id, !r.is_empty(), r))
        .collect()
}

#[test]
fn decisions_and_reasons_match_the_oracle_in_any_input_order() {
    let zones: [chrono_tz::Tz; 3] = [
        chrono_tz::UTC,
        chrono_tz::Europe::Helsinki,
        chrono_tz::America::New_York,
    ];
    let mut rng = Rng::new(2026);
    for round in 0..400 {
        let policy = random_policy(&mut rng);
        let tz = zones[round % 3];
        let mut snaps = random_snapshots(&mut rng);
        let first = apply(&snaps, &policy, tz);
        // Reverse, then shuffle: the same decisions.
        snaps.reverse();
        assert_eq!(
            apply(&snaps, &policy, tz),
            first,
            "round {round}: reversed input"
        );
        for i in (1..snaps.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            snaps.swap(i, j);
        }
        assert_eq!(
            apply(&snaps, &policy, tz),
            first,
            "round {round}: shuffled input"
        );
        let got: Vec<(ObjectId, bool, Vec<String>)> = first
            .iter()
            .map(|d| (d.id, d.keep, d.reasons.clone()))
            .collect();
        assert_eq!(
            got,
            oracle(&snaps, &policy, tz),
            "round {round}: {policy:?}"
        );
        assert!(
            first.windows(2).all(|w| w[0].time >= w[1].time),
            "newest first"
        );
        assert!(
            first.iter().any(|d| d.keep),
            "a non-empty policy keeps something"
        );
    }
}

#[test]
fn keep_last_always_keeps_the_n_newest() {
    let mut rng = Rng::new(7);
    for round in 0..300 {
        let n = 1 + rng.below(10) as u32;
        let policy = Policy {
            last: n,
            ..Policy::default()
        };
        let snaps = random_snapshots(&mut rng);
        let decisions = apply(&snaps, &policy, chrono_tz::Europe::Helsinki);
        let mut times: Vec<DateTime<Utc>> = snaps.iter().map(|s| s.1).collect();
        times.sort_by(|a, b| b.cmp(a));
        let newest: Vec<DateTime<Utc>> = times.into_iter().take(n as usize).collect();
        let kept: Vec<DateTime<Utc>> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.time)
            .collect();
        assert_eq!(kept, newest, "round {round}: keep_last {n}");
    }
}
