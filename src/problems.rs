//! Damaged objects that an operation skipped instead of stopping on.
//!
//! One bad object must never stop the service (DESIGN §8a): a manifest, an
//! index file or an activity-log entry that cannot be read is reported and
//! left alone, and the operation goes on with what it can read. A
//! [`Problem`] names the object and says what is wrong with it; callers print
//! each as one warning line on stderr ([`warn`]), carry them in their `--json`
//! report as `problems`, and the agent counts them in
//! `offsite_repository_problems`. Nothing is ever deleted because of one:
//! `check` reports it, and prune holds back what it cannot judge.

use serde::Serialize;

use crate::error::Error;

/// An object that could not be read, and why.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The object's key in the repository (see [`crate::repo::layout`]).
    pub object: String,
    pub what: String,
}

impl Problem {
    /// The problem `error` reports about `object`.
    pub fn new(object: &str, error: &Error) -> Self {
        let what = match error {
            Error::Corrupt {
                object: named,
                detail,
                ..
            } if named == object => detail.clone(),
            other => other.to_string(),
        };
        Problem {
            object: object.to_string(),
            what,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unreadable object {}: {} (skipped; run `offsite check`)",
            crate::escape::Escaped(&self.object),
            crate::escape::Escaped(&self.what)
        )
    }
}

/// Whether `error` is about the object itself (damaged or gone), so the
/// object can be skipped. Anything else (the store unreachable, access
/// denied, a local I/O error) stops the operation as before: skipping then
/// would hide an outage, not a damaged object.
pub fn is_object_damage(error: &Error) -> bool {
    matches!(error, Error::Corrupt { .. } | Error::NotFound { .. })
}

/// Print each problem as one warning line on stderr.
pub fn warn(problems: &[Problem]) {
    for p in problems {
        eprintln!("offsite: warning: {p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_error_about_the_object_keeps_only_its_detail() {
        let key = crate::repo::layout::index_key(&crate::id::ObjectId::hash(b"i"));
        let e = Error::corrupt(&key, "index does not parse");
        let p = Problem::new(&key, &e);
        assert_eq!(p.what, "index does not parse");
        assert_eq!(
            p.to_string(),
            format!("unreadable object {key}: index does not parse (skipped; run `offsite check`)")
        );
        assert!(is_object_damage(&e));
        assert!(!is_object_damage(&Error::Conflict("locked".into())));
    }
}
