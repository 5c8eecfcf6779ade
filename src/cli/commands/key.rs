//! `offsite key add|list|remove|export|recover`: the copies of the
//! repository key an operator keeps (see [`crate::repo::envelopes`] and
//! [`crate::keyfile`]). Nothing here prints a key or a passphrase; a
//! passphrase comes from a file (`-`: standard input) or, on a terminal,
//! from a prompt with echo off.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use zeroize::Zeroizing;

use super::Invocation;
use crate::activity::{self, Activity, Operation, Outcome};
use crate::cli::args::{KeyAction, KeyAddArgs, KeyExportArgs, KeyRecoverArgs, KeyRemoveArgs};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::escape::escaped;
use crate::keyfile::{self, KeyFile};
use crate::repo::Repository;

/// Shorter passphrases are refused for new envelopes.
const MIN_PASSPHRASE: usize = 8;
/// A label is a note, not a document (and everyone who reads the bucket reads it).
const MAX_LABEL: usize = 200;

pub(in crate::cli) fn key(inv: &Invocation, action: &KeyAction) -> Result<i32> {
    match action {
        KeyAction::Add(args) => add(inv, args),
        KeyAction::List => list(inv),
        KeyAction::Remove(args) => remove(inv, args),
        KeyAction::Export(args) => export(inv, args),
        KeyAction::Recover(args) => recover(inv, args),
    }
}

fn add(inv: &Invocation, args: &KeyAddArgs) -> Result<i32> {
    if args.label.len() > MAX_LABEL {
        return Err(Error::Usage(format!(
            "--label: at most {MAX_LABEL} bytes (it is stored readable in the bucket)"
        )));
    }
    let repo = inv.open()?;
    let phrase = match &args.passphrase_file {
        Some(file) => keyfile::read_passphrase(file)?,
        None => prompt_new()?,
    };
    if phrase.len() < MIN_PASSPHRASE {
        return Err(Error::Usage(format!(
            "a recovery passphrase needs at least {MIN_PASSPHRASE} characters"
        )));
    }
    let id = repo.add_envelope(&phrase, &args.label, SystemClock.now())?;
    let epoch = repo.keys().master().epoch;
    record(
        inv,
        &repo,
        serde_json::json!({"action": "add", "id": id, "label": args.label, "epoch": epoch}),
    );
    if inv.json {
        inv.print_json(&serde_json::json!({"id": id, "label": args.label, "epoch": epoch}))?;
    } else {
        say!(
            "added key envelope {id} (epoch {epoch}): this passphrase now opens the repository \
             (`offsite key recover`); keep it off this host"
        );
    }
    Ok(0)
}

fn list(inv: &Invocation) -> Result<i32> {
    let repo = inv.open()?;
    let path = keyfile::path(&inv.config);
    let file_epoch = KeyFile::load(&path).ok().map(|f| f.master.epoch);
    let current = repo.keys().master().epoch;
    let envelopes = repo.envelopes()?;
    if inv.json {
        let listed: Vec<serde_json::Value> = envelopes
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id,
                    "label": e.info.label,
                    "created": e.info.created,
                    "epoch": e.info.epoch,
                    "stale": e.info.epoch < current,
                })
            })
            .collect();
        inv.print_json(&serde_json::json!({
            "key_file": {"path": path, "epoch": file_epoch},
            "epoch": current,
            "envelopes": listed,
        }))?;
        return Ok(0);
    }
    match file_epoch {
        Some(e) => say!("key file {} (epoch {e})", path.display()),
        None => say!(
            "key file {}: missing (opened through a passphrase envelope)",
            path.display()
        ),
    }
    say!(
        "current key: epoch {current}; {} envelope(s)",
        envelopes.len()
    );
    for e in &envelopes {
        let stale = if e.info.epoch < current {
            "  stale: opens nothing since the last erase"
        } else {
            ""
        };
        say!(
            "{}  epoch {}  {}  label {:?}{stale}",
            e.id,
            e.info.epoch,
            e.info.created.format("%Y-%m-%d %H:%M:%S UTC"),
            escaped(&e.info.label)
        );
    }
    Ok(0)
}

fn remove(inv: &Invocation, args: &KeyRemoveArgs) -> Result<i32> {
    let repo = inv.open()?;
    repo.remove_envelope(&args.id)?;
    record(
        inv,
        &repo,
        serde_json::json!({"action": "remove", "id": args.id}),
    );
    let current = repo.keys().master().epoch;
    let left = repo
        .envelopes()?
        .iter()
        .filter(|e| e.info.epoch == current)
        .count();
    if left == 0 {
        tracing::warn!(
            "no passphrase envelope of the current key is left: the key file is now the only way \
             to read the backups"
        );
    }
    if inv.json {
        inv.print_json(&serde_json::json!({"removed": args.id, "envelopes_left": left}))?;
    } else {
        say!(
            "removed key envelope {} ({left} left). A key file copied with `offsite key export` \
             is not revoked by this: only rotating the key (as `offsite erase --tenant` does) \
             revokes copies",
            escaped(&args.id)
        );
    }
    Ok(0)
}

fn export(inv: &Invocation, args: &KeyExportArgs) -> Result<i32> {
    let repo = inv.open()?;
    let copy = KeyFile {
        repository: Some(repo.config.id),
        master: repo.keys().master().clone(),
    };
    copy.store_new(&args.file)?;
    record(
        inv,
        &repo,
        serde_json::json!({"action": "export", "file": args.file, "epoch": copy.master.epoch}),
    );
    if inv.json {
        inv.print_json(&serde_json::json!({"file": args.file, "epoch": copy.master.epoch}))?;
    } else {
        say!(
            "wrote a copy of the key (epoch {}) to {} (mode 0600): whoever has it reads every \
             backup; it can only be revoked by rotating the key",
            copy.master.epoch,
            args.file.display()
        );
    }
    Ok(0)
}

fn recover(inv: &Invocation, args: &KeyRecoverArgs) -> Result<i32> {
    let path = keyfile::path(&inv.config);
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(Error::AlreadyExists {
            what: format!(
                "key file {} exists already: `key recover` only writes a missing key file \
                 (nothing was changed)",
                path.display()
            ),
        });
    }
    let phrase = match &args.passphrase_file {
        Some(file) => keyfile::read_passphrase(file)?,
        None => prompt("passphrase: ")?,
    };
    let repo = Repository::open_with_passphrase(&inv.config.repository, &phrase)?;
    let file = KeyFile {
        repository: Some(repo.config.id),
        master: repo.keys().master().clone(),
    };
    file.store_new(&path)?;
    record(
        inv,
        &repo,
        serde_json::json!({"action": "recover", "key_file": path, "epoch": file.master.epoch}),
    );
    if inv.json {
        inv.print_json(&serde_json::json!({"key_file": path, "epoch": file.master.epoch}))?;
    } else {
        say!(
            "recovered the key of repository {} (epoch {}) into {}",
            repo.config.id.short(),
            file.master.epoch,
            path.display()
        );
    }
    Ok(0)
}

/// Log a change to the key's copies (what and where, never a secret).
fn record(inv: &Invocation, repo: &Repository, details: serde_json::Value) {
    let entry = Activity {
        time: SystemClock.now(),
        host: inv.config.host.clone(),
        operation: Operation::Key,
        outcome: Outcome::Ok,
        details,
    };
    activity::log(repo, &entry);
}

/// A new passphrase, typed twice on the terminal.
fn prompt_new() -> Result<Zeroizing<Vec<u8>>> {
    let first = prompt("new passphrase: ")?;
    let second = prompt("the same passphrase again: ")?;
    if first != second {
        return Err(Error::Usage("the two passphrases differ".into()));
    }
    Ok(first)
}

/// One line typed on the controlling terminal with echo off.
fn prompt(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "no terminal to ask for the passphrase on: give --passphrase-file FILE (`-`: stdin)"
                .into(),
        ));
    }
    let tty_path = Path::new("/dev/tty");
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tty_path)
        .map_err(|e| Error::io(tty_path, e))?;
    let termios_err = |e: rustix::io::Errno| Error::io(tty_path, std::io::Error::from(e));
    let saved = rustix::termios::tcgetattr(&tty).map_err(termios_err)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &quiet)
        .map_err(termios_err)?;
    let mut line = Zeroizing::new(String::new());
    let read = (&tty)
        .write_all(text.as_bytes())
        .and_then(|()| std::io::BufReader::new(&tty).read_line(&mut line));
    let restored = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &saved);
    let _ = (&tty).write_all(b"\n");
    read.map_err(|e| Error::io(tty_path, e))?;
    restored.map_err(termios_err)?;
    let phrase = line.trim_end_matches(['\n', '\r']);
    if phrase.is_empty() {
        return Err(Error::Key("no passphrase was typed".into()));
    }
    Ok(Zeroizing::new(phrase.as_bytes().to_vec()))
}
