//! Region names: validated once, compared case-insensitively.
//!
//! The second-region guard compares the host's region with the
//! repository's, and the bucket's reported region with the configured one.
//! A typo (`eu-north1`) or a case difference (`EU-North-1`) must not make
//! two equal regions look different, so names are checked here and
//! compared with [`same`].
//!
//! The rule: for AWS S3 (an `s3://` URL without `endpoint`) both
//! `source_region` and `repository.region` must have AWS region syntax
//! (`eu-central-1`, `us-gov-west-1`, `us-isob-east-1`: letters, an optional
//! `gov`/`iso*` part, a direction, a number) and are stored in lower case, as
//! AWS spells them. An S3-compatible cluster (`endpoint` set) or a local
//! directory names its regions itself (a Ceph zonegroup such as `default`),
//! so there either AWS syntax or a plain identifier (1-64 letters, digits,
//! `-`, `_`) is accepted, kept as written.

use crate::error::{Error, Result};

/// Does `name` have AWS region syntax? Case-insensitive:
/// `^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,3}$`.
pub fn is_aws(name: &str) -> bool {
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    let parts: Vec<&str> = name.split('-').collect();
    let (country, middle, direction, number) = match parts.as_slice() {
        [c, d, n] => (*c, None, *d, *n),
        [c, m, d, n] => (*c, Some(*m), *d, *n),
        _ => return false,
    };
    let middle_ok = middle.is_none_or(|m| {
        let m = m.to_ascii_lowercase();
        m == "gov" || (m.starts_with("iso") && m.len() <= 4 && letters(&m))
    });
    country.len() == 2
        && letters(country)
        && middle_ok
        && letters(direction)
        && (1..=3).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A plain identifier: 1-64 ASCII letters, digits, `-` or `_`.
fn is_identifier(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Check the region at `key`; `aws` when the repository is AWS S3 itself.
/// Returns the name as it is stored: lower case when it has AWS syntax.
pub fn validate(name: &str, key: &str, aws: bool) -> Result<String> {
    if is_aws(name) {
        return Ok(name.to_ascii_lowercase());
    }
    if !aws && is_identifier(name) {
        return Ok(name.to_string());
    }
    let expected = if aws {
        "an AWS region like \"eu-central-1\" (the repository is AWS S3: no endpoint)"
    } else {
        "an AWS region like \"eu-central-1\" or a name of 1-64 letters, digits, '-' or '_'"
    };
    Err(Error::config(key, format!("{name:?} is not {expected}")))
}

/// Are `a` and `b` the same region? Case-insensitive.
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_syntax() {
        for ok in [
            "eu-central-1",
            "EU-West-1",
            "us-gov-west-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "ap-southeast-5",
        ] {
            assert!(is_aws(ok), "{ok}");
        }
        for bad in [
            "eu-north1",
            "eu_north_1",
            "eu-north-",
            "e-north-1",
            "eu-north-1a",
            "eu--1",
            "us-foo-east-1",
            "default",
            "",
            "eu-north-1 ",
        ] {
            assert!(!is_aws(bad), "{bad}");
        }
    }

    #[test]
    fn custom_names_only_off_aws() {
        assert_eq!(validate("EU-West-1", "k", true).unwrap(), "eu-west-1");
        assert_eq!(validate("default", "k", false).unwrap(), "default");
        assert_eq!(validate("Zone_A", "k", false).unwrap(), "Zone_A");
        assert!(validate("default", "k", true).is_err());
        assert!(validate("eu north", "k", false).is_err());
        assert!(validate("", "k", false).is_err());
        let e = validate("eu-north1", "repository.region", true).unwrap_err();
        assert!(e.to_string().contains("repository.region"), "{e}");
    }

    #[test]
    fn comparison_ignores_case() {
        assert!(same("EU-West-1", "eu-west-1"));
        assert!(!same("eu-west-1", "eu-west-2"));
    }
}
