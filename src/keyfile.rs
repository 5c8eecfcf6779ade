//! The master key file: where it is, how it is read and written.
//!
//! ```text
//! offsite-key 2
//! repository <64 hex digits, or "any" before init binds it>
//! epoch <n>
//! key <64 hex digits>
//! ```
//!
//! Where: `[repository] key_file` when set; else `offsite.key` in
//! `$CREDENTIALS_DIRECTORY` when systemd passes credentials
//! (`LoadCredential=`); else `offsite.key` in `state_dir`. The file is opened
//! without following a symlink and refused unless it is a regular file that
//! only its owner can read: a key others can read is a key others have.
//! Nothing here ever prints the key.
//!
//! Without a key file, a passphrase opens the repository through an
//! envelope ([`crate::repo::envelopes`]): `offsite key recover` writes the
//! key file back; `OFFSITE_PASSPHRASE_FILE` ([`PASSPHRASE_ENV`]) opens it for
//! one command without writing anything. Copies are written with
//! [`KeyFile::store_new`], which never replaces a key.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::Config;
use crate::crypto::Secret;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::MasterKey;

/// The file name of the key in `$CREDENTIALS_DIRECTORY` and `state_dir`.
pub const FILE_NAME: &str = "offsite.key";
const HEADER: &str = "offsite-key 2";
/// More than any key file holds: a bigger file is not one.
const MAX_LEN: u64 = 4096;

/// A key file's content.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// The repository it opens; `None` for a key made before `init`.
    pub repository: Option<ObjectId>,
    pub master: MasterKey,
}

/// Where the key file of `config` is (see the module docs).
pub fn path(config: &Config) -> PathBuf {
    if let Some(p) = &config.key_file {
        return p.clone();
    }
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join(FILE_NAME),
        _ => config.state_dir.join(FILE_NAME),
    }
}

impl KeyFile {
    /// The text of the file.
    pub fn to_text(&self) -> String {
        let repo = self
            .repository
            .map(|r| r.to_hex())
            .unwrap_or_else(|| "any".into());
        format!(
            "{HEADER}\nrepository {repo}\nepoch {}\nkey {}\n",
            self.master.epoch,
            hex::encode(self.master.secret.expose())
        )
    }

    /// Parse the text of a key file; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |why: &str| Error::Key(format!("key file {}: {why}", path.display()));
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(bad(
                "not an offsite key file (first line must be \"offsite-key 2\")",
            ));
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| bad(&format!("line \"{name} …\" is missing")))
        };
        let repository = match field("repository")?.as_str() {
            "any" => None,
            hex_id => Some(hex_id.parse().map_err(|_| bad("repository is not an id"))?),
        };
        let epoch: u64 = field("epoch")?
            .parse()
            .ok()
            .filter(|e| *e >= 1)
            .ok_or_else(|| bad("epoch is not a number from 1"))?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(field("key")?, &mut key)
            .map_err(|_| bad("key is not 64 hex digits"))?;
        Ok(KeyFile {
            repository,
            master: MasterKey {
                secret: Secret::from_bytes(key),
                epoch,
            },
        })
    }

    /// Read the key file at `path`: a regular file, not a symlink, readable
    /// by its owner only.
    pub fn load(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| {
                Error::Key(match e.kind() {
                    std::io::ErrorKind::NotFound => format!(
                        "no key file at {}: the repository cannot be opened without its key \
                         (set [repository] key_file, or restore the key from your recovery copy)",
                        path.display()
                    ),
                    _ => format!("cannot read key file {}: {e}", path.display()),
                })
            })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::Key(format!("key file {}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(Error::Key(format!(
                "key file {} is not a regular file",
                path.display()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(Error::Key(format!(
                "key file {} is readable by others (mode {:o}); run chmod 600 on it",
                path.display(),
                meta.mode() & 0o777
            )));
        }
        let mut text = String::new();
        file.take(MAX_LEN)
            .read_to_string(&mut text)
            .map_err(|e| Error::Key(format!("cannot read key file {}: {e}", path.display())))?;
        KeyFile::parse(path, &text)
    }

    /// Write the key file at `path` (mode 0600), replacing any other file
    /// atomically: written to a temporary name, synced, renamed.
    pub fn store(&self, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::io(path, e);
        let tmp = path.with_extension("key.tmp");
        let _ = std::fs::remove_file(&tmp);
        self.write_new(&tmp).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Fail now, before anything changes, when [`KeyFile::store`] could not
    /// write a key file at `path` (its temporary file is created and
    /// removed again, empty).
    pub fn check_writable(path: &Path) -> Result<()> {
        let tmp = path.with_extension("key.tmp");
        let _ = std::fs::remove_file(&tmp);
        if let Some(dir) = tmp.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(path, e))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| Error::io(path, e))?;
        std::fs::remove_file(&tmp).map_err(|e| Error::io(path, e))
    }

    /// Write a new key file at `path` (mode 0600); refuses when anything
    /// is there already (`key export`, `key recover`: never replace a key).
    pub fn store_new(&self, path: &Path) -> Result<()> {
        self.write_new(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                what: format!(
                    "{} exists already: a key file is never overwritten; move it away first",
                    path.display()
                ),
            },
            _ => Error::io(path, e),
        })
    }

    /// Create `at` (and its directory), owner-only, never through a
    /// symlink, never over an existing file; write and sync the key. A
    /// file left half-written is removed.
    fn write_new(&self, at: &Path) -> std::io::Result<()> {
        if let Some(dir) = at.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(at)?;
        let written = file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(self.to_text().as_bytes()))
            .and_then(|()| file.sync_all());
        if written.is_err() {
            let _ = std::fs::remove_file(at);
        }
        written
    }

    /// Check that this key is for `repository`.
    pub fn check_repository(&self, path: &Path, repository: ObjectId) -> Result<()> {
        match self.repository {
            Some(r) if r != repository => Err(Error::Key(format!(
                "key file {} is for repository {}, this is repository {}",
                path.display(),
                r.short(),
                repository.short()
            ))),
            _ => Ok(()),
        }
    }
}

/// Open the repository `config` names with its key file. When the
/// repository moved to a newer key epoch (another host erased a tenant),
/// the key file is replaced by the new key so the old one stops existing
/// here; a key file that cannot be rewritten (a read-only credential) is
/// a warning on every open until the operator replaces it.
///
/// Without a key file, when `OFFSITE_PASSPHRASE_FILE` names a file, the
/// repository is opened through a passphrase envelope for this one command
/// and no key file is written (a one-off read from an operator's laptop).
pub fn open(config: &Config) -> Result<crate::repo::Repository> {
    let path = path(config);
    if let (Some(phrase_file), Err(e)) = (
        std::env::var_os(PASSPHRASE_ENV).filter(|v| !v.is_empty()),
        std::fs::symlink_metadata(&path),
    ) {
        if e.kind() == std::io::ErrorKind::NotFound {
            let phrase = read_passphrase(Path::new(&phrase_file))?;
            return crate::repo::Repository::open_with_passphrase(&config.repository, &phrase);
        }
    }
    let file = KeyFile::load(&path)?;
    let repo = match crate::repo::Repository::open(&config.repository, &file.master) {
        Ok(repo) => repo,
        Err(Error::Key(wrong)) => {
            // Name both repositories when the key file says it is another's.
            if let Ok(id) = crate::repo::Repository::stored_id(&config.repository) {
                file.check_repository(&path, id)?;
            }
            return Err(Error::Key(wrong));
        }
        Err(e) => return Err(e),
    };
    file.check_repository(&path, repo.config.id)?;
    adopt(&path, &file, &repo);
    Ok(repo)
}

/// A process that followed a rotation while it ran (the agent, see
/// [`crate::repo::Repository::follow_key_rotation`]) replaces its key file
/// the same way [`open`] does.
pub fn adopt_current(config: &Config, repo: &crate::repo::Repository) {
    let path = path(config);
    match KeyFile::load(&path) {
        Ok(file) => adopt(&path, &file, repo),
        Err(e) => tracing::debug!("key file not compared with the repository's key: {e}"),
    }
}

/// Replace the key file `file` at `path` by the repository's current
/// master key when that is newer (a warning when it cannot be written).
fn adopt(path: &Path, file: &KeyFile, repo: &crate::repo::Repository) {
    let current = repo.keys().master();
    if current.epoch > file.master.epoch {
        let newer = KeyFile {
            repository: Some(repo.config.id),
            master: current.clone(),
        };
        match newer.store(path) {
            Ok(()) => tracing::warn!(
                "the repository's key moved to epoch {} (a tenant was erased); {} now holds the new key",
                current.epoch,
                path.display()
            ),
            Err(e) => tracing::warn!(
                "the repository's key moved to epoch {} but {} cannot be rewritten ({e}); \
                 replace it with `offsite key export` from a host that has the new key",
                current.epoch,
                path.display()
            ),
        }
    }
}

/// The environment variable naming a passphrase file, used when there is
/// no key file (see [`open`]).
pub const PASSPHRASE_ENV: &str = "OFFSITE_PASSPHRASE_FILE";
/// Longer than any passphrase anyone types.
const MAX_PASSPHRASE: u64 = 4096;

/// Read a passphrase from `file` (`-`: standard input): its first line,
/// without the line end. Empty is refused.
pub fn read_passphrase(file: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let named = || {
        if file == Path::new("-") {
            "standard input".to_string()
        } else {
            format!("passphrase file {}", file.display())
        }
    };
    let mut text = Zeroizing::new(Vec::new());
    let read = if file == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(MAX_PASSPHRASE)
            .read_to_end(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_PASSPHRASE).read_to_end(&mut text))
    };
    read.map_err(|e| Error::Key(format!("cannot read {}: {e}", named())))?;
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(Error::Key(format!(
            "{} holds no passphrase (its first line is empty)",
            named()
        )));
    }
    Ok(Zeroizing::new(line.to_vec()))
}

/// What `config check` says about the key file: never its content.
pub fn describe_state(path: &Path) -> &'static str {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
        Err(_) => "unreadable",
        Ok(m) if m.file_type().is_symlink() => "a symlink (refused)",
        Ok(m) if !m.is_file() => "not a regular file (refused)",
        Ok(m) if m.mode() & 0o077 != 0 => "readable by others (refused; chmod 600)",
        Ok(_) => "present, mode owner-only",
    }
}

/// What `init` did with the key.
#[derive(Debug)]
pub struct InitKey {
    pub path: PathBuf,
    /// True when `init` made the key (false: it used one already there).
    pub created: bool,
}

/// Create the repository `config` names and its key: a key file already at
/// the key path is used if it is not bound to another repository; else a
/// new key is written there (mode 0600) **before** the repository exists,
/// so no repository is ever left without its key.
pub fn init(
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(crate::repo::Repository, InitKey)> {
    let path = path(config);
    let (file, created) = match KeyFile::load(&path) {
        Ok(f) => (f, false),
        Err(_) if !path.exists() && std::fs::symlink_metadata(&path).is_err() => {
            let f = KeyFile {
                repository: None,
                master: MasterKey::generate(),
            };
            f.store(&path)?;
            (f, true)
        }
        Err(e) => return Err(e),
    };
    if let Some(r) = file.repository {
        if crate::repo::Repository::open(&config.repository, &file.master).is_ok() {
            return Err(Error::AlreadyExists {
                what: format!("a repository already exists at {}", config.repository_url),
            });
        }
        return Err(Error::Key(format!(
            "key file {} already belongs to repository {}; move it away or set another [repository] key_file",
            path.display(),
            r.short()
        )));
    }
    let repo = match crate::repo::Repository::init(&config.repository, now, &file.master) {
        Ok(repo) => repo,
        Err(e) => {
            if created {
                // Never used: leave no stray key that looks like this repository's.
                let _ = std::fs::remove_file(&path);
            }
            return Err(e);
        }
    };
    if created {
        KeyFile {
            repository: Some(repo.config.id),
            master: file.master.clone(),
        }
        .store(&path)?;
    }
    Ok((repo, InitKey { path, created }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_refuses_other_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let kf = KeyFile {
            repository: Some(ObjectId::hash(b"r")),
            master: MasterKey::generate(),
        };
        kf.store(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = KeyFile::load(&path).unwrap();
        assert_eq!(back.repository, kf.repository);
        assert_eq!(back.master.secret, kf.master.secret);
        for bad in [
            "",
            "offsite-key 1\n",
            "offsite-key 2\nrepository x\nepoch 1\nkey 00\n",
        ] {
            assert!(
                matches!(KeyFile::parse(&path, bad), Err(Error::Key(_))),
                "{bad:?}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("readable by others"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(KeyFile::load(&link).is_err());
        let err = KeyFile::load(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no key file"), "{err}");
        assert!(!err.contains(&hex::encode(kf.master.secret.expose())));
    }
}
