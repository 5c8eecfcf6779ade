//! S3 Object Lock dates: until when each object must stay, from the promises.
//!
//! # The invariant
//!
//! For every object offsite locks, the retain-until date `U` satisfies
//! `allowed <= U <= required` (within the granularity below), where
//! `allowed` is the earliest time the retention promises let the object be
//! deleted and `required` the earliest time they require it to be deleted:
//!
//! * **Client data** (manifest, tree and data packs of a snapshot taken at
//!   `t`): each rule that keeps the snapshot keeps it at least until the
//!   start (in the configured zone) of the period `t` falls in, plus the
//!   rule's count of periods: a `daily 3` snapshot of a day stays until that
//!   day's midnight plus `keep_daily` days, because no fewer days with newer
//!   snapshots can push it out. `U` is the latest of these over the rules
//!   that keep it ([`snapshot_until`]), and never later than `t` plus
//!   `data_retention_months` (the promise that requires deletion). At
//!   creation a snapshot is locked as the daily of its day ([`created_until`]);
//!   a prune extends the lock when retention promotes the snapshot (weekly,
//!   monthly, yearly) once that period has ended, since until then a newer
//!   snapshot of the same period could still take its place. A pack gets the
//!   latest `U` of the snapshots that reference it.
//! * **Voice data packs**: a recording's copy must stay until
//!   `recorded_at + min(2R, R + 365 days)` and go then ([`crate::voice`]).
//!   Packs hold recordings of one (tenant, expiry day) only, and a pack is
//!   locked until the start of that UTC day ([`voice_until`]): never past any
//!   of its recordings' expiry, at most one day short of it.
//!
//! A repack copies blobs into new packs locked as the packs they come
//! from, grouped by that date ([`crate::ops::sweep::copy_live`]), so a
//! repack neither shortens nor lengthens any blob's lock.
//!
//! Granularity: one second for client data, one UTC day for voice packs.
//! Two known slacks: a snapshot superseded later on its own day keeps the
//! daily lock it got at creation (so it can outlive its retention decision
//! by up to `keep_daily` days), and a recording deduplicated into a pack of
//! an earlier expiry day is held only as long as that pack's lock. One
//! known breach: a recording deduplicated into the pack of a *later* expiry
//! day (equal bytes) is held until that day; `check` reports the pack.
//!
//! Not locked at all: `keys/` (crypto-erasure deletes wraps at once; the
//! ciphertext of an erased tenant is unreadable and goes when its lock
//! ends), repository locks, activity-log entries (their 30-day promise
//! requires deletion, and an intruder who deletes them cannot delete
//! backups), and the `config` object. Index files are locked as the
//! snapshot that writes them (at creation only: they are rebuilt from the
//! packs by `rebuild-index`).
//!
//! # Simulated time
//!
//! Tests run years of snapshots with `--time` and `--now`, but the gateway's
//! clock is real and it refuses retain-until dates in the past. A
//! [`TestClock`] (config `object_lock.test_clock`, refused with compliance
//! mode, for the test suite only) maps a simulated instant to a real one:
//! `real + (t - simulated) · seconds_per_day / 86400`, so a simulated day
//! lasts `seconds_per_day` real seconds. Without it the mapping is the
//! identity. A date that maps to the past is not locked (nothing to protect).

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::retention::Policy;
use crate::tree::FileEntry;
use crate::voice::Contracts;

/// Compliance (nobody can shorten or remove the lock) or governance (a key
/// with `s3:BypassGovernanceRetention` can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Compliance,
    Governance,
}

impl LockMode {
    /// The S3 spelling (`COMPLIANCE`, `GOVERNANCE`).
    pub fn as_s3(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }
}

/// `[repository] object_lock`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: LockMode,
    pub test_clock: Option<TestClock>,
}

/// For the test suite only: simulated days as a few real seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestClock {
    pub simulated: DateTime<Utc>,
    pub real: DateTime<Utc>,
    /// 1..=86400.
    pub seconds_per_day: u32,
}

impl ObjectLock {
    /// The real retain-until date for the simulated instant `until`, whole
    /// seconds (rounded down).
    pub fn to_real(&self, until: DateTime<Utc>) -> DateTime<Utc> {
        let real = match self.test_clock {
            None => until,
            Some(c) => {
                let sim = i128::from(until.timestamp() - c.simulated.timestamp());
                let scaled = sim * i128::from(c.seconds_per_day) / 86_400;
                let secs =
                    i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX });
                c.real
                    .checked_add_signed(Duration::seconds(secs.clamp(-1 << 40, 1 << 40)))
                    .unwrap_or(c.real)
            }
        };
        DateTime::from_timestamp(real.timestamp(), 0).unwrap_or(real)
    }

    /// The simulated instant whose [`ObjectLock::to_real`] is `real` (whole
    /// seconds): a copy locked until `to_simulated(r)` gets exactly the
    /// real date `r` back. Rounds away from the clock's origin, which
    /// `to_real` rounds toward, so the round trip is exact.
    pub fn to_simulated(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        let Some(c) = self.test_clock else {
            return DateTime::from_timestamp(real.timestamp(), 0).unwrap_or(real);
        };
        let x = i128::from(real.timestamp() - c.real.timestamp()) * 86_400;
        let per = i128::from(c.seconds_per_day.max(1));
        let sim = if x >= 0 {
            (x + per - 1) / per
        } else {
            x.div_euclid(per)
        };
        let secs = i64::try_from(sim.clamp(-(1 << 40), 1 << 40)).unwrap_or(0);
        c.simulated
            .checked_add_signed(Duration::seconds(secs))
            .unwrap_or(c.simulated)
    }
}

/// The start of the period `t` falls in (zone `tz`) plus `count` periods,
/// for one retention rule; `None` for rules that guarantee nothing (`last`,
/// `oldest`) or dates that cannot be computed (the caller then keeps the
/// shorter lock: a lock never errs toward holding past a deadline).
fn rule_until(rule: &str, t: DateTime<Utc>, policy: &Policy, tz: Tz) -> Option<DateTime<Utc>> {
    let local = t.with_timezone(&tz);
    let day = local.date_naive();
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|x| x.with_timezone(&Utc))
    };
    match rule {
        "hourly" => {
            let hour = t.checked_sub_signed(Duration::seconds(
                i64::from(local.minute()) * 60 + i64::from(local.second()),
            ))?;
            hour.checked_add_signed(Duration::hours(i64::from(policy.hourly)))
        }
        "daily" => midnight(day.checked_add_days(chrono::Days::new(u64::from(policy.daily)))?),
        "weekly" => {
            let monday = day.checked_sub_days(chrono::Days::new(u64::from(
                local.weekday().num_days_from_monday(),
            )))?;
            let days = u64::from(policy.weekly).checked_mul(7)?;
            midnight(monday.checked_add_days(chrono::Days::new(days))?)
        }
        "monthly" => {
            let first = day.with_day(1)?;
            midnight(first.checked_add_months(Months::new(policy.monthly))?)
        }
        "yearly" => {
            let first = NaiveDate::from_ymd_opt(local.year(), 1, 1)?;
            midnight(first.checked_add_months(Months::new(policy.yearly.checked_mul(12)?))?)
        }
        "within" => {
            let (w, _) = policy.within.as_ref()?;
            let shifted = local
                .naive_local()
                .checked_add_months(Months::new(w.years.checked_mul(12)?.checked_add(w.months)?))?
                .checked_add_days(chrono::Days::new(u64::from(w.days)))?;
            let at = tz
                .from_local_datetime(&shifted)
                .earliest()?
                .with_timezone(&Utc);
            at.checked_add_signed(Duration::hours(i64::from(w.hours)))
        }
        _ => None,
    }
}

/// When the period of `rule` that `t` falls in ends, in zone `tz`: a
/// promotion by that rule is final from then on.
fn period_end(rule: &str, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let one = Policy {
        hourly: 1,
        daily: 1,
        weekly: 1,
        monthly: 1,
        yearly: 1,
        ..Policy::default()
    };
    match rule {
        "within" => Some(t),
        _ => rule_until(rule, t, &one, tz),
    }
}

/// The latest time any rule in `reasons` (retention's reasons, `daily 3`,
/// `weekly 1`, `within 30d`, …) guarantees to keep a snapshot taken at `t`,
/// counting only rules whose period has ended at `now` (before that, a newer
/// snapshot of the same period may still take its place), capped at `t` plus
/// `retention_months`. `None`: no rule guarantees anything yet.
pub fn snapshot_until(
    reasons: &[String],
    t: DateTime<Utc>,
    policy: &Policy,
    tz: Tz,
    retention_months: u32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let until = reasons
        .iter()
        .filter_map(|r| r.split_whitespace().next())
        .filter(|rule| period_end(rule, t, tz).is_some_and(|end| end <= now))
        .filter_map(|rule| rule_until(rule, t, policy, tz))
        .max()?;
    Some(until.min(cap(t, retention_months)))
}

/// The lock a new snapshot taken at `t` gets: the daily rule's guarantee
/// (see the module docs), capped at `t` plus `retention_months`.
pub fn created_until(
    t: DateTime<Utc>,
    policy: &Policy,
    tz: Tz,
    retention_months: u32,
) -> Option<DateTime<Utc>> {
    if policy.daily == 0 {
        return None;
    }
    Some(rule_until("daily", t, policy, tz)?.min(cap(t, retention_months)))
}

fn cap(t: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    t.checked_add_months(Months::new(months)).unwrap_or(t)
}

/// The configuration the lock dates of client data depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promises {
    pub timezone: Tz,
    pub retention_months: u32,
}

impl Default for Promises {
    /// UTC and the longest data retention (120 months).
    fn default() -> Self {
        Promises {
            timezone: chrono_tz::UTC,
            retention_months: 120,
        }
    }
}

impl Promises {
    /// [`created_until`] under these promises.
    pub fn created_until(&self, t: DateTime<Utc>, policy: &Policy) -> Option<DateTime<Utc>> {
        created_until(t, policy, self.timezone, self.retention_months)
    }
}

/// The expiry day of a recording snapshotted at `time`; a recording that
/// never expires (an mtime at the end of time) counts as expiring after the
/// longest contract from `time`, so no lock date overflows.
pub fn voice_day(contracts: &Contracts, entry: &FileEntry, time: DateTime<Utc>) -> i64 {
    let longest = time
        .checked_add_signed(Duration::days(i64::from(crate::days::MAX_DAYS) * 2 + 1))
        .unwrap_or(time);
    expiry_day(contracts.expires_at(entry).min(longest))
}

/// The UTC day a recording expiring at `expires` belongs to (days since
/// 1970-01-01): voice blobs of one tenant and day share packs.
pub fn expiry_day(expires: DateTime<Utc>) -> i64 {
    expires.timestamp().div_euclid(86_400)
}

/// The lock of a voice pack whose recordings expire on `day`: its start.
pub fn voice_until(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(day.saturating_mul(86_400), 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests;
