//! The operator's command line: argument parsing and output formatting.
//!
//! Each command loads the config, opens the repository and calls one job
//! from [`crate::jobs`] (which locks, runs the operation and logs it, the
//! same as the agent's jobs); this module only decides what is printed and
//! the exit code. Human-readable text by default, `--json` for machines.
//! Commands run on the system clock; `--now` moves only the time retention
//! and expiry are judged at (see [`crate::jobs`]).

/// `println!` that returns (with `?`) [`Error::Stdout`] instead of panicking
/// when stdout cannot be written, e.g. a closed pipe (`offsite log | head`).
/// The error travels up like any other, so locks are released on the way,
/// and `main` ends the process quietly with status 141, as a shell reports a
/// reader that went away. SIGPIPE itself stays ignored: a network peer that
/// closes a connection must give an error to retry, not kill the agent.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
            .map_err(|source| $crate::error::Error::Stdout { source })?;
    }};
}

mod args;
mod output;

use chrono::{DateTime, Utc};
use clap::Parser;
use serde::Serialize;

pub use args::{Cli, Command, ConfigAction};
pub use output::human_bytes;

use crate::cancel::Cancel;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jobs::{self, JobContext, RestoreRequest};
use crate::ops::restore::RestoreOptions;
use crate::ops::restore_test::Rng;
use crate::ops::snapshot::SnapshotOptions;
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

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    say!(
        "{}",
        serde_json::to_string(value).expect("output serializes")
    );
    Ok(())
}

/// The context of a one-shot command: the system clock, retention judged
/// at `--now` when given, never cancelled, no metrics (see [`crate::jobs`]).
fn context<'a>(
    repo: &'a Repository,
    config: &'a Config,
    as_of: Option<DateTime<Utc>>,
) -> JobContext<'a> {
    JobContext {
        repo,
        config,
        clock: &SystemClock,
        as_of,
        cancel: Cancel::new(),
        metrics: None,
    }
}

/// Run one parsed command.
pub fn run(cli: Cli) -> Result<i32> {
    let config_path = Config::locate(cli.config.as_deref())?;
    let config = Config::load(&config_path)?;
    let as_of = cli.now;
    let json = cli.json;
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let guard = crate::guard::check(&config)?;
            crate::guard::warn(&guard);
            if json {
                print_json(&config.effective)?;
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
                )?;
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
            let several = sources.len() > 1;
            let mut failures = 0;
            let options = SnapshotOptions { reread };
            let ctx = context(&repo, &config, as_of);
            jobs::snapshot(&ctx, &sources, time, options, &mut |src, result| {
                if let Ok(report) = &result {
                    crate::problems::warn(&report.problems);
                }
                match result {
                    Ok(report) if json => print_json(&report),
                    Ok(report) => output::snapshot(&report),
                    Err(e) if several => {
                        eprintln!("offsite: error: source {}: {e}", src.name);
                        failures += 1;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            })?;
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
                print_json(&serde_json::json!({ "snapshots": rows, "problems": problems }))?;
            } else {
                output::snapshots(&rows, problems.len())?;
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
            let request = RestoreRequest {
                item: &item,
                sources,
                snapshot: snapshot.as_deref(),
                host: &host,
                to,
                options: RestoreOptions {
                    overwrite,
                    keep_special_bits,
                },
                force,
                reason,
            };
            let report = jobs::restore(&context(&repo, &config, as_of), &request)?;
            if json {
                print_json(&report)?;
            } else {
                output::restore(&report)?;
            }
            Ok(0)
        }
        Command::RestoreTest { source, seed } => {
            let repo = Repository::open(&config.repository)?;
            let sources = config.selected_sources(source.as_deref())?;
            let mut rng = seed.map_or_else(Rng::from_entropy, Rng::seeded);
            let ctx = context(&repo, &config, as_of);
            let report = jobs::restore_test(&ctx, &sources, &mut rng);
            if json {
                print_json(&report)?;
            } else {
                output::restore_test(&report)?;
            }
            report.failure().map_or(Ok(0), Err)
        }
        Command::Run => crate::agent::run_from_cli(config),
        Command::Prune { dry_run } => {
            let repo = Repository::open(&config.repository)?;
            let report = jobs::prune(&context(&repo, &config, as_of), dry_run)?;
            crate::problems::warn(&report.problems);
            if json {
                print_json(&report)?;
            } else {
                output::prune(&report)?;
            }
            Ok(0)
        }
        Command::Unlock { force } => {
            let repo = Repository::open(&config.repository)?;
            let report = jobs::unlock(&context(&repo, &config, as_of), force)?;
            if json {
                print_json(&report)?;
            } else {
                output::unlock(&report)?;
            }
            Ok(0)
        }
        Command::Log { since } => {
            let repo = Repository::open(&config.repository)?;
            let (entries, problems) = repo.read_activity_tolerant(since, None)?;
            crate::problems::warn(&problems);
            if json {
                print_json(&entries)?;
            } else {
                output::log(&entries)?;
            }
            Ok(0)
        }
        Command::RebuildIndex => {
            let repo = Repository::open(&config.repository)?;
            let report = jobs::rebuild_index(&context(&repo, &config, as_of))?;
            if json {
                print_json(&report)?;
            } else {
                output::rebuild(&report)?;
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
            let report = jobs::repair(&context(&repo, &config, as_of))?;
            if json {
                print_json(&report)?;
            } else {
                output::repair(&report)?;
            }
            Ok(0)
        }
        Command::Check { read_data } => {
            let repo = Repository::open(&config.repository)?;
            let report = jobs::check(&context(&repo, &config, as_of), read_data)?;
            if json {
                print_json(&report)?;
            } else {
                output::check(&report, read_data)?;
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
