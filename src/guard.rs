//! The second-region guard: backups must not live where the originals do.
//!
//! The config already refuses `repository.region == source_region`. For an
//! S3 repository the bucket itself is asked (GetBucketLocation) at `init`,
//! `config check` and agent start: a bucket in the host's own region, or in
//! another region than configured, is refused with one clear line. A local
//! directory cannot prove its location; when it sits on the same filesystem as
//! a source (same device), a warning says that one fire would take both.

use std::os::unix::fs::MetadataExt;

use crate::config::region::same;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::repo::Location;

/// What the guard found: the verified region and any warnings.
#[derive(Debug, Clone, Default)]
pub struct GuardReport {
    pub region: String,
    pub verified: bool,
    pub warnings: Vec<String>,
}

/// Check the repository's location against the config; `Err` refuses.
pub fn check(config: &Config) -> Result<GuardReport> {
    match &config.repository {
        Location::S3(loc) => {
            let actual = crate::runtime::block_on(crate::repo::s3::bucket_region(loc))?;
            check_region(
                &actual,
                &config.repository_region,
                &config.source_region,
                &loc.bucket,
            )?;
            Ok(GuardReport {
                region: actual,
                verified: true,
                warnings: Vec::new(),
            })
        }
        Location::Local(dir) => {
            let mut warnings = Vec::new();
            // The repository directory may not exist yet: judge by its nearest existing ancestor.
            let existing = dir.ancestors().find(|p| p.exists());
            if let Some(repo_dev) = existing
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.dev())
            {
                for source in &config.sources {
                    if std::fs::metadata(&source.path).is_ok_and(|m| m.dev() == repo_dev) {
                        warnings.push(format!(
                            "repository {} is on the same filesystem as source {:?} ({}): a fire there takes both; use a store in the second region",
                            dir.display(),
                            source.name,
                            source.path.display()
                        ));
                    }
                }
            }
            Ok(GuardReport {
                region: config.repository_region.clone(),
                verified: false,
                warnings,
            })
        }
    }
}

/// Refuse a bucket in the host's own region, or in another region than
/// configured. Region names compare case-insensitively (`EU-West-1` is
/// `eu-west-1`; see [`crate::config::region`]).
pub fn check_region(
    actual: &str,
    configured: &str,
    source_region: &str,
    bucket: &str,
) -> Result<()> {
    if same(actual, source_region) {
        return Err(Error::config(
            "repository.region",
            format!("bucket {bucket} is in {actual:?}, the host's own region (source_region); backups must live in another region"),
        ));
    }
    if !same(actual, configured) {
        return Err(Error::config(
            "repository.region",
            format!("bucket {bucket} is in {actual:?}, not in the configured {configured}"),
        ));
    }
    Ok(())
}

/// Print the guard's warnings (one line each) on stderr.
pub fn warn(report: &GuardReport) {
    // One line each on stderr (the journal under systemd); not also through
    // tracing, which writes to the same stderr.
    for w in &report.warnings {
        eprintln!("offsite: warning: {w}");
    }
}

/// Run the guard, print its warnings, refuse what it refuses.
pub fn enforce(config: &Config) -> Result<GuardReport> {
    let report = check(config)?;
    warn(&report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::check_region;

    #[test]
    fn bucket_regions_compare_case_insensitively() {
        assert!(check_region("EU-Central-1", "eu-central-1", "eu-north-1", "b").is_ok());
        let own = check_region("EU-NORTH-1", "eu-central-1", "eu-north-1", "b").unwrap_err();
        assert!(own.to_string().contains("own region"), "{own}");
        let other = check_region("eu-west-1", "eu-central-1", "eu-north-1", "b").unwrap_err();
        assert!(
            other.to_string().contains("not in the configured"),
            "{other}"
        );
    }
}
