//! Setting up: `config check`, `init`, and the hidden `completions` and
//! `man` that packaging runs (generated from the clap definitions, so they
//! never drift from the real command line).

use std::io::Write as _;

use super::Invocation;
use crate::cli::args::{Cli, CompletionsArgs, ConfigAction, ConfigCheckArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::lint;
use crate::error::{Error, Result};

pub(in crate::cli) fn config(inv: &Invocation, action: &ConfigAction) -> Result<i32> {
    match action {
        ConfigAction::Check(args) => config_check(inv, args),
    }
}

/// Prints the misconfiguration warnings, then the effective config (with a
/// `warnings` array under `--json`); `--strict` fails on a verified warning.
fn config_check(inv: &Invocation, args: &ConfigCheckArgs) -> Result<i32> {
    // A refusal by the region guard is the one line to fix first.
    let guard = crate::guard::check(&inv.config)?;
    let bucket_lock = crate::repo::s3_lock::verify_bucket(&inv.config)?;
    let warnings = lint::lint(&inv.config, SystemClock.now());
    lint::warn(&warnings);
    crate::guard::warn(&guard);
    let key_path = crate::keyfile::path(&inv.config);
    let key_state = crate::keyfile::describe_state(&key_path);
    if inv.json {
        let mut value = serde_json::to_value(&inv.config.effective)
            .map_err(|e| Error::config("file", e.to_string()))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("warnings".into(), serde_json::json!(warnings));
            object.insert(
                "key_file".into(),
                serde_json::json!({"path": key_path, "state": key_state}),
            );
            if let Some(b) = &bucket_lock {
                object.insert(
                    "bucket_object_lock".into(),
                    serde_json::json!({"enabled": b.enabled, "default_retention_days": b.default_days}),
                );
            }
        }
        inv.print_json(&value)?;
    } else {
        let text = toml::to_string(&inv.config.effective)
            .map_err(|e| Error::config("file", e.to_string()))?;
        let how = if guard.verified {
            "the bucket reports it"
        } else {
            "as configured"
        };
        let warned = match warnings.len() {
            0 => String::new(),
            n => format!("; {n} warning(s) on stderr"),
        };
        let lock = match &bucket_lock {
            None => String::new(),
            Some(b) => format!(
                "\n# bucket Object Lock: enabled; default retention: {}",
                b.default_days
                    .map_or_else(|| "none".to_string(), |d| format!("{d} days"))
            ),
        };
        say!(
            "# {}: valid; repository region {} ({how}){warned}{lock}\n# key file: {} ({key_state})\n{text}",
            inv.config_path.display(),
            guard.region,
            key_path.display()
        );
    }
    let verified: Vec<&lint::ConfigWarning> = warnings.iter().filter(|w| w.verified).collect();
    match verified.first() {
        Some(first) if args.strict => Err(Error::Usage(format!(
            "config check --strict: {} misconfiguration(s); first: {first}",
            verified.len()
        ))),
        _ => Ok(0),
    }
}

pub(in crate::cli) fn init(inv: &Invocation) -> Result<i32> {
    let guard = crate::guard::check(&inv.config)?;
    if let Some(b) = crate::repo::s3_lock::verify_bucket(&inv.config)? {
        tracing::info!(default_retention_days = ?b.default_days, "the bucket has Object Lock enabled");
    }
    let (repo, key) = crate::keyfile::init(&inv.config, SystemClock.now())?;
    crate::guard::warn(&guard);
    if key.created {
        tracing::warn!(
            "created the repository's key at {}: WITHOUT THIS KEY (or a recovery passphrase, \
             `offsite key add --passphrase-file FILE`) THE BACKUPS CANNOT BE READ; keep a copy \
             off this host",
            key.path.display()
        );
    }
    if inv.json {
        inv.print_json(&serde_json::json!({
            "repository": repo.describe(),
            "id": repo.config.id,
            "key_file": key.path,
            "key_created": key.created,
        }))?;
    } else {
        say!(
            "created repository {} at {}\nkey file: {} ({}); for a recovery copy: \
             offsite key add --passphrase-file FILE",
            repo.config.id.short(),
            repo.describe(),
            key.path.display(),
            if key.created {
                "created now"
            } else {
                "already there"
            }
        );
    }
    Ok(0)
}

/// `offsite completions SHELL`: the completion script on stdout.
pub(in crate::cli) fn completions(args: &CompletionsArgs) -> Result<i32> {
    let mut script = Vec::new();
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut command, "offsite", &mut script);
    write_stdout(&script)
}

/// `offsite man`: the man page (roff) on stdout.
pub(in crate::cli) fn man() -> Result<i32> {
    let mut page = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
        .render(&mut page)
        .map_err(|e| Error::io("man page", e))?;
    write_stdout(&page)
}

fn write_stdout(bytes: &[u8]) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| Error::Stdout { source })?;
    Ok(0)
}
