//! Side-by-side benchmark: offsite and restic on the same storage-host-like tree.
//!
//! `cargo bench --bench compare` generates a ~2 GiB tree (voice recordings,
//! database dumps, chats, e-mails) with `benches/gen_tree.py`, then runs both
//! tools on it with their repositories on tmpfs (`/dev/shm`), so this
//! machine's disk does not decide the race:
//!
//! 1. initial snapshot (wall time, peak memory),
//! 2. one simulated day of changes, then an incremental snapshot (time, repository growth),
//! 3. restore of one ~5 MB recording (median of 5),
//! 4. repository size.
//!
//! Environment: `OFFSITE_BENCH_MIB` (tree size, default 2048),
//! `OFFSITE_BENCH_DIR` (work directory, default a fresh one in /dev/shm),
//! `OFFSITE_BENCH_S3=1` (also compare both against the same Ceph RADOS
//! gateway, restarted empty by `.ci/ceph`, as `s3:http://127.0.0.1:7480/bucket`).
//! restic is installed from Debian (`apt-get install -y restic`) when missing.

#[path = "../tests/common/mod.rs"]
mod common;

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{count_files, dir_bytes, ensure_restic, measure, median, mib, sh, sum_field};

/// The recording closest to 5 MB.
fn five_mb_item(src: &Path) -> String {
    let mut best: Option<(u64, String)> = None;
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "opus") {
                let size = path.metadata().unwrap().len();
                let distance = size.abs_diff(5_000_000);
                if best.as_ref().is_none_or(|(d, _)| distance < *d) {
                    best = Some((
                        distance,
                        path.strip_prefix(src)
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_string(),
                    ));
                }
            }
        }
    }
    best.expect("a recording").1
}

/// Where both repositories live for one comparison.
enum Target {
    /// Directories on tmpfs.
    Local,
    /// Buckets on the test Ceph gateway (`.ci/ceph`, see `tests/common`).
    S3,
}

/// Bytes stored in a repository.
fn repo_bytes(target: &Target, local: &Path, bucket: &str) -> u64 {
    match target {
        Target::Local => dir_bytes(local),
        Target::S3 => {
            let store = offsite::repo::store::Store::connect(
                &offsite::repo::Location::S3(common::s3_location(bucket, "")),
                false,
            )
            .unwrap();
            store.list("").unwrap().iter().map(|(_, n)| n).sum()
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` style probes
    }
    let size_mib: u64 = std::env::var("OFFSITE_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2048);
    let work = std::env::var("OFFSITE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(format!("/dev/shm/offsite-bench-{}", std::process::id()))
        });
    ensure_restic();
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/gen_tree.py");
    let src = work.join("src");
    eprintln!("generating a {size_mib} MiB tree in {}", src.display());
    sh(Command::new("python3")
        .arg(&gen)
        .args(["generate"])
        .arg(&src)
        .args(["--mib", &size_mib.to_string()]));
    let s3 = std::env::var("OFFSITE_BENCH_S3").is_ok_and(|v| v == "1");
    if s3 {
        sh(Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(work.join("src-s3")));
    }
    compare(&work.join("local"), &src, &gen, &Target::Local);
    if s3 {
        // A fresh gateway: its memstore holds everything in RAM and earlier runs' buckets.
        sh(Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/ceph"))
            .arg("stop"));
        common::s3_env();
        compare(&work.join("s3"), &work.join("src-s3"), &gen, &Target::S3);
    }
    if std::env::var("OFFSITE_BENCH_DIR").is_err() {
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// Run both tools on `src` with their repositories at `target`, print the table.
fn compare(work: &Path, src: &Path, gen: &Path, target: &Target) {
    std::fs::create_dir_all(work).unwrap();
    let tree_bytes = dir_bytes(src);
    let config = work.join("offsite.toml");
    let repo = work.join("offsite-repo");
    let id = std::process::id();
    let (o_bucket, r_bucket) = (format!("bench-offsite-{id}"), format!("bench-restic-{id}"));
    let repository = match target {
        Target::Local => format!(
            "url = \"file://{}\"\nregion = \"eu-central-1\"",
            repo.display()
        ),
        Target::S3 => {
            let env = common::s3_env();
            format!(
                "url = \"s3://{o_bucket}\"\nregion = \"{}\"\nendpoint = \"{}\"",
                env.region, env.endpoint
            )
        }
    };
    std::fs::write(
        &config,
        format!(
            "host = \"bench\"\nsource_region = \"eu-north-1\"\nstate_dir = \"{state}\"\n[repository]\n{repository}\n\
             [[source]]\nname = \"client-data\"\nclass = \"client-data\"\npath = \"{src}\"\ninclude = [\"*/db/**\", \"*/chats/**\", \"*/emails/**\"]\n\
             [[source]]\nname = \"voice\"\nclass = \"voice\"\npath = \"{src}\"\ninclude = [\"*/voice/**\"]\n",
            src = src.display(),
            state = work.join("state").display(),
        ),
    )
    .unwrap();
    if let Target::S3 = target {
        common::create_bucket(&o_bucket);
    }
    let offsite = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_offsite"));
        c.arg("--config").arg(&config);
        c
    };
    let restic_repo = work.join("restic-repo");
    let restic_url = match target {
        Target::Local => restic_repo.display().to_string(),
        Target::S3 => format!("s3:{}/{r_bucket}", common::s3_env().endpoint),
    };
    let restic = || {
        let mut c = Command::new("restic");
        c.arg("-r")
            .arg(&restic_url)
            .env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_CACHE_DIR", work.join("restic-cache"));
        c
    };
    sh(offsite().arg("init").stdout(Stdio::null()));
    sh(restic().args(["init", "-q"]));
    let size = |which: &str| match which {
        "offsite" => repo_bytes(target, &repo, &o_bucket),
        _ => repo_bytes(target, &restic_repo, &r_bucket),
    };

    eprintln!("initial snapshots");
    let o_init = measure(offsite().args(["--json", "snapshot"]));
    let r_init = measure(restic().args(["backup", "-q", "--host", "bench"]).arg(src));
    let o_puts = sum_nested(&o_init.text(), "requests", "put");

    eprintln!("one simulated day of changes");
    sh(Command::new("python3").arg(gen).arg("mutate").arg(src));
    let (o_before, r_before) = (size("offsite"), size("restic"));
    let o_incr = measure(offsite().args(["--json", "snapshot"]));
    let r_incr = measure(
        restic()
            .args(["backup", "--json", "--host", "bench"])
            .arg(src),
    );
    // Growth of each repository as stored (restic 0.14's JSON reports only
    // uncompressed bytes); offsite's own figure must agree with it.
    let (o_added, r_added) = (size("offsite") - o_before, size("restic") - r_before);
    let o_reported = sum_field(&o_incr.text(), "bytes_added");
    eprintln!(
        "offsite reported {} added (blob bytes), its repository grew {}",
        mib(o_reported),
        mib(o_added)
    );

    let item = five_mb_item(src);
    let item_bytes = std::fs::read(src.join(&item)).unwrap();
    eprintln!("restoring {item} ({} bytes)", item_bytes.len());
    let mut o_restore = Vec::new();
    let mut r_restore = Vec::new();
    let mut rss = (0, 0);
    for i in 0..5 {
        let to = work.join(format!("restore-offsite-{i}"));
        let run = measure(
            offsite()
                .args(["restore", "--source", "voice", "--item", &item, "--to"])
                .arg(&to),
        );
        assert!(
            std::fs::read(to.join(&item)).unwrap() == item_bytes,
            "offsite restore differs"
        );
        o_restore.push(run.wall);
        rss.0 = rss.0.max(run.max_rss_kib);
        let run = measure(restic().args(["dump", "latest"]).arg(src.join(&item)));
        assert!(run.stdout == item_bytes, "restic dump differs");
        r_restore.push(run.wall);
        rss.1 = rss.1.max(run.max_rss_kib);
    }
    let (o_repo, r_repo) = (size("offsite"), size("restic"));
    let (o_med, r_med) = (median(o_restore), median(r_restore));
    let secs = |d: Duration| d.as_secs_f64();
    let place = match target {
        Target::Local => "repositories on tmpfs".to_string(),
        Target::S3 => format!(
            "repositories on the Ceph RADOS gateway at {}",
            common::s3_env().endpoint
        ),
    };
    println!(
        "\noffsite vs restic on {} ({} files in the tree), {place}",
        mib(tree_bytes),
        count_files(src)
    );
    println!(
        "{:<40} {:>14} {:>14} {:>10}",
        "", "offsite", "restic", "ratio"
    );
    let row = |name: &str, o: String, r: String, ratio: f64| {
        println!("{name:<40} {o:>14} {r:>14} {ratio:>9.2}x")
    };
    row(
        "initial snapshot, wall",
        format!("{:.2} s", secs(o_init.wall)),
        format!("{:.2} s", secs(r_init.wall)),
        secs(r_init.wall) / secs(o_init.wall),
    );
    row(
        "initial snapshot, throughput",
        format!(
            "{:.0} MiB/s",
            tree_bytes as f64 / 1048576.0 / secs(o_init.wall)
        ),
        format!(
            "{:.0} MiB/s",
            tree_bytes as f64 / 1048576.0 / secs(r_init.wall)
        ),
        secs(r_init.wall) / secs(o_init.wall),
    );
    row(
        "initial snapshot, peak memory",
        format!("{} MiB", o_init.max_rss_kib / 1024),
        format!("{} MiB", r_init.max_rss_kib / 1024),
        r_init.max_rss_kib as f64 / o_init.max_rss_kib as f64,
    );
    row(
        "incremental (one day), wall",
        format!("{:.2} s", secs(o_incr.wall)),
        format!("{:.2} s", secs(r_incr.wall)),
        secs(r_incr.wall) / secs(o_incr.wall),
    );
    row(
        "incremental (one day), repository growth",
        mib(o_added),
        mib(r_added),
        r_added as f64 / o_added as f64,
    );
    row(
        "incremental, peak memory",
        format!("{} MiB", o_incr.max_rss_kib / 1024),
        format!("{} MiB", r_incr.max_rss_kib / 1024),
        r_incr.max_rss_kib as f64 / o_incr.max_rss_kib as f64,
    );
    row(
        &format!(
            "restore one {:.1} MB item (median of 5)",
            item_bytes.len() as f64 / 1e6
        ),
        format!("{:.3} s", secs(o_med)),
        format!("{:.3} s", secs(r_med)),
        secs(r_med) / secs(o_med),
    );
    row(
        "restore, peak memory",
        format!("{} MiB", rss.0 / 1024),
        format!("{} MiB", rss.1 / 1024),
        rss.1 as f64 / rss.0 as f64,
    );
    row(
        "repository size after two snapshots",
        mib(o_repo),
        mib(r_repo),
        r_repo as f64 / o_repo as f64,
    );
    println!("(ratio > 1: offsite is better: faster, smaller or leaner)");
    let initial_stored = o_repo - o_added;
    println!(
        "offsite initial snapshot: {o_puts} PUT requests for {} stored (~{} packs of {} MiB)",
        mib(initial_stored),
        initial_stored / offsite::repo::writer::PACK_TARGET as u64,
        offsite::repo::writer::PACK_TARGET >> 20
    );
}

fn sum_nested(json_lines: &str, object: &str, field: &str) -> u64 {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v[object][field].as_u64())
        .sum()
}
