//! Scale benchmark: offsite and restic on a client-data host at two sizes.
//!
//! `cargo bench --bench scale` generates, with `benches/gen_scale.py`, a tree
//! shaped like a storage host's client data (one tenant: one big SQL dump,
//! ~110 000 chats and e-mails per 1.25 GiB in two flat directories) at N and
//! 4N, and runs both tools on it with their repositories on tmpfs
//! (`/dev/shm`), so this machine's disk does not decide the race. Per size:
//!
//! 1. initial snapshot: wall time, peak memory, repository size, blobs written,
//! 2. one simulated day (`gen_scale.py mutate`), then an incremental snapshot:
//!    wall time and repository growth,
//! 3. restore of the big dump (offsite `restore --item` vs `restic dump` and
//!    `restic restore --include`), checked byte for byte,
//! 4. restore of one e-mail from the big flat directory (median of 3),
//! 5. `check --read-data`.
//!
//! Then, between N and 4N, the slope of each tool's peak memory (initial
//! snapshot and check) per extra million blobs: the figure that decides
//! whether a 20-million-file host fits in `MemoryMax=1G`.
//!
//! Only the command-line interfaces are used, so the benchmark keeps working
//! across format changes. Peak memory is the child's own `ru_maxrss` (wait4).
//!
//! Environment: `OFFSITE_SCALE_MIB` (N, default 1280: the 4N tree, two
//! repositories and a restored dump take ~12 GiB of a 24 GiB machine's
//! tmpfs), `OFFSITE_SCALE_SIZES` (multiples of N, default `1,4`),
//! `OFFSITE_SCALE_DIR` (work directory, kept; default a fresh one in
//! /dev/shm, removed). restic is installed from Debian when missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{
    count_files, dir_bytes, ensure_restic, measure, measure_to, median, mib, same_content, sh,
    sum_field, Run,
};

/// Both tools set up on one tree.
struct Tools {
    work: PathBuf,
    config: PathBuf,
    restic_repo: PathBuf,
}

impl Tools {
    fn offsite(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_offsite"));
        c.arg("--config").arg(&self.config);
        c
    }

    fn restic(&self) -> Command {
        let mut c = Command::new("restic");
        c.arg("-r")
            .arg(&self.restic_repo)
            .env("RESTIC_PASSWORD", "bench")
            .env("RESTIC_CACHE_DIR", self.work.join("restic-cache"));
        c
    }

    fn offsite_bytes(&self) -> u64 {
        dir_bytes(&self.work.join("offsite-repo"))
    }

    fn restic_bytes(&self) -> u64 {
        dir_bytes(&self.restic_repo)
    }
}

/// One tool's figures at one size.
#[derive(Default)]
struct Side {
    init: Option<Run>,
    repo_initial: u64,
    blobs: u64,
    incr: Option<Run>,
    added: u64,
    dump: Option<Run>,
    /// restic only: `restore --include` of the dump (offsite has one way).
    dump_alt: Option<Run>,
    small: Duration,
    small_rss_kib: i64,
    check: Option<Run>,
    repo_final: u64,
}

/// Everything measured at one size.
struct Figures {
    mib: u64,
    tree_bytes: u64,
    files: usize,
    dump_bytes: u64,
    offsite: Side,
    restic: Side,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` style probes
    }
    let env_u64 = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let n_mib = env_u64("OFFSITE_SCALE_MIB", 1280);
    let sizes: Vec<u64> = std::env::var("OFFSITE_SCALE_SIZES")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .map(|m| {
            m.trim()
                .parse::<u64>()
                .expect("OFFSITE_SCALE_SIZES: numbers")
                * n_mib
        })
        .collect();
    let keep = std::env::var("OFFSITE_SCALE_DIR").is_ok();
    let work = std::env::var("OFFSITE_SCALE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(format!("/dev/shm/offsite-scale-{}", std::process::id()))
        });
    ensure_restic();
    let mut all = Vec::new();
    for size in sizes {
        let dir = work.join(format!("{size}mib"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let figures = run_size(&dir, size);
        print_table(&figures);
        all.push(figures);
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if let [first, .., last] = all.as_slice() {
        print_slopes(first, last);
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// Generate the tree of `size_mib` in `dir` and measure both tools on it.
fn run_size(dir: &Path, size_mib: u64) -> Figures {
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/gen_scale.py");
    let src = dir.join("src");
    eprintln!(
        "generating a {size_mib} MiB client-data tree in {}",
        src.display()
    );
    sh(Command::new("python3")
        .arg(&gen)
        .arg("generate")
        .arg(&src)
        .args(["--mib", &size_mib.to_string()]));
    let tools = setup(dir, &src);
    let (tree_bytes, files) = (dir_bytes(&src), count_files(&src));
    let (mut o, mut r) = (Side::default(), Side::default());

    eprintln!("initial snapshots");
    o.init = Some(measure(tools.offsite().args(["--json", "snapshot"])));
    o.repo_initial = tools.offsite_bytes();
    o.blobs = sum_field(&o.init.as_ref().unwrap().text(), "blobs_added");
    r.init = Some(measure(
        tools
            .restic()
            .args(["backup", "-q", "--host", "bench"])
            .arg(&src),
    ));
    r.repo_initial = tools.restic_bytes();
    r.blobs = restic_blobs(&tools);

    eprintln!("one simulated day of changes");
    sh(Command::new("python3").arg(&gen).arg("mutate").arg(&src));
    o.incr = Some(measure(tools.offsite().args(["--json", "snapshot"])));
    o.added = tools.offsite_bytes() - o.repo_initial;
    r.incr = Some(measure(
        tools
            .restic()
            .args(["backup", "-q", "--host", "bench"])
            .arg(&src),
    ));
    r.added = tools.restic_bytes() - r.repo_initial;

    let dump = tenant_dir(&src).join("db/dump.sql");
    restore_dump(&tools, &src, &dump, &mut o, &mut r);
    restore_small(&tools, &src, &mut o, &mut r);

    eprintln!("check --read-data");
    o.check = Some(measure(tools.offsite().args(["check", "--read-data"])));
    r.check = Some(measure(tools.restic().args(["check", "-q", "--read-data"])));
    o.repo_final = tools.offsite_bytes();
    r.repo_final = tools.restic_bytes();
    Figures {
        mib: size_mib,
        tree_bytes,
        files,
        dump_bytes: dump.metadata().unwrap().len(),
        offsite: o,
        restic: r,
    }
}

/// Config, repositories, commands.
fn setup(dir: &Path, src: &Path) -> Tools {
    let config = dir.join("offsite.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"bench\"\nsource_region = \"eu-north-1\"\nstate_dir = \"{state}\"\n\
             [repository]\nurl = \"file://{repo}\"\nregion = \"eu-central-1\"\n\
             [[source]]\nname = \"client-data\"\nclass = \"client-data\"\npath = \"{src}\"\n",
            state = dir.join("state").display(),
            repo = dir.join("offsite-repo").display(),
            src = src.display(),
        ),
    )
    .unwrap();
    let tools = Tools {
        work: dir.to_path_buf(),
        config,
        restic_repo: dir.join("restic-repo"),
    };
    sh(tools.offsite().arg("init").stdout(Stdio::null()));
    sh(tools.restic().args(["init", "-q"]));
    tools
}

/// The one tenant directory the generator makes.
fn tenant_dir(src: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "one tenant in {}", src.display());
    dirs.pop().unwrap()
}

/// Blobs in restic's repository (its own count, from `stats --mode raw-data`).
fn restic_blobs(tools: &Tools) -> u64 {
    let run = measure(
        tools
            .restic()
            .args(["stats", "--json", "--mode", "raw-data"]),
    );
    sum_field(&run.text(), "total_blob_count")
}

/// Restore the big dump with both tools, each checked against the source.
fn restore_dump(tools: &Tools, src: &Path, dump: &Path, o: &mut Side, r: &mut Side) {
    let rel = dump.strip_prefix(src).unwrap().to_str().unwrap();
    eprintln!("restoring {rel} ({})", mib(dump.metadata().unwrap().len()));
    let to = tools.work.join("restore-dump");
    let run = measure(
        tools
            .offsite()
            .args(["restore", "--source", "client-data", "--item", rel, "--to"])
            .arg(&to),
    );
    assert!(same_content(&to.join(rel), dump), "offsite restore differs");
    o.dump = Some(run);
    std::fs::remove_dir_all(&to).unwrap();
    std::fs::create_dir_all(&to).unwrap();
    let out = to.join("dump.sql");
    let run = measure_to(tools.restic().args(["dump", "latest"]).arg(dump), &out);
    assert!(same_content(&out, dump), "restic dump differs");
    r.dump = Some(run);
    std::fs::remove_dir_all(&to).unwrap();
    let run = measure(
        tools
            .restic()
            .args(["restore", "-q", "latest", "--target"])
            .arg(&to)
            .arg("--include")
            .arg(dump),
    );
    let restored = to.join(dump.strip_prefix("/").unwrap());
    assert!(same_content(&restored, dump), "restic restore differs");
    r.dump_alt = Some(run);
    std::fs::remove_dir_all(&to).unwrap();
}

/// Restore one e-mail from the big flat directory, three times per tool.
fn restore_small(tools: &Tools, src: &Path, o: &mut Side, r: &mut Side) {
    let emails = tenant_dir(src).join("emails");
    let mut names: Vec<_> = std::fs::read_dir(&emails)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let file = emails.join(&names[names.len() / 2]);
    let rel = file
        .strip_prefix(src)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    eprintln!("restoring {rel} (one of {} e-mails)", names.len());
    let (mut o_runs, mut r_runs) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let to = tools.work.join(format!("restore-small-{i}"));
        let run = measure(
            tools
                .offsite()
                .args(["restore", "--source", "client-data", "--item", &rel, "--to"])
                .arg(&to),
        );
        assert!(
            same_content(&to.join(&rel), &file),
            "offsite restore differs"
        );
        o_runs.push(run.wall);
        o.small_rss_kib = o.small_rss_kib.max(run.max_rss_kib);
        let run = measure(tools.restic().args(["dump", "latest"]).arg(&file));
        assert!(
            run.stdout == std::fs::read(&file).unwrap(),
            "restic dump differs"
        );
        r_runs.push(run.wall);
        r.small_rss_kib = r.small_rss_kib.max(run.max_rss_kib);
        std::fs::remove_dir_all(&to).unwrap();
    }
    o.small = median(o_runs);
    r.small = median(r_runs);
}

fn row(name: &str, o: String, r: String, ratio: f64) {
    println!("{name:<44} {o:>12} {r:>12} {ratio:>9.2}x");
}

fn secs_row(name: &str, o: &Run, r: &Run) {
    row(
        name,
        format!("{:.2} s", o.secs()),
        format!("{:.2} s", r.secs()),
        r.secs() / o.secs(),
    );
}

fn rss_row(name: &str, o: &Run, r: &Run) {
    row(
        name,
        format!("{:.0} MiB", o.rss_mib()),
        format!("{:.0} MiB", r.rss_mib()),
        r.rss_mib() / o.rss_mib(),
    );
}

fn bytes_row(name: &str, o: u64, r: u64) {
    row(name, mib(o), mib(r), r as f64 / o as f64);
}

fn run(s: &Option<Run>) -> &Run {
    s.as_ref().expect("measured")
}

fn print_table(f: &Figures) {
    let (o, r) = (&f.offsite, &f.restic);
    println!(
        "\noffsite vs restic, scale tree of {} ({} files, a {} dump), repositories on tmpfs",
        mib(f.tree_bytes),
        f.files,
        mib(f.dump_bytes)
    );
    println!(
        "{:<44} {:>12} {:>12} {:>10}",
        "", "offsite", "restic", "ratio"
    );
    secs_row("initial snapshot, wall", run(&o.init), run(&r.init));
    rss_row("initial snapshot, peak memory", run(&o.init), run(&r.init));
    bytes_row("repository after it", o.repo_initial, r.repo_initial);
    row(
        "blobs after it",
        o.blobs.to_string(),
        r.blobs.to_string(),
        r.blobs as f64 / o.blobs.max(1) as f64,
    );
    secs_row("one day: incremental, wall", run(&o.incr), run(&r.incr));
    rss_row(
        "one day: incremental, peak memory",
        run(&o.incr),
        run(&r.incr),
    );
    bytes_row("one day: repository growth", o.added, r.added);
    secs_row("restore the dump (restic dump)", run(&o.dump), run(&r.dump));
    secs_row(
        "restore the dump (restic restore --include)",
        run(&o.dump),
        run(&r.dump_alt),
    );
    rss_row("restore the dump, peak memory", run(&o.dump), run(&r.dump));
    row(
        "restore one e-mail (median of 3)",
        format!("{:.3} s", o.small.as_secs_f64()),
        format!("{:.3} s", r.small.as_secs_f64()),
        r.small.as_secs_f64() / o.small.as_secs_f64(),
    );
    row(
        "restore one e-mail, peak memory",
        format!("{} MiB", o.small_rss_kib / 1024),
        format!("{} MiB", r.small_rss_kib / 1024),
        r.small_rss_kib as f64 / o.small_rss_kib.max(1) as f64,
    );
    secs_row("check --read-data, wall", run(&o.check), run(&r.check));
    rss_row(
        "check --read-data, peak memory",
        run(&o.check),
        run(&r.check),
    );
    bytes_row("repository after two snapshots", o.repo_final, r.repo_final);
    println!("(ratio > 1: offsite is better: faster, smaller or leaner)");
}

/// Peak memory growth per extra million blobs between two sizes.
fn print_slopes(small: &Figures, large: &Figures) {
    println!("\nbetween {} and {} MiB:", small.mib, large.mib);
    for (tool, s, l) in [
        ("offsite", &small.offsite, &large.offsite),
        ("restic", &small.restic, &large.restic),
    ] {
        let million = (l.blobs as f64 - s.blobs as f64) / 1e6;
        let slope = |a: &Option<Run>, b: &Option<Run>| {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            format!(
                "{:+.0} MiB per million blobs ({:.0} -> {:.0} MiB, {:.2}x)",
                (b.rss_mib() - a.rss_mib()) / million,
                a.rss_mib(),
                b.rss_mib(),
                b.rss_mib() / a.rss_mib()
            )
        };
        println!(
            "{tool:<8} +{:.2} million blobs; snapshot {}; check {}",
            million,
            slope(&s.init, &l.init),
            slope(&s.check, &l.check)
        );
    }
}
