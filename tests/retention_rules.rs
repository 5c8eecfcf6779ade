//! Acceptance: table-driven retention tests. Every case is decided by the pure
//! function and by `prune --dry-run` at two different `--now` values; all
//! three must give the expected keep-list (retention never reads the clock).

mod common;
use common::*;

use chrono::{DateTime, Utc};
use offsite::config::RetentionPolicy;
use offsite::id::ObjectId;
use offsite::retention::{apply, Policy};

struct Case {
    name: &'static str,
    timezone: &'static str,
    /// TOML inline table.
    policy: &'static str,
    snapshots: &'static [&'static str],
    keep: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "several snapshots per day keep the newest of each of the last 3 days",
        timezone: "UTC",
        policy: "{ keep_daily = 3 }",
        snapshots: &[
            "2026-05-01T01:00:00Z", "2026-05-01T05:00:00Z", "2026-05-01T23:00:00Z", "2026-05-02T10:00:00Z",
            "2026-05-02T12:00:00Z", "2026-05-03T09:00:00Z", "2026-05-04T08:00:00Z",
        ],
        keep: &["2026-05-04T08:00:00Z", "2026-05-03T09:00:00Z", "2026-05-02T12:00:00Z"],
    },
    Case {
        name: "ISO week-year boundary 2020/2021 (2020 has a week 53)",
        timezone: "UTC",
        policy: "{ keep_weekly = 3 }",
        snapshots: &[
            "2020-12-26T12:00:00Z", "2020-12-27T12:00:00Z", "2020-12-28T12:00:00Z", "2020-12-29T12:00:00Z",
            "2020-12-30T12:00:00Z", "2020-12-31T12:00:00Z", "2021-01-01T12:00:00Z", "2021-01-02T12:00:00Z",
            "2021-01-03T12:00:00Z", "2021-01-04T12:00:00Z", "2021-01-05T12:00:00Z",
        ],
        // 2021-W01 (Jan 4-5), 2020-W53 (Dec 28 - Jan 3), 2020-W52 (Dec 26-27)
        keep: &["2021-01-05T12:00:00Z", "2021-01-03T12:00:00Z", "2020-12-27T12:00:00Z"],
    },
    Case {
        name: "ISO week-year boundary 2026/2027 with weekly and monthly",
        timezone: "UTC",
        policy: "{ keep_weekly = 5, keep_monthly = 2 }",
        snapshots: &[
            "2026-12-27T12:00:00Z", "2026-12-28T12:00:00Z", "2026-12-29T12:00:00Z", "2026-12-30T12:00:00Z",
            "2026-12-31T12:00:00Z", "2027-01-01T12:00:00Z", "2027-01-02T12:00:00Z", "2027-01-03T12:00:00Z",
            "2027-01-04T12:00:00Z",
        ],
        // weekly: 2027-W01, 2026-W53 (Dec 28 - Jan 3), 2026-W52 (Dec 27) and then it runs out;
        // monthly: 2027-01, 2026-12.
        keep: &["2027-01-04T12:00:00Z", "2027-01-03T12:00:00Z", "2026-12-31T12:00:00Z", "2026-12-27T12:00:00Z"],
    },
    Case {
        name: "days are local days in Europe/Helsinki around the spring DST change",
        timezone: "Europe/Helsinki",
        policy: "{ keep_daily = 2 }",
        // local: 03-28 22:00 EET, 03-29 00:30 EET, 03-29 23:00 EEST
        snapshots: &["2026-03-28T20:00:00Z", "2026-03-28T22:30:00Z", "2026-03-29T20:00:00Z"],
        keep: &["2026-03-29T20:00:00Z", "2026-03-28T20:00:00Z"],
    },
    Case {
        name: "hours are local hours in Europe/Helsinki when the autumn DST change repeats 03:00-04:00",
        timezone: "Europe/Helsinki",
        policy: "{ keep_hourly = 3 }",
        // local: 03:10 EEST, 03:50 EEST, 03:10 EET, 03:50 EET, 04:10 EET; hour 03 twice over
        snapshots: &[
            "2026-10-25T00:10:00Z", "2026-10-25T00:50:00Z", "2026-10-25T01:10:00Z", "2026-10-25T01:50:00Z",
            "2026-10-25T02:10:00Z",
        ],
        // hourly 1 (04), hourly 2 (03); only 2 hours exist, so the oldest is kept too
        keep: &["2026-10-25T02:10:00Z", "2026-10-25T01:50:00Z", "2026-10-25T00:10:00Z"],
    },
    Case {
        name: "gaps of weeks: weekly keeps one per week that has snapshots",
        timezone: "UTC",
        policy: "{ keep_weekly = 2 }",
        snapshots: &["2026-01-05T08:00:00Z", "2026-01-05T12:00:00Z", "2026-02-02T12:00:00Z", "2026-03-02T12:00:00Z"],
        keep: &["2026-03-02T12:00:00Z", "2026-02-02T12:00:00Z"],
    },
    Case {
        name: "a rule that runs out keeps the oldest snapshot",
        timezone: "UTC",
        policy: "{ keep_daily = 5 }",
        snapshots: &["2026-01-05T08:00:00Z", "2026-01-05T12:00:00Z", "2026-02-02T12:00:00Z", "2026-03-02T12:00:00Z"],
        keep: &["2026-03-02T12:00:00Z", "2026-02-02T12:00:00Z", "2026-01-05T12:00:00Z", "2026-01-05T08:00:00Z"],
    },
    Case {
        name: "keep_last and keep_within count from the newest snapshot, not from now",
        timezone: "UTC",
        policy: "{ keep_last = 1, keep_within = \"2d\" }",
        snapshots: &["2026-05-01T00:00:00Z", "2026-05-01T13:00:00Z", "2026-05-03T06:00:00Z", "2026-05-03T12:00:00Z"],
        keep: &["2026-05-03T12:00:00Z", "2026-05-03T06:00:00Z", "2026-05-01T13:00:00Z"],
    },
    Case {
        // Regression: the cutoff, one calendar day before 2026-03-30 02:30
        // CEST, is 2026-03-29 02:30, which Europe/Berlin skips (02:00 CET
        // jumps to 03:00 CEST). It was moved to the last valid quarter hour
        // before the gap (01:45 CET = 00:45Z) and dropped a snapshot 23h55m
        // older than the newest; the earliest instant it can mean is 02:30
        // CEST = 00:30Z, exactly 24 hours earlier.
        name: "keep_within cutoff in a DST gap keeps a snapshot less than a day older",
        timezone: "Europe/Berlin",
        policy: "{ keep_within = \"1d\" }",
        snapshots: &["2026-03-29T00:20:00Z", "2026-03-29T00:35:00Z", "2026-03-29T00:50:00Z", "2026-03-30T00:30:00Z"],
        keep: &["2026-03-30T00:30:00Z", "2026-03-29T00:50:00Z", "2026-03-29T00:35:00Z"],
    },
    Case {
        // 2026-10-25 02:30 happens twice in Europe/Berlin (03:00 CEST falls
        // back to 02:00 CET): the cutoff is the first, 02:30 CEST = 00:30Z.
        name: "keep_within cutoff in a DST overlap is the earlier of the two instants",
        timezone: "Europe/Berlin",
        policy: "{ keep_within = \"1d\" }",
        snapshots: &["2026-10-25T00:20:00Z", "2026-10-25T00:40:00Z", "2026-10-25T01:20:00Z", "2026-10-26T01:30:00Z"],
        keep: &["2026-10-26T01:30:00Z", "2026-10-25T01:20:00Z", "2026-10-25T00:40:00Z"],
    },
    Case {
        name: "monthly and yearly across years",
        timezone: "UTC",
        policy: "{ keep_monthly = 2, keep_yearly = 3 }",
        snapshots: &[
            "2023-06-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-12-31T23:00:00Z", "2025-01-15T00:00:00Z",
            "2025-02-10T00:00:00Z", "2025-02-20T00:00:00Z",
        ],
        keep: &["2025-02-20T00:00:00Z", "2025-01-15T00:00:00Z", "2024-12-31T23:00:00Z", "2023-06-01T00:00:00Z"],
    },
];

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn expected(case: &Case) -> Vec<DateTime<Utc>> {
    case.keep.iter().map(|s| t(s)).collect()
}

#[test]
fn pure_function_table() {
    for case in CASES {
        let raw: RetentionPolicy = toml::from_str(&format!("x = {}", case.policy))
            .map(|v: toml::Table| v["x"].clone().try_into().unwrap())
            .unwrap();
        let policy = Policy::try_from(&raw).unwrap();
        let tz: chrono_tz::Tz = case.timezone.parse().unwrap();
        let snaps: Vec<(ObjectId, DateTime<Utc>)> = case
            .snapshots
            .iter()
            .map(|s| (ObjectId::hash(s.as_bytes()), t(s)))
            .collect();
        let decisions = apply(&snaps, &policy, tz);
        let kept: Vec<DateTime<Utc>> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.time)
            .collect();
        assert_eq!(kept, expected(case), "case: {}\n{decisions:#?}", case.name);
    }
}

#[test]
fn prune_dry_run_table_under_two_nows() {
    for case in CASES {
        let w = World::configured(
            &format!("timezone = \"{}\"", case.timezone),
            &[(
                "data",
                "client-data",
                &format!("retention = {}", case.policy),
            )],
            "",
        );
        put(&w.src(), "t/file", b"content");
        w.ok(&["init"]);
        for s in case.snapshots {
            w.ok(&["snapshot", "--time", s]);
        }
        let last = t(case.snapshots.last().unwrap());
        for now in [
            last + chrono::Duration::hours(1),
            last + chrono::Duration::days(400),
        ] {
            let now = now.to_rfc3339();
            let plan = w.json(&["prune", "--dry-run", "--now", &now]);
            let kept: Vec<DateTime<Utc>> = plan["snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["keep"].as_bool().unwrap())
                .map(|d| t(d["time"].as_str().unwrap()))
                .collect();
            assert_eq!(
                kept,
                expected(case),
                "case: {} (now {now})\n{plan:#}",
                case.name
            );
        }
        assert_eq!(
            w.json(&["snapshots"])["snapshots"]
                .as_array()
                .unwrap()
                .len(),
            case.snapshots.len(),
            "dry run changes nothing"
        );
    }
}
