//! Misconfigurations that parse but cost data, found before they do.
//!
//! `Config::parse` refuses what cannot work; this module finds what works
//! but silently does the wrong thing: a source path that does not exist (the
//! snapshot fails every night), include patterns that match nothing (every
//! snapshot is empty), a tenant in `[contracts.tenants]` that no voice source
//! holds (a typo: its recordings get the default retention and are kept past
//! their contract), a schedule that never fires (`0 0 2 31 2 *`), no
//! `[[source]]` at all. `config check` prints the warnings (and fails on them
//! with `--strict`) and the agent prints the same ones at start: both call
//! [`lint`], so the two cannot disagree.
//!
//! Unlike the rest of `config` this looks at the file system, read-only and
//! bounded: a walk stops at the first match and after [`WALK_LIMIT`] entries,
//! and then says "not verified" instead of guessing. The time is a
//! parameter (the clock is an input, as everywhere).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Config, Source, SourceClass, TenantRule};

/// Entries one walk may look at before it gives up ("not verified").
pub const WALK_LIMIT: usize = 100_000;

/// A schedule with no run within this many years never fires in practice.
pub const SCHEDULE_HORIZON_YEARS: i64 = 5;

/// One misconfiguration, naming the key that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigWarning {
    /// The config key, like `source[1].path` or `contracts.tenants.acme`.
    pub key: String,
    /// What the key belongs to, like `source "voice"`, when that helps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub message: String,
    /// False when the check could not finish (a walk past [`WALK_LIMIT`]):
    /// worth a look, but `config check --strict` does not fail on it.
    pub verified: bool,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.subject {
            Some(subject) => write!(f, "{subject} ({}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every misconfiguration of `config` at `now`.
pub fn lint(config: &Config, now: DateTime<Utc>) -> Vec<ConfigWarning> {
    lint_bounded(config, now, WALK_LIMIT)
}

/// [`lint`] with walks capped at `limit` entries.
pub fn lint_bounded(config: &Config, now: DateTime<Utc>, limit: usize) -> Vec<ConfigWarning> {
    let mut warnings = Vec::new();
    if config.sources.is_empty() {
        warnings.push(warning(
            "source",
            None,
            "no [[source]] is configured: nothing is backed up".into(),
        ));
    }
    schedules(config, now, &mut warnings);
    for (i, source) in config.sources.iter().enumerate() {
        source_tree(i, source, limit, &mut warnings);
    }
    tenants(config, limit, &mut warnings);
    warnings
}

/// Print the warnings on stderr, one line each (the journal under systemd).
pub fn warn(warnings: &[ConfigWarning]) {
    for w in warnings {
        let note = if w.verified { "" } else { " (not verified)" };
        eprintln!("offsite: warning: {w}{note}");
    }
}

fn warning(key: impl Into<String>, subject: Option<&Source>, message: String) -> ConfigWarning {
    ConfigWarning {
        key: key.into(),
        subject: subject.map(|s| format!("source {:?}", s.name)),
        message,
        verified: true,
    }
}

fn schedules(config: &Config, now: DateTime<Utc>, out: &mut Vec<ConfigWarning>) {
    let mut all = vec![
        ("prune.schedule".to_string(), None, &config.prune_schedule),
        (
            "restore_test.schedule".to_string(),
            None,
            &config.restore_test_schedule,
        ),
    ];
    for (i, s) in config.sources.iter().enumerate() {
        all.push((format!("source[{i}].schedule"), Some(s), &s.schedule));
    }
    let horizon = now
        .checked_add_signed(Duration::days(366 * SCHEDULE_HORIZON_YEARS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    for (key, source, schedule) in all {
        let next = schedule.after(&now.with_timezone(&config.timezone)).next();
        if next.is_none_or(|t| t.with_timezone(&Utc) > horizon) {
            out.push(warning(
                key,
                source,
                format!(
                    "{:?} never fires (no time within {SCHEDULE_HORIZON_YEARS} years)",
                    schedule.to_string()
                ),
            ));
        }
    }
}

/// The source's path exists and is a readable directory, and each include
/// pattern matches at least one entry that is not excluded.
fn source_tree(i: usize, source: &Source, limit: usize, out: &mut Vec<ConfigWarning>) {
    let key = |field: &str| format!("source[{i}].{field}");
    let path = &source.path;
    let problem = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".to_string()),
        Err(e) => Some(format!("cannot be read: {e}")),
        Ok(m) if !m.is_dir() => Some("is not a directory".to_string()),
        Ok(_) => std::fs::read_dir(path)
            .err()
            .map(|e| format!("cannot be read: {e}")),
    };
    if let Some(problem) = problem {
        out.push(warning(
            key("path"),
            Some(source),
            format!("{path:?} {problem}"),
        ));
        return;
    }
    if source.include.is_empty() {
        return;
    }
    let mut walk = Walk::new(limit);
    let unmatched = walk.unmatched_includes(source);
    for j in unmatched {
        let mut w = warning(
            format!("{}[{j}]", key("include")),
            Some(source),
            format!(
                "{:?} matches nothing under {path:?}{}",
                source.include[j].as_str(),
                if source.exclude.is_empty() {
                    ""
                } else {
                    " that is not excluded"
                }
            ),
        );
        if walk.exhausted {
            w.message = format!(
                "{:?}: no match in the first {limit} entries under {path:?}",
                source.include[j].as_str()
            );
            w.verified = false;
        }
        out.push(w);
    }
}

/// Every tenant named in `[contracts.tenants]` is found under a voice source.
fn tenants(config: &Config, limit: usize, out: &mut Vec<ConfigWarning>) {
    if config.tenant_contracts.is_empty() {
        return;
    }
    let voice: Vec<&Source> = config
        .sources
        .iter()
        .filter(|s| s.class == SourceClass::Voice)
        .collect();
    let mut found = BTreeSet::new();
    let mut walk = Walk::new(limit);
    let mut complete = true;
    for source in &voice {
        complete &= walk.tenants(source, &mut found);
    }
    if walk.exhausted {
        out.push(ConfigWarning {
            key: "contracts.tenants".into(),
            subject: None,
            message: format!(
                "tenants not checked against the voice sources: more than {limit} entries"
            ),
            verified: false,
        });
    }
    if !complete {
        // A source that cannot be listed was reported already.
        return;
    }
    let seen = if found.is_empty() {
        "none".to_string()
    } else {
        let names: Vec<String> = found.iter().take(8).map(|t| format!("{t:?}")).collect();
        let more = if found.len() > 8 { ", …" } else { "" };
        format!("{}{more}", names.join(", "))
    };
    for tenant in config.tenant_contracts.keys() {
        if found.contains(tenant) {
            continue;
        }
        let message = if voice.is_empty() {
            "no voice source is configured: this contract applies to nothing".to_string()
        } else {
            format!("matches no tenant under the voice sources (found: {seen}); a typo leaves its recordings on the default retention")
        };
        out.push(warning(
            format!("contracts.tenants.{tenant}"),
            None,
            message,
        ));
    }
}

/// A bounded, read-only walk: never follows symlinks, counts every entry.
struct Walk {
    budget: usize,
    exhausted: bool,
}

impl Walk {
    fn new(limit: usize) -> Self {
        Walk {
            budget: limit,
            exhausted: false,
        }
    }

    /// The entries of `dir` as (name, is a directory); `None` past the budget.
    fn list(&mut self, dir: &Path) -> Option<Vec<(String, bool)>> {
        let mut entries = Vec::new();
        // Unreadable subdirectories are the snapshot's to report.
        let Ok(read) = std::fs::read_dir(dir) else {
            return Some(entries);
        };
        for entry in read.flatten() {
            if self.budget == 0 {
                self.exhausted = true;
                return None;
            }
            self.budget -= 1;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            entries.push((name, is_dir));
        }
        Some(entries)
    }

    /// The indexes of the include patterns that match no entry; stops as
    /// soon as every pattern has matched.
    fn unmatched_includes(&mut self, source: &Source) -> Vec<usize> {
        let mut pending: Vec<usize> = (0..source.include.len()).collect();
        let mut stack: Vec<(PathBuf, Vec<String>)> = vec![(source.path.clone(), Vec::new())];
        while let Some((dir, parts)) = stack.pop() {
            let Some(entries) = self.list(&dir) else {
                break;
            };
            for (name, is_dir) in entries {
                let mut path = parts.clone();
                path.push(name);
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                if is_dir {
                    if pending
                        .iter()
                        .any(|&j| source.include[j].may_match_below(&refs))
                    {
                        stack.push((dir.join(&path[path.len() - 1]), path));
                    }
                } else if !source.exclude.iter().any(|p| p.matches(&refs)) {
                    pending.retain(|&j| !source.include[j].matches(&refs));
                    if pending.is_empty() {
                        return pending;
                    }
                }
            }
        }
        pending
    }

    /// Add the tenants found in `source` to `found`; false when the source
    /// could not be listed completely.
    fn tenants(&mut self, source: &Source, found: &mut BTreeSet<String>) -> bool {
        let depth = match &source.tenant {
            TenantRule::Fixed(name) => {
                found.insert(name.clone());
                return true;
            }
            TenantRule::None => return true,
            TenantRule::Component(n) => *n,
        };
        if !source.path.is_dir() {
            return false;
        }
        let mut frontier = vec![source.path.clone()];
        for level in 1..=depth {
            let mut next = Vec::new();
            for dir in &frontier {
                let Some(entries) = self.list(dir) else {
                    return false;
                };
                for (name, _) in entries.into_iter().filter(|(_, is_dir)| *is_dir) {
                    if level == depth {
                        found.insert(name);
                    } else {
                        next.push(dir.join(name));
                    }
                }
            }
            frontier = next;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, extra: &str) -> Config {
        Config::parse(&format!(
            "source_region = \"eu-north-1\"\n[repository]\nurl = \"file:///nonexistent\"\nregion = \"eu-central-1\"\n[[source]]\nname = \"voice\"\nclass = \"voice\"\npath = {:?}\n{extra}",
            dir.to_str().unwrap()
        ))
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-29T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_walk_past_its_limit_is_not_verified_and_one_within_it_is() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
        }
        let c = config(dir.path(), "include = [\"nope/**\"]\n");
        let capped = lint_bounded(&c, now(), 10);
        assert_eq!(capped.len(), 1, "{capped:?}");
        assert_eq!(capped[0].key, "source[0].include[0]");
        assert!(!capped[0].verified);
        let full = lint_bounded(&c, now(), 100);
        assert_eq!(full.len(), 1, "{full:?}");
        assert!(full[0].verified && full[0].message.contains("matches nothing"));
    }

    #[test]
    fn a_tenant_listing_past_its_limit_names_no_tenant() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..20 {
            std::fs::create_dir(dir.path().join(format!("t{i}"))).unwrap();
        }
        let c = config(
            dir.path(),
            "[contracts.tenants.t1]\nvoice_retention_days = 30\n[contracts.tenants.acme]\nvoice_retention_days = 30\n",
        );
        let capped = lint_bounded(&c, now(), 10);
        assert_eq!(capped.len(), 1, "{capped:?}");
        assert_eq!(capped[0].key, "contracts.tenants");
        assert!(!capped[0].verified);
        let full = lint_bounded(&c, now(), 100);
        let keys: Vec<&str> = full.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["contracts.tenants.acme"]);
    }
}
