//! `keep_within`: a calendar duration (`1y2m3w4d5h`) and the cutoff it
//! puts before a group's newest snapshot.
//!
//! Years, months and days are subtracted on the local calendar of the
//! configured zone (as `restic forget --keep-within` does), hours as elapsed
//! time. A local time that the zone skips or repeats (daylight saving) maps
//! to the earliest instant it can mean, and a cutoff that cannot be computed
//! at all is the start of time: the cutoff only ever errs toward keeping.

use chrono::{DateTime, Duration, Months, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// A calendar duration for `keep_within`: `1y2m3w4d5h` (any subset, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Within {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

/// The longest `keep_within`: 100 years, in any one unit.
const MAX_WITHIN_MONTHS: u32 = 1_200;
const MAX_WITHIN_DAYS: u32 = 36_525;
const MAX_WITHIN_HOURS: u32 = 876_600;

impl Within {
    /// Parse `30d`, `1y6m`, `2w`, `12h`, … of at most 100 years.
    pub fn parse(text: &str) -> Result<Self, String> {
        let too_long = || {
            format!(
                "{text:?} is longer than 100 years (at most 100y, 1200m, 5217w, 36525d or 876600h)"
            )
        };
        let mut out = Within::default();
        let mut digits = String::new();
        let mut any = false;
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: u32 = match digits.parse() {
                Ok(n) => n,
                Err(_) if digits.is_empty() => {
                    return Err(format!("{text:?}: expected a number before '{c}'"))
                }
                Err(_) => return Err(too_long()),
            };
            digits.clear();
            let (field, add) = match c {
                'y' => (&mut out.years, Some(n)),
                'm' => (&mut out.months, Some(n)),
                'w' => (&mut out.days, n.checked_mul(7)),
                'd' => (&mut out.days, Some(n)),
                'h' => (&mut out.hours, Some(n)),
                _ => return Err(format!("{text:?}: unknown unit '{c}' (use y, m, w, d, h)")),
            };
            *field = add
                .and_then(|a| field.checked_add(a))
                .ok_or_else(too_long)?;
            any = true;
        }
        if !digits.is_empty() || !any {
            return Err(format!("{text:?} is not a duration like 30d, 1y6m or 12h"));
        }
        if out == Within::default() {
            return Err(format!("{text:?} is zero"));
        }
        let months = out.total_months().unwrap_or(u32::MAX);
        if months > MAX_WITHIN_MONTHS || out.days > MAX_WITHIN_DAYS || out.hours > MAX_WITHIN_HOURS
        {
            return Err(too_long());
        }
        Ok(out)
    }

    fn total_months(&self) -> Option<u32> {
        self.years.checked_mul(12)?.checked_add(self.months)
    }

    /// `newest` minus this duration: years, months and days on the calendar
    /// of zone `tz` (a day is 23 or 25 hours across a DST change, the 31st
    /// minus a month is the last day of the shorter month), then hours as
    /// elapsed time. A local time the zone skips or repeats is the earliest
    /// instant it can mean. When the cutoff is not a representable time the
    /// answer is the earliest time there is, so everything counts as within.
    pub fn before(&self, newest: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        self.checked_before(newest, tz)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    fn checked_before(&self, newest: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = newest.with_timezone(&tz).naive_local();
        let shifted = local
            .checked_sub_months(Months::new(self.total_months()?))?
            .checked_sub_signed(Duration::days(i64::from(self.days)))?;
        earliest_instant(tz, shifted)?.checked_sub_signed(Duration::hours(i64::from(self.hours)))
    }
}

/// The earliest instant whose local time in `tz` is `local`: the first of
/// the two when a fall-back transition repeats it, and, when a spring-forward
/// gap skips it, the earlier of its readings with the offsets in force on
/// either side of the gap (for Europe/Berlin's 02:30 on the last Sunday of
/// March, 02:30 CEST = 00:30Z rather than 02:30 CET = 01:30Z). Never later
/// than any reading, so a cutoff never moves toward deleting.
fn earliest_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // Gaps are at most a day long (Pacific/Apia skipped 2011-12-30), so
    // quarter-hour steps reach a valid time on both sides within 97 steps.
    let nearest_valid = |direction: i64| {
        (1..=97).find_map(|quarter_hours| {
            let step = Duration::minutes(15 * quarter_hours * direction);
            tz.from_local_datetime(&local.checked_add_signed(step)?)
                .earliest()
        })
    };
    [nearest_valid(-1), nearest_valid(1)]
        .into_iter()
        .flatten()
        .filter_map(|side| {
            let offset = side.offset().fix().local_minus_utc();
            local.checked_sub_signed(Duration::seconds(i64::from(offset)))
        })
        .min()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Within = Within {
        years: 0,
        months: 0,
        days: 1,
        hours: 0,
    };

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_cutoff_past_the_start_of_time_keeps_everything() {
        let far = Within {
            years: 300_000,
            ..Within::default()
        };
        let newest = utc("2026-11-01T00:00:00Z");
        assert_eq!(far.before(newest, chrono_tz::UTC), DateTime::<Utc>::MIN_UTC);
        let days = Within {
            days: u32::MAX,
            ..Within::default()
        };
        assert_eq!(
            days.before(newest, chrono_tz::UTC),
            DateTime::<Utc>::MIN_UTC
        );
    }

    #[test]
    fn a_cutoff_in_a_dst_gap_is_the_earliest_instant_it_can_mean() {
        // 2026-03-29 03:00 EET jumps to 04:00 EEST: 03:30 does not exist.
        // Read with EEST it is 00:30Z (exactly 24 hours before the newest),
        // with EET 01:30Z; the earlier keeps more.
        let newest = utc("2026-03-30T00:30:00Z"); // 03:30 EEST on the 30th
        let cut = DAY.before(newest, chrono_tz::Europe::Helsinki);
        assert_eq!(cut, utc("2026-03-29T00:30:00Z"));
        // Europe/Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST.
        for (newest, cut) in [
            ("2026-03-30T00:00:00Z", "2026-03-29T00:00:00Z"), // 02:00, the gap's first minute
            ("2026-03-30T00:30:00Z", "2026-03-29T00:30:00Z"), // 02:30
            ("2026-03-30T00:59:00Z", "2026-03-29T00:59:00Z"), // 02:59
            ("2026-03-30T01:00:00Z", "2026-03-29T01:00:00Z"), // 03:00 CEST exists
            ("2026-03-29T23:59:00Z", "2026-03-29T00:59:00Z"), // 01:59 CET exists
        ] {
            assert_eq!(
                DAY.before(utc(newest), chrono_tz::Europe::Berlin),
                utc(cut),
                "newest {newest}"
            );
        }
    }

    #[test]
    fn a_cutoff_in_a_day_long_gap_is_the_earliest_instant_it_can_mean() {
        // Pacific/Apia skipped 2011-12-30 (-10 became +14). One day before
        // 2011-12-31 12:00 +14 is the 30th at 12:00: 22:00Z on the 29th at
        // the new offset, 22:00Z on the 30th at the old one.
        let newest = utc("2011-12-31T12:00:00+14:00");
        let cut = DAY.before(newest, chrono_tz::Pacific::Apia);
        assert_eq!(cut, utc("2011-12-29T22:00:00Z"));
    }

    #[test]
    fn a_cutoff_in_a_dst_overlap_is_the_first_of_the_two_instants() {
        // Europe/Berlin: 2026-10-25 03:00 CEST falls back to 02:00 CET, so
        // 02:30 happens at 00:30Z and again at 01:30Z.
        let newest = utc("2026-10-26T01:30:00Z"); // 02:30 CET on the 26th
        let cut = DAY.before(newest, chrono_tz::Europe::Berlin);
        assert_eq!(cut, utc("2026-10-25T00:30:00Z"));
    }

    #[test]
    fn durations_over_a_century_or_overflowing_are_refused() {
        for text in [
            "300000y",
            "200000000d",
            "4294967295y",
            "613566757w",
            "101y",
            "1y1190m",
        ] {
            let e = Within::parse(text).unwrap_err();
            assert!(e.contains("longer than 100 years"), "{text}: {e}");
        }
        assert!(Within::parse("100y").is_ok());
        assert!(Within::parse("36525d").is_ok());
    }

    /// Which of `times` a `keep_within = within` policy keeps when the
    /// newest snapshot is `newest` (so the group is `times` + `newest`).
    fn kept(within: &str, tz: Tz, newest: &str, times: &[&str]) -> Vec<bool> {
        let policy = crate::retention::Policy {
            within: Some((Within::parse(within).unwrap(), within.to_string())),
            ..Default::default()
        };
        let mut group = vec![(crate::id::ObjectId::hash(b"newest"), utc(newest))];
        for t in times {
            group.push((crate::id::ObjectId::hash(t.as_bytes()), utc(t)));
        }
        let decisions = crate::retention::apply(&group, &policy, tz);
        times
            .iter()
            .map(|t| {
                let d = decisions.iter().find(|d| d.time == utc(t)).unwrap();
                assert_eq!(d.reasons.contains(&format!("within {within}")), d.keep);
                d.keep
            })
            .collect()
    }

    #[test]
    fn every_unit_parses_and_sums_in_order() {
        let parsed = |text: &str| Within::parse(text).unwrap();
        let w = |years, months, days, hours| Within {
            years,
            months,
            days,
            hours,
        };
        assert_eq!(parsed("2y"), w(2, 0, 0, 0));
        assert_eq!(parsed("3m"), w(0, 3, 0, 0));
        assert_eq!(parsed("2w"), w(0, 0, 14, 0));
        assert_eq!(parsed("30d"), w(0, 0, 30, 0));
        assert_eq!(parsed("12h"), w(0, 0, 0, 12));
        assert_eq!(parsed("1y2m3w4d5h"), w(1, 2, 25, 5));
        assert_eq!(parsed(" 1w1d "), w(0, 0, 8, 0));
        for bad in ["", "d", "30", "30s", "1.5d", "-1d", "0d", "0y0h"] {
            assert!(Within::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_snapshot_exactly_at_the_limit_is_kept_one_second_beyond_is_not() {
        let newest = "2026-05-10T12:00:00Z";
        let cases: [(&str, [&str; 3]); 4] = [
            (
                "2d",
                [
                    "2026-05-08T12:00:01Z",
                    "2026-05-08T12:00:00Z",
                    "2026-05-08T11:59:59Z",
                ],
            ),
            (
                "36h",
                [
                    "2026-05-09T00:00:01Z",
                    "2026-05-09T00:00:00Z",
                    "2026-05-08T23:59:59Z",
                ],
            ),
            (
                "1m",
                [
                    "2026-04-10T12:00:01Z",
                    "2026-04-10T12:00:00Z",
                    "2026-04-10T11:59:59Z",
                ],
            ),
            (
                "1y",
                [
                    "2025-05-10T12:00:01Z",
                    "2025-05-10T12:00:00Z",
                    "2025-05-10T11:59:59Z",
                ],
            ),
        ];
        for (within, [inside, at_limit, outside]) in cases {
            assert_eq!(
                kept(within, chrono_tz::UTC, newest, &[inside, at_limit, outside]),
                [true, true, false],
                "keep_within {within}"
            );
        }
    }

    #[test]
    fn months_and_days_count_on_the_calendar_across_a_month_end() {
        // A month before March 31 is the last day of February (28 days in
        // 2026, 29 in 2028); a day before March 1 is February 28 or 29.
        for (within, newest, cut) in [
            ("1m", "2026-03-31T12:00:00Z", "2026-02-28T12:00:00Z"),
            ("1m", "2028-03-31T12:00:00Z", "2028-02-29T12:00:00Z"),
            ("1d", "2026-03-01T06:00:00Z", "2026-02-28T06:00:00Z"),
            ("1d", "2028-03-01T06:00:00Z", "2028-02-29T06:00:00Z"),
            ("1y", "2028-02-29T00:00:00Z", "2027-02-28T00:00:00Z"),
            ("1m1d", "2026-05-01T00:00:00Z", "2026-03-31T00:00:00Z"),
            ("2h", "2026-05-01T01:00:00Z", "2026-04-30T23:00:00Z"),
        ] {
            let w = Within::parse(within).unwrap();
            assert_eq!(
                w.before(utc(newest), chrono_tz::UTC),
                utc(cut),
                "{within} before {newest}"
            );
        }
        assert_eq!(
            kept(
                "1m",
                chrono_tz::UTC,
                "2026-03-31T12:00:00Z",
                &["2026-02-28T12:00:00Z", "2026-02-28T11:00:00Z"]
            ),
            [true, false]
        );
    }

    #[test]
    fn days_are_local_calendar_days_and_hours_are_elapsed_time() {
        // The night Europe/Berlin springs forward has 23 hours: a day before
        // 2026-03-29 12:00 CEST (10:00Z) is 2026-03-28 12:00 CET (11:00Z).
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            kept(
                "1d",
                berlin,
                "2026-03-29T10:00:00Z",
                &["2026-03-28T11:00:00Z", "2026-03-28T10:59:00Z"]
            ),
            [true, false]
        );
        // and the night it falls back has 25.
        assert_eq!(
            kept(
                "1d",
                berlin,
                "2026-10-25T11:00:00Z",
                &["2026-10-24T10:00:00Z", "2026-10-24T09:59:00Z"]
            ),
            [true, false]
        );
        // 24h is 24 hours whatever the calendar does.
        assert_eq!(
            kept(
                "24h",
                berlin,
                "2026-03-29T10:00:00Z",
                &["2026-03-28T10:00:00Z", "2026-03-28T09:59:00Z"]
            ),
            [true, false]
        );
    }
}
