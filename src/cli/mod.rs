//! The operator's command line: argument parsing and output formatting.
//!
//! `args` is the command line's shape; `commands` has one function per
//! command, which loads what it needs and calls one job from [`crate::jobs`]
//! (which locks, runs the operation and logs it, the same as the agent's
//! jobs); `output` decides what is printed. Human-readable text by default,
//! `--json` for machines. Commands run on the system clock; `--now` (on the
//! commands that judge retention: `prune`, `restore`) moves only the time
//! retention and expiry are judged at (see [`crate::jobs`]).

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
mod commands;
mod logging;
mod output;
mod output_find;

use clap::Parser;

pub use args::{Cli, Command, ConfigAction};
pub use output::human_bytes;

use crate::config::Config;
use crate::error::Result;
use commands::Invocation;

/// Entry point: parse the command line and run; returns the exit code.
pub fn main() -> Result<i32> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version on stdout (exit 0); an error in full on stderr,
        // with clap's "a similar argument exists" tip and the usage (exit 2).
        Err(e) => {
            let _ = e.print();
            return Ok(e.exit_code());
        }
    };
    logging::init(matches!(cli.command, Command::Run));
    run(cli)
}

/// Run one parsed command.
pub fn run(cli: Cli) -> Result<i32> {
    // Generated from the command line's definition: no config needed.
    match &cli.command {
        Command::Completions(args) => return commands::setup::completions(args),
        Command::Man => return commands::setup::man(),
        _ => {}
    }
    let config_path = Config::locate(cli.config.as_deref())?;
    let config = Config::load(&config_path)?;
    let inv = Invocation {
        config_path,
        config,
        json: cli.json,
        quiet: cli.quiet,
    };
    match &cli.command {
        Command::Config { action } => commands::setup::config(&inv, action),
        Command::Init => commands::setup::init(&inv),
        Command::Snapshot(args) => commands::snapshot::snapshot(&inv, args),
        Command::Snapshots(args) => commands::snapshot::snapshots(&inv, args),
        Command::Restore(args) => commands::restore::restore(&inv, args),
        Command::RestoreTest(args) => commands::restore::restore_test(&inv, args),
        Command::Run => crate::agent::run_from_cli(inv.config),
        Command::Prune(args) => commands::maintenance::prune(&inv, args),
        Command::Unlock(args) => commands::maintenance::unlock(&inv, args),
        Command::Log(args) => commands::log::log(&inv, args),
        Command::RebuildIndex => commands::maintenance::rebuild_index(&inv),
        Command::Repair => commands::maintenance::repair(&inv),
        Command::Check(args) => commands::maintenance::check(&inv, args),
        Command::Ls(args) => commands::find::ls(&inv, args),
        Command::Find(args) => commands::find::find(&inv, args),
        Command::Stats => commands::find::stats(&inv),
        Command::Erase(args) => commands::erase::erase(&inv, args),
        Command::Key { action } => commands::key::key(&inv, action),
        Command::Completions(_) | Command::Man => {
            unreachable!("handled before the config is loaded")
        }
    }
}
