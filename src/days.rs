//! `Days`: a number of days in `1..=MAX_DAYS`, the unit of every retention
//! the promises state in days (voice contracts, the activity log).
//!
//! A domain type: the config checks the number an operator wrote once and
//! hands this over, so the date arithmetic done with it (`voice`, the
//! activity-log cutoff) can neither overflow nor see zero.

use serde::Serialize;

use crate::error::{Error, Result};

/// The longest retention in days anything in the config may ask for (100
/// years): `voice_retention_days`, `default_voice_retention_days`,
/// `activity_log_days`.
pub const MAX_DAYS: u16 = 36_500;

/// A number of days in `1..=MAX_DAYS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Days(u16);

impl Days {
    /// `value` if it is in `1..=MAX_DAYS`, else a config error naming `key`.
    pub fn new(value: i64, key: &str) -> Result<Self> {
        match u16::try_from(value) {
            Ok(n @ 1..=MAX_DAYS) => Ok(Days(n)),
            _ => Err(Error::config(
                key,
                format!("{value} is outside 1..={MAX_DAYS} (days)"),
            )),
        }
    }

    /// The number of days.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl PartialEq<u32> for Days {
    fn eq(&self, other: &u32) -> bool {
        self.get() == *other
    }
}

impl std::fmt::Display for Days {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_refuse_zero_negative_and_past_a_century() {
        for bad in [0, -1, 36_501, 65_536, 2_147_483_648, i64::MAX, i64::MIN] {
            let e = Days::new(bad, "k").unwrap_err().to_string();
            assert!(e.contains("k:") && e.contains("1..=36500"), "{e}");
        }
        assert_eq!(Days::new(1, "k").unwrap().get(), 1);
        assert_eq!(Days::new(36_500, "k").unwrap().get(), 36_500);
    }
}
