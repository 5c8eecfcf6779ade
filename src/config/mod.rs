//! Configuration: a raw TOML form, validated into typed values.
//!
//! The raw structs mirror the file exactly and refuse unknown keys, so a typo
//! is an error instead of a silently ignored setting. `Config::parse` turns
//! them into values the rest of the crate can trust (parsed time zone,
//! repository location, include patterns, policies) and reports the first
//! problem with the key that holds it. Every number is range-checked here
//! (`bounds`), so the arithmetic done with it later cannot overflow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod bounds;
pub mod lint;
mod raw;
pub mod region;

use crate::error::{Error, Result};
use crate::glob::Pattern;
use crate::repo::Location;
use crate::retention::Policy;
use crate::voice::Contracts;

/// Where `--config` is looked for when not given.
pub const DEFAULT_CONFIG_PATHS: [&str; 2] = ["./offsite.toml", "/etc/offsite/offsite.toml"];

pub use crate::days::{Days, MAX_DAYS};
pub use raw::*;

/// What kind of data a source holds; decides retention and chunking.
#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SourceClass {
    /// Database storage, chats, e-mails: grandfather-father-son snapshots.
    ClientData,
    /// Call recordings: per-item expiry from the tenant's contract.
    Voice,
}

impl SourceClass {
    fn parse(s: &str, key: &str) -> Result<Self> {
        match s {
            "client-data" => Ok(SourceClass::ClientData),
            "voice" => Ok(SourceClass::Voice),
            other => Err(Error::config(
                key,
                format!("{other:?} is not a class (expected \"client-data\" or \"voice\")"),
            )),
        }
    }
}

/// How an item's tenant is derived from its path inside the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TenantRule {
    /// The Nth path component (1-based); `first-component` is 1.
    Component(usize),
    /// Every item belongs to one named tenant.
    Fixed(String),
    /// Items have no tenant.
    None,
}

impl TenantRule {
    fn parse(s: &str, key: &str) -> Result<Self> {
        if s == "first-component" {
            return Ok(TenantRule::Component(1));
        }
        if s == "none" {
            return Ok(TenantRule::None);
        }
        if let Some(n) = s.strip_prefix("component:") {
            if let Ok(n @ 1..) = n.parse::<usize>() {
                return Ok(TenantRule::Component(n));
            }
        }
        if let Some(name) = s.strip_prefix("fixed:").filter(|n| !n.is_empty()) {
            return Ok(TenantRule::Fixed(name.to_string()));
        }
        Err(Error::config(
            key,
            format!("{s:?} is not a tenant rule (expected \"first-component\", \"component:N\", \"fixed:NAME\" or \"none\")"),
        ))
    }

    /// The tenant of the item at `components` (path relative to the source).
    pub fn tenant_of(&self, components: &[&str]) -> Option<String> {
        match self {
            TenantRule::Component(n) if components.len() > *n => {
                Some(components[n - 1].to_string())
            }
            TenantRule::Component(_) | TenantRule::None => None,
            TenantRule::Fixed(name) => Some(name.clone()),
        }
    }

    /// The tenant of the directory at `components` (empty: the source's
    /// root): the one every item below it would have, so its listing can be
    /// sealed under that tenant's key. `None` when items below it may belong
    /// to several tenants (or to none).
    pub fn tenant_of_dir(&self, components: &[&str]) -> Option<String> {
        match self {
            TenantRule::Component(n) if *n >= 1 && components.len() >= *n => {
                Some(components[n - 1].to_string())
            }
            TenantRule::Component(_) | TenantRule::None => None,
            TenantRule::Fixed(name) => Some(name.clone()),
        }
    }
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub class: SourceClass,
    pub path: PathBuf,
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
    pub tenant: TenantRule,
    pub retention: Policy,
    pub schedule: cron::Schedule,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub timezone: chrono_tz::Tz,
    pub source_region: String,
    pub data_retention_months: u32,
    pub activity_log_days: Days,
    /// How long restore and erase entries are kept (at least `activity_log_days`).
    pub audit_log_days: Days,
    pub state_dir: PathBuf,
    pub prune_schedule: cron::Schedule,
    pub restore_test_schedule: cron::Schedule,
    pub restore_test_max_item_bytes: Option<u64>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub metrics_textfile: Option<PathBuf>,
    pub repository_url: String,
    pub repository: Location,
    pub repository_region: String,
    /// `[repository] key_file` as written; see [`crate::keyfile::path`].
    pub key_file: Option<PathBuf>,
    pub sources: Vec<Source>,
    pub default_voice_retention_days: Days,
    pub tenant_contracts: BTreeMap<String, Days>,
    /// The raw form with defaults filled in, for `config check`.
    pub effective: RawConfig,
}

/// Names that become object keys: letters, digits, `.`, `_`, `-`.
fn check_name(value: &str, key: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            key,
            format!("{value:?} must be 1-128 letters, digits, '.', '_' or '-'"),
        ))
    }
}

/// This machine's host name.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Config {
    /// Read and validate the config file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text)
    }

    /// Find the config: `explicit`, else the first default path that exists.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        DEFAULT_CONFIG_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no config file: pass --config FILE or create one of {}",
                    DEFAULT_CONFIG_PATHS.join(", ")
                ))
            })
    }

    /// Parse and validate TOML text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            let key = e
                .span()
                .map(|s| place_of(text, s.start))
                .unwrap_or_else(|| "file".into());
            Error::config(key, message)
        })?;
        let host = raw.host.clone().unwrap_or_else(system_hostname);
        check_name(&host, "host")?;
        raw.host = Some(host.clone());
        let tz_name = raw.timezone.clone().unwrap_or_else(|| "UTC".into());
        let timezone: chrono_tz::Tz = tz_name.parse().map_err(|_| {
            Error::config(
                "timezone",
                format!(
                    "{tz_name:?} is not an IANA time zone (like \"Europe/Helsinki\" or \"UTC\")"
                ),
            )
        })?;
        raw.timezone = Some(tz_name);
        let data_retention_months: u32 = bounds::check_range(
            raw.data_retention_months.unwrap_or(120),
            1..=120,
            "data_retention_months",
        )?;
        raw.data_retention_months = Some(i64::from(data_retention_months));
        let activity_log_days =
            Days::new(raw.activity_log_days.unwrap_or(30), "activity_log_days")?;
        raw.activity_log_days = Some(i64::from(activity_log_days.get()));
        let audit_log_days = Days::new(raw.audit_log_days.unwrap_or(3650), "audit_log_days")?;
        raw.audit_log_days = Some(i64::from(audit_log_days.get()));
        let state_dir = raw
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        raw.state_dir = Some(state_dir.clone());
        let mut prune = raw.prune.clone().unwrap_or_default();
        let prune_text = prune
            .schedule
            .get_or_insert_with(|| DEFAULT_PRUNE_SCHEDULE.into())
            .clone();
        let prune_schedule = parse_schedule(&prune_text, "prune.schedule")?;
        raw.prune = Some(prune);
        let mut restore_test = raw.restore_test.clone().unwrap_or_default();
        let test_text = restore_test
            .schedule
            .get_or_insert_with(|| DEFAULT_RESTORE_TEST_SCHEDULE.into())
            .clone();
        let restore_test_schedule = parse_schedule(&test_text, "restore_test.schedule")?;
        let restore_test_max_item_bytes = match restore_test.max_item_bytes {
            None => None,
            Some(n) => Some(u64::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                Error::config(
                    "restore_test.max_item_bytes",
                    format!("{n} must be at least 1 (leave it out for no limit)"),
                )
            })?),
        };
        raw.restore_test = Some(restore_test);
        let mut metrics = raw.metrics.clone().unwrap_or_default();
        let listen_text = metrics
            .listen
            .get_or_insert_with(|| DEFAULT_METRICS_LISTEN.into())
            .clone();
        let metrics_listen = if listen_text.is_empty() {
            None
        } else {
            let addr: std::net::SocketAddr = listen_text.parse().map_err(|_| {
                Error::config("metrics.listen", format!("{listen_text:?} is not an address like 127.0.0.1:9464 (\"\" turns the endpoint off)"))
            })?;
            if addr.port() == 0 {
                return Err(Error::config(
                    "metrics.listen",
                    format!("{listen_text:?}: the port must be 1..=65535"),
                ));
            }
            Some(addr)
        };
        let metrics_textfile = metrics.textfile.clone();
        raw.metrics = Some(metrics);
        let aws = raw.repository.endpoint.is_none() && raw.repository.url.starts_with("s3://");
        let source_region = raw
            .source_region
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::config(
                    "source_region",
                    "missing: the region this host's data lives in",
                )
            })?;
        let source_region = region::validate(&source_region, "source_region", aws)?;
        let repository_region = raw
            .repository
            .region
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::config(
                    "repository.region",
                    "missing: the region the backups live in",
                )
            })?;
        let repository_region = region::validate(&repository_region, "repository.region", aws)?;
        if region::same(&repository_region, &source_region) {
            return Err(Error::config(
                "repository.region",
                format!("{repository_region:?} is the host's own region; backups must live in another region"),
            ));
        }
        raw.source_region = Some(source_region.clone());
        raw.repository.region = Some(repository_region.clone());
        let r = &raw.repository;
        let mut repository = Location::from_config(
            &r.url,
            &repository_region,
            r.endpoint.as_deref(),
            r.path_style,
            r.profile.as_deref(),
        )?;
        if let Some(lock) = &r.object_lock {
            let Location::S3(loc) = &mut repository else {
                return Err(Error::config(
                    "repository.object_lock",
                    "Object Lock needs an S3 repository (s3://bucket/prefix); a local directory cannot be locked",
                ));
            };
            loc.object_lock = Some(lock.validated()?);
        }
        let mut sources: Vec<Source> = Vec::new();
        for (i, rs) in raw.sources.iter_mut().enumerate() {
            let key = |field: &str| format!("source[{i}].{field}");
            check_name(&rs.name, &key("name"))?;
            if sources.iter().any(|s| s.name == rs.name) {
                return Err(Error::config(
                    key("name"),
                    format!("{:?} is used twice", rs.name),
                ));
            }
            let class =
                SourceClass::parse(rs.class.as_deref().unwrap_or("client-data"), &key("class"))?;
            rs.class = Some(
                serde_json::to_value(class)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            if !rs.path.is_absolute() {
                return Err(Error::config(
                    key("path"),
                    format!("{} must be an absolute path", rs.path.display()),
                ));
            }
            let patterns = |list: &Option<Vec<String>>, field: &str| -> Result<Vec<Pattern>> {
                list.iter()
                    .flatten()
                    .map(|p| Pattern::parse(p).map_err(|m| Error::config(key(field), m)))
                    .collect()
            };
            let include = patterns(&rs.include, "include")?;
            let exclude = patterns(&rs.exclude, "exclude")?;
            let tenant_text = rs
                .tenant
                .clone()
                .unwrap_or_else(|| "first-component".into());
            let tenant = TenantRule::parse(&tenant_text, &key("tenant"))?;
            rs.tenant = Some(tenant_text);
            let retention = match (&rs.retention, class) {
                (Some(p), _) => p.clone(),
                (None, SourceClass::ClientData) => RetentionPolicy::client_data_default(),
                (None, SourceClass::Voice) => RetentionPolicy {
                    keep_last: 3,
                    ..Default::default()
                },
            };
            let policy = Policy::try_from(&retention).map_err(|e| {
                let field = e
                    .field
                    .map_or("retention".into(), |f| format!("retention.{f}"));
                Error::config(key(&field), e.message)
            })?;
            let schedule_text = rs
                .schedule
                .clone()
                .unwrap_or_else(|| DEFAULT_SNAPSHOT_SCHEDULE.into());
            let schedule = parse_schedule(&schedule_text, &key("schedule"))?;
            rs.schedule = Some(schedule_text);
            rs.retention = Some(retention);
            sources.push(Source {
                name: rs.name.clone(),
                class,
                path: rs.path.clone(),
                include,
                exclude,
                tenant,
                retention: policy,
                schedule,
            });
        }
        let contracts = raw.contracts.clone().unwrap_or_default();
        let default_voice_retention_days = Days::new(
            contracts.default_voice_retention_days.unwrap_or(365),
            "contracts.default_voice_retention_days",
        )?;
        let mut tenant_contracts = BTreeMap::new();
        for (tenant, c) in &contracts.tenants {
            let key = format!("contracts.tenants.{tenant}.voice_retention_days");
            tenant_contracts.insert(tenant.clone(), Days::new(c.voice_retention_days, &key)?);
        }
        raw.contracts = Some(RawContracts {
            default_voice_retention_days: Some(i64::from(default_voice_retention_days.get())),
            tenants: contracts.tenants.clone(),
        });
        Ok(Config {
            host,
            timezone,
            source_region,
            data_retention_months,
            activity_log_days,
            audit_log_days,
            state_dir,
            prune_schedule,
            restore_test_schedule,
            restore_test_max_item_bytes,
            metrics_listen,
            metrics_textfile,
            repository_url: raw.repository.url.clone(),
            repository,
            repository_region,
            key_file: raw.repository.key_file.clone(),
            sources,
            default_voice_retention_days,
            tenant_contracts,
            effective: raw,
        })
    }

    /// The promises Object Lock dates follow.
    pub fn promises(&self) -> crate::object_lock::Promises {
        crate::object_lock::Promises {
            timezone: self.timezone,
            retention_months: self.data_retention_months,
        }
    }

    /// `[repository] object_lock`, if set.
    pub fn object_lock(&self) -> Option<&crate::object_lock::ObjectLock> {
        match &self.repository {
            Location::S3(loc) => loc.object_lock.as_ref(),
            Location::Local(_) => None,
        }
    }

    /// The voice contracts in force.
    pub fn contracts(&self) -> Contracts {
        Contracts {
            default_days: self.default_voice_retention_days,
            tenants: self.tenant_contracts.clone(),
        }
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Result<&Source> {
        self.sources.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
            Error::Usage(format!(
                "no source named {name:?} (configured: {})",
                known.join(", ")
            ))
        })
    }

    /// The sources an operation covers: one by name, or all.
    pub fn selected_sources(&self, name: Option<&str>) -> Result<Vec<&Source>> {
        match name {
            Some(n) => Ok(vec![self.source(n)?]),
            None if self.sources.is_empty() => {
                Err(Error::config("source", "no [[source]] is configured"))
            }
            None => Ok(self.sources.iter().collect()),
        }
    }
}

/// Where a TOML error is: `line N`, with the key whose value is at
/// `offset` when one can be seen (`line 7 (keep_daily)`).
fn place_of(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let current = before.rsplit('\n').next().unwrap_or("");
    let key = current
        .rsplit_once('=')
        .map(|(k, _)| k.rsplit(['{', ',']).next().unwrap_or(k).trim())
        .filter(|k| !k.is_empty() && !k.contains(['"', '[', ']']));
    match key {
        Some(k) => format!("line {line} ({k})"),
        None => format!("line {line}"),
    }
}
