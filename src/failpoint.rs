//! Crash points for the crash-safety tests.
//!
//! `OFFSITE_FAILPOINT=<name>` makes the process abort (as a SIGKILL would
//! stop it: no destructors, no cleanup) when it reaches the point of that
//! name. The points sit between the steps of every commit order, so the tests
//! can prove that a crash between any two steps leaves the repository
//! readable. Unset, a point costs one environment lookup.

/// Abort here if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if std::env::var_os("OFFSITE_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("offsite: failpoint {name}: aborting");
        std::process::abort();
    }
}
