//! The operator's command line: argument parsing and output formatting.
//!
//! Each command loads the config, opens the repository and calls one
//! operation from [`crate::ops`]; this module only decides what is printed.
//! Human-readable text by default, `--json` for machines.

/// `println!` that ends the process quietly (status 141, as a shell reports a
/// reader that went away) instead of panicking when stdout is a closed pipe
/// (`offsite log | head`). SIGPIPE itself stays ignored: a network peer that
/// closes a connection must give an error to retry, not kill the agent.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

mod args;
mod output;

use chrono::Utc;
use clap::Parser;
use serde::Serialize;

pub use args::{Cli, Command, ConfigAction};
pub use output::human_bytes;

use crate::activity;
use crate::cancel::Cancel;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ops::prune::{self, PruneReport};
use crate::ops::restore_test::{self, Rng};
use crate::ops::{check, rebuild_index, repair, restore, snapshot};
use crate::repo::Repository;

/// Entry point: parse the command line and run; returns the exit code.
pub fn main() -> Result<i32> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return Ok(e.exit_code());
            }
            // One line, like every other error: clap's first line without its prefix.
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("bad command line")
                .trim_start_matches("error: ");
            return Err(Error::Usage(first.to_string()));
        }
    };
    init_logging();
    run(cli)
}

fn init_logging() {
    let level = std::env::var("OFFSITE_LOG")
        .ok()
        .and_then(|s| s.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::WARN);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn print_json<T: Serialize>(value: &T) {
    say!(
        "{}",
        serde_json::to_string(value).expect("output serializes")
    );
}

/// Record `result` of `operation` in the activity log.
fn record<T: Serialize, E: std::fmt::Display>(
    repo: &Repository,
    config: &Config,
    operation: &str,
    result: &std::result::Result<T, E>,
) {
    activity::log_result(repo, &config.host, operation, result);
}

/// Run one parsed command.
pub fn run(cli: Cli) -> Result<i32> {
    let config_path = Config::locate(cli.config.as_deref())?;
    let config = Config::load(&config_path)?;
    let now = cli.now.unwrap_or_else(Utc::now);
    let json = cli.json;
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let guard = crate::guard::check(&config)?;
            crate::guard::warn(&guard);
            if json {
                print_json(&config.effective);
            } else {
                let text = toml::to_string(&config.effective)
                    .map_err(|e| Error::config("file", e.to_string()))?;
                let how = if guard.verified {
                    "the bucket reports it"
                } else {
                    "as configured"
                };
                say!(
                    "# {}: valid; repository region {} ({how})\n{text}",
                    config_path.display(),
                    guard.region
                );
            }
            Ok(0)
        }
        Command::Init => {
            let guard = crate::guard::check(&config)?;
            let repo = Repository::init(&config.repository, SystemClock.now())?;
            crate::guard::warn(&guard);
            if json {
                print_json(
                    &serde_json::json!({"repository": repo.describe(), "id": repo.config.id}),
                );
            } else {
                say!(
                    "created repository {} at {}",
                    repo.config.id.short(),
                    repo.describe()
                );
            }
            Ok(0)
        }
        Command::Snapshot {
            source,
            time,
            reread,
        } => {
            let repo = Repository::open(&config.repository)?;
            let sources = config.selected_sources(source.as_deref())?;
            let time = crate::snapshot::truncate_to_millis(time.unwrap_or_else(Utc::now));
            let lock = repo.shared(&config.host, "snapshot", &SystemClock)?;
            let mut failures = 0;
            for src in &sources {
                let result = snapshot::snapshot_source_with(
                    &lock,
                    &config.host,
                    src,
                    &config.contracts(),
                    time,
                    &Cancel::new(),
                    snapshot::SnapshotOptions { reread },
                );
                record(&repo, &config, "snapshot", &result);
                if let Ok(report) = &result {
                    crate::problems::warn(&report.problems);
                }
                match result {
                    Ok(report) if json => print_json(&report),
                    Ok(report) => output::snapshot(&report),
                    Err(e) if sources.len() > 1 => {
                        eprintln!("offsite: error: source {}: {e}", src.name);
                        failures += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(if failures > 0 { 1 } else { 0 })
        }
        Command::Snapshots { source, host } => {
            let repo = Repository::open(&config.repository)?;
            let host = match host.as_deref() {
                Some("all") => None,
                Some(h) => Some(h.to_string()),
                None => Some(config.host.clone()),
            };
            let listing = repo.load_snapshots_tolerant(host.as_deref(), source.as_deref())?;
            let problems = listing.problems();
            crate::problems::warn(&problems);
            let rows: Vec<serde_json::Value> = listing.readable.iter().map(|(r, snap)| serde_json::json!({
                "id": r.id, "time": output::time(&snap.time), "source": snap.source, "host": snap.host,
                "class": snap.class, "items": snap.summary.items, "bytes": snap.summary.bytes,
                "bytes_added": snap.summary.bytes_added, "parent": snap.parent,
            })).collect();
            if json {
                print_json(&serde_json::json!({ "snapshots": rows, "problems": problems }));
            } else {
                output::snapshots(&rows, problems.len());
            }
            Ok(0)
        }
        Command::Restore {
            item,
            source,
            snapshot,
            host,
            to,
            overwrite,
            keep_special_bits,
            force,
            reason,
        } => {
            let sources: Vec<&str> = config
                .selected_sources(source.as_deref())?
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            let repo = Repository::open(&config.repository)?;
            let host = host.unwrap_or_else(|| config.host.clone());
            let result = restore::find_item(&repo, &host, &sources, &item, snapshot.as_deref())
                .and_then(|found| {
                    crate::problems::warn(&found.problems);
                    if !force {
                        restore::check_retention(&config, &found, now)?;
                    }
                    let options = restore::RestoreOptions {
                        overwrite,
                        keep_special_bits,
                    };
                    restore::restore_item(&repo, &found, &to, options)
                });
            let logged = result
                .as_ref()
                .map(|r| serde_json::json!({ "restore": r, "reason": reason, "forced": force }))
                .map_err(|e| format!("{e} (item {item}, reason {reason:?})"));
            record(&repo, &config, "restore", &logged);
            let report = result?;
            if json {
                print_json(&report);
            } else {
                output::restore(&report);
            }
            Ok(0)
        }
        Command::RestoreTest { source, seed } => {
            let repo = Repository::open(&config.repository)?;
            let sources = config.selected_sources(source.as_deref())?;
            let mut rng = seed.map_or_else(Rng::from_entropy, Rng::seeded);
            let report = restore_test::restore_test(&repo, &config, &sources, &mut rng);
            let details = serde_json::to_value(&report).unwrap_or_default();
            activity::log(&repo, &config.host, "restore-test", &report.result, details);
            if json {
                print_json(&report);
            } else {
                output::restore_test(&report);
            }
            match &report.error {
                None => Ok(0),
                Some(e) => Err(Error::CheckFailed(format!("restore test failed: {e}"))),
            }
        }
        Command::Run => crate::agent::run_from_cli(config),
        Command::Prune { dry_run } => {
            let repo = Repository::open(&config.repository)?;
            let result = if dry_run {
                prune::dry_run(&repo, &config, now)
            } else {
                repo.exclusive(&config.host, "prune", &SystemClock)
                    .and_then(|lock| prune::prune(&lock, &config, now, &Cancel::new()))
            };
            if !dry_run {
                record(&repo, &config, "prune", &result.as_ref().map(prune_summary));
            }
            let report = result?;
            crate::problems::warn(&report.problems);
            if json {
                print_json(&report);
            } else {
                output::prune(&report);
            }
            Ok(0)
        }
        Command::Unlock { force } => {
            let repo = Repository::open(&config.repository)?;
            let result = repo.unlock(&config.host, force, Utc::now());
            record(&repo, &config, "unlock", &result);
            let report = result?;
            if json {
                print_json(&report);
            } else {
                output::unlock(&report);
            }
            Ok(0)
        }
        Command::Log { since } => {
            let repo = Repository::open(&config.repository)?;
            let (entries, problems) = repo.read_activity_tolerant(since, None)?;
            crate::problems::warn(&problems);
            if json {
                print_json(&entries);
            } else {
                output::log(&entries);
            }
            Ok(0)
        }
        Command::RebuildIndex => {
            let repo = Repository::open(&config.repository)?;
            let lock = repo.exclusive(&config.host, "rebuild-index", &SystemClock)?;
            let report = rebuild_index::rebuild_index(&lock)?;
            if json {
                print_json(&report);
            } else {
                output::rebuild(&report);
            }
            if report.unreadable_packs.is_empty() {
                Ok(0)
            } else {
                Err(Error::CheckFailed(format!(
                    "{} pack(s) unreadable; old index files kept",
                    report.unreadable_packs.len()
                )))
            }
        }
        Command::Repair => {
            let repo = Repository::open(&config.repository)?;
            let lock = repo.exclusive(&config.host, "repair", &SystemClock)?;
            let result = repair::repair(&lock);
            record(&repo, &config, "repair", &result.as_ref().map(|r| {
                serde_json::json!({"packs_checked": r.packs_checked, "quarantined": r.quarantined.len(), "damaged_snapshots": r.damaged.len()})
            }));
            let report = result?;
            if json {
                print_json(&report);
            } else {
                output::repair(&report);
            }
            Ok(0)
        }
        Command::Check { read_data } => {
            let repo = Repository::open(&config.repository)?;
            let lock = repo.shared(&config.host, "check", &SystemClock)?;
            let result = check::check(&lock, read_data);
            record(&repo, &config, "check", &result.as_ref().map(|r| {
                serde_json::json!({"read_data": read_data, "snapshots": r.snapshots, "files": r.files, "problems": r.problems.len()})
            }));
            let report = result?;
            if json {
                print_json(&report);
            } else {
                output::check(&report, read_data);
            }
            if report.problems.is_empty() {
                Ok(0)
            } else {
                Err(Error::CheckFailed(format!(
                    "check found {} problem(s); first: {}",
                    report.problems.len(),
                    report.problems[0]
                )))
            }
        }
    }
}

/// The prune's key figures for the activity log (not every decision).
fn prune_summary(r: &PruneReport) -> serde_json::Value {
    serde_json::json!({
        "now": r.now, "snapshots_removed": r.snapshots_removed, "snapshots_rewritten": r.snapshots_rewritten,
        "expired_items": r.expired_items.len(), "packs_deleted": r.packs_deleted, "packs_repacked": r.packs_repacked,
        "bytes_freed": r.bytes_freed, "log_entries_deleted": r.log_entries_deleted,
        "problems": r.problems, "sweep_held_back": r.sweep_held_back,
    })
}
