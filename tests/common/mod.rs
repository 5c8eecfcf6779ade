//! Helpers shared by the integration tests: a scratch world (source tree,
//! config, repository on the local store) and the real `offsite` binary.
#![allow(dead_code)]

pub mod agent;
pub mod locked;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A scratch directory with a source tree, a repository and a config.
pub struct World {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl World {
    /// A world with one client-data source at `src/` and a repository at `repo/`.
    pub fn new() -> Self {
        Self::with_sources(&[("data", "client-data", "")])
    }

    /// A world with the given sources `(name, class, extra TOML lines)`, all over `src/`.
    pub fn with_sources(sources: &[(&str, &str, &str)]) -> Self {
        Self::configured("", sources, "")
    }

    /// A world whose config starts with `header` (top-level keys) and ends
    /// with `trailer` (more tables), around the sources.
    pub fn configured(header: &str, sources: &[(&str, &str, &str)], trailer: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        let mut text = format!(
            "host = \"test-host\"\nsource_region = \"eu-north-1\"\n{header}\n[repository]\nurl = \"file://{}\"\nregion = \"eu-central-1\"\nkey_file = \"{}\"\n",
            dir.path().join("repo").display(),
            dir.path().join("offsite.key").display()
        );
        for (name, class, extra) in sources {
            text += &format!(
                "[[source]]\nname = \"{name}\"\nclass = \"{class}\"\npath = \"{}\"\n{extra}\n",
                dir.path().join("src").display()
            );
        }
        text += trailer;
        let config = dir.path().join("offsite.toml");
        std::fs::write(&config, text).unwrap();
        World { dir, config }
    }

    pub fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// The repository, opened in-process with the world's key file.
    pub fn open_repo(&self) -> offsite::repo::Repository {
        let config = offsite::config::Config::load(&self.config).expect("config loads");
        offsite::keyfile::open(&config).expect("repository opens")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Run `offsite --config <world config> args…`.
    pub fn offsite(&self, args: &[&str]) -> Output {
        offsite_with(&self.config, args)
    }

    /// Run with extra environment variables (wrong credentials, say).
    pub fn offsite_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_offsite"));
        cmd.arg("--config").arg(&self.config).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run offsite")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.offsite(args);
        assert!(
            out.status.success(),
            "offsite {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run with --json and parse the output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("json output")
    }

    /// Every object in the repository with its size, sorted.
    pub fn objects(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        walk_files(&self.repo(), &mut |p| {
            out.push((
                p.strip_prefix(self.repo()).unwrap().display().to_string(),
                p.metadata().unwrap().len(),
            ))
        });
        out.sort();
        out
    }

    /// Objects that hold backups (everything but the activity log and locks).
    pub fn data_objects(&self) -> Vec<(String, u64)> {
        self.objects()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("log/") && !k.starts_with("locks/"))
            .collect()
    }

    /// The activity log, as `offsite log --json` shows it.
    pub fn activity(&self) -> Vec<serde_json::Value> {
        self.json(&["log"]).as_array().unwrap().clone()
    }

    /// Sum of all object sizes in the repository.
    pub fn repo_bytes(&self) -> u64 {
        self.objects().iter().map(|(_, n)| n).sum()
    }

    /// The largest pack file (the one holding most data).
    pub fn biggest_pack(&self) -> PathBuf {
        self.packs()
            .into_iter()
            .max_by_key(|p| p.metadata().unwrap().len())
            .expect("a pack")
    }

    /// Paths of the pack files.
    pub fn packs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk_files(&self.repo().join("packs"), &mut |p| {
            out.push(p.to_path_buf())
        });
        out.sort();
        out
    }
}

pub fn offsite_with(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offsite"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run offsite")
}

pub fn walk_files(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk_files(&p, f);
        } else {
            f(&p);
        }
    }
}

/// Files below `dir` as paths relative to it.
pub fn relative_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk_files(dir, &mut |p| {
        out.push(p.strip_prefix(dir).unwrap().to_str().unwrap().to_string())
    });
    out
}

/// A small deterministic PRNG (xorshift64*), so tests need no extra crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// Text lines like a database dump's.
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "call", "order", "refund", "invoice", "agent", "customer", "account", "card", "plan",
            "ticket", "status", "waiting", "confirm", "payment", "support", "delivery",
        ];
        let mut v = Vec::with_capacity(n + 200);
        let mut id = 0u64;
        while v.len() < n {
            id += 1;
            v.extend_from_slice(format!("INSERT INTO tickets VALUES ({id}, '").as_bytes());
            for _ in 0..(4 + self.below(12)) {
                v.extend_from_slice(WORDS[self.below(16) as usize].as_bytes());
                v.push(b' ');
            }
            v.extend_from_slice(format!("', {});\n", self.below(100_000)).as_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Write `data` at `root/rel`, creating directories.
pub fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// The first line of stderr, and a check that there is exactly one.
pub fn one_line_error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    lines[0].to_string()
}

/// A command-line error: exit 2 and clap's whole message on stderr (the
/// error first, with its context and tips, then where to read more);
/// returns all of it.
pub fn usage_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.trim_end()
            .ends_with("For more information, try '--help'."),
        "{err}"
    );
    err
}

/// The test S3 server (Ceph's RADOS gateway on 127.0.0.1), started by
/// `.ci/ceph start` when it is not running. A failure to start is a test
/// failure with the script's reason, never a skip.
pub struct S3Env {
    pub endpoint: String,
    pub region: String,
}

pub fn s3_env() -> &'static S3Env {
    static ENV: std::sync::OnceLock<S3Env> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/ceph");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .expect("run .ci/ceph");
        assert!(
            out.status.success(),
            "the Ceph S3 gateway could not be started: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut vars = std::collections::HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        // The standard AWS variables, for offsite's credential chain (same values every time).
        std::env::set_var("AWS_ACCESS_KEY_ID", &vars["OFFSITE_S3_ACCESS_KEY_ID"]);
        std::env::set_var(
            "AWS_SECRET_ACCESS_KEY",
            &vars["OFFSITE_S3_SECRET_ACCESS_KEY"],
        );
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        S3Env {
            endpoint: vars["OFFSITE_S3_ENDPOINT"].clone(),
            region: vars["OFFSITE_S3_REGION"].clone(),
        }
    })
}

/// `bucket/prefix` on the test gateway.
pub fn s3_location(bucket: &str, prefix: &str) -> offsite::repo::s3::S3Location {
    let env = s3_env();
    offsite::repo::s3::S3Location {
        bucket: bucket.into(),
        prefix: prefix.into(),
        region: env.region.clone(),
        endpoint: Some(env.endpoint.clone()),
        path_style: true,
        profile: None,
        object_lock: None,
    }
}

/// Create `name` on the test gateway.
pub fn create_bucket(name: &str) {
    let loc = s3_location(name, "");
    offsite::runtime::block_on(offsite::repo::s3::create_bucket(&loc)).unwrap();
}

/// A fresh bucket on the test gateway.
pub fn new_bucket(hint: &str) -> String {
    let name = format!(
        "t-{hint}-{:08x}",
        Rng::new(std::process::id() as u64 ^ now_nanos()).next() as u32
    );
    create_bucket(&name);
    name
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

impl World {
    /// A world whose repository is `s3://bucket/prefix` on the test gateway,
    /// with one client-data and one voice source over `src/`.
    pub fn s3(bucket: &str, repository_extra: &str) -> Self {
        let w = World::configured(
            "",
            &[
                (
                    "data",
                    "client-data",
                    "include = [\"*/db/**\", \"*/emails/**\"]",
                ),
                ("voice", "voice", "include = [\"*/voice/**\"]"),
            ],
            "",
        );
        w.point_at_s3(bucket, repository_extra);
        w
    }
}

impl World {
    /// Point the world's `[repository]` at `s3://bucket/offsite` on the test
    /// gateway (the key file stays the world's), with `repository_extra` lines.
    pub fn point_at_s3(&self, bucket: &str, repository_extra: &str) {
        let env = s3_env();
        let text = std::fs::read_to_string(&self.config).unwrap();
        let start = text.find("[repository]").unwrap();
        let end = text[start..].find("[[source]]").unwrap() + start;
        let repo = format!(
            "[repository]\nurl = \"s3://{bucket}/offsite\"\nregion = \"{}\"\nendpoint = \"{}\"\nkey_file = \"{}\"\n{repository_extra}\n",
            env.region,
            env.endpoint,
            self.path("offsite.key").display()
        );
        std::fs::write(
            &self.config,
            format!("{}{repo}{}", &text[..start], &text[end..]),
        )
        .unwrap();
    }
}

/// Call `probe` every 20 ms until it returns `Some`, for at most `limit`
/// (an upper bound on a hang, not a timing target); panics naming `what`.
pub fn poll_until<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `cond` holds, for at most `limit`; panics naming `what`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    poll_until(limit, what, || cond().then_some(()))
}
