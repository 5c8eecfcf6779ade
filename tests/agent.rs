//! Acceptance: `offsite run` as systemd runs it. READY and WATCHDOG on a
//! notify socket, /metrics that promtool accepts and that survive a restart,
//! restore-test failures in the metrics, a graceful SIGTERM during a large
//! snapshot, and the shipped unit and alert rules verified by systemd-analyze
//! and promtool (installed by `.ci/test`; missing tools fail these tests).

mod common;
use common::agent::*;
use common::*;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[test]
fn notify_socket_gets_ready_and_watchdog_and_sigterm_exits_zero() {
    let port = free_port();
    let w = agent_world(port, "0 0 2 * * *", "0 0 5 * * *");
    fill(&w, 2);
    w.ok(&["init"]);
    let sock_path = w.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = spawn_agent(
        &w,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !(seen.iter().any(|m: &String| m == "READY=1")
        && seen.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2)
    {
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(
        seen.iter().any(|m| m.starts_with("STATUS=next: ")),
        "{seen:?}"
    );
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
}

#[test]
fn metrics_pass_promtool_report_failures_and_survive_a_restart() {
    let promtool = tool("promtool");
    let port = free_port();
    let w = agent_world(port, "0 0 2 * * *", "* * * * * *");
    fill(&w, 3);
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let mut child = spawn_agent(&w, &[]);
    let healthy = poll_until(Duration::from_secs(60), "a successful restore test", || {
        let text = scrape(port);
        (metric(&text, "offsite_restore_test_success") == Some(1.0)).then_some(text)
    });
    assert_eq!(
        metric(&healthy, "offsite_restore_test_success"),
        Some(1.0),
        "{healthy}"
    );
    assert!(metric(&healthy, "offsite_restore_test_runs_total{result=\"ok\"}").unwrap() >= 1.0);
    assert!(
        metric(
            &healthy,
            "offsite_snapshot_last_success_timestamp_seconds{source=\"data\"}"
        )
        .unwrap()
            > 1.7e9
    );
    assert_eq!(
        metric(&healthy, "offsite_repository_snapshots{source=\"voice\"}"),
        Some(1.0)
    );
    let file = w.path("metrics.txt");
    std::fs::write(&file, &healthy).unwrap();
    let out = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Break every data pack: restore tests fail, name the object, delete nothing.
    let before = w.data_objects();
    for pack in w.packs() {
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
    }
    let corrupted = w.data_objects();
    let streak = "offsite_job_consecutive_failures{operation=\"restore-test\"}";
    // The job sets its result; the loop then records the failure: wait for both.
    let broken = poll_until(
        Duration::from_secs(60),
        "a recorded failed restore test",
        || {
            let text = scrape(port);
            let failed = metric(&text, "offsite_restore_test_success") == Some(0.0);
            (failed && metric(&text, streak) >= Some(1.0)).then_some(text)
        },
    );
    assert_eq!(
        metric(&broken, "offsite_restore_test_success"),
        Some(0.0),
        "{broken}"
    );
    assert!(
        metric(
            &broken,
            "offsite_restore_test_runs_total{result=\"failed\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        metric(
            &broken,
            "offsite_job_failures_total{operation=\"restore-test\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(metric(&healthy, streak), Some(0.0), "{healthy}");
    let failing = metric(&broken, streak).unwrap();
    assert!(failing >= 1.0, "{broken}");
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    assert_eq!(w.data_objects().len(), before.len(), "nothing deleted");
    assert_eq!(w.data_objects(), corrupted, "nothing changed");
    let failures: Vec<serde_json::Value> = w
        .activity()
        .into_iter()
        .filter(|e| e["operation"] == "restore-test" && e["outcome"] == "failed")
        .collect();
    assert!(!failures.is_empty());
    for f in &failures {
        assert!(
            f["details"]["error"].as_str().unwrap().contains("packs/"),
            "the report names the object: {f}"
        );
    }

    // A restarted agent reports what the repository remembers before running any job.
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("schedule = \"* * * * * *\"", "schedule = \"0 0 5 * * *\"");
    std::fs::write(&w.config, text).unwrap();
    let mut child = spawn_agent(&w, &[]);
    let restarted = scrape(port);
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
    for name in [
        "offsite_restore_test_last_success_timestamp_seconds",
        "offsite_restore_test_last_run_timestamp_seconds",
        "offsite_snapshot_last_success_timestamp_seconds{source=\"data\"}",
    ] {
        assert_eq!(
            metric(&restarted, name),
            metric(&broken, name),
            "{name} survives the restart"
        );
    }
    assert_eq!(
        metric(&restarted, "offsite_restore_test_success"),
        Some(0.0)
    );
    // The failing streak comes back from state.json (it may have grown before the stop).
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("state/state.json")).unwrap()).unwrap();
    let saved = state["jobs"]["restore-test"]["consecutive_failures"]
        .as_f64()
        .unwrap();
    assert!(saved >= failing, "{state}");
    assert_eq!(metric(&restarted, streak), Some(saved), "{restarted}");
}

#[test]
fn sigterm_during_a_large_snapshot_exits_zero_and_commits_nothing() {
    let port = free_port();
    let w = agent_world(port, "* * * * * *", "0 0 5 * * *");
    let mut rng = Rng::new(3);
    for i in 0..40 {
        put(
            &w.src(),
            &format!("t{}/voice/2026/11/01/{i}.opus", i % 4),
            &rng.bytes(10 << 20),
        );
    }
    w.ok(&["init"]);
    let mut child = spawn_agent(&w, &[]);
    let start = Instant::now();
    while w.packs().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the snapshot never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stopping = Instant::now();
    sigterm(&child);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(15)), Some(0));
    let took = stopping.elapsed();
    eprintln!("stopped {took:?} after SIGTERM");
    // The (empty) client-data source may have finished first; the voice snapshot was stopped.
    assert!(
        w.json(&["snapshots", "--source", "voice"])["snapshots"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no partial snapshot is listed"
    );
    assert!(
        took < Duration::from_secs(5),
        "stopped within a bounded time: {took:?}"
    );
    w.ok(&["check", "--read-data"]);
    let next = w.json(&["snapshot", "--source", "voice"]);
    assert_eq!(next["items"], 40);
    w.ok(&["check", "--read-data"]);
}

#[test]
fn shipped_unit_and_alert_rules_verify() {
    let analyze = tool("systemd-analyze");
    let promtool = tool("promtool");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(root.join("systemd/offsite-alerts.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // systemd-analyze checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root.join("systemd/offsite.service"))
        .unwrap()
        .replace("/usr/local/bin/offsite", env!("CARGO_BIN_EXE_offsite"));
    assert!(
        unit.contains("Type=notify")
            && unit.contains("WatchdogSec=")
            && unit.contains("ProtectSystem=strict")
            && unit.contains("LoadCredential=offsite.key:/etc/offsite/offsite.key")
            && unit.contains("LimitCORE=0")
    );
    std::fs::write(dir.path().join("offsite.service"), unit).unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(dir.path().join("offsite.service"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("offsite.service:"),
        "systemd-analyze verify: {stderr}"
    );
}

/// One scrape with a `limit` on every read and write; the raw response.
fn scrape_within(port: u16, limit: Duration) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    s.set_write_timeout(Some(limit)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    if let Err(e) = s.read_to_string(&mut out) {
        panic!("/metrics did not answer within {limit:?}: {e}");
    }
    out
}

/// An agent with far-off schedules, up and answering /metrics.
fn idle_agent() -> (World, Agent, u16) {
    let port = free_port();
    let w = agent_world(port, "0 0 2 * * *", "0 0 5 * * *");
    fill(&w, 1);
    w.ok(&["init"]);
    let child = spawn_agent(&w, &[]);
    scrape(port);
    (w, child, port)
}

/// The agent's peak resident memory (VmHWM) in KiB.
fn peak_rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[test]
fn metrics_answer_while_idle_and_trickling_connections_are_open() {
    let (_w, _child, port) = idle_agent();
    let connect = || std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let idle: Vec<_> = (0..50).map(|_| connect()).collect();
    let trickling: Vec<_> = (0..50).map(|_| connect()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rounds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let trickler = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        std::thread::spawn(move || {
            // One header byte per connection every 100 ms; the head never ends.
            let head = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
            let mut streams = trickling;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let byte = head.get(i).copied().unwrap_or(b'a');
                for s in &mut streams {
                    let _ = s.write_all(&[byte]); // the server may have closed it
                }
                i += 1;
                rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let start = Instant::now();
    while rounds.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        assert!(start.elapsed() < Duration::from_secs(10), "trickler stuck");
        std::thread::sleep(Duration::from_millis(10));
    }

    let asked = Instant::now();
    let response = scrape_within(port, Duration::from_secs(5));
    eprintln!(
        "scrape answered in {:?} beside 100 slow connections",
        asked.elapsed()
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("offsite_build_info"), "{response}");

    // The server closes connections that send no complete request head.
    for mut s in idle.into_iter().take(3) {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "an idle connection stayed open for 20 s"
            ),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    trickler.join().unwrap();
}

#[test]
fn a_huge_header_line_is_refused_without_growing_the_agent() {
    let (_w, child, port) = idle_agent();
    let before = peak_rss_kib(&child);

    // 64 MiB in one header line, as fast as the socket takes it.
    const HUGE: usize = 64 << 20;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Huge: ")
        .unwrap();
    let chunk = vec![b'a'; 64 << 10];
    let mut sent = 0;
    while sent < HUGE {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"\r\n\r\n");
    drop(s);
    // Answered after the huge request was dealt with (the old server took one at a time).
    let response = scrape_within(port, Duration::from_secs(5));
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "still answers: {response}"
    );
    let after = peak_rss_kib(&child);
    eprintln!(
        "VmHWM {before} kB before, {after} kB after; {sent} bytes sent before the agent closed"
    );
    assert!(
        after.saturating_sub(before) < 32 << 10,
        "peak memory grew from {before} kB to {after} kB"
    );
    assert!(
        sent < HUGE,
        "the agent read a 64 MiB header line instead of closing the connection"
    );

    // A head just over the limit gets its answer: 431.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 9 << 10));
    request.extend(b"\r\n\r\n");
    s.write_all(&request).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let response = scrape_within(port, Duration::from_secs(5));
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "still answers: {response}"
    );
}
