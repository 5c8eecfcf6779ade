//! `offsite restore --item FILE`: bring back one file, verified, without
//! surprises; and the file-writing rules every restore shares.
//!
//! The item is found in the newest snapshot of the source that contains it
//! (so a file deleted from the source yesterday comes from an older
//! snapshot), reading only manifests newest-first and the trees on the
//! item's path ([`super::restore_find`]: a snapshot whose manifest or tree
//! on the way cannot be read is skipped with a warning, and a "not found"
//! then says the item may be in it). Its chunks are read, each checked against its SHA-256, into a
//! temporary file beside the target; the whole-content SHA-256 is checked
//! before the file takes its final name. The target path is built from
//! checked components below `--to`, through open real directories only
//! ([`super::restore_dir`]: no symlink may lead outside, not even one swapped
//! in during the restore), and an existing file is replaced only with
//! `--overwrite`. The temporary name is short (`.offsite-<16 hex>.tmp`), so
//! every name a source can hold (up to 255 bytes) restores. The file gets its
//! recorded permission bits but not setuid, setgid or sticky unless
//! `--keep-special-bits` asks for them: the repository is not trusted to
//! hand out privileges. Restore tests use [`restore_item`] too, below a
//! private temporary directory, and a restore of many files
//! ([`super::restore_run`]) writes each file with the same functions.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::id::Sha256;
use chrono::{DateTime, Months, Utc};
use serde::Serialize;

use crate::config::{Config, SourceClass};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::restore_dir::{Existing, TargetDir};
use crate::ops::restore_run::RestoreProgress;
use crate::problems::Problem;
use crate::repo::spans::{Piece, WriteAt};
use crate::repo::Repository;
use crate::snapshot::SnapshotRef;
use crate::tree::{item_components, FileEntry};

/// An item found in a snapshot.
#[derive(Debug, Clone)]
pub struct FoundItem {
    pub snapshot: SnapshotRef,
    pub source: String,
    pub path: String,
    pub entry: FileEntry,
    /// Manifests skipped on the way because they cannot be read.
    pub problems: Vec<Problem>,
}

/// What `restore` reports.
#[derive(Serialize, Debug, Clone)]
pub struct RestoreReport {
    pub item: String,
    pub source: String,
    pub snapshot: ObjectId,
    pub snapshot_time: DateTime<Utc>,
    pub tenant: Option<String>,
    pub written_to: PathBuf,
    pub bytes: u64,
    pub sha256: ObjectId,
    pub duration_seconds: f64,
}

/// "`what` in any snapshot of host … not found", naming the snapshots that
/// could not be read (`what` is e.g. `item "a/b.txt"`).
pub fn not_found(what: &str, host: &str, sources: &[&str], skipped: &[Problem]) -> Error {
    Error::NotFound {
        what: format!(
            "{what} in any snapshot of host {host:?} (sources: {}{})",
            sources.join(", "),
            unread_note(skipped)
        ),
    }
}

/// An item path found in more than one source: the operator must choose.
pub fn in_several_sources<'a>(path: &str, sources: impl Iterator<Item = &'a str>) -> Error {
    Error::Usage(format!(
        "item {path:?} exists in sources {}; pass --source",
        sources.collect::<Vec<_>>().join(" and ")
    ))
}

/// What a "not found" must add when snapshots were skipped: the item may be
/// in one of them.
fn unread_note(skipped: &[Problem]) -> String {
    match skipped {
        [] => String::new(),
        [one] => format!(
            "; the snapshot {} cannot be read ({}) and may hold it",
            one.object, one.what
        ),
        [first, ..] => format!(
            "; {} snapshots cannot be read and may hold it, first {} ({})",
            skipped.len(),
            first.object,
            first.what
        ),
    }
}

/// Refuse an item the platform should no longer have: client data older
/// than `data_retention_months`, a voice recording past its backup expiry.
pub fn check_retention(config: &Config, found: &FoundItem, now: DateTime<Utc>) -> Result<()> {
    check_entry_retention(config, &found.source, &found.path, &found.entry, now)
}

/// [`check_retention`] for the file `entry` at `path` in `source`.
pub fn check_entry_retention(
    config: &Config,
    source: &str,
    path: &str,
    entry: &FileEntry,
    now: DateTime<Utc>,
) -> Result<()> {
    let class = config
        .source(source)
        .map(|s| s.class)
        .unwrap_or(SourceClass::ClientData);
    let mtime = crate::voice::recorded_at(entry);
    match class {
        SourceClass::ClientData => {
            let months = config.data_retention_months;
            let limit = now.checked_sub_months(Months::new(months)).unwrap_or(now);
            if mtime < limit {
                return Err(Error::Refused(format!(
                    "item {path} was last modified {}, beyond the platform's data retention of {months} months: it should no longer exist; pass --force to restore it anyway",
                    mtime.format("%Y-%m-%d")
                )));
            }
        }
        SourceClass::Voice => {
            let contracts = config.contracts();
            if contracts.expired(entry, now) {
                return Err(Error::Refused(format!(
                    "recording {path} expired on {} under its tenant's contract; pass --force to restore it anyway",
                    contracts.expires_at(entry).format("%Y-%m-%d")
                )));
            }
        }
    }
    Ok(())
}

/// How [`restore_item`] treats the target and the file's mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Replace an existing file (`--overwrite`).
    pub overwrite: bool,
    /// Restore the setuid, setgid and sticky bits (`--keep-special-bits`);
    /// by default only the permission bits (`0o777`) are restored, so a
    /// hostile repository cannot plant a setuid file.
    pub keep_special_bits: bool,
}

/// Write the verified content of `entry` to `file_name` in `dir` (which
/// must not exist unless `overwrite`). The content goes first to a short
/// temporary name in `dir` (so a name of 255 bytes works too), created
/// exclusively, not through a symlink, mode 0600, inside the open directory
/// ([`TargetDir`]). Returns the bytes written.
pub(super) fn write_verified(
    repo: &Repository,
    entry: &FileEntry,
    dir: &TargetDir,
    file_name: &str,
    options: RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<u64> {
    let target = dir.path().join(file_name);
    let tmp_name = format!(".offsite-{}.tmp", &ObjectId::random().to_hex()[..16]);
    let tmp = dir.path().join(&tmp_name);
    let result = (|| {
        let file = dir
            .create_new(&tmp_name, 0o600)
            .map_err(|e| Error::io(&tmp, e))?;
        let mut whole = Sha256::new();
        let mut written = 0u64;
        // The workers write each chunk at its offset (holes stay holes: the
        // length is set below); this thread hashes in order.
        let write = WriteAt {
            file: &file,
            path: &tmp,
            base: 0,
        };
        repo.read_file(&entry.chunks, Some(write), &mut |piece| {
            match &piece {
                Piece::Data(data) => whole.update(data),
                Piece::Zeros(n) => crate::sparse::hash_zeros(&mut whole, *n),
            }
            written = written.saturating_add(piece.len());
            progress.bytes_written(piece.len());
            Ok(())
        })?;
        file.set_len(written).map_err(|e| Error::io(&tmp, e))?;
        let digest = whole.finish();
        if digest != entry.sha256 || written != entry.size {
            return Err(Error::corrupt(
                format!("item {}", entry.name),
                format!("restored content has SHA-256 {digest} and {written} bytes, the snapshot recorded {} and {}", entry.sha256, entry.size),
            ));
        }
        finish_file(&file, entry, options.keep_special_bits).map_err(|e| Error::io(&tmp, e))?;
        if options.overwrite {
            dir.rename(&tmp_name, file_name)
                .map_err(|e| Error::io(&target, e))?;
        } else {
            // A hard link fails if the target exists: no check-then-write race.
            dir.link(&tmp_name, file_name).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                    what: format!(
                        "{} already exists; pass --overwrite to replace it",
                        target.display()
                    ),
                },
                _ => Error::io(&target, e),
            })?;
            dir.remove(&tmp_name).map_err(|e| Error::io(&tmp, e))?;
        }
        Ok(written)
    })();
    if result.is_err() {
        let _ = dir.remove(&tmp_name);
    }
    result
}

/// Permission bits of a restored file: setuid, setgid and sticky only on request.
pub(super) fn restored_mode(mode: u32, keep_special_bits: bool) -> u32 {
    if keep_special_bits {
        mode & 0o7777
    } else {
        mode & 0o777
    }
}

fn finish_file(file: &File, entry: &FileEntry, keep_special_bits: bool) -> std::io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(restored_mode(
        entry.mode,
        keep_special_bits,
    )))?;
    let mtime = UNIX_EPOCH + Duration::from_nanos(entry.mtime_ns.max(0) as u64);
    file.set_modified(mtime)?;
    file.sync_all()
}

/// Restore `found` below `to`, at its path relative to the source. The one
/// way anything is restored: `restore --item` and restore tests both.
pub fn restore_item(
    repo: &Repository,
    found: &FoundItem,
    to: &Path,
    options: RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    let started = std::time::Instant::now();
    let components = item_components(&found.path)?;
    let Some((file_name, dirs)) = components.split_last() else {
        return Err(Error::Usage(format!(
            "item path {:?} names no file",
            found.path
        )));
    };
    let dir = TargetDir::open_root(to)?.descend(dirs)?;
    let target = dir.path().join(file_name);
    match dir.existing(file_name)? {
        Existing::Nothing => {}
        _ if !options.overwrite => {
            return Err(Error::AlreadyExists {
                what: format!(
                    "{} already exists; pass --overwrite to replace it",
                    target.display()
                ),
            })
        }
        Existing::File => {}
        Existing::Dir | Existing::Other => {
            return Err(Error::Usage(format!(
                "{} exists and is not a regular file; not replacing it",
                target.display()
            )))
        }
    }
    progress.planned(1, found.entry.size);
    let bytes = write_verified(repo, &found.entry, &dir, file_name, options, progress)?;
    progress.file_done();
    Ok(RestoreReport {
        item: found.path.clone(),
        source: found.source.clone(),
        snapshot: found.snapshot.id,
        snapshot_time: found.snapshot.time,
        tenant: found.entry.tenant.clone(),
        written_to: target,
        bytes,
        sha256: found.entry.sha256,
        duration_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_bits_are_stripped_unless_asked_for() {
        assert_eq!(restored_mode(0o104755, false), 0o755);
        assert_eq!(restored_mode(0o102640, false), 0o640);
        assert_eq!(restored_mode(0o101777, false), 0o777);
        assert_eq!(restored_mode(0o104755, true), 0o4755);
        assert_eq!(restored_mode(0o100644, true), 0o644);
    }
}
