//! The command line's shape (clap derive): every command and flag, with the
//! help text operators see.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand};

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
    /// Restore a file, a directory, a glob, a tenant or a whole source.
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
    /// List a snapshot's tree (default: the newest snapshot of this host).
    Ls(LsArgs),
    /// Find items by glob across snapshots, sources and hosts, with the arguments to restore them.
    Find(FindArgs),
    /// Items, logical bytes and stored bytes per source and per tenant, over every kept snapshot.
    Stats,
    /// Erase a tenant (its key is destroyed) or items from every snapshot of every host.
    Erase(EraseArgs),
    /// Manage the repository key: passphrase envelopes, exported copies, recovery.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
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
#[command(group(ArgGroup::new("what").args(["item", "glob"]).multiple(false)))]
pub struct RestoreArgs {
    /// A file or a directory (everything below it), relative to its source; a trailing `/` means a directory.
    #[arg(long, value_name = "PATH")]
    pub item: Option<String>,
    /// Every file whose path (relative to its source) matches, e.g. 'acme/voice/2026/10/07/**'.
    #[arg(long, value_name = "PATTERN")]
    pub glob: Option<String>,
    /// Only this tenant's files; without --item or --glob, the whole tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only look in this source (default: every source); alone, restore the whole source.
    #[arg(long)]
    pub source: Option<String>,
    /// Snapshot id (or a unique prefix) or `latest`; default: the newest snapshot holding what is asked for.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Restore from another host's snapshots.
    #[arg(long)]
    pub host: Option<String>,
    /// Directory to restore into; items keep their path below it.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Replace existing files (without it they are kept, and the restore ends with exit 1).
    #[arg(long)]
    pub overwrite: bool,
    /// Restore setuid, setgid and sticky bits too (stripped by default).
    #[arg(long)]
    pub keep_special_bits: bool,
    /// Restore items past the platform's data retention or their voice contract.
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
    /// Really delete as if it were --now (for tests and simulations).
    #[arg(long, requires = "now")]
    pub really_at_now: bool,
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
    /// Read every pack once and verify every blob it holds (decrypt,
    /// decompress, re-id), on several threads.
    #[arg(long)]
    pub read_data: bool,
    /// Like --read-data, for a part of the packs: n/m (the packs whose id is
    /// n-1 modulo m; 1/7 … 7/7 on the days of a week cover every pack) or P%
    /// (a random P %, its seed printed).
    #[arg(long, value_name = "n/m|P%")]
    pub read_data_subset: Option<String>,
    /// Judge Object Lock dates as of this time (retention decides them).
    #[command(flatten)]
    pub at: RetentionTime,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id (or a unique prefix) or `latest`; default: the newest. Alone, an argument that names no snapshot is the PATH.
    pub snapshot: Option<String>,
    /// A directory or file below the source (default: its root).
    pub path: Option<String>,
    /// Only this source's snapshots.
    #[arg(long)]
    pub source: Option<String>,
    /// Another host's snapshots (default: this host's; `all` for every host).
    #[arg(long)]
    pub host: Option<String>,
    /// List everything below the path, not only its entries.
    #[arg(long, short = 'r')]
    pub recursive: bool,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Glob on the item path relative to its source: `*` within a name, `**` any depth.
    #[arg(required_unless_present = "history")]
    pub pattern: Option<String>,
    /// Show which snapshots hold which versions of this one item instead.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["pattern", "tenant", "newer", "older", "deleted"])]
    pub history: Option<String>,
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Another host's snapshots (default: this host's; `all` for every host).
    #[arg(long)]
    pub host: Option<String>,
    /// Only items of this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only items modified at or after DATE (YYYY-MM-DD, UTC midnight, or RFC 3339).
    #[arg(long, value_parser = parse_date_or_time, value_name = "DATE")]
    pub newer: Option<DateTime<Utc>>,
    /// Only items modified before DATE (YYYY-MM-DD, UTC midnight, or RFC 3339).
    #[arg(long, value_parser = parse_date_or_time, value_name = "DATE")]
    pub older: Option<DateTime<Utc>>,
    /// Only items an older snapshot holds that are gone from the newest (or only carried there).
    #[arg(long)]
    pub deleted: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").args(["tenant", "item", "glob"]).required(true).multiple(false)))]
pub struct EraseArgs {
    /// Destroy this tenant's key: none of its items can be read again; the next prune removes them.
    #[arg(long)]
    pub tenant: Option<String>,
    /// A file or a directory (everything below it), relative to its source.
    #[arg(long, value_name = "PATH")]
    pub item: Option<String>,
    /// Every file whose path (relative to its source) matches, e.g. '*/contacts/list-*.csv'.
    #[arg(long, value_name = "PATTERN")]
    pub glob: Option<String>,
    /// Only this source's snapshots (default: every source).
    #[arg(long, conflicts_with = "tenant")]
    pub source: Option<String>,
    /// Only this host's snapshots (default: `all`, every host).
    #[arg(long, conflicts_with = "tenant")]
    pub host: Option<String>,
    /// Why (recorded in the activity log, and shown when an erased tenant's item is asked for).
    #[arg(long, required = true)]
    pub reason: String,
    /// List exactly what would be removed, change nothing.
    #[arg(long, conflicts_with = "tenant")]
    pub dry_run: bool,
    /// Really do it (nothing is erased without it).
    #[arg(long, conflicts_with = "dry_run")]
    pub yes: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the config, warn about misconfigurations, print the effective settings.
    Check(ConfigCheckArgs),
}

#[derive(Args, Debug)]
pub struct ConfigCheckArgs {
    /// Fail (exit 2) when there is any misconfiguration warning.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// Add a passphrase envelope of the key to the repository (a recovery copy).
    Add(KeyAddArgs),
    /// Show the key file and every passphrase envelope.
    List,
    /// Delete a passphrase envelope.
    Remove(KeyRemoveArgs),
    /// Write a copy of the key file (mode 0600) for another host or a safe.
    Export(KeyExportArgs),
    /// Write the missing key file from a passphrase envelope (a rebuilt host).
    Recover(KeyRecoverArgs),
}

#[derive(Args, Debug)]
pub struct KeyAddArgs {
    /// Read the passphrase from the first line of FILE (`-`: standard input); default: prompt on the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// A note shown by `key list`; NOT secret (stored readable in the bucket).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub label: String,
}

#[derive(Args, Debug)]
pub struct KeyRemoveArgs {
    /// The envelope's id, as `offsite key list` shows it.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct KeyExportArgs {
    /// Where to write the copy (refused if it exists).
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct KeyRecoverArgs {
    /// Read the passphrase from the first line of FILE (`-`: standard input); default: prompt on the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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

fn parse_date_or_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "{s:?} is not a date like 2026-10-07 or an RFC 3339 time like 2026-10-07T12:00:00Z"
            )
        })
}
