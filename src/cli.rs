//! The operator's command line: argument parsing and output formatting.
//!
//! Each command loads the config, opens the repository and calls one
//! operation from [`crate::ops`]; this module only decides what is printed.
//! Human-readable text by default, `--json` for machines.

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ops::{check, rebuild_index, restore, snapshot};
use crate::repo::Repository;

/// offsite: snapshots to another region, retention by contract, restore tests.
#[derive(Parser, Debug)]
#[command(name = "offsite", version, about)]
pub struct Cli {
    /// Config file (default: ./offsite.toml, then /etc/offsite/offsite.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the repository named in the config (refuses if one exists).
    Init,
    /// Validate the config and print it with defaults filled in.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Snapshot all sources, or one.
    Snapshot {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Record the snapshot as taken at this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        time: Option<DateTime<Utc>>,
    },
    /// List snapshots, newest first.
    Snapshots {
        #[arg(long)]
        source: Option<String>,
        /// Another host's snapshots (default: this host's; `all` for every host).
        #[arg(long)]
        host: Option<String>,
    },
    /// Restore one item (a file path relative to its source).
    Restore {
        #[arg(long, value_name = "PATH")]
        item: String,
        #[arg(long)]
        source: Option<String>,
        /// Snapshot id (or a unique prefix) or `latest`; default: the newest snapshot holding the item.
        #[arg(long)]
        snapshot: Option<String>,
        /// Restore from another host's snapshots.
        #[arg(long)]
        host: Option<String>,
        /// Directory to restore into; the item keeps its path below it.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        overwrite: bool,
        /// Why (recorded with the restore).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Rewrite the index from the packs' own headers.
    RebuildIndex,
    /// Verify the repository; never deletes anything.
    Check {
        /// Read back and verify every byte of every snapshot.
        #[arg(long)]
        read_data: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the config and print the effective settings.
    Check,
}

fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-11-27T02:00:00Z: {e}"))
}

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
    println!(
        "{}",
        serde_json::to_string(value).expect("output serializes")
    );
}

/// Bytes for people: 1.23 GiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Run one parsed command.
pub fn run(cli: Cli) -> Result<i32> {
    let config_path = Config::locate(cli.config.as_deref())?;
    let config = Config::load(&config_path)?;
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => {
            if cli.json {
                print_json(&config.effective);
            } else {
                let text = toml::to_string(&config.effective)
                    .map_err(|e| Error::config("file", e.to_string()))?;
                println!("# {}: valid\n{text}", config_path.display());
            }
            Ok(0)
        }
        Command::Init => {
            let repo = Repository::init(&config.repository)?;
            if cli.json {
                print_json(
                    &serde_json::json!({"repository": repo.store.describe(), "id": repo.config.id}),
                );
            } else {
                println!(
                    "created repository {} at {}",
                    repo.config.id.short(),
                    repo.store.describe()
                );
            }
            Ok(0)
        }
        Command::Snapshot { source, time } => {
            let repo = Repository::open(&config.repository)?;
            let time = crate::snapshot::truncate_to_millis(time.unwrap_or_else(Utc::now));
            let mut failures = 0;
            for src in config.selected_sources(source.as_deref())? {
                match snapshot::snapshot_source(&repo, &config.host, src, time) {
                    Ok(report) if cli.json => print_json(&report),
                    Ok(r) => {
                        let s = &r.summary;
                        println!(
                            "snapshot {} of {} (host {}) at {}",
                            r.id.short(),
                            r.source,
                            r.host,
                            r.time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
                        );
                        println!(
                            "  items {} (new {}, changed {}, unchanged {}), dirs {}, {}",
                            s.items,
                            s.files_new,
                            s.files_changed,
                            s.files_unchanged,
                            s.dirs,
                            human_bytes(s.bytes)
                        );
                        println!(
                            "  read {}, added {} to the repository, {} warnings, {:.2} s",
                            human_bytes(s.bytes_read),
                            human_bytes(s.bytes_added),
                            s.warnings,
                            s.duration_seconds
                        );
                        for w in &s.warning_samples {
                            println!("  warning: {w}");
                        }
                    }
                    Err(e) if config.sources.len() > 1 && source.is_none() => {
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
            let refs = repo.list_snapshots(host.as_deref(), source.as_deref())?;
            let mut rows = Vec::new();
            for r in &refs {
                let snap = repo.load_snapshot(r)?;
                rows.push(serde_json::json!({
                    "id": r.id, "time": snap.time.to_rfc3339_opts(SecondsFormat::AutoSi, true), "source": snap.source, "host": snap.host,
                    "class": snap.class, "items": snap.summary.items, "bytes": snap.summary.bytes,
                    "bytes_added": snap.summary.bytes_added, "parent": snap.parent,
                }));
            }
            if cli.json {
                print_json(&rows);
            } else {
                println!(
                    "{:<10} {:<24} {:<16} {:<16} {:>9} {:>12}",
                    "id", "time", "host", "source", "items", "size"
                );
                for (r, row) in refs.iter().zip(&rows) {
                    println!(
                        "{:<10} {:<24} {:<16} {:<16} {:>9} {:>12}",
                        r.id.short(),
                        row["time"].as_str().unwrap_or(""),
                        r.host,
                        r.source,
                        row["items"].as_u64().unwrap_or(0),
                        human_bytes(row["bytes"].as_u64().unwrap_or(0))
                    );
                }
                println!("{} snapshots", refs.len());
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
            reason,
        } => {
            let sources: Vec<&str> = config
                .selected_sources(source.as_deref())?
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            let repo = Repository::open(&config.repository)?;
            let host = host.unwrap_or_else(|| config.host.clone());
            let found = restore::find_item(&repo, &host, &sources, &item, snapshot.as_deref())?;
            let report = restore::restore_item(&repo, &found, &to, overwrite)?;
            tracing::info!(item = %report.item, reason = reason.as_deref().unwrap_or(""), "restored");
            if cli.json {
                print_json(&report);
            } else {
                println!(
                    "restored {} from snapshot {} ({}) to {}: {}, sha256 {}",
                    report.item,
                    report.snapshot.short(),
                    report
                        .snapshot_time
                        .to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    report.written_to.display(),
                    human_bytes(report.bytes),
                    report.sha256
                );
            }
            Ok(0)
        }
        Command::RebuildIndex => {
            let repo = Repository::open(&config.repository)?;
            let report = rebuild_index::rebuild_index(&repo)?;
            if cli.json {
                print_json(&report);
            } else {
                println!(
                    "indexed {} blobs in {} packs; removed {} old index files",
                    report.blobs, report.packs, report.old_index_files_removed
                );
                for p in &report.unreadable_packs {
                    println!("unreadable: {p}");
                }
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
        Command::Check { read_data } => {
            let repo = Repository::open(&config.repository)?;
            let report = check::check(&repo, read_data)?;
            if cli.json {
                print_json(&report);
            } else {
                println!(
                    "checked {} snapshots, {} packs, {} trees, {} distinct files",
                    report.snapshots, report.packs, report.trees, report.files
                );
                if read_data {
                    println!(
                        "read back {} files, {}",
                        report.files_verified,
                        human_bytes(report.bytes_verified)
                    );
                }
                for p in &report.problems {
                    println!("problem: {p}");
                }
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
