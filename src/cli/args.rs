//! The command line's shape (clap derive): every command and flag, with the
//! help text operators see.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};

use crate::operation::Operation;

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
    /// No progress line on the terminal (reports and errors are still printed).
    #[arg(long, short, global = true)]
    pub quiet: bool,
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
    Snapshot(SnapshotArgs),
    /// List snapshots, newest first.
    Snapshots(SnapshotsArgs),
    /// Restore one item (a file path relative to its source).
    Restore(RestoreArgs),
    /// Restore one random item to a temporary place, verify it, remove it.
    RestoreTest(RestoreTestArgs),
    /// Run the agent: scheduled snapshots, prune and restore tests, metrics.
    Run,
    /// Apply retention: forget snapshots, drop expired voice items, reclaim space.
    Prune(PruneArgs),
    /// Remove stale repository locks (logged); `--force` removes every lock.
    Unlock(UnlockArgs),
    /// Show the activity log as a table (`--json`: the entries).
    Log(LogArgs),
    /// Rewrite the index from the packs' own headers.
    RebuildIndex,
    /// Read every pack, quarantine damaged ones, rebuild the index, report what each snapshot lost.
    Repair,
    /// Verify the repository; never deletes anything.
    Check(CheckArgs),
}

/// The time retention and expiry are judged at, for planning and tests.
#[derive(Args, Debug)]
pub struct RetentionTime {
    /// Evaluate retention and expiry as if it were this time (RFC 3339).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Record the snapshot as taken at this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub time: Option<DateTime<Utc>>,
    /// Read every file again, even when its size, mtime and inode are unchanged.
    #[arg(long)]
    pub reread: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only this source's snapshots.
    #[arg(long)]
    pub source: Option<String>,
    /// Another host's snapshots (default: this host's; `all` for every host).
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The item's path relative to its source.
    #[arg(long, value_name = "PATH")]
    pub item: String,
    /// Only look in this source (default: every source).
    #[arg(long)]
    pub source: Option<String>,
    /// Snapshot id (or a unique prefix) or `latest`; default: the newest snapshot holding the item.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Restore from another host's snapshots.
    #[arg(long)]
    pub host: Option<String>,
    /// Directory to restore into; the item keeps its path below it.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub overwrite: bool,
    /// Restore setuid, setgid and sticky bits too (stripped by default).
    #[arg(long)]
    pub keep_special_bits: bool,
    /// Restore an item past the platform's data retention or its voice contract.
    #[arg(long)]
    pub force: bool,
    /// Why (recorded in the activity log).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub at: RetentionTime,
}

#[derive(Args, Debug)]
pub struct RestoreTestArgs {
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Reproduce a previous choice: the same seed over the same snapshots picks the same item.
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Print the plan (every snapshot with its reasons) without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub at: RetentionTime,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Also remove live-looking locks: only when their holders are known to be gone.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// First day to show (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<NaiveDate>,
    /// Only entries of this operation (snapshot, prune, restore, restore-test, check, …).
    #[arg(long, value_name = "OP", value_parser = parse_operation)]
    pub operation: Option<Operation>,
    /// Only entries written by this host.
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Read back and verify every byte of every snapshot.
    #[arg(long)]
    pub read_data: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the config and print the effective settings.
    Check,
}

fn parse_operation(s: &str) -> std::result::Result<Operation, String> {
    Operation::KNOWN
        .into_iter()
        .find(|op| op.as_str() == s)
        .ok_or_else(|| {
            let known: Vec<&str> = Operation::KNOWN.iter().map(Operation::as_str).collect();
            format!("{s:?} is not an operation; one of: {}", known.join(", "))
        })
}

fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-11-27T02:00:00Z: {e}"))
}
