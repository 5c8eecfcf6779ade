//! The config file as written: every key, nothing validated yet. Unknown
//! keys are refused (`deny_unknown_fields`), so a typo is an error. Numbers
//! are read as TOML's `i64`, so a negative or huge one reaches the range
//! check (`super::bounds`), which names its key. A raw retention policy
//! converts into the domain's [`Policy`] here (`TryFrom`), so `retention`
//! never sees the file's shape.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::retention::{Policy, PolicyError, Within};

/// The file as written.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub host: Option<String>,
    pub timezone: Option<String>,
    pub source_region: Option<String>,
    pub data_retention_months: Option<i64>,
    pub activity_log_days: Option<i64>,
    pub audit_log_days: Option<i64>,
    pub state_dir: Option<PathBuf>,
    pub repository: RawRepository,
    #[serde(default, rename = "source")]
    pub sources: Vec<RawSource>,
    pub contracts: Option<RawContracts>,
    pub prune: Option<RawPrune>,
    pub restore_test: Option<RawRestoreTest>,
    pub metrics: Option<RawMetrics>,
}

/// `[prune]`.
#[derive(Deserialize, Serialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPrune {
    pub schedule: Option<String>,
}

/// `[restore_test]`.
#[derive(Deserialize, Serialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRestoreTest {
    pub schedule: Option<String>,
    pub max_item_bytes: Option<i64>,
}

/// `[metrics]`.
#[derive(Deserialize, Serialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
    pub textfile: Option<PathBuf>,
}

/// Default schedules: snapshots at 02:00, prune at 04:00, a restore test at 05:00 (local).
pub const DEFAULT_SNAPSHOT_SCHEDULE: &str = "0 0 2 * * *";
pub const DEFAULT_PRUNE_SCHEDULE: &str = "0 0 4 * * *";
pub const DEFAULT_RESTORE_TEST_SCHEDULE: &str = "0 0 5 * * *";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/offsite";

/// Parse a cron expression (with seconds), naming the key on error.
pub fn parse_schedule(text: &str, key: &str) -> Result<cron::Schedule> {
    use std::str::FromStr;
    cron::Schedule::from_str(text).map_err(|e| {
        Error::config(
            key,
            format!("{text:?} is not a cron expression with seconds, like \"0 0 2 * * *\": {e}"),
        )
    })
}

/// `[repository]`.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRepository {
    pub url: String,
    pub region: Option<String>,
    /// S3-compatible endpoint (`http://127.0.0.1:7480`); none for AWS.
    pub endpoint: Option<String>,
    /// Path-style S3 requests; default: true with an endpoint, false without.
    pub path_style: Option<bool>,
    /// AWS shared-config profile for the credentials.
    pub profile: Option<String>,
    /// The master key file (default: `offsite.key` in `$CREDENTIALS_DIRECTORY`
    /// under systemd, else in `state_dir`).
    pub key_file: Option<PathBuf>,
    /// S3 Object Lock following the retention promises (off by default).
    pub object_lock: Option<RawObjectLock>,
}

/// `[repository] object_lock = { mode = "compliance" | "governance" }`.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawObjectLock {
    pub mode: String,
    /// For the test suite only (see [`crate::object_lock::TestClock`]):
    /// refused with compliance mode.
    pub test_clock: Option<RawTestClock>,
}

/// Simulated days as `seconds_per_day` real seconds, from `simulated` at `real`.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTestClock {
    pub simulated: String,
    pub real: String,
    pub seconds_per_day: u32,
}

impl RawObjectLock {
    /// The checked form; errors name the key.
    pub fn validated(&self) -> Result<crate::object_lock::ObjectLock> {
        use crate::object_lock::{LockMode, ObjectLock, TestClock};
        let mode = match self.mode.as_str() {
            "compliance" => LockMode::Compliance,
            "governance" => LockMode::Governance,
            other => {
                return Err(Error::config(
                    "repository.object_lock.mode",
                    format!("{other:?} is not \"compliance\" or \"governance\""),
                ))
            }
        };
        let test_clock = match &self.test_clock {
            None => None,
            Some(_) if mode == LockMode::Compliance => {
                return Err(Error::config(
                    "repository.object_lock.test_clock",
                    "is for the test suite only and refused with compliance mode",
                ))
            }
            Some(c) => {
                let time = |text: &str, field: &str| {
                    chrono::DateTime::parse_from_rfc3339(text)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|e| {
                            Error::config(
                                format!("repository.object_lock.test_clock.{field}"),
                                format!("{text:?} is not an RFC 3339 time: {e}"),
                            )
                        })
                };
                if !(1..=86_400).contains(&c.seconds_per_day) {
                    return Err(Error::config(
                        "repository.object_lock.test_clock.seconds_per_day",
                        format!("{} is outside 1..=86400", c.seconds_per_day),
                    ));
                }
                Some(TestClock {
                    simulated: time(&c.simulated, "simulated")?,
                    real: time(&c.real, "real")?,
                    seconds_per_day: c.seconds_per_day,
                })
            }
        };
        Ok(ObjectLock { mode, test_clock })
    }
}

/// One `[[source]]`.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: String,
    pub class: Option<String>,
    pub path: PathBuf,
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    pub tenant: Option<String>,
    pub retention: Option<RetentionPolicy>,
    pub schedule: Option<String>,
}

/// `[contracts]`.
#[derive(Deserialize, Serialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RawContracts {
    pub default_voice_retention_days: Option<i64>,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantContract>,
}

/// A tenant's contract terms.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TenantContract {
    pub voice_retention_days: i64,
}

/// A snapshot retention policy (`restic forget` semantics; see DESIGN §3).
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_last: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_hourly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_daily: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_weekly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_monthly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_yearly: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The raw policy converted into the domain's: `keep_within` parsed, then
/// the counts checked by [`Policy::validated`]. Errors name the key.
impl TryFrom<&RetentionPolicy> for Policy {
    type Error = PolicyError;

    fn try_from(raw: &RetentionPolicy) -> std::result::Result<Self, PolicyError> {
        let within = match raw.keep_within.as_deref() {
            None | Some("") => None,
            Some(text) => {
                let within = Within::parse(text).map_err(|message| PolicyError {
                    field: Some("keep_within"),
                    message,
                })?;
                Some((within, text.to_string()))
            }
        };
        Policy {
            last: raw.keep_last,
            hourly: raw.keep_hourly,
            daily: raw.keep_daily,
            weekly: raw.keep_weekly,
            monthly: raw.keep_monthly,
            yearly: raw.keep_yearly,
            within,
        }
        .validated()
    }
}

impl RetentionPolicy {
    /// The platform's promise for client data: 31 daily, 12 weekly, 3 monthly.
    pub fn client_data_default() -> Self {
        RetentionPolicy {
            keep_daily: 31,
            keep_weekly: 12,
            keep_monthly: 3,
            ..Default::default()
        }
    }
}
