//! The object store behind a repository, as a small synchronous facade.
//!
//! Everything offsite keeps lives in an object store reached through the
//! `object_store` crate: a local directory (the embedded default) or an
//! S3-compatible bucket. The operations are synchronous on purpose: backup work
//! is CPU-bound and runs on plain threads, and each call here blocks on the
//! store's own async runtime. Errors are mapped to the crate's semantic kinds
//! with the object's key, so a missing or unreadable object is always named.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

/// Where a repository lives, parsed from `repository.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file:///absolute/dir`: a local directory.
    Local(PathBuf),
}

impl Location {
    /// Parse a repository URL; the error says what forms are accepted.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(Error::config(
                    "repository.url",
                    format!("{url:?}: a file URL needs an absolute path, like file:///var/lib/offsite/repo"),
                ));
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        Err(Error::config(
            "repository.url",
            format!("{url:?} is not a supported repository URL (expected file:///absolute/path)"),
        ))
    }
}

/// A handle on the object store with its own runtime.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    runtime: Arc<tokio::runtime::Runtime>,
    description: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("at", &self.description)
            .finish()
    }
}

impl Store {
    /// Connect to the store at `location`. With `create`, a missing local
    /// directory is created; without it, it must exist.
    pub fn connect(location: &Location, create: bool) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("offsite-store")
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        let (inner, description): (Arc<dyn ObjectStore>, String) = match location {
            Location::Local(dir) => {
                if create {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                } else if !dir.is_dir() {
                    return Err(Error::NotFound {
                        what: format!(
                            "repository directory {} (run `offsite init` first)",
                            dir.display()
                        ),
                    });
                }
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| storage_error(&dir.display().to_string(), e))?
                    .with_automatic_cleanup(true);
                (Arc::new(fs), format!("file://{}", dir.display()))
            }
        };
        Ok(Store {
            inner,
            runtime: Arc::new(runtime),
            description,
        })
    }

    /// Human description (the URL).
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The local directory, when the store is one (for the same-device warning).
    pub fn local_dir(location: &Location) -> Option<&Path> {
        match location {
            Location::Local(dir) => Some(dir),
        }
    }

    /// Read a whole object.
    pub fn get(&self, key: &str) -> Result<Bytes> {
        let path = StorePath::from(key);
        self.runtime
            .block_on(async { self.inner.get(&path).await?.bytes().await })
            .map_err(|e| storage_error(key, e))
    }

    /// Read `range` of an object.
    pub fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = StorePath::from(key);
        let want = range.end - range.start;
        let bytes = self
            .runtime
            .block_on(self.inner.get_range(&path, range))
            .map_err(|e| storage_error(key, e))?;
        if bytes.len() as u64 != want {
            return Err(Error::corrupt(
                key,
                format!("short read: wanted {want} bytes, got {}", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    /// Size of an object.
    pub fn size(&self, key: &str) -> Result<u64> {
        let path = StorePath::from(key);
        self.runtime
            .block_on(self.inner.head(&path))
            .map(|m| m.size)
            .map_err(|e| storage_error(key, e))
    }

    /// Write an object, replacing any existing one.
    pub fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = StorePath::from(key);
        self.runtime
            .block_on(self.inner.put(&path, PutPayload::from(data)))
            .map(|_| ())
            .map_err(|e| storage_error(key, e))
    }

    /// Write an object only if no object has that key (create-only); an existing
    /// one gives `AlreadyExists`.
    pub fn put_new(&self, key: &str, data: Bytes) -> Result<()> {
        let path = StorePath::from(key);
        let opts = PutOptions::from(PutMode::Create);
        self.runtime
            .block_on(self.inner.put_opts(&path, PutPayload::from(data), opts))
            .map(|_| ())
            .map_err(|e| storage_error(key, e))
    }

    /// Keys and sizes of all objects under `prefix`, sorted by key.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let path = StorePath::from(prefix);
        let mut out: Vec<(String, u64)> = self
            .runtime
            .block_on(async {
                self.inner
                    .list(Some(&path))
                    .map_ok(|meta| (meta.location.to_string(), meta.size))
                    .try_collect()
                    .await
            })
            .map_err(|e| storage_error(prefix, e))?;
        out.sort();
        Ok(out)
    }

    /// Delete an object (a missing one is not an error).
    pub fn delete(&self, key: &str) -> Result<()> {
        let path = StorePath::from(key);
        match self.runtime.block_on(self.inner.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(key, e)),
        }
    }
}

/// Map an `object_store` error to the crate's kinds, naming the object.
fn storage_error(key: &str, err: object_store::Error) -> Error {
    match err {
        object_store::Error::NotFound { .. } => Error::NotFound {
            what: format!("object {key}"),
        },
        object_store::Error::AlreadyExists { .. } => Error::AlreadyExists {
            what: format!("object {key} already exists"),
        },
        other => {
            let transient = matches!(other, object_store::Error::Generic { .. });
            Error::Storage {
                object: key.to_string(),
                transient,
                source: other,
            }
        }
    }
}
