//! Snapshot retention: which snapshots of a group a policy keeps, and why.
//!
//! A pure function of (snapshots, policy, time zone) with the semantics of
//! `restic forget` (DESIGN §3): walk the group newest first; each rule has a
//! bucket key (hour, day, ISO week-year + week, month, year, computed in the
//! configured zone) and keeps a snapshot whose key differs from the previous
//! one's, until it has counted N keys; a rule that runs out of snapshots
//! before N keeps the oldest too; `keep_within` keeps everything within the
//! duration of the group's newest snapshot. A snapshot is kept when any rule
//! keeps it, and each decision carries its reasons. No clock is involved.
//!
//! Every duration and count is bounded when the config is parsed (a century
//! at most for `keep_within`), and the date arithmetic is checked: a cutoff
//! that cannot be computed keeps everything, never nothing.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::{RetentionPolicy, MAX_KEEP_COUNT};
use crate::id::ObjectId;

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

    /// `newest` minus this duration, in calendar terms in zone `tz`. When
    /// that is not a representable time the answer is the earliest time
    /// there is, so everything counts as within (kept).
    pub fn before(&self, newest: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        self.checked_before(newest, tz)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    fn checked_before(&self, newest: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = newest.with_timezone(&tz).naive_local();
        let shifted = local
            .checked_sub_months(Months::new(self.total_months()?))?
            .checked_sub_signed(Duration::days(i64::from(self.days)))?;
        earliest_at_or_before(tz, shifted)?
            .checked_sub_signed(Duration::hours(i64::from(self.hours)))
    }
}

/// The earliest instant whose local time in `tz` is `local`, or, when `local`
/// falls in a gap (a DST jump), the last valid local time before the gap;
/// never a later instant, so a cutoff never moves toward deleting.
fn earliest_at_or_before(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=96)
        .find_map(|quarter_hours| {
            let t = local.checked_sub_signed(Duration::minutes(15 * quarter_hours))?;
            tz.from_local_datetime(&t).earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// Why a configured policy was refused, and its key (`keep_daily`…), if one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub field: Option<&'static str>,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<(Within, String)>,
}

impl Policy {
    /// Validate a configured policy; an empty one is refused, and so is a
    /// count over `MAX_KEEP_COUNT` or a `keep_within` over 100 years.
    pub fn from_config(raw: &RetentionPolicy) -> Result<Self, PolicyError> {
        let within = match raw.keep_within.as_deref() {
            None | Some("") => None,
            Some(text) => Some((
                Within::parse(text).map_err(|message| PolicyError {
                    field: Some("keep_within"),
                    message,
                })?,
                text.to_string(),
            )),
        };
        let counts = [
            ("keep_last", raw.keep_last),
            ("keep_hourly", raw.keep_hourly),
            ("keep_daily", raw.keep_daily),
            ("keep_weekly", raw.keep_weekly),
            ("keep_monthly", raw.keep_monthly),
            ("keep_yearly", raw.keep_yearly),
        ];
        for (field, n) in counts {
            if n > MAX_KEEP_COUNT {
                return Err(PolicyError {
                    field: Some(field),
                    message: format!("{n} is outside 0..={MAX_KEEP_COUNT}"),
                });
            }
        }
        let policy = Policy {
            last: raw.keep_last,
            hourly: raw.keep_hourly,
            daily: raw.keep_daily,
            weekly: raw.keep_weekly,
            monthly: raw.keep_monthly,
            yearly: raw.keep_yearly,
            within,
        };
        if policy == Policy::default() {
            return Err(PolicyError {
                field: None,
                message: "the policy keeps nothing; an empty policy would delete every snapshot"
                    .into(),
            });
        }
        Ok(policy)
    }
}

/// One snapshot's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: ObjectId,
    pub time: DateTime<Utc>,
    pub keep: bool,
    pub reasons: Vec<String>,
}

type KeyFn = fn(DateTime<Tz>, usize) -> String;

fn rules(policy: &Policy) -> Vec<(&'static str, u32, KeyFn)> {
    vec![
        ("last", policy.last, |_, nr| nr.to_string()),
        ("hourly", policy.hourly, |t, _| {
            format!(
                "{:04}-{:02}-{:02} {:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour()
            )
        }),
        ("daily", policy.daily, |t, _| {
            format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
        }),
        ("weekly", policy.weekly, |t, _| {
            let w = t.iso_week();
            format!("{:04}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.monthly, |t, _| {
            format!("{:04}-{:02}", t.year(), t.month())
        }),
        ("yearly", policy.yearly, |t, _| format!("{:04}", t.year())),
    ]
}

/// Decide for every snapshot of one group. The input order does not matter;
/// the output is newest first (ties broken by id).
pub fn apply(snapshots: &[(ObjectId, DateTime<Utc>)], policy: &Policy, tz: Tz) -> Vec<Decision> {
    let mut list: Vec<(ObjectId, DateTime<Utc>)> = snapshots.to_vec();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let mut rules: Vec<(&str, u32, KeyFn, Option<String>, u32)> = rules(policy)
        .into_iter()
        .map(|(name, n, f)| (name, n, f, None, 0))
        .collect();
    let cutoff = policy
        .within
        .as_ref()
        .and_then(|(w, _)| list.first().map(|newest| w.before(newest.1, tz)));
    let last_index = list.len().saturating_sub(1);
    list.iter()
        .enumerate()
        .map(|(nr, (id, time))| {
            let local = time.with_timezone(&tz);
            let mut reasons = Vec::new();
            if let (Some(cut), Some((_, text))) = (cutoff, &policy.within) {
                if *time >= cut {
                    reasons.push(format!("within {text}"));
                }
            }
            for (name, count, key_of, last_key, counted) in rules.iter_mut() {
                if *counted >= *count {
                    continue;
                }
                let key = key_of(local, nr);
                if last_key.as_deref() != Some(key.as_str()) {
                    *counted += 1;
                    reasons.push(format!("{name} {counted}"));
                    *last_key = Some(key);
                } else if nr == last_index {
                    reasons.push(format!("oldest ({name})"));
                }
            }
            Decision {
                id: *id,
                time: *time,
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_cutoff_in_a_dst_gap_moves_earlier_not_later() {
        // 2026-03-29 03:00 EET jumps to 04:00 EEST: 03:30 does not exist.
        let one_day = Within {
            days: 1,
            ..Within::default()
        };
        let newest = utc("2026-03-30T00:30:00Z"); // 03:30 EEST on the 30th
        let cut = one_day.before(newest, chrono_tz::Europe::Helsinki);
        assert!(cut <= utc("2026-03-29T01:00:00Z"), "{cut}");
        assert!(cut >= utc("2026-03-29T00:00:00Z"), "{cut}");
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
}
