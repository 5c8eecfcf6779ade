//! The clock, an input like any other: the system clock in production, a
//! manual clock in tests (time advances only when told to or when the
//! scheduler sleeps, so days of schedules run in milliseconds). The one place
//! that reads the system time.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cancel::Cancel;

/// Where the scheduler gets the time and how it waits.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Wait until `until` or cancellation; true when the time was reached.
    fn sleep_until(&self, until: DateTime<Utc>, cancel: &Cancel) -> bool;
}

/// The real clock. Sleeps in steps of at most a minute, so a changed wall
/// clock (NTP step, suspend) is noticed.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, until: DateTime<Utc>, cancel: &Cancel) -> bool {
        loop {
            let left = until - Utc::now();
            if left <= chrono::Duration::zero() {
                return true;
            }
            let step = left
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(60));
            if cancel.wait(step) {
                return false;
            }
        }
    }
}

/// A clock that moves only when told to, or when the scheduler sleeps.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    /// Move the clock forward by `by` (a job taking time, or downtime).
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    fn sleep_until(&self, until: DateTime<Utc>, cancel: &Cancel) -> bool {
        if cancel.is_cancelled() {
            return false;
        }
        let mut now = self.0.lock().unwrap();
        if *now < until {
            *now = until;
        }
        true
    }
}
