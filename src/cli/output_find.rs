//! Human-readable output of `ls`, `find` and `stats` (`--json` prints the
//! reports as is). Names come from the repository, which is not trusted:
//! every name is printed through [`escaped`], so a file name cannot move the
//! cursor or recolour the operator's terminal.

use chrono::{DateTime, SecondsFormat, Utc};

use super::output::human_bytes;
use crate::error::Result;
use crate::escape::escaped;
use crate::ops::find::history::HistoryReport;
use crate::ops::find::ls::LsReport;
use crate::ops::find::FindReport;
use crate::ops::stats::{StatsReport, StatsRow};

/// Restore lines shown under a `find` table at most (all with `--json`).
const RESTORE_LINES: usize = 20;

/// `s` as one shell word: as is when it is plain, else in single quotes.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./@%+=:,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", escaped(&s.replace('\'', r"'\''")))
    }
}

fn seconds(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn opt(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "-".to_string(), escaped)
}

pub fn ls(r: &LsReport) -> Result<()> {
    say!(
        "snapshot {} of {} (host {}) at {}{}",
        r.snapshot.short(),
        escaped(&r.source),
        escaped(&r.host),
        seconds(&r.time),
        if r.path.is_empty() {
            String::new()
        } else {
            format!(": {}", escaped(&r.path))
        }
    );
    say!(
        "{:<4} {:>12} {:<20} {:<5} {:<12} path",
        "type",
        "size",
        "mtime",
        "mode",
        "tenant"
    );
    for e in &r.entries {
        say!(
            "{:<4} {:>12} {:<20} {:04o}  {:<12} {}{}",
            e.kind,
            e.size.map_or_else(|| "-".to_string(), human_bytes),
            seconds(&e.mtime),
            e.mode & 0o7777,
            opt(&e.tenant),
            escaped(&e.path),
            if e.kind == "dir" { "/" } else { "" }
        );
    }
    say!("{} entries", r.entries.len());
    Ok(())
}

/// `offsite restore …` for a row: `--host` only when it is not this host.
fn restore_line(args: &[String], this_host: &str) -> String {
    let mut words = vec!["offsite restore".to_string()];
    let mut i = 0;
    while i + 1 < args.len() {
        if !(args[i] == "--host" && args[i + 1] == this_host) {
            words.push(format!("{} {}", args[i], shell_word(&args[i + 1])));
        }
        i += 2;
    }
    words.push("--to DIR".into());
    words.join(" ")
}

pub fn find(r: &FindReport, this_host: &str) -> Result<()> {
    say!(
        "{:<8} {:<20} {:<12} {:<10} {:<10} {:>10} {:<20} {:<3} path",
        "snapshot",
        "snapshot time",
        "host",
        "source",
        "tenant",
        "size",
        "mtime",
        "del"
    );
    for row in &r.rows {
        say!(
            "{:<8} {:<20} {:<12} {:<10} {:<10} {:>10} {:<20} {:<3} {}",
            row.snapshot.short(),
            seconds(&row.snapshot_time),
            escaped(&row.host),
            escaped(&row.source),
            opt(&row.item.tenant),
            human_bytes(row.item.size),
            seconds(&row.mtime),
            if row.deleted { "yes" } else { "" },
            escaped(&row.item.path)
        );
    }
    say!(
        "{} item version(s) in {} snapshot(s) ({} trees read)",
        r.rows.len(),
        r.snapshots,
        r.trees_read
    );
    if !r.rows.is_empty() {
        say!("restore with:");
    }
    for row in r.rows.iter().take(RESTORE_LINES) {
        say!("  {}", restore_line(&row.restore, this_host));
    }
    if r.rows.len() > RESTORE_LINES {
        say!(
            "  … and {} more (all with --json)",
            r.rows.len() - RESTORE_LINES
        );
    }
    Ok(())
}

pub fn history(r: &HistoryReport, this_host: &str) -> Result<()> {
    say!(
        "{} version(s) of {} in {} snapshot(s) ({} trees read)",
        r.versions.len(),
        escaped(&r.path),
        r.snapshots,
        r.trees_read
    );
    for v in &r.versions {
        say!(
            "version {} {}, mtime {}, tenant {}, host {}, source {}: {} snapshot(s)",
            &v.item.sha256.to_hex()[..12],
            human_bytes(v.item.size),
            seconds(&v.mtime),
            opt(&v.item.tenant),
            escaped(&v.host),
            escaped(&v.source),
            v.snapshots.len()
        );
        for s in &v.snapshots {
            say!("  {} {}", s.snapshot.short(), seconds(&s.time));
        }
        say!("  restore: {}", restore_line(&v.restore, this_host));
    }
    Ok(())
}

fn stats_row(name: &str, row: &StatsRow) -> Result<()> {
    let u = &row.usage;
    say!(
        "{:<24} {:>10} {:>12} {:>12} {:>6.1}%",
        name,
        u.items,
        human_bytes(u.logical_bytes),
        human_bytes(u.stored_bytes),
        u.share * 100.0
    );
    Ok(())
}

pub fn stats(r: &StatsReport) -> Result<()> {
    let header = |what: &str| {
        format!(
            "{what:<24} {:>10} {:>12} {:>12} {:>7}",
            "items", "logical", "stored", "share"
        )
    };
    say!("{}", header("source (host/source)"));
    for row in &r.sources {
        let name = format!("{}/{}", opt(&row.host), opt(&row.source));
        stats_row(&name, row)?;
    }
    say!("");
    say!("{}", header("tenant"));
    for row in &r.tenants {
        stats_row(&opt(&row.tenant), row)?;
    }
    say!("");
    say!(
        "{} snapshots; repository packs {}, of which {} referenced by no kept snapshot (pack headers, garbage for prune)",
        r.snapshots,
        human_bytes(r.repository_bytes),
        human_bytes(r.unattributed_bytes)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_when_not_plain() {
        assert_eq!(shell_word("acme/voice/x-1.opus"), "acme/voice/x-1.opus");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn restore_lines_leave_out_this_host() {
        let args = crate::ops::find::restore_args("h1", "voice", &Default::default(), "a b");
        let line = restore_line(&args, "h1");
        assert!(
            line.starts_with("offsite restore --source voice --snapshot 0000"),
            "{line}"
        );
        assert!(line.ends_with("--item 'a b' --to DIR"), "{line}");
        assert!(restore_line(&args, "h2").contains("--host h1 "));
    }
}
