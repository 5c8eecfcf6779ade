//! Acceptance (issue 8, finding 6): a source file replaced between the walk
//! and the read. A symlink is not followed (its target is not stored), a
//! FIFO never blocks the snapshot, and either is a warning; SIGTERM during
//! such a snapshot still stops the agent promptly. The test pauses the
//! snapshot before it opens the file (`OFFSITE_TEST_PAUSE_BEFORE_READ`),
//! swaps the file, and lets it go on.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The paused/resume handshake directory of one test.
struct Pause {
    dir: PathBuf,
}

impl Pause {
    fn new(w: &World) -> Self {
        let dir = w.path("pause");
        std::fs::create_dir_all(&dir).unwrap();
        Pause { dir }
    }

    fn env(&self, needle: &str) -> String {
        format!("{needle}:{}", self.dir.display())
    }

    /// Wait until `child` paused before reading; fails if it exits first.
    fn wait_paused(&self, child: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.dir.join("paused").exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("offsite exited ({status}) without pausing before the read");
            }
            assert!(Instant::now() < deadline, "offsite never paused");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn resume(&self) {
        std::fs::write(self.dir.join("resume"), b"").unwrap();
    }
}

/// Kills the child if the test fails before it exits.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(w: &World, args: &[&str], pause: &str) -> Guard {
    Guard(
        Command::new(env!("CARGO_BIN_EXE_offsite"))
            .arg("--config")
            .arg(&w.config)
            .args(args)
            .env("OFFSITE_TEST_PAUSE_BEFORE_READ", pause)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Wait for exit, at most `limit` (an upper bound on a hang); returns the
/// exit code and stdout.
fn wait_exit(guard: &mut Guard, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            let mut out = String::new();
            use std::io::Read;
            guard
                .0
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            return (status.code(), out);
        }
        assert!(Instant::now() < deadline, "offsite hung for {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// A source with `t1/db/victim.sql` and other files; a secret outside it.
fn world() -> (World, Vec<u8>) {
    let w = World::new();
    let mut rng = Rng::new(66);
    put(&w.src(), "t1/db/victim.sql", &rng.text(20_000));
    put(&w.src(), "t1/db/other.sql", &rng.text(20_000));
    let secret = rng.bytes(40_000); // incompressible: stored as is if stored
    put(&w.path("outside"), "shadow", &secret);
    w.ok(&["init"]);
    (w, secret)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn file_swapped_for_a_symlink_is_not_followed() {
    let (w, secret) = world();
    let pause = Pause::new(&w);
    let mut child = spawn(&w, &["--json", "snapshot"], &pause.env("victim.sql"));
    pause.wait_paused(&mut child.0);
    let victim = w.src().join("t1/db/victim.sql");
    std::fs::remove_file(&victim).unwrap();
    std::os::unix::fs::symlink(w.path("outside/shadow"), &victim).unwrap();
    pause.resume();
    let (code, out) = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["warnings"], 1, "{report}");
    assert!(
        report["warning_samples"][0]
            .as_str()
            .unwrap()
            .contains("victim.sql"),
        "{report}"
    );
    assert_eq!(report["items"], 1, "only other.sql is stored");
    for pack in w.packs() {
        let bytes = std::fs::read(&pack).unwrap();
        assert!(
            !contains(&bytes, &secret[..4096]),
            "{}: holds the symlink target's content",
            pack.display()
        );
    }
    let out = w.offsite(&[
        "restore",
        "--item",
        "t1/db/victim.sql",
        "--to",
        w.path("out").to_str().unwrap(),
    ]);
    assert!(
        !out.status.success(),
        "nothing to restore for the swapped file"
    );
    w.ok(&["check", "--read-data"]);
}

#[test]
fn file_swapped_for_a_fifo_is_a_warning_not_a_hang() {
    let (w, _) = world();
    let pause = Pause::new(&w);
    let mut child = spawn(&w, &["--json", "snapshot"], &pause.env("victim.sql"));
    pause.wait_paused(&mut child.0);
    let victim = w.src().join("t1/db/victim.sql");
    std::fs::remove_file(&victim).unwrap();
    mkfifo(&victim);
    pause.resume();
    let (code, out) = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["warnings"], 1, "{report}");
    assert!(
        report["warning_samples"][0]
            .as_str()
            .unwrap()
            .contains("no longer a regular file"),
        "{report}"
    );
    assert_eq!(report["items"], 1);
    w.ok(&["check", "--read-data"]);
}

#[test]
fn sigterm_stops_the_agent_after_a_fifo_swap() {
    let w = World::configured(
        "",
        &[("data", "client-data", "schedule = \"* * * * * *\"")],
        "[prune]\nschedule = \"0 0 0 1 1 *\"\n[restore_test]\nschedule = \"0 0 5 * * *\"\n[metrics]\nlisten = \"\"\n",
    );
    let text = std::fs::read_to_string(&w.config).unwrap();
    let state = format!("state_dir = \"{}\"\n", w.path("state").display());
    std::fs::write(&w.config, state + &text).unwrap();
    let mut rng = Rng::new(67);
    put(&w.src(), "t1/db/victim.sql", &rng.text(20_000));
    w.ok(&["init"]);
    let pause = Pause::new(&w);
    let mut child = spawn(&w, &["run"], &pause.env("victim.sql"));
    pause.wait_paused(&mut child.0);
    let victim = w.src().join("t1/db/victim.sql");
    std::fs::remove_file(&victim).unwrap();
    mkfifo(&victim);
    pause.resume();
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "a graceful stop");
    w.ok(&["check", "--read-data"]);
}
