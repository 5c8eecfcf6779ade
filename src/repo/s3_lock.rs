//! Object Lock and versions on an S3 bucket, through the AWS SDK.
//!
//! `object_store` has no lock headers, no retention calls and no version
//! listing, so a repository with `object_lock` set sends these requests with
//! `aws-sdk-s3` (behind [`crate::repo::store::Store`], which callers use):
//!
//! * a locked write is one PutObject with `x-amz-object-lock-mode`,
//!   `x-amz-object-lock-retain-until-date` and `Content-MD5` (S3 wants an
//!   integrity header on every PUT with a retention period), create-only
//!   with `If-None-Match: *` where the key must be new;
//! * an extension reads the current date (HeadObject) and sends
//!   PutObjectRetention only when the new date is later: never shorter;
//! * the version sweep lists versions (ListObjectVersions) and deletes, by
//!   version id, every version that is not the object (see
//!   [`crate::repo::store`]'s `lock_ops` for which one is), and a key's delete
//!   markers once no version of it is left (deleting the marker of a key whose
//!   locked version remains would bring that version back). A version still
//!   locked answers AccessDenied and is left for a later prune;
//! * a read of a create-only key or a pack reads the version that is the
//!   object by its version id (a pack's is learned once, from a listing of
//!   its versions, and kept for the process).
//!
//! The bucket must have Object Lock enabled (it implies versioning):
//! [`bucket_lock`] reads its configuration for `init` and `config check`.

use aws_sdk_s3::primitives::{ByteStream, DateTime as SdkTime};
use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::Digest;

use crate::error::{Error, Result};
use crate::object_lock::{LockMode, ObjectLock};
use crate::repo::s3::{first_line, sdk_client, S3Location};

/// What a bucket says about Object Lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLock {
    pub enabled: bool,
    /// The bucket's default retention in days (years counted as 365 days).
    pub default_days: Option<u32>,
}

/// Ask the bucket (GetObjectLockConfiguration). A bucket without Object Lock
/// answers with an error that says so; that is `enabled: false`.
pub async fn bucket_lock(loc: &S3Location) -> Result<BucketLock> {
    let client = sdk_client(loc).await;
    let out = match client
        .get_object_lock_configuration()
        .bucket(&loc.bucket)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let code = code_of(&e);
            if code.contains("ObjectLockConfigurationNotFound") || code == "InvalidRequest" {
                return Ok(BucketLock {
                    enabled: false,
                    default_days: None,
                });
            }
            return Err(sdk_error(&format!("bucket {}", loc.bucket), e));
        }
    };
    let config = out.object_lock_configuration();
    let enabled = config
        .and_then(|c| c.object_lock_enabled())
        .is_some_and(|e| e.as_str() == "Enabled");
    let default = config
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention());
    let default_days = default.map(|d| {
        let days = d.days().unwrap_or(0).max(0) as u32;
        let years = d.years().unwrap_or(0).max(0) as u32;
        days.saturating_add(years.saturating_mul(365))
    });
    Ok(BucketLock {
        enabled,
        default_days: default_days.filter(|d| *d > 0),
    })
}

/// `init` and `config check`: the repository's bucket must have Object
/// Lock enabled and no default retention of its own: a default would lock
/// what offsite writes unlocked on purpose (the `keys/` objects that
/// `erase --tenant` must delete at once, locks, log entries), so an erase
/// would leave the old master key readable. `None` when `object_lock` is
/// not set.
pub fn verify_bucket(config: &crate::config::Config) -> Result<Option<BucketLock>> {
    let (crate::repo::Location::S3(loc), Some(_)) = (&config.repository, config.object_lock())
    else {
        return Ok(None);
    };
    let found = crate::runtime::block_on(bucket_lock(loc))?;
    if !found.enabled {
        return Err(Error::config(
            "repository.object_lock",
            format!(
                "bucket {} has no Object Lock enabled (it can only be enabled when the bucket is created, \
                 with x-amz-bucket-object-lock-enabled: true); use such a bucket or remove object_lock",
                loc.bucket
            ),
        ));
    }
    if let Some(days) = found.default_days {
        return Err(Error::config(
            "repository.object_lock",
            format!(
                "bucket {} has a default retention of {days} days: it would lock the key objects that \
                 erasing a tenant must delete at once, and every lock and log entry; remove the bucket's \
                 default retention (offsite locks each object itself)",
                loc.bucket
            ),
        ));
    }
    Ok(Some(found))
}

/// A bucket with Object Lock, as the store writes to it.
#[derive(Debug)]
pub struct LockedBucket {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    pub lock: ObjectLock,
}

/// One version listed by [`LockedBucket::versions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Key below the repository prefix.
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    /// When it was written (milliseconds since 1970; 0 if not reported).
    pub modified_ms: i64,
}

impl LockedBucket {
    pub async fn connect(loc: &S3Location, lock: ObjectLock) -> Self {
        LockedBucket {
            client: sdk_client(loc).await,
            bucket: loc.bucket.clone(),
            prefix: loc.prefix.clone(),
            lock,
        }
    }

    fn full(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// PutObject, locked until `until` (a real time) when given; returns
    /// the new version's id. No `If-None-Match`: on a versioned bucket Ceph
    /// ignores it (see [`crate::repo::store`]'s `put_new_until`).
    pub async fn put(
        &self,
        key: &str,
        data: Bytes,
        until: Option<DateTime<Utc>>,
    ) -> Result<Option<String>> {
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&data));
        let mode = match self.lock.mode {
            LockMode::Compliance => ObjectLockMode::Compliance,
            LockMode::Governance => ObjectLockMode::Governance,
        };
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_md5(md5)
            .body(ByteStream::from(data));
        if let Some(until) = until {
            request = request
                .object_lock_mode(mode)
                .object_lock_retain_until_date(SdkTime::from_secs(until.timestamp()));
        }
        let out = request.send().await.map_err(|e| sdk_error(key, e))?;
        Ok(out.version_id().map(String::from))
    }

    /// Whether one version of `key` holds exactly `expected` (create-only
    /// objects are compared, never parsed here).
    pub async fn version_holds(
        &self,
        key: &str,
        version_id: &str,
        expected: &[u8],
    ) -> Result<bool> {
        Ok(self.get_version(key, version_id, None).await? == expected)
    }

    /// The bytes of one version of `key`: all of them, or `range`.
    pub async fn get_version(
        &self,
        key: &str,
        version_id: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Bytes> {
        let range = range.map(|r| format!("bytes={}-{}", r.start, r.end.saturating_sub(1)));
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .version_id(version_id)
            .set_range(range)
            .send()
            .await
            .map_err(|e| sdk_error(key, e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| Error::unreachable(key, e.to_string(), e))?;
        Ok(body.into_bytes())
    }

    /// The retain-until date of the current version of `key`, if locked.
    pub async fn retain_until(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        self.retain_until_of(key, None).await
    }

    /// The retain-until date of `version` of `key` (`None`: the current
    /// one), if locked.
    pub async fn retain_until_of(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<DateTime<Utc>>> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .set_version_id(version.map(String::from))
            .send()
            .await
            .map_err(|e| sdk_error(key, e))?;
        Ok(out
            .object_lock_retain_until_date()
            .and_then(|d| DateTime::from_timestamp(d.secs(), 0)))
    }

    /// PutObjectRetention: lock `version` of `key` (`None`: the current
    /// one) until `until`.
    pub async fn set_retention(
        &self,
        key: &str,
        version: Option<&str>,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let mode = match self.lock.mode {
            LockMode::Compliance => ObjectLockRetentionMode::Compliance,
            LockMode::Governance => ObjectLockRetentionMode::Governance,
        };
        let retention = ObjectLockRetention::builder()
            .mode(mode)
            .retain_until_date(SdkTime::from_secs(until.timestamp()))
            .build();
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(self.full(key))
            .set_version_id(version.map(String::from))
            .retention(retention)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(key, e))
    }

    /// Every version and delete marker under `prefix`, one page of 1000 per
    /// request; returns them and the number of requests.
    pub async fn versions(&self, prefix: &str) -> Result<(Vec<Version>, u64)> {
        let mut out = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        let mut requests = 0;
        let strip = |k: &str| -> Option<String> {
            if self.prefix.is_empty() {
                Some(k.to_string())
            } else {
                k.strip_prefix(&format!("{}/", self.prefix))
                    .map(String::from)
            }
        };
        loop {
            requests += 1;
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_key_marker(markers.0.take())
                .set_version_id_marker(markers.1.take())
                .send()
                .await
                .map_err(|e| sdk_error(prefix, e))?;
            for v in page.versions() {
                if let (Some(key), Some(id)) = (v.key().and_then(strip), v.version_id()) {
                    out.push(Version {
                        key,
                        version_id: id.to_string(),
                        is_latest: v.is_latest().unwrap_or(false),
                        delete_marker: false,
                        size: v.size().unwrap_or(0).max(0) as u64,
                        modified_ms: v.last_modified().map_or(0, millis),
                    });
                }
            }
            for m in page.delete_markers() {
                if let (Some(key), Some(id)) = (m.key().and_then(strip), m.version_id()) {
                    out.push(Version {
                        key,
                        version_id: id.to_string(),
                        is_latest: m.is_latest().unwrap_or(false),
                        delete_marker: true,
                        size: 0,
                        modified_ms: m.last_modified().map_or(0, millis),
                    });
                }
            }
            if !page.is_truncated().unwrap_or(false) {
                return Ok((out, requests));
            }
            markers = (
                page.next_key_marker().map(String::from),
                page.next_version_id_marker().map(String::from),
            );
            if markers.0.is_none() {
                return Ok((out, requests));
            }
        }
    }

    /// Delete one version; `Ok(false)` when its lock forbids it.
    pub async fn delete_version(&self, key: &str, version_id: &str) -> Result<bool> {
        let sent = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .version_id(version_id)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) if code_of(&e) == "AccessDenied" => Ok(false),
            Err(e) => Err(sdk_error(key, e)),
        }
    }
}

fn millis(t: &SdkTime) -> i64 {
    t.secs()
        .saturating_mul(1000)
        .saturating_add(i64::from(t.subsec_nanos() / 1_000_000))
}

fn code_of<E: aws_sdk_s3::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("")
        .to_string()
}

/// Map an SDK error to the crate's kinds, naming the object.
fn sdk_error<E, R>(key: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = code_of(&e);
    let detail = first_line(&aws_sdk_s3::error::DisplayErrorContext(&e).to_string());
    match code.as_str() {
        "NoSuchKey" | "NotFound" | "NoSuchBucket" => Error::NotFound {
            what: format!("object {key}"),
        },
        "PreconditionFailed" => Error::AlreadyExists {
            what: format!("object {key} already exists"),
        },
        "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
            Error::denied(key, format!("{code}: {detail}"), e)
        }
        _ => Error::unreachable(key, detail, e),
    }
}
