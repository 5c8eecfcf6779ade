//! What both benchmarks need: run a command and measure it, sizes on disk,
//! restic installed, figures printed.
#![allow(dead_code)] // each benchmark uses its own subset

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One finished command: wall time, peak resident memory, output.
pub struct Run {
    pub wall: Duration,
    pub max_rss_kib: i64,
    pub stdout: Vec<u8>,
}

impl Run {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn secs(&self) -> f64 {
        self.wall.as_secs_f64()
    }

    pub fn rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }
}

/// Run a command and measure it (wait4 gives the child's own peak RSS).
pub fn measure(cmd: &mut Command) -> Run {
    run_measured(cmd, None)
}

/// Like [`measure`], with the command's standard output written to `out`
/// (for outputs of gigabytes).
pub fn measure_to(cmd: &mut Command, out: &Path) -> Run {
    run_measured(cmd, Some(File::create(out).expect("output file")))
}

#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also yields the peak RSS
fn run_measured(cmd: &mut Command, out: Option<File>) -> Run {
    let started = Instant::now();
    let to_file = out.is_some();
    let child = cmd
        .stdout(out.map_or_else(Stdio::piped, Stdio::from))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let pid = child.id() as i32;
    let reader = (!to_file).then(|| {
        let pipe = child.stdout.expect("stdout");
        std::thread::spawn(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut { pipe }, &mut out)
                .map(|_| out)
                .unwrap_or_default()
        })
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; both pointers are valid for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let wall = started.elapsed();
    let stdout = reader.map(|r| r.join().unwrap()).unwrap_or_default();
    let exit = ExitStatus::from_raw(status);
    assert!(exit.success(), "{cmd:?} failed: {exit:?}");
    Run {
        wall,
        max_rss_kib: usage.ru_maxrss,
        stdout,
    }
}

pub fn sh(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

/// Bytes of the files below `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Files below `dir`.
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

/// restic from Debian, installed when missing.
pub fn ensure_restic() {
    if Command::new("restic").arg("version").output().is_ok() {
        return;
    }
    eprintln!("restic missing: installing it from Debian");
    sh(Command::new("apt-get").args(["update", "-qq"]));
    sh(Command::new("apt-get").args(["install", "-y", "-qq", "restic"]));
}

/// The sum of `field` over JSON lines.
pub fn sum_field(json_lines: &str, field: &str) -> u64 {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v[field].as_u64())
        .sum()
}

pub fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

pub fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / 1048576.0)
}

/// True when both files hold the same bytes (read in pieces: they may be gigabytes).
pub fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}
