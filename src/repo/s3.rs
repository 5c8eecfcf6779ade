//! S3 repositories: the connection, the credentials, and the region guard.
//!
//! Data goes through `object_store`'s S3 client (retries with backoff and
//! jitter built in). Credentials come from the standard AWS chain of the AWS
//! SDK (`aws-config`: environment, shared config and credentials files with an
//! optional profile, web identity, container and instance roles), bridged
//! into `object_store` and refreshed before they expire, so they never need
//! to be in offsite's config and are never printed. The SDK's S3 client is
//! used only for what `object_store` cannot do: asking a bucket for its
//! region, to refuse a repository in the host's own region.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::{CredentialProvider, RetryConfig};
use tokio::sync::Mutex;

use crate::error::{Error, Result};

/// An S3 bucket (and key prefix) with how to reach it. Credentials are never
/// here: they come from the standard AWS chain (see this module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
    pub region: String,
    /// `http://127.0.0.1:7480` for Ceph RGW, Garage, MinIO; none for AWS.
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as most S3-compatible servers want.
    pub path_style: bool,
    /// A profile of the AWS shared config and credentials files.
    pub profile: Option<String>,
    /// `[repository] object_lock`: writes carry lock dates (see
    /// [`crate::object_lock`] and [`crate::repo::s3_lock`]).
    pub object_lock: Option<crate::object_lock::ObjectLock>,
}

/// The SDK's credential chain, cached until shortly before expiry.
#[derive(Debug)]
struct ChainCredentials {
    chain: aws_credential_types::provider::SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait::async_trait]
impl CredentialProvider for ChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((cred, expiry)) = cached.as_ref() {
            let fresh = expiry.is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300));
            if fresh {
                return Ok(cred.clone());
            }
        }
        let c = self.chain.provide_credentials().await.map_err(|e| object_store::Error::Unauthenticated {
            path: String::new(),
            source: format!("no AWS credentials (environment, ~/.aws/credentials, or an instance role): {e}").into(),
        })?;
        let cred = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(String::from),
        });
        *cached = Some((cred.clone(), c.expiry()));
        Ok(cred)
    }
}

async fn sdk_config(loc: &S3Location) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(loc.region.clone()));
    if let Some(profile) = &loc.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &loc.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// Build the `object_store` client for `loc` (call inside a Tokio runtime).
pub async fn object_store(loc: &S3Location) -> Result<Arc<dyn object_store::ObjectStore>> {
    let config = sdk_config(loc).await;
    let chain = config
        .credentials_provider()
        .ok_or_else(|| Error::config("repository", "no AWS credential provider is available"))?;
    let credentials = ChainCredentials {
        chain,
        cached: Mutex::new(None),
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&loc.bucket)
        .with_region(&loc.region)
        .with_virtual_hosted_style_request(!loc.path_style)
        .with_credentials(Arc::new(credentials))
        .with_retry(RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 8,
            retry_timeout: Duration::from_secs(60),
        });
    if let Some(endpoint) = &loc.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let store = builder
        .build()
        .map_err(|e| Error::config("repository", format!("S3 client: {e}")))?;
    Ok(Arc::new(store))
}

pub(crate) async fn sdk_client(loc: &S3Location) -> aws_sdk_s3::Client {
    let config = sdk_config(loc).await;
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(loc.path_style)
        // Checksums only where an operation requires one (Object Lock PUTs
        // carry their own Content-MD5): S3-compatible gateways such as Ceph
        // 16 do not read the trailing checksums the SDK sends by default.
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// The region the bucket reports (GetBucketLocation; empty means us-east-1).
pub async fn bucket_region(loc: &S3Location) -> Result<String> {
    let client = sdk_client(loc).await;
    let out = client
        .get_bucket_location()
        .bucket(&loc.bucket)
        .send()
        .await
        .map_err(|e| {
            let detail = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
            let code = e
                .as_service_error()
                .and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s))
                .unwrap_or("")
                .to_string();
            match code.as_str() {
                "NoSuchBucket" => Error::NotFound {
                    what: format!(
                        "bucket {} at {}",
                        loc.bucket,
                        loc.endpoint.as_deref().unwrap_or("AWS S3")
                    ),
                },
                "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => Error::denied(
                    format!("bucket {}", loc.bucket),
                    format!("{code}: check the AWS credentials"),
                    e,
                ),
                _ => Error::unreachable(
                    format!(
                        "bucket {} at {}",
                        loc.bucket,
                        loc.endpoint.as_deref().unwrap_or("AWS S3")
                    ),
                    first_line(&detail),
                    e,
                ),
            }
        })?;
    let region = out
        .location_constraint()
        .map(|c| c.as_str().to_string())
        .unwrap_or_default();
    Ok(if region.is_empty() {
        "us-east-1".to_string()
    } else {
        region
    })
}

/// Create a bucket (for tests and first set-up; offsite itself never does).
pub async fn create_bucket(loc: &S3Location) -> Result<()> {
    create_bucket_with(loc, false).await
}

/// Create a bucket, with Object Lock (and so versioning) enabled when `lock`.
pub async fn create_bucket_with(loc: &S3Location, lock: bool) -> Result<()> {
    let client = sdk_client(loc).await;
    client
        .create_bucket()
        .bucket(&loc.bucket)
        .object_lock_enabled_for_bucket(lock)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let detail = first_line(&aws_sdk_s3::error::DisplayErrorContext(&e).to_string());
            Error::unreachable(format!("bucket {}", loc.bucket), detail, e)
        })
}

pub(crate) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}
