//! A directory below a restore's target, held open: what a restore creates
//! is created relative to an open directory (`openat`, `mkdirat`, `linkat`,
//! `renameat`), never through a path that someone else could redirect.
//!
//! A path-based restore checks that each directory on the way is a real
//! directory and then writes through the path; between the check and the
//! write, whoever can write the target tree (a tenant's users, when a
//! restore goes back into their live tree) could swap a directory for a
//! symlink to `/etc`. Here each directory is opened from its parent's handle
//! with `O_NOFOLLOW | O_DIRECTORY`, so a symlink anywhere below the target is
//! refused at the moment it is used, and a file is created and linked inside
//! the directory handle it was checked in. The target itself (`--to`) is the
//! operator's choice and is opened as given.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// An open directory at or below a restore's target.
#[derive(Debug)]
pub struct TargetDir {
    handle: File,
    /// For messages only: the path it was reached by.
    path: PathBuf,
}

/// What is at a name inside a [`TargetDir`] (never following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Nothing,
    File,
    Dir,
    /// A symlink, FIFO, socket or device.
    Other,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl TargetDir {
    /// The target `to`, created (with its parents) if missing.
    pub fn open_root(to: &Path) -> Result<Self> {
        std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(to, flags, Mode::empty()).map_err(|e| Error::io(to, e.into()))?;
        Ok(TargetDir {
            handle: File::from(fd),
            path: to.to_path_buf(),
        })
    }

    /// The path this directory was reached by (for messages and reports).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle, to set the directory's own mode and times.
    pub fn handle(&self) -> &File {
        &self.handle
    }

    /// The directory `name` inside, created if missing; `true` when this
    /// call created it. A symlink or anything else in its place is refused.
    pub fn child(&self, name: &str) -> Result<(TargetDir, bool)> {
        let path = self.path.join(name);
        let created =
            match rustix::fs::mkdirat(self.handle.as_fd(), name, Mode::from_raw_mode(0o777)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(Error::io(&path, e.into())),
            };
        match rustix::fs::openat(self.handle.as_fd(), name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok((
                TargetDir {
                    handle: File::from(fd),
                    path,
                },
                created,
            )),
            Err(Errno::LOOP | Errno::NOTDIR) => Err(Error::Usage(format!(
                "{} is not a directory (a symlink or file); refusing to restore through it",
                path.display()
            ))),
            Err(e) => Err(Error::io(&path, e.into())),
        }
    }

    /// The directory at `names` below this one, each created if missing.
    pub fn descend(&self, names: &[String]) -> Result<TargetDir> {
        let mut dir = self.reopen()?;
        for name in names {
            dir = dir.child(name)?.0;
        }
        Ok(dir)
    }

    /// This directory, opened once more.
    fn reopen(&self) -> Result<TargetDir> {
        let handle = self
            .handle
            .try_clone()
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(TargetDir {
            handle,
            path: self.path.clone(),
        })
    }

    /// What is at `name` inside (a symlink is [`Existing::Other`]).
    pub fn existing(&self, name: &str) -> Result<Existing> {
        match rustix::fs::statat(self.handle.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => Existing::File,
                FileType::Directory => Existing::Dir,
                _ => Existing::Other,
            }),
            Err(Errno::NOENT) => Ok(Existing::Nothing),
            Err(e) => Err(Error::io(self.path.join(name), e.into())),
        }
    }

    /// Create `name` exclusively (never through a symlink), write-only, `mode`.
    pub fn create_new(&self, name: &str, mode: u32) -> std::io::Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(self.handle.as_fd(), name, flags, Mode::from_raw_mode(mode))?;
        Ok(File::from(fd))
    }

    /// A second name `to` for the file `from` (fails if `to` exists).
    pub fn link(&self, from: &str, to: &str) -> std::io::Result<()> {
        let dir = self.handle.as_fd();
        Ok(rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())?)
    }

    /// Rename `from` to `to`, replacing `to`.
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        let dir = self.handle.as_fd();
        Ok(rustix::fs::renameat(dir, from, dir, to)?)
    }

    /// Remove the file `name`.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        Ok(rustix::fs::unlinkat(
            self.handle.as_fd(),
            name,
            AtFlags::empty(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_below_the_target_is_never_entered() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let root = TargetDir::open_root(&tmp.path().join("to")).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("to/link")).unwrap();
        let err = root.descend(&["link".into(), "x".into()]).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(root.existing("link").unwrap(), Existing::Other);
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());

        let (a, created) = root.child("a").unwrap();
        assert!(created);
        assert!(
            !root.child("a").unwrap().1,
            "opened, not created, the second time"
        );
        std::mem::drop(a.create_new("f", 0o600).unwrap());
        assert!(a.create_new("f", 0o600).is_err(), "exclusive");
        a.link("f", "g").unwrap();
        assert!(a.link("f", "g").is_err(), "a link never replaces");
        a.remove("f").unwrap();
        assert_eq!(a.existing("f").unwrap(), Existing::Nothing);
        assert_eq!(a.existing("g").unwrap(), Existing::File);
        assert_eq!(root.existing("a").unwrap(), Existing::Dir);
    }
}
