//! `offsite restore --item`: bring back one file, verified, without surprises.
//!
//! The item is found in the newest snapshot of the source that contains it
//! (so a file deleted from the source yesterday comes from an older snapshot),
//! reading only manifests newest-first and the trees on the item's path (a
//! manifest that cannot be read is skipped with a warning, and a "not found"
//! then says the item may be in it). Its
//! chunks are read, each checked against its SHA-256, into a temporary file
//! beside the target; the whole-content SHA-256 is checked before the file
//! takes its final name. The target path is built from checked components
//! below `--to`, through real directories only (no symlink may lead outside),
//! and an existing file is replaced only with `--overwrite`. The temporary
//! name is short (`.offsite-<16 hex>.tmp`), so every name a source can hold
//! (up to 255 bytes) restores. The file gets its recorded permission bits but
//! not setuid, setgid or sticky unless `--keep-special-bits` asks for them:
//! the repository is not trusted to hand out privileges. Restore tests use
//! [`restore_item`] too, below a private temporary directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, Months, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, SourceClass};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::{is_object_damage, Problem};
use crate::progress::Progress;
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

/// Find `item` in the snapshots of `host` and one of `sources`. With a
/// `selector` (id prefix or `latest`) only that snapshot is searched; without,
/// the newest snapshot containing the item wins.
pub fn find_item(
    repo: &Repository,
    host: &str,
    sources: &[&str],
    item: &str,
    selector: Option<&str>,
) -> Result<FoundItem> {
    let components = item_components(item)?;
    let path = components.join("/");
    let mut found: Vec<FoundItem> = Vec::new();
    let mut skipped: Vec<Problem> = Vec::new();
    for source in sources {
        let snaps = repo.list_snapshots(Some(host), Some(source))?;
        let candidates: Vec<&SnapshotRef> = match selector {
            Some(sel) => match Repository::select_snapshot(&snaps, sel) {
                Ok(one) => vec![one],
                // An id a prune rewrote resolves to the rewrite.
                Err(e @ Error::NotFound { .. }) => {
                    match crate::ops::rewrite::find_rewrite(repo, &snaps, sel)? {
                        Some(one) => vec![one],
                        None if sources.len() > 1 => continue,
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            },
            None => snaps.iter().collect(),
        };
        for snap in candidates {
            // Without a chosen snapshot, a damaged manifest is skipped (and
            // reported): the next older snapshot may hold the item.
            let manifest = match repo.load_snapshot(snap) {
                Ok(manifest) => manifest,
                Err(e) if selector.is_none() && is_object_damage(&e) => {
                    skipped.push(Problem::new(&snap.key, &e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(entry) = repo.lookup_file(&manifest.tree, &components)? {
                found.push(FoundItem {
                    snapshot: snap.clone(),
                    source: source.to_string(),
                    path: path.clone(),
                    entry,
                    problems: Vec::new(),
                });
                break;
            }
        }
    }
    match found.len() {
        0 => Err(Error::NotFound {
            what: format!(
                "item {path:?} in any snapshot of host {host:?} (sources: {}{})",
                sources.join(", "),
                unread_note(&skipped)
            ),
        }),
        1 => Ok(FoundItem {
            problems: skipped,
            ..found.remove(0)
        }),
        _ => Err(Error::Usage(format!(
            "item {path:?} exists in sources {}; pass --source",
            found
                .iter()
                .map(|f| f.source.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ))),
    }
}

/// What a "not found" must add when manifests were skipped: the item may be
/// in one of them.
fn unread_note(skipped: &[Problem]) -> String {
    match skipped {
        [] => String::new(),
        [one] => format!(
            "; the manifest {} cannot be read ({}) and may hold it",
            one.object, one.what
        ),
        [first, ..] => format!(
            "; {} manifests cannot be read and may hold it, first {} ({})",
            skipped.len(),
            first.object,
            first.what
        ),
    }
}

/// Refuse an item the platform should no longer have: client data older
/// than `data_retention_months`, a voice recording past its backup expiry.
pub fn check_retention(config: &Config, found: &FoundItem, now: DateTime<Utc>) -> Result<()> {
    let class = config
        .source(&found.source)
        .map(|s| s.class)
        .unwrap_or(SourceClass::ClientData);
    let mtime = crate::voice::recorded_at(&found.entry);
    match class {
        SourceClass::ClientData => {
            let months = config.data_retention_months;
            let limit = now.checked_sub_months(Months::new(months)).unwrap_or(now);
            if mtime < limit {
                return Err(Error::Refused(format!(
                    "item {} was last modified {}, beyond the platform's data retention of {months} months: it should no longer exist; pass --force to restore it anyway",
                    found.path,
                    mtime.format("%Y-%m-%d")
                )));
            }
        }
        SourceClass::Voice => {
            let contracts = config.contracts();
            if contracts.expired(&found.entry, now) {
                return Err(Error::Refused(format!(
                    "recording {} expired on {} under its tenant's contract; pass --force to restore it anyway",
                    found.path,
                    contracts.expires_at(&found.entry).format("%Y-%m-%d")
                )));
            }
        }
    }
    Ok(())
}

/// Create (or enter) each directory of `components` below `root`, refusing
/// anything that is not a real directory, so nothing can lead outside `root`.
fn safe_parent(root: &Path, components: &[String]) -> Result<PathBuf> {
    let mut dir = root.to_path_buf();
    for name in components {
        dir.push(name);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "{} is not a directory (a symlink or file); refusing to restore through it",
                    dir.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    Ok(dir)
}

/// How [`restore_item`] treats the target and the file's mode, and where it
/// shows progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Replace an existing file (`--overwrite`).
    pub overwrite: bool,
    /// Restore the setuid, setgid and sticky bits (`--keep-special-bits`);
    /// by default only the permission bits (`0o777`) are restored, so a
    /// hostile repository cannot plant a setuid file.
    pub keep_special_bits: bool,
    /// Bytes written, of those to write (set by the job).
    pub progress: Progress,
}

/// Write the verified content of `entry` to `dir/file_name` (which must not
/// exist unless `overwrite`). The content goes first to a short temporary
/// name in `dir` (so a name of 255 bytes works too), created exclusively,
/// not through a symlink, mode 0600. Returns the bytes written.
fn write_verified(
    repo: &Repository,
    entry: &FileEntry,
    dir: &Path,
    file_name: &str,
    options: &RestoreOptions,
) -> Result<u64> {
    let target = dir.join(file_name);
    let tmp = dir.join(format!(
        ".offsite-{}.tmp",
        &ObjectId::random().to_hex()[..16]
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        let mut whole = Sha256::new();
        let mut written = 0u64;
        options.progress.add_total(1, entry.size);
        repo.read_blobs(&entry.chunks, &mut |data| {
            whole.update(&data);
            file.write_all(&data).map_err(|e| Error::io(&tmp, e))?;
            written += data.len() as u64;
            options.progress.advance(0, data.len() as u64);
            Ok(())
        })?;
        options.progress.advance(1, 0);
        let digest = ObjectId(whole.finalize().into());
        if digest != entry.sha256 || written != entry.size {
            return Err(Error::corrupt(
                format!("item {}", entry.name),
                format!("restored content has SHA-256 {digest} and {written} bytes, the snapshot recorded {} and {}", entry.sha256, entry.size),
            ));
        }
        finish_file(&file, entry, options.keep_special_bits).map_err(|e| Error::io(&tmp, e))?;
        if options.overwrite {
            fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
        } else {
            // A hard link fails if the target exists: no check-then-write race.
            fs::hard_link(&tmp, &target).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                    what: format!(
                        "{} already exists; pass --overwrite to replace it",
                        target.display()
                    ),
                },
                _ => Error::io(&target, e),
            })?;
            fs::remove_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        Ok(written)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Permission bits of a restored file: setuid, setgid and sticky only on request.
fn restored_mode(mode: u32, keep_special_bits: bool) -> u32 {
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
) -> Result<RestoreReport> {
    let started = std::time::Instant::now();
    let components = item_components(&found.path)?;
    fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    let Some((file_name, dirs)) = components.split_last() else {
        return Err(Error::Usage(format!(
            "item path {:?} names no file",
            found.path
        )));
    };
    let dir = safe_parent(to, dirs)?;
    let target = dir.join(file_name);
    if !options.overwrite && fs::symlink_metadata(&target).is_ok() {
        return Err(Error::AlreadyExists {
            what: format!(
                "{} already exists; pass --overwrite to replace it",
                target.display()
            ),
        });
    }
    if fs::symlink_metadata(&target).is_ok_and(|m| !m.is_file()) {
        return Err(Error::Usage(format!(
            "{} exists and is not a regular file; not replacing it",
            target.display()
        )));
    }
    let bytes = write_verified(repo, &found.entry, &dir, file_name, &options)?;
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
