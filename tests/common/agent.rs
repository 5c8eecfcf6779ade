//! An `offsite run` under test: a world configured for the agent, the
//! agent process (killed if a test fails before stopping it), and scrapes
//! of its `/metrics`. Shared by tests/agent.rs and tests/alerts.rs.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{put, Rng, World};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A world whose config runs the agent with state in the world and metrics
/// on `port`, with the given schedules (cron with seconds).
pub fn agent_world(port: u16, snapshot: &str, restore_test: &str) -> World {
    let w = World::configured(
        "",
        &[
            ("data", "client-data", &format!("include = [\"*/db/**\", \"*/emails/**\"]\nschedule = \"{snapshot}\"")),
            ("voice", "voice", &format!("include = [\"*/voice/**\"]\nschedule = \"{snapshot}\"")),
        ],
        &format!("[prune]\nschedule = \"0 0 0 1 1 *\"\n[restore_test]\nschedule = \"{restore_test}\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!("state_dir = \"{}\"\n{text}", w.path("state").display()),
    )
    .unwrap();
    w
}

pub fn fill(w: &World, tenants: usize) {
    let mut rng = Rng::new(8);
    for t in 0..tenants {
        put(&w.src(), &format!("t{t}/db/dump.sql"), &rng.text(200_000));
        put(&w.src(), &format!("t{t}/emails/a.eml"), &rng.text(5_000));
        put(
            &w.src(),
            &format!("t{t}/voice/2026/11/01/rec.opus"),
            &rng.bytes(300_000),
        );
    }
}

/// The agent under test; killed if the test fails before stopping it.
pub struct Agent(pub Child);

impl std::ops::Deref for Agent {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_agent(w: &World, env: &[(&str, &str)]) -> Agent {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offsite"));
    cmd.arg("--config")
        .arg(&w.config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Agent(cmd.spawn().unwrap())
}

pub fn sigterm(child: &Child) {
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

/// Wait for exit, at most `limit`; returns the exit code.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the agent did not exit within {limit:?}");
}

pub fn scrape(port: u16) -> String {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            return out.split_once("\r\n\r\n").unwrap().1.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "metrics endpoint never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

pub fn tool(name: &str) -> std::path::PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} is not installed: run `bash .ci/test`, which installs it"
    );
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
