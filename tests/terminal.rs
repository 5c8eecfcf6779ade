//! What the operator sees: log lines without colour off a terminal and with
//! syslog priorities under systemd, hostile names escaped in every message,
//! the progress line on a terminal only, and `offsite log` as a table.
//! A terminal is given by util-linux `script` (a pseudo-terminal).

mod common;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{put, Rng, World};

/// A file name with an escape sequence and a newline in it.
const EVIL: &str = "evil\x1b[31m\nname";
/// The same, as every message must show it.
const EVIL_SHOWN: &str = "evil\\x1b[31m\\nname";
/// A socket (neither file nor directory: the walk warns and skips it).
const SOCKET: &str = "sock\x1b[2J\nx";
const SOCKET_SHOWN: &str = "sock\\x1b[2J\\nx";

/// A world whose source holds [`EVIL`] (64 KiB of noise) and the [`SOCKET`].
fn hostile_world() -> (World, std::os::unix::net::UnixListener) {
    let w = World::new();
    put(&w.src(), EVIL, &Rng::new(7).bytes(64 * 1024));
    let socket = std::os::unix::net::UnixListener::bind(w.src().join(SOCKET)).unwrap();
    (w, socket)
}

/// Run offsite with stderr to the file `err` and `env` set; returns stdout
/// and what stderr held.
fn run_to_file(w: &World, args: &[&str], env: &[(&str, &str)], err: &Path) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offsite"));
    cmd.arg("--config").arg(&w.config).args(args);
    cmd.env_remove("JOURNAL_STREAM").env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .stderr(Stdio::from(File::create(err).unwrap()))
        .output()
        .expect("run offsite");
    (
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    )
}

/// Run `offsite --config … args` on a pseudo-terminal; returns everything
/// the terminal received (stdout and stderr together).
fn on_terminal(w: &World, args: &str, env: &[(&str, &str)]) -> String {
    let command = format!(
        "{} --config {} {args}",
        env!("CARGO_BIN_EXE_offsite"),
        w.config.display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["--quiet", "--return", "--command", &command, "/dev/null"]);
    cmd.env_remove("JOURNAL_STREAM").env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs the command on a terminal");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn off_a_terminal_log_lines_have_no_colour_and_under_systemd_a_priority() {
    let (w, _socket) = hostile_world();
    w.ok(&["init"]);
    let err = w.path("stderr.txt");
    let (_, plain) = run_to_file(&w, &["snapshot"], &[], &err);
    assert!(plain.contains("WARN"), "{plain}");
    assert!(!plain.contains("\x1b["), "{plain:?}");
    assert!(!plain.contains("<4>"), "{plain}");

    // JOURNAL_STREAM names the file stderr goes to, as systemd would.
    let journal = w.path("journal.txt");
    File::create(&journal).unwrap();
    let meta = journal.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let (_, lines) = run_to_file(&w, &["snapshot"], &[("JOURNAL_STREAM", &stream)], &journal);
    assert!(!lines.contains("\x1b["), "{lines:?}");
    let warning = lines
        .lines()
        .find(|l| l.contains("not a regular file"))
        .expect("the walk's warning");
    assert!(warning.starts_with("<4>"), "{warning}");
    assert!(
        !warning.contains("WARN"),
        "journald has the level: {warning}"
    );
    assert!(warning.contains(SOCKET_SHOWN), "{warning}");

    // Inherited by a process whose stderr is elsewhere: ordinary lines.
    let (_, other) = run_to_file(&w, &["snapshot"], &[("JOURNAL_STREAM", "1:2")], &err);
    assert!(other.contains("WARN") && !other.contains("<4>"), "{other}");
}

#[test]
fn a_hostile_file_name_is_escaped_in_warnings_restore_log_and_check() {
    let (w, _socket) = hostile_world();
    w.ok(&["init"]);
    let snap = w.offsite(&["snapshot"]);
    let (stdout, stderr) = (
        String::from_utf8(snap.stdout).unwrap(),
        String::from_utf8(snap.stderr).unwrap(),
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(text.contains(SOCKET_SHOWN), "{text}");
    }

    let to = w.path("restored");
    let restored = w.ok(&[
        "restore",
        "--item",
        EVIL,
        "--to",
        to.to_str().unwrap(),
        "--reason",
        "ticket\x1b[2J 7",
    ]);
    assert!(to.join(EVIL).exists());
    assert!(
        !restored.contains('\x1b') && restored.contains(EVIL_SHOWN),
        "{restored}"
    );
    let log = w.ok(&["log"]);
    assert!(!log.contains('\x1b'), "{log:?}");
    let row = log
        .lines()
        .find(|l| l.contains(" restore "))
        .expect("a restore row");
    assert!(row.contains(EVIL_SHOWN), "{row}");

    // Damage the data: check names the file, escaped, on one line.
    let pack = w.biggest_pack();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let check = w.offsite(&["check", "--read-data"]);
    assert!(!check.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(
        text.lines().any(|l| l.contains(EVIL_SHOWN)),
        "the damaged file is named: {text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("name")), "{text}");
}

#[test]
fn progress_shows_on_a_terminal_only_and_never_with_quiet() {
    let w = World::new();
    put(&w.src(), "a/one.bin", &Rng::new(1).bytes(300 * 1024));
    put(&w.src(), "a/two.bin", &Rng::new(2).bytes(300 * 1024));
    w.ok(&["init"]);
    let shown = on_terminal(&w, "snapshot", &[]);
    // The walk streams: reading starts with the first file found, the
    // total grows as the walk finds more.
    assert!(
        shown.contains("\x1b[?7lsnapshot: data: reading 0/1 files, 0 B/300.00 KiB"),
        "{shown:?}"
    );
    // The line is erased before the report.
    let report = shown.find("snapshot ").expect("the report");
    assert!(shown[..report].ends_with("\r\x1b[K"), "{shown:?}");

    let quiet = on_terminal(&w, "--quiet check --read-data", &[]);
    assert!(!quiet.contains("check: "), "{quiet:?}");
    assert!(quiet.contains("checked "), "{quiet}");
    let check = on_terminal(&w, "check --read-data", &[]);
    assert!(
        check.contains("\x1b[?7lcheck: verifying packs"),
        "{check:?}"
    );

    // Off a terminal: nothing but the report, on stdout.
    let out = w.offsite(&["snapshot"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8(out.stdout).unwrap().contains('\r'));
}

/// Regression: a single-file restore (a 1 GiB dump is one file) showed no
/// progress; it now shows the file's bytes as they are written.
#[test]
fn a_single_file_restore_shows_progress_on_a_terminal() {
    let w = World::new();
    put(&w.src(), "acme/db/dump.sql", &Rng::new(3).bytes(300 * 1024));
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let to = w.path("restored");
    let shown = on_terminal(
        &w,
        &format!("restore --item acme/db/dump.sql --to {}", to.display()),
        &[],
    );
    assert!(
        shown.contains("\x1b[?7lrestore: writing 0/1 files, 0 B/300.00 KiB"),
        "{shown:?}"
    );
    let report = shown.find("restored ").expect("the report");
    assert!(shown[..report].ends_with("\r\x1b[K"), "{shown:?}");
}

#[test]
fn colour_only_on_a_terminal_and_not_with_no_color() {
    let (w, _socket) = hostile_world();
    w.ok(&["init"]);
    let coloured = on_terminal(&w, "snapshot", &[]);
    assert!(coloured.contains("\x1b["), "{coloured:?}");
    // The warning starts on a line of its own, not after the progress line.
    let warning = coloured.find("not a regular file").expect("the warning");
    let line_start = coloured[..warning].rfind('\r').unwrap_or(0);
    assert!(coloured.contains("snapshot: data: walking"), "{coloured:?}");
    assert!(
        !coloured[line_start..warning].contains("snapshot: data"),
        "{coloured:?}"
    );
    let plain = on_terminal(&w, "--quiet snapshot", &[("NO_COLOR", "1")]);
    assert!(plain.contains("WARN"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "{plain:?}");
}

#[test]
fn log_is_a_table_filtered_by_operation_and_host() {
    let w = World::new();
    put(&w.src(), "acme/a.txt", b"a");
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let to = w.path("out");
    let to = to.to_str().unwrap();
    w.ok(&[
        "restore",
        "--item",
        "acme/a.txt",
        "--to",
        to,
        "--reason",
        "ticket 7",
    ]);
    let missing = w.offsite(&[
        "restore",
        "--item",
        "acme/nope",
        "--to",
        to,
        "--reason",
        "ticket 8",
    ]);
    assert!(!missing.status.success());
    w.ok(&["check"]);

    let table = w.ok(&["log"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in ["time", "host", "operation", "outcome", "details"] {
        assert!(header.contains(column), "{header}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(
        rows[0].contains("snapshot") && rows[0].contains("source data"),
        "{table}"
    );
    assert!(rows[1].contains("item acme/a.txt") && rows[1].contains("reason \"ticket 7\""));
    assert!(rows[2].contains("failed") && rows[2].contains("reason \"ticket 8\""));

    let restores = w.ok(&["log", "--operation", "restore"]);
    assert_eq!(restores.lines().count(), 3, "{restores}");
    assert_eq!(w.ok(&["log", "--host", "elsewhere"]).lines().count(), 1);

    let json = w.json(&["log", "--operation", "restore", "--host", "test-host"]);
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["outcome"], "failed");
    assert_eq!(entries[1]["details"]["reason"], "ticket 8");
    assert_eq!(entries[1]["details"]["item"], "acme/nope");
    assert_eq!(entries[0]["details"]["restore"]["item"], "acme/a.txt");

    let bad = w.offsite(&["log", "--operation", "snapshots"]);
    let error = String::from_utf8_lossy(&bad.stderr);
    assert!(error.contains("one of: snapshot, prune"), "{error}");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_agent_on_a_terminal_logs_each_job_start_and_end() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = World::configured(
        "",
        &[("data", "client-data", "schedule = \"* * * * * *\"")],
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let text = std::fs::read_to_string(&w.config).unwrap();
    let state = w.path("state");
    std::fs::write(&w.config, format!("state_dir = {state:?}\n{text}")).unwrap();
    put(&w.src(), "acme/a.txt", b"a");
    w.ok(&["init"]);
    let command = format!(
        "{} --config {} run",
        env!("CARGO_BIN_EXE_offsite"),
        w.config.display()
    );
    let mut child = Command::new("script")
        .args(["--quiet", "--command", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .env_remove("OFFSITE_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the agent on a terminal");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let finished = common::poll_until(
        std::time::Duration::from_secs(60),
        "a job's end line",
        || {
            let text = seen.lock().unwrap().clone();
            let line = text.lines().find(|l| l.contains("job finished"))?;
            Some((text.clone(), line.to_string()))
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    let (text, line) = finished;
    assert!(
        text.lines()
            .any(|l| l.contains("INFO job started job=snapshot:data source=data")),
        "{text}"
    );
    for field in ["job=snapshot:data", "source=data", "outcome=ok", "seconds="] {
        assert!(line.contains(field), "{line}");
    }
    assert!(!text.contains('\x1b'), "NO_COLOR: {text:?}");
}
