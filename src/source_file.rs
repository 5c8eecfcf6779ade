//! Opening a source file for reading, safely against a tree that changes.
//!
//! The walk sees a regular file; by the time a worker opens it, it may have
//! been replaced. A symlink (say to `/etc/shadow`) must not be followed, or
//! the snapshot stores a file the source never held; a FIFO or device must
//! not be opened blocking, or `open()` hangs forever with the lock held and
//! SIGTERM cannot stop it. So the file is opened with
//! `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC` (opening a FIFO or device this way
//! never waits), and the handle is `fstat`ed: it must be a regular file with
//! the device and inode the walk saw. Anything else is a warning and the file
//! is skipped, like a file that vanished between walk and read.
//! `O_NONBLOCK` has no effect on reads of a regular file, so it stays set.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What the walk saw of the file: its device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub dev: u64,
    pub inode: u64,
}

/// Open `path` for reading if it is still the regular file the walk saw;
/// otherwise the warning to report (naming the path).
pub fn open_seen(path: &Path, seen: Seen) -> Result<File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!(
                "{}: became a symbolic link after the walk; not followed, skipped",
                path.display()
            ),
            _ => format!("{}: {e}", path.display()),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "{}: is no longer a regular file (replaced after the walk), skipped",
            path.display()
        ));
    }
    if meta.dev() != seen.dev || meta.ino() != seen.inode {
        return Err(format!(
            "{}: was replaced by another file after the walk (inode {} is now {}), skipped",
            path.display(),
            seen.inode,
            meta.ino()
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(path: &Path) -> Seen {
        let meta = std::fs::symlink_metadata(path).unwrap();
        Seen {
            dev: meta.dev(),
            inode: meta.ino(),
        }
    }

    #[test]
    fn only_the_regular_file_the_walk_saw_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"data").unwrap();
        let walked = seen(&file);
        assert!(open_seen(&file, walked).is_ok());

        let other = dir.path().join("other");
        std::fs::write(&other, b"secret").unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&other, &file).unwrap();
        let err = open_seen(&file, walked).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");

        std::fs::remove_file(&file).unwrap();
        std::fs::rename(&other, &file).unwrap();
        let err = open_seen(&file, walked).unwrap_err();
        assert!(err.contains("replaced by another file"), "{err}");
    }
}
