//! Property (issue 8, finding 3): random configs go parse → retention and
//! expiry plan. A config is accepted exactly when every number is in its
//! documented range; an accepted one never panics on any snapshot time,
//! recording time or `now`, never expires a recording before
//! `recorded_at + min(2R, R + 365)` days, never drops a snapshot within
//! `keep_within`, and the activity-log cutoff is exactly `activity_log_days`
//! before now. Seeded, so a failure reproduces.

mod common;
use common::Rng;

use chrono::{DateTime, Duration, TimeZone, Utc};
use offsite::activity;
use offsite::config::Config;
use offsite::id::ObjectId;
use offsite::retention::apply;
use offsite::tree::FileEntry;

const DAY_NS: i128 = 86_400_000_000_000;

/// A number for a key with range `1..=max`: mostly in range, often at or
/// just past an edge, sometimes absurd.
fn number(rng: &mut Rng, max: i64) -> i64 {
    match rng.below(10) {
        0 => 0,
        1 => max,
        2 => max + 1,
        3 => [-1, 2_147_483_648, 4_000_000_000, 100_000_000, i64::MAX][rng.below(5) as usize],
        _ => 1 + rng.below(max as u64) as i64,
    }
}

/// A `keep_within` text, its parts (years, months, days, hours) and whether
/// it is in range (≤ 100 years in each unit).
fn within(rng: &mut Rng) -> (String, [i64; 4], bool) {
    let mut parts = [0i64; 4];
    let limits = [100, 1200, 36_525, 876_600];
    let units = ['y', 'm', 'd', 'h'];
    let mut text = String::new();
    for i in 0..4 {
        if rng.below(3) == 0 {
            let n = match rng.below(6) {
                0 => limits[i] + 1,
                1 => [300_000, 200_000_000, 4_294_967_295][rng.below(3) as usize],
                _ => 1 + rng.below(limits[i] as u64) as i64,
            };
            parts[i] = n;
            text += &format!("{n}{}", units[i]);
        }
    }
    if text.is_empty() {
        parts[2] = 1 + rng.below(400) as i64;
        text = format!("{}d", parts[2]);
    }
    let ok = (0..4).all(|i| parts[i] <= limits[i]) && parts[0] * 12 + parts[1] <= 1200;
    (text, parts, ok)
}

struct Model {
    text: String,
    valid: bool,
    default_r: i64,
    tenants: Vec<(String, i64)>,
    log_days: i64,
    within: [i64; 4],
}

fn random_config(rng: &mut Rng) -> Model {
    let default_r = number(rng, 36_500);
    let log_days = number(rng, 36_500);
    let months = number(rng, 120);
    let daily = number(rng, 1_000_000);
    let (within_text, within_parts, within_ok) = within(rng);
    let tenants: Vec<(String, i64)> = (0..rng.below(3))
        .map(|i| (format!("t{i}"), number(rng, 36_500)))
        .collect();
    let mut text = format!(
        "source_region = \"a\"\ndata_retention_months = {months}\nactivity_log_days = {log_days}\n\
         [repository]\nurl = \"file:///r\"\nregion = \"b\"\n\
         [[source]]\nname = \"v\"\nclass = \"voice\"\npath = \"/v\"\n\
         retention = {{ keep_within = \"{within_text}\", keep_daily = {daily} }}\n\
         [contracts]\ndefault_voice_retention_days = {default_r}\n[contracts.tenants]\n"
    );
    for (t, r) in &tenants {
        text += &format!("{t} = {{ voice_retention_days = {r} }}\n");
    }
    let days_ok = |n: i64| (1..=36_500).contains(&n);
    let valid = days_ok(default_r)
        && days_ok(log_days)
        && (1..=120).contains(&months)
        && (0..=1_000_000).contains(&daily)
        && within_ok
        && tenants.iter().all(|(_, r)| days_ok(*r));
    Model {
        text,
        valid,
        default_r,
        tenants,
        log_days,
        within: within_parts,
    }
}

/// A time anywhere from year 1 to 9999 (what `--now` and `--time` take), or
/// one of the ends.
fn random_time(rng: &mut Rng) -> DateTime<Utc> {
    let first = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
    let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
    match rng.below(8) {
        0 => first,
        1 => last,
        2 => {
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
                + Duration::minutes(rng.below(200) as i64)
        }
        _ => {
            let span = (last - first).num_seconds() as u64;
            first + Duration::seconds(rng.below(span) as i64)
        }
    }
}

fn ns(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

fn recording(mtime_ns: i64, tenant: Option<String>) -> FileEntry {
    FileEntry {
        name: "r.opus".into(),
        size: 1,
        mtime_ns,
        mode: 0o644,
        inode: 1,
        tenant,
        sha256: ObjectId::hash(b"r"),
        chunks: offsite::tree::ChunkList::empty(),
        carried: false,
    }
}

fn check_voice(rng: &mut Rng, cfg: &Config, m: &Model) {
    let contracts = cfg.contracts();
    for _ in 0..40 {
        let pick = rng.below(m.tenants.len() as u64 + 2) as usize;
        let (tenant, r) = match m.tenants.get(pick) {
            Some((t, r)) => (Some(t.clone()), *r),
            None if pick == m.tenants.len() => (Some("unknown".into()), m.default_r),
            None => (None, m.default_r),
        };
        let mtime_ns = match rng.below(4) {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => rng.next() as i64,
        };
        let entry = recording(mtime_ns, tenant);
        let now = random_time(rng);
        // i64::MAX stands for "at or after 2262" (clamped): never expires.
        let promise = match mtime_ns {
            i64::MAX => i128::MAX,
            _ => i128::from(mtime_ns) + i128::from((2 * r).min(r + 365)) * DAY_NS,
        };
        assert_eq!(
            contracts.expired(&entry, now),
            ns(now) >= promise,
            "R={r} mtime_ns={mtime_ns} now={now}\n{}",
            m.text
        );
    }
}

fn check_snapshots(rng: &mut Rng, cfg: &Config, m: &Model) {
    let zones = [
        chrono_tz::UTC,
        chrono_tz::Europe::Helsinki,
        chrono_tz::America::New_York,
        chrono_tz::Pacific::Apia,
    ];
    let tz = zones[rng.below(4) as usize];
    let snaps: Vec<(ObjectId, DateTime<Utc>)> = (0..1 + rng.below(30))
        .map(|i| {
            let t = random_time(rng);
            (ObjectId::hash(format!("{i}-{t}").as_bytes()), t)
        })
        .collect();
    let decisions = apply(&snaps, &cfg.sources[0].retention, tz);
    assert_eq!(decisions.len(), snaps.len());
    let newest = ns(snaps.iter().map(|s| s.1).max().unwrap());
    // The shortest the calendar duration can be: 365-day years, 28-day
    // months, less two hours for a DST shift on the way.
    let [y, mo, d, h] = m.within.map(i128::from);
    let shortest = (y * 365 + mo * 28 + d) * DAY_NS + h * 3_600_000_000_000 - 2 * 3_600_000_000_000;
    for dec in &decisions {
        if newest - ns(dec.time) <= shortest {
            assert!(
                dec.keep,
                "{} dropped though within {:?} of newest in {tz}\n{}",
                dec.time, m.within, m.text
            );
        }
    }
}

fn check_log_cutoff(rng: &mut Rng, cfg: &Config, m: &Model) {
    let now = random_time(rng);
    let expected = ns(now) - i128::from(m.log_days) * DAY_NS;
    match activity::cutoff(now, cfg.activity_log_days) {
        Some(c) => assert_eq!(ns(c), expected, "{}", m.text),
        None => assert!(expected < ns(DateTime::<Utc>::MIN_UTC), "{}", m.text),
    }
}

#[test]
fn random_configs_parse_and_plan_without_panic_or_early_expiry() {
    let mut rng = Rng::new(8_3);
    let mut accepted = 0;
    for _ in 0..600 {
        let m = random_config(&mut rng);
        match Config::parse(&m.text) {
            Ok(cfg) => {
                assert!(m.valid, "accepted out-of-range config:\n{}", m.text);
                accepted += 1;
                check_voice(&mut rng, &cfg, &m);
                check_snapshots(&mut rng, &cfg, &m);
                check_log_cutoff(&mut rng, &cfg, &m);
            }
            Err(e) => {
                assert!(!m.valid, "refused in-range config: {e}\n{}", m.text);
                assert_eq!(e.exit_code(), 2, "{e}");
                let text = e.to_string();
                assert!(
                    [
                        "retention_days",
                        "activity_log_days",
                        "data_retention_months",
                        "keep_within",
                        "keep_daily"
                    ]
                    .iter()
                    .any(|k| text.contains(k)),
                    "error names no key: {text}"
                );
            }
        }
    }
    assert!(accepted > 20, "only {accepted} configs were valid");
}
