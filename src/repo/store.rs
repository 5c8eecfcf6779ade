//! The object store behind a repository, as a small synchronous facade.
//!
//! This is the facade *under* [`Repository`](crate::repo::Repository):
//! operations never use it; they call the repository's typed methods, which
//! build every key through [`crate::repo::layout`]. It stays public only for
//! the storage conformance test and the benchmark, which exercise the raw store.
//!
//! Everything offsite keeps lives in an object store reached through the
//! `object_store` crate: a local directory (the embedded default) or an
//! S3-compatible bucket. The operations are synchronous on purpose: backup work
//! is CPU-bound and runs on plain threads, and each call here blocks on the
//! process's one Tokio runtime ([`crate::runtime`]). Errors are mapped to the
//! crate's semantic kinds with the object's key, so a missing or unreadable
//! object is always named.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::repo::s3::S3Location;
use crate::repo::s3_lock::LockedBucket;

mod lock_ops;
pub use lock_ops::VersionSweep;

/// Where a repository lives, parsed from `[repository]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file:///absolute/dir`: a local directory.
    Local(PathBuf),
    /// `s3://bucket/prefix` on AWS or an S3-compatible cluster.
    S3(S3Location),
}

impl Location {
    /// Parse a repository URL with the rest of `[repository]`; the error
    /// says what forms are accepted.
    pub fn from_config(
        url: &str,
        region: &str,
        endpoint: Option<&str>,
        path_style: Option<bool>,
        profile: Option<&str>,
    ) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid_bucket {
                return Err(Error::config("repository.url", format!("{bucket:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, '-', '.')")));
            }
            if let Some(e) = endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(Error::config(
                        "repository.endpoint",
                        format!("{e:?} must start with http:// or https://"),
                    ));
                }
            }
            return Ok(Location::S3(S3Location {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                region: region.to_string(),
                endpoint: endpoint.map(|e| e.trim_end_matches('/').to_string()),
                path_style: path_style.unwrap_or(endpoint.is_some()),
                profile: profile.map(String::from),
                object_lock: None,
            }));
        }
        Self::parse(url)
    }

    /// Parse a local repository URL.
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
            format!("{url:?} is not a supported repository URL (expected file:///absolute/path or s3://bucket/prefix)"),
        ))
    }
}

/// One object of a listing: key, size and the store's last-modified time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A handle on the object store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    description: String,
    /// Across a network (S3): requests wait on latency.
    remote: bool,
    requests: Arc<RequestCounts>,
    /// The bucket's Object Lock side, with `object_lock` set.
    locked: Option<Arc<LockedBucket>>,
    /// On a locked store, the version that is the object of each pack read
    /// or listed so far (see [`lock_ops`]).
    pins: Arc<lock_ops::Pins>,
}

/// Requests sent to the store, by kind: operators pay per request.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub put: AtomicU64,
    pub get: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
    pub head: AtomicU64,
    pub retention: AtomicU64,
}

/// A copy of the counts, for reports and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    pub put: u64,
    pub get: u64,
    pub list: u64,
    pub delete: u64,
    pub head: u64,
    /// PutObjectRetention (Object Lock extensions).
    #[serde(default)]
    pub retention: u64,
}

impl Requests {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Requests) -> Requests {
        Requests {
            put: self.put - earlier.put,
            get: self.get - earlier.get,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            head: self.head - earlier.head,
            retention: self.retention - earlier.retention,
        }
    }

    /// `(op, count)` pairs, for metrics.
    pub fn by_op(&self) -> [(&'static str, u64); 6] {
        [
            ("retention", self.retention),
            ("put", self.put),
            ("get", self.get),
            ("list", self.list),
            ("delete", self.delete),
            ("head", self.head),
        ]
    }
}

/// Objects larger than this are uploaded in parts (S3 multipart).
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// The part size of a multipart upload.
pub const PART_SIZE: usize = 8 << 20;

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
        let mut locked = None;
        let (inner, description): (Arc<dyn ObjectStore>, String) = match location {
            Location::S3(loc) => {
                if let Some(lock) = &loc.object_lock {
                    let bucket = crate::runtime::block_on(LockedBucket::connect(loc, lock.clone()));
                    locked = Some(Arc::new(bucket));
                }
                let store = crate::runtime::block_on(crate::repo::s3::object_store(loc))?;
                let prefixed: Arc<dyn ObjectStore> = if loc.prefix.is_empty() {
                    store
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(
                        store,
                        loc.prefix.as_str(),
                    ))
                };
                let at = loc
                    .endpoint
                    .as_deref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default();
                (prefixed, format!("s3://{}/{}{at}", loc.bucket, loc.prefix))
            }
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
            description,
            remote: matches!(location, Location::S3(_)),
            requests: Arc::default(),
            locked,
            pins: Arc::default(),
        })
    }

    /// True for stores across a network (S3), where requests wait on latency.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// Human description (the URL).
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Requests sent so far by this handle (and its clones).
    pub fn requests(&self) -> Requests {
        let r = &self.requests;
        Requests {
            put: r.put.load(Ordering::Relaxed),
            get: r.get.load(Ordering::Relaxed),
            list: r.list.load(Ordering::Relaxed),
            delete: r.delete.load(Ordering::Relaxed),
            head: r.head.load(Ordering::Relaxed),
            retention: r.retention.load(Ordering::Relaxed),
        }
    }

    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Read a whole object (on a locked store, a create-only key or a pack
    /// at the version that won its creation: see [`lock_ops`]).
    pub fn get(&self, key: &str) -> Result<Bytes> {
        if let Some(version) = self.winner(key)? {
            return self.get_version_range(key, &version, None);
        }
        Self::count(&self.requests.get, 1);
        let path = StorePath::from(key);
        crate::runtime::block_on(async { self.inner.get(&path).await?.bytes().await })
            .map_err(|e| storage_error(key, e))
    }

    /// Read `range` of an object (on a locked store, of the version that is
    /// the object: see [`lock_ops`]).
    pub fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let want = range.end.saturating_sub(range.start);
        let bytes = match self.winner(key)? {
            Some(version) => self.get_version_range(key, &version, Some(range))?,
            None => {
                Self::count(&self.requests.get, 1);
                let path = StorePath::from(key);
                crate::runtime::block_on(self.inner.get_range(&path, range))
                    .map_err(|e| storage_error(key, e))?
            }
        };
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
        Self::count(&self.requests.head, 1);
        let path = StorePath::from(key);
        crate::runtime::block_on(self.inner.head(&path))
            .map(|m| m.size)
            .map_err(|e| storage_error(key, e))
    }

    /// Write an object, replacing any existing one. Objects over
    /// [`MULTIPART_THRESHOLD`] go up in parts of [`PART_SIZE`]. On a remote
    /// store a request that failed in transit is sent again (see
    /// [`WRITE_RETRY_PAUSES`]): every key written this way names its content
    /// or is rewritten whole, so sending it twice is harmless.
    pub fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.retrying(key, || self.put_once(key, data.clone()))
    }

    fn put_once(&self, key: &str, data: Bytes) -> Result<()> {
        let path = StorePath::from(key);
        if data.len() <= MULTIPART_THRESHOLD {
            Self::count(&self.requests.put, 1);
            return crate::runtime::block_on(self.inner.put(&path, PutPayload::from(data)))
                .map(|_| ())
                .map_err(|e| storage_error(key, e));
        }
        let parts = data.len().div_ceil(PART_SIZE);
        // initiate + parts + complete
        Self::count(&self.requests.put, parts as u64 + 2);
        crate::runtime::block_on(async {
            let mut upload = self.inner.put_multipart(&path).await?;
            for start in (0..data.len()).step_by(PART_SIZE) {
                let part = data.slice(start..(start + PART_SIZE).min(data.len()));
                if let Err(e) = upload.put_part(PutPayload::from(part)).await {
                    let _ = upload.abort().await;
                    return Err(e);
                }
            }
            upload.complete().await
        })
        .map(|_| ())
        .map_err(|e| storage_error(key, e))
    }

    /// Write an object only if no object has that key (create-only); an existing
    /// one gives `AlreadyExists`. A request whose reply was lost may still have
    /// created the object, and a retry (the S3 client's or ours) then finds the
    /// key taken; so a taken key is read back, and an object holding exactly
    /// `data` is ours (every create-only key is unique to its writer: a
    /// content hash or a random id).
    pub fn put_new(&self, key: &str, data: Bytes) -> Result<()> {
        if self.locked.is_some() {
            return self.put_new_until(key, data, None);
        }
        self.retrying(key, || match self.put_new_once(key, data.clone()) {
            Err(Error::AlreadyExists { what }) => match self.get(key) {
                Ok(stored) if stored == data => Ok(()),
                Ok(_) => Err(Error::AlreadyExists { what }),
                Err(e) => Err(e),
            },
            other => other,
        })
    }

    fn put_new_once(&self, key: &str, data: Bytes) -> Result<()> {
        Self::count(&self.requests.put, 1);
        let path = StorePath::from(key);
        let opts = PutOptions::from(PutMode::Create);
        crate::runtime::block_on(self.inner.put_opts(&path, PutPayload::from(data), opts))
            .map(|_| ())
            .map_err(|e| storage_error(key, e))
    }

    /// Run a write, and on a remote store run it again after each pause of
    /// [`WRITE_RETRY_PAUSES`] while it fails transiently.
    fn retrying(&self, key: &str, mut attempt: impl FnMut() -> Result<()>) -> Result<()> {
        let mut pauses = WRITE_RETRY_PAUSES.iter();
        loop {
            match attempt() {
                Err(e) if self.remote && is_transient(&e) => {
                    let Some(pause) = pauses.next() else {
                        return Err(e);
                    };
                    tracing::warn!(object = key, error = %e, "write failed in transit; sending it again");
                    std::thread::sleep(*pause);
                }
                other => return other,
            }
        }
    }

    /// Keys and sizes of all objects under `prefix`, sorted by key.
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        if let Some(listed) = self.list_pinned(prefix)? {
            return Ok(listed.into_iter().map(|l| (l.key, l.size)).collect());
        }
        let path = StorePath::from(prefix);
        let mut out: Vec<(String, u64)> = crate::runtime::block_on(async {
            self.inner
                .list(Some(&path))
                .map_ok(|meta| (meta.location.to_string(), meta.size))
                .try_collect()
                .await
        })
        .map_err(|e| storage_error(prefix, e))?;
        // S3 lists 1000 keys per request.
        Self::count(&self.requests.list, 1 + out.len() as u64 / 1000);
        out.sort();
        Ok(out)
    }

    /// Like [`Store::list`], with each object's last-modified time as the
    /// store reports it (the store's clock, the same for every writer): lock
    /// staleness and the pack grace period are measured on it.
    pub fn list_with_times(&self, prefix: &str) -> Result<Vec<Listed>> {
        if let Some(listed) = self.list_pinned(prefix)? {
            return Ok(listed);
        }
        let path = StorePath::from(prefix);
        let mut out: Vec<Listed> = crate::runtime::block_on(async {
            self.inner
                .list(Some(&path))
                .map_ok(|meta| Listed {
                    key: meta.location.to_string(),
                    size: meta.size,
                    modified: meta.last_modified,
                })
                .try_collect()
                .await
        })
        .map_err(|e| storage_error(prefix, e))?;
        Self::count(&self.requests.list, 1 + out.len() as u64 / 1000);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Delete an object (a missing one is not an error).
    pub fn delete(&self, key: &str) -> Result<()> {
        self.pins.forget(key);
        Self::count(&self.requests.delete, 1);
        let path = StorePath::from(key);
        match crate::runtime::block_on(self.inner.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(key, e)),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

/// Pauses before a failed write to a remote store is sent again. The S3
/// client retries by itself only the requests it knows are idempotent, and a
/// connection cut mid-request (a gateway restart, a network blip) ends the
/// others; together with its own retries this rides out about a minute.
const WRITE_RETRY_PAUSES: [std::time::Duration; 4] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(2),
    std::time::Duration::from_secs(4),
    std::time::Duration::from_secs(8),
];

/// Whether a retry may help: the store failed, but did not refuse.
fn is_transient(error: &Error) -> bool {
    matches!(
        error,
        Error::Storage {
            transient: true,
            ..
        }
    )
}

/// Map an `object_store` error to the crate's kinds, naming the object.
fn storage_error(key: &str, err: object_store::Error) -> Error {
    match err {
        object_store::Error::NotFound { .. } => Error::NotFound {
            what: format!("object {key}"),
        },
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            Error::denied(key, first_line(&err.to_string()), err)
        }
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            Error::AlreadyExists {
                what: format!("object {key} already exists"),
            }
        }
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
