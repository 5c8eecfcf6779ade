//! The invariant of [`super`] as a property over random snapshot histories,
//! and its dates on a table.

use super::*;
use crate::id::ObjectId;
use crate::retention::{apply, Within};

/// A seeded generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn history(rng: &mut Rng, start: DateTime<Utc>, hours: u64) -> Vec<(ObjectId, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut t = start;
    loop {
        t += Duration::minutes(1 + rng.below(hours * 60) as i64);
        if t > start + Duration::hours(hours as i64 * 40) {
            return out;
        }
        out.push((ObjectId::random(), t));
    }
}

fn policy(rng: &mut Rng) -> Policy {
    Policy {
        last: rng.below(3) as u32,
        hourly: rng.below(30) as u32,
        daily: rng.below(12) as u32,
        weekly: rng.below(6) as u32,
        monthly: rng.below(4) as u32,
        yearly: rng.below(2) as u32,
        within: (rng.below(3) == 0).then(|| (Within::parse("3d").unwrap(), "3d".to_string())),
    }
}

/// Never held past its deadline: whatever snapshots come after `now`, a
/// snapshot is kept by retention at every moment before the date it is
/// locked until, so no prune is ever blocked by a lock it wants gone.
#[test]
fn a_lock_never_outlives_what_retention_keeps_whatever_comes_next() {
    let zones = [
        chrono_tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::America::New_York,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..60 {
        let tz = zones[case % zones.len()];
        let p = policy(&mut rng);
        let before = history(&mut rng, at("2025-12-01T00:00:00Z"), 20);
        let now = before.last().unwrap().1 + Duration::hours(rng.below(72) as i64);
        let gap = 1 + rng.below(30);
        let after = history(&mut rng, now, gap);
        for d in apply(&before, &p, tz).into_iter().filter(|d| d.keep) {
            let Some(until) = snapshot_until(&d.reasons, d.time, &p, tz, 120, now) else {
                continue;
            };
            for probe in 0..20 {
                let t = now + Duration::hours(probe * 24 + rng.below(24) as i64);
                if t >= until {
                    break;
                }
                let seen: Vec<_> = before
                    .iter()
                    .chain(after.iter().filter(|(_, x)| *x <= t))
                    .copied()
                    .collect();
                let kept = apply(&seen, &p, tz)
                    .into_iter()
                    .any(|x| x.id == d.id && x.keep);
                assert!(
                    kept,
                    "case {case}: {:?} locked until {until} (reasons {:?}) but dropped at {t}",
                    d.time, d.reasons
                );
            }
        }
    }
}

/// The dates themselves: a rule's period start plus its count, once the
/// period has ended; capped by `data_retention_months`.
#[test]
fn each_rule_locks_from_the_start_of_its_period() {
    let p = Policy {
        daily: 31,
        weekly: 12,
        monthly: 3,
        ..Policy::default()
    };
    let t = at("2030-01-15T12:00:00Z"); // a Tuesday
    let reasons = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let utc = chrono_tz::UTC;
    assert_eq!(
        created_until(t, &p, utc, 120),
        Some(at("2030-02-15T00:00:00Z"))
    );
    let later = at("2030-06-01T00:00:00Z");
    let got = |r: &[&str]| snapshot_until(&reasons(r), t, &p, utc, 120, later);
    assert_eq!(got(&["daily 2"]), Some(at("2030-02-15T00:00:00Z")));
    assert_eq!(
        got(&["daily 2", "weekly 1"]),
        Some(at("2030-04-08T00:00:00Z"))
    );
    assert_eq!(
        got(&["weekly 1", "monthly 1"]),
        Some(at("2030-04-08T00:00:00Z"))
    );
    assert_eq!(got(&["last 1", "oldest (daily)"]), None);
    // The week of the 15th has not ended on the 16th: no weekly lock yet.
    let early = at("2030-01-16T00:00:00Z");
    assert_eq!(
        snapshot_until(&reasons(&["daily 1", "weekly 1"]), t, &p, utc, 120, early),
        Some(at("2030-02-15T00:00:00Z"))
    );
    // One month of global retention caps everything.
    assert_eq!(
        created_until(t, &p, utc, 1),
        Some(at("2030-02-15T00:00:00Z"))
    );
    let short = Policy {
        daily: 40,
        ..p.clone()
    };
    assert_eq!(
        created_until(t, &short, utc, 1),
        Some(at("2030-02-15T12:00:00Z"))
    );
}

#[test]
fn voice_packs_lock_until_the_start_of_their_expiry_day() {
    let expires = at("2031-03-04T17:30:00Z");
    let day = expiry_day(expires);
    assert_eq!(voice_until(day), at("2031-03-04T00:00:00Z"));
    assert!(voice_until(day) <= expires && expires - voice_until(day) < Duration::days(1));
    assert_eq!(expiry_day(at("1969-12-31T23:00:00Z")), -1);
}

#[test]
fn the_test_clock_maps_simulated_days_to_real_seconds() {
    let lock = ObjectLock {
        mode: LockMode::Governance,
        test_clock: Some(TestClock {
            simulated: at("2030-01-01T00:00:00Z"),
            real: at("2026-11-29T20:00:00Z"),
            seconds_per_day: 2,
        }),
    };
    assert_eq!(
        lock.to_real(at("2030-01-31T00:00:00Z")),
        at("2026-11-29T20:01:00Z")
    );
    assert_eq!(
        lock.to_real(at("2029-12-31T00:00:00Z")),
        at("2026-11-29T19:59:58Z")
    );
    assert!(lock.to_real(DateTime::<Utc>::MAX_UTC) > at("2026-11-29T20:00:00Z"));
    let plain = ObjectLock {
        test_clock: None,
        ..lock
    };
    assert_eq!(
        plain.to_real(at("2030-01-31T00:00:00.7Z")),
        at("2030-01-31T00:00:00Z")
    );
}

/// Repack copies keep their pack's real lock through a simulated date: the
/// round trip real → simulated → real is exact, on either side of the
/// clock's origin and at every scale.
#[test]
fn a_real_date_maps_back_to_itself_through_simulated_time() {
    let real = at("2026-11-29T20:00:00Z");
    for seconds_per_day in [1, 2, 7, 3600, 86_399, 86_400] {
        let lock = ObjectLock {
            mode: LockMode::Governance,
            test_clock: Some(TestClock {
                simulated: at("2030-01-01T00:00:00Z"),
                real,
                seconds_per_day,
            }),
        };
        for offset in [-100_000, -86_401, -3, -1, 0, 1, 2, 59, 86_400, 10_000_000] {
            let r = real + Duration::seconds(offset);
            assert_eq!(
                lock.to_real(lock.to_simulated(r)),
                r,
                "{seconds_per_day} s per day, {offset} s"
            );
        }
    }
    let plain = ObjectLock {
        mode: LockMode::Governance,
        test_clock: None,
    };
    assert_eq!(plain.to_simulated(real), real);
}
