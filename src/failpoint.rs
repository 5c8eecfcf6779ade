//! Crash points for the crash-safety tests.
//!
//! `OFFSITE_FAILPOINT=<name>` makes the process abort (as a SIGKILL would
//! stop it: no destructors, no cleanup) when it reaches the point of that
//! name. The points sit between the steps of every commit order, so the tests
//! can prove that a crash between any two steps leaves the repository
//! readable. Unset, a point costs one environment lookup.

/// Abort here if the failpoint `name` is armed (or pause, see [`pause_if_armed`]).
pub fn hit(name: &str) {
    pause_if_armed(name);
    if std::env::var_os("OFFSITE_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("offsite: failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Test hook: `OFFSITE_TEST_PAUSE_BEFORE_READ=<path-substring>:<dir>` makes
/// the first source file whose path contains the substring wait before it is
/// opened: the process creates `<dir>/paused`, then waits until
/// `<dir>/resume` exists (at most 60 s, or until `cancel` is set). A test
/// swaps the file in between, deterministically. Unset, it costs one
/// environment lookup per file.
pub fn pause_before_read(path: &std::path::Path, cancel: &crate::cancel::Cancel) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FIRED: AtomicBool = AtomicBool::new(false);
    let Some(spec) = std::env::var_os("OFFSITE_TEST_PAUSE_BEFORE_READ") else {
        return;
    };
    let Some((needle, dir)) = spec.to_str().and_then(|s| s.split_once(':')) else {
        return;
    };
    if !path.to_string_lossy().contains(needle) || FIRED.swap(true, Ordering::SeqCst) {
        return;
    }
    let dir = std::path::Path::new(dir);
    let _ = std::fs::write(dir.join("paused"), path.to_string_lossy().as_bytes());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !dir.join("resume").exists() && std::time::Instant::now() < deadline {
        if cancel.wait(std::time::Duration::from_millis(10)) {
            return;
        }
    }
}

/// `OFFSITE_PAUSEPOINT=<name>` with `OFFSITE_PAUSE_FILE=<path>`: at the point
/// of that name the process creates `<path>` and waits until it is removed
/// (at most ten minutes), so a test can act while an operation is paused at
/// a known step (a prune beside a running snapshot).
pub fn pause_if_armed(name: &str) {
    if std::env::var_os("OFFSITE_PAUSEPOINT").is_none_or(|v| v != name) {
        return;
    }
    let Some(file) = std::env::var_os("OFFSITE_PAUSE_FILE") else {
        return;
    };
    let file = std::path::PathBuf::from(file);
    if let Err(e) = std::fs::write(&file, name) {
        eprintln!(
            "offsite: pausepoint {name}: cannot create {}: {e}",
            file.display()
        );
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
