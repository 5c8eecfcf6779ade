//! Writing a restore plan: directories, then files on several threads, then
//! the directories' modes and times.
//!
//! Every file goes through the single-item path ([`super::restore`]): its
//! parent directories entered through real directories only, chunks and the
//! whole-content SHA-256 verified, a temporary name then a hard link (or a
//! rename with `--overwrite`), mode without special bits unless asked, the
//! recorded mtime. So the rules are the same for one file and for a million.
//!
//! # Order
//!
//! 1. Directories, parents first, each created below the target through
//!    real directories (a symlink or file in the way stops the restore).
//!    Directories that exist already are used as they are and keep their
//!    mode and mtime.
//! 2. Files, on up to [`MAX_WORKERS`] threads (bounded by the machine's
//!    parallelism); each thread holds at most one file's read span
//!    (64 MiB in flight, [`Repository::read_blobs`] decoding spans on every
//!    core), never whole files.
//! 3. Modes and mtimes of the directories this restore created, children
//!    first, after everything inside them is written (writing a file changes
//!    its directory's mtime), each through its open handle.
//!
//! Everything is created through open directories ([`TargetDir`]), each
//! entered from its parent without following a symlink.
//!
//! # When a file cannot be written
//!
//! The restore goes on and reports it at the end (exit 1, the count named):
//! a file that exists without `--overwrite` is *kept* (skipped), a file past
//! the data retention or its voice contract without `--force` is *refused*,
//! a file whose object in the repository is damaged or missing *failed*.
//! Restoring into a half-restored directory so completes the rest without
//! touching what is there. Anything else (the store unreachable, the target
//! disk full, a symlink in the way) stops the restore with that error.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::restore::{restored_mode, write_verified, RestoreOptions};
use crate::ops::restore_dir::{Existing, TargetDir};
use crate::ops::restore_plan::{PlannedDir, PlannedFile, SourcePlan};
use crate::problems::is_object_damage;
use crate::repo::Repository;

/// Threads writing files at most.
pub const MAX_WORKERS: usize = 8;

/// Paths a summary names, of all the kept, refused and failed files.
const SAMPLES: usize = 30;

/// Where a progress display hooks in (the restore itself prints nothing).
/// Called from the writing threads.
pub trait RestoreProgress: Sync {
    /// Before anything is written: the files and bytes planned.
    fn planned(&self, _files: u64, _bytes: u64) {}
    /// Verified bytes were written to a file (chunk by chunk, so one large
    /// file moves the display too).
    fn bytes_written(&self, _bytes: u64) {}
    /// A file is done: written, kept, refused or failed.
    fn file_done(&self) {}
}

/// No progress display.
pub struct NoProgress;
impl RestoreProgress for NoProgress {}

/// The snapshot a source was restored from.
#[derive(Serialize, Debug, Clone)]
pub struct RestoredFrom {
    pub source: String,
    pub snapshot: ObjectId,
    pub snapshot_time: chrono::DateTime<chrono::Utc>,
}

/// What a restore of many files did.
#[derive(Serialize, Debug, Clone, Default)]
pub struct RestoreSummary {
    pub to: PathBuf,
    pub from: Vec<RestoredFrom>,
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Bytes written.
    pub bytes: u64,
    pub duration_seconds: f64,
    pub threads: usize,
    /// Files that existed already and were kept (no `--overwrite`).
    pub skipped: u64,
    /// Files past the data retention or their voice contract (no `--force`).
    pub refused: u64,
    /// Files whose repository objects are damaged or missing.
    pub failed: u64,
    /// The first paths (and why) that were kept, refused or failed, at most 30.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<String>,
}

impl RestoreSummary {
    /// The error the command ends with when files were left out.
    pub fn incomplete(&self) -> Option<Error> {
        let mut parts = Vec::new();
        if self.skipped > 0 {
            parts.push(format!(
                "{} existing files kept (pass --overwrite to replace them)",
                self.skipped
            ));
        }
        if self.refused > 0 {
            parts.push(format!(
                "{} files past their retention not restored (pass --force)",
                self.refused
            ));
        }
        if self.failed > 0 {
            parts.push(format!(
                "{} files failed (damaged or missing objects)",
                self.failed
            ));
        }
        (!parts.is_empty())
            .then(|| Error::Incomplete(format!("restore incomplete: {}", parts.join("; "))))
    }
}

/// What happened to one file.
enum Outcome {
    Written(u64),
    Kept(String),
    Refused(String),
    Failed(String),
}

/// Everything the writing threads share.
struct Shared<'a> {
    repo: &'a Repository,
    root: &'a TargetDir,
    options: RestoreOptions,
    check: &'a (dyn Fn(&str, &PlannedFile) -> Result<()> + Sync),
    progress: &'a dyn RestoreProgress,
    stop: AtomicBool,
    fatal: Mutex<Option<Error>>,
    summary: Mutex<RestoreSummary>,
}

/// Write `plans` below `to` (see the module docs). `check` is asked about
/// each file before it is written (the retention check; an
/// [`Error::Refused`] refuses that file).
pub fn restore_plans(
    repo: &Repository,
    plans: &[SourcePlan],
    to: &Path,
    options: RestoreOptions,
    check: &(dyn Fn(&str, &PlannedFile) -> Result<()> + Sync),
    progress: &dyn RestoreProgress,
) -> Result<RestoreSummary> {
    let started = Instant::now();
    let root = TargetDir::open_root(to)?;
    let mut dirs: Vec<(&Vec<String>, &PlannedDir)> =
        plans.iter().flat_map(|p| p.plan.dirs.iter()).collect();
    dirs.sort_by(|a, b| a.0.cmp(b.0));
    dirs.dedup_by(|a, b| a.0 == b.0);
    let created = create_dirs(&root, &dirs)?;
    let files: Vec<(&str, &PlannedFile)> = plans
        .iter()
        .flat_map(|p| p.plan.files.iter().map(|f| (p.source.as_str(), f)))
        .collect();
    progress.planned(
        files.len() as u64,
        plans
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.plan.bytes())),
    );
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(files.len().max(1));
    let shared = Shared {
        repo,
        root: &root,
        options,
        check,
        progress,
        stop: AtomicBool::new(false),
        fatal: Mutex::new(None),
        summary: Mutex::new(RestoreSummary::default()),
    };
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !shared.stop.load(Ordering::Relaxed) {
                    let Some((source, file)) = files.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    shared.record(restore_file(&shared, source, file));
                }
            });
        }
    });
    if let Some(e) = shared.fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    for (path, dir) in created.iter().rev() {
        finish_dir(&root.descend(path)?, dir, options.keep_special_bits)?;
    }
    let mut summary = shared
        .summary
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    summary.to = to.to_path_buf();
    summary.from = plans
        .iter()
        .map(|p| RestoredFrom {
            source: p.source.clone(),
            snapshot: p.snapshot.id,
            snapshot_time: p.snapshot.time,
        })
        .collect();
    summary.dirs = created.len() as u64;
    summary.threads = threads;
    summary.duration_seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

impl Shared<'_> {
    /// Count one file's outcome; a fatal error stops every thread.
    fn record(&self, outcome: Result<Outcome>) {
        let mut s = self.summary.lock().unwrap_or_else(|p| p.into_inner());
        let sample = match outcome {
            Ok(Outcome::Written(bytes)) => {
                s.files += 1;
                s.bytes += bytes;
                drop(s);
                self.progress.file_done();
                return;
            }
            Ok(Outcome::Kept(why)) => {
                s.skipped += 1;
                why
            }
            Ok(Outcome::Refused(why)) => {
                s.refused += 1;
                why
            }
            Ok(Outcome::Failed(why)) => {
                s.failed += 1;
                why
            }
            Err(e) => {
                self.stop.store(true, Ordering::Relaxed);
                let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
                fatal.get_or_insert(e);
                return;
            }
        };
        if s.samples.len() < SAMPLES {
            s.samples.push(sample);
        }
        drop(s);
        self.progress.file_done();
    }
}

/// Restore one file of the plan.
fn restore_file(shared: &Shared<'_>, source: &str, file: &PlannedFile) -> Result<Outcome> {
    let shown = file.path.join("/").escape_debug().to_string();
    match (shared.check)(source, file) {
        Ok(()) => {}
        Err(Error::Refused(why)) => return Ok(Outcome::Refused(why)),
        Err(e) => return Err(e),
    }
    let Some((name, parents)) = file.path.split_last() else {
        return Err(Error::Usage("a planned file has no name".into()));
    };
    let dir = shared.root.descend(parents)?;
    match dir.existing(name)? {
        Existing::Nothing => {}
        _ if !shared.options.overwrite => {
            return Ok(Outcome::Kept(format!("{shown} exists, kept")))
        }
        Existing::File => {}
        Existing::Dir | Existing::Other => {
            return Err(Error::Usage(format!(
                "{} exists and is not a regular file; not replacing it",
                dir.path().join(name).display()
            )))
        }
    }
    match write_verified(
        shared.repo,
        &file.entry,
        &dir,
        name,
        shared.options,
        shared.progress,
    ) {
        Ok(bytes) => Ok(Outcome::Written(bytes)),
        Err(Error::AlreadyExists { .. }) => Ok(Outcome::Kept(format!("{shown} exists, kept"))),
        Err(e) if is_object_damage(&e) => Ok(Outcome::Failed(format!("{shown}: {e}"))),
        Err(e) => Err(e),
    }
}

/// Create the planned directories (parents first) below `root`; returns
/// those this restore created, in the same order.
fn create_dirs<'p>(
    root: &TargetDir,
    dirs: &[(&'p Vec<String>, &'p PlannedDir)],
) -> Result<Vec<(&'p Vec<String>, PlannedDir)>> {
    let mut created = Vec::new();
    for (path, dir) in dirs {
        let Some((name, parents)) = path.split_last() else {
            continue;
        };
        if root.descend(parents)?.child(name)?.1 {
            created.push((*path, **dir));
        }
    }
    Ok(created)
}

/// Give a directory this restore created its recorded mode and mtime,
/// through its open handle.
fn finish_dir(dir: &TargetDir, planned: &PlannedDir, keep_special_bits: bool) -> Result<()> {
    let mtime = UNIX_EPOCH + Duration::from_nanos(planned.mtime_ns.max(0) as u64);
    let mode = restored_mode(planned.mode, keep_special_bits);
    dir.handle()
        .set_modified(mtime)
        .and_then(|()| {
            dir.handle()
                .set_permissions(fs::Permissions::from_mode(mode))
        })
        .map_err(|e| Error::io(dir.path(), e))
}
