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

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::id::ObjectId;

mod within;

pub use within::Within;

/// The most snapshots a `keep_*` count may ask for.
pub const MAX_KEEP_COUNT: u32 = 1_000_000;

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

/// A policy: counts per rule (`keep_last`, `keep_hourly`, …) and the
/// `keep_within` duration with the text it was written as (for reasons).
/// The config builds it from its raw form and checks it with
/// [`Policy::validated`].
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
    /// The policy if it can be kept: every count at most `MAX_KEEP_COUNT`,
    /// and not empty (an empty policy would delete every snapshot).
    pub fn validated(self) -> Result<Self, PolicyError> {
        let counts = [
            ("keep_last", self.last),
            ("keep_hourly", self.hourly),
            ("keep_daily", self.daily),
            ("keep_weekly", self.weekly),
            ("keep_monthly", self.monthly),
            ("keep_yearly", self.yearly),
        ];
        for (field, n) in counts {
            if n > MAX_KEEP_COUNT {
                return Err(PolicyError {
                    field: Some(field),
                    message: format!("{n} is outside 0..={MAX_KEEP_COUNT}"),
                });
            }
        }
        if self == Policy::default() {
            return Err(PolicyError {
                field: None,
                message: "the policy keeps nothing; an empty policy would delete every snapshot"
                    .into(),
            });
        }
        Ok(self)
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
