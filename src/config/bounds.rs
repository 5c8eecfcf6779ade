//! Ranges of the numbers in the config, checked once in `Config::parse`.
//!
//! Every number an operator writes feeds date arithmetic somewhere (expiry
//! of recordings, the activity-log cutoff, `keep_within`). A value outside
//! its range is refused with its key, so no later sum can overflow: a
//! wrapped sum could expire data at once, and an overflowing one panics.
//! The checked values are carried as domain types that cannot hold anything
//! else ([`Days`](crate::days::Days), [`Policy`](crate::retention::Policy)).

use crate::error::{Error, Result};

/// Check a TOML integer against `range`, naming `key`.
pub fn check_range<T>(value: i64, range: std::ops::RangeInclusive<T>, key: &str) -> Result<T>
where
    T: TryFrom<i64> + PartialOrd + std::fmt::Display,
{
    match T::try_from(value) {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(Error::config(
            key,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_refuse_out_of_bounds_and_out_of_type() {
        assert_eq!(check_range::<u32>(120, 1..=120, "m").unwrap(), 120);
        assert!(check_range::<u32>(121, 1..=120, "m").is_err());
        assert!(check_range::<u32>(-5, 1..=120, "m").is_err());
        assert!(check_range::<u32>(1 << 40, 1..=120, "m").is_err());
    }
}
