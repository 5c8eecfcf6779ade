//! `offsite log` for people: one row per entry (time to the second, host,
//! operation, outcome, and the details that matter for that operation),
//! every name escaped. The details are read from the entry's JSON by field name, not
//! through the report types, so entries written by older and newer versions
//! (and by other hosts) print too; a field that is missing is left out.
//! `--json` prints the entries themselves instead.

use serde_json::Value;

use crate::activity::{Activity, Operation, Outcome};
use chrono::SecondsFormat;

use crate::cli::output::human_bytes;
use crate::error::Result;
use crate::escape::Escaped;

/// At most this many expired recordings are named in a prune's row.
const RECORDINGS_SHOWN: usize = 3;

/// The table, oldest first.
pub fn log(entries: &[Activity]) -> Result<()> {
    let host_width = entries
        .iter()
        .map(|e| Escaped(&e.host).to_string().chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    say!(
        "{:<20} {:<host_width$} {:<13} {:<7} details",
        "time",
        "host",
        "operation",
        "outcome"
    );
    for e in entries {
        say!(
            "{:<20} {:<host_width$} {:<13} {:<7} {}",
            e.time.to_rfc3339_opts(SecondsFormat::Secs, true),
            Escaped(&e.host).to_string(),
            Escaped(&e.operation).to_string(),
            e.outcome,
            Escaped(details(e))
        );
    }
    Ok(())
}

/// The key details of one entry, one line.
pub fn details(e: &Activity) -> String {
    let d = &e.details;
    let mut parts = match e.operation {
        Operation::Snapshot => snapshot(d),
        Operation::Restore => restore(d),
        Operation::RestoreTest => restore_test(d),
        Operation::Prune => prune(d),
        Operation::Check => check(d),
        Operation::Erase => erase(d),
        _ => Vec::new(),
    };
    match d.get("error").and_then(Value::as_str) {
        Some(error) if e.outcome == Outcome::Failed => parts.push(format!("error: {error}")),
        _ if parts.is_empty() => parts.push(compact(d)),
        _ => {}
    }
    parts.join(", ")
}

fn erase(d: &Value) -> Vec<String> {
    let mut parts = field(d, "tenant", "tenant");
    parts.extend(field(d, "selection", "items"));
    if let Some(items) = d.get("items").and_then(Value::as_array) {
        parts.push(format!("{} removed", items.len()));
    }
    parts.extend(field(d, "reason", "reason"));
    parts
}

fn snapshot(d: &Value) -> Vec<String> {
    let mut parts = field(d, "source", "source");
    if let Some(id) = text(d, "id") {
        parts.push(format!("snapshot {}", short(id)));
    }
    if let Some(items) = d.get("items").and_then(Value::as_u64) {
        parts.push(format!("{items} items"));
    }
    if let Some(added) = d.get("bytes_added").and_then(Value::as_u64) {
        parts.push(format!("added {}", human_bytes(added)));
    }
    parts
}

fn restore(d: &Value) -> Vec<String> {
    let report = d.get("restore").unwrap_or(&Value::Null);
    let mut parts = Vec::new();
    if let Some(item) = text(d, "item").or_else(|| text(report, "item")) {
        parts.push(format!("item {item}"));
    } else if let Some(request) = d.get("request") {
        for key in ["glob", "tenant"] {
            parts.extend(field(request, key, key));
        }
    }
    if let Some(files) = d.pointer("/summary/files").and_then(Value::as_u64) {
        parts.push(format!("{files} files"));
    }
    if let Some(id) = text(report, "snapshot") {
        parts.push(format!("snapshot {}", short(id)));
    }
    parts.push(match text(d, "reason") {
        Some(reason) => format!("reason {reason:?}"),
        None => "no reason given".to_string(),
    });
    if d.get("forced").and_then(Value::as_bool) == Some(true) {
        parts.push("forced".to_string());
    }
    parts
}

fn restore_test(d: &Value) -> Vec<String> {
    match (text(d, "source"), text(d, "item")) {
        (Some(source), Some(item)) => vec![format!("item {source}:{item}")],
        _ => vec!["no item to test".to_string()],
    }
}

fn prune(d: &Value) -> Vec<String> {
    let count = |key: &str| d.get(key).and_then(Value::as_u64).unwrap_or(0);
    let mut parts = vec![format!(
        "{} snapshots forgotten",
        count("snapshots_removed")
    )];
    let recordings = d.get("expired_recordings").and_then(Value::as_array);
    let expired = recordings.map_or(count("expired_items"), |r| r.len() as u64);
    parts.push(format!("{expired} recordings expired"));
    for r in recordings.into_iter().flatten().take(RECORDINGS_SHOWN) {
        parts.push(format!(
            "{} (tenant {}, expired {})",
            text(r, "path").unwrap_or("?"),
            text(r, "tenant").unwrap_or("-"),
            text(r, "expires_at").unwrap_or("?")
        ));
    }
    if expired > RECORDINGS_SHOWN as u64 && recordings.is_some() {
        parts.push(format!(
            "… {} more (--json)",
            expired - RECORDINGS_SHOWN as u64
        ));
    }
    parts.push(format!("{} packs deleted", count("packs_deleted")));
    parts.push(format!("{} freed", human_bytes(count("bytes_freed"))));
    parts
}

fn check(d: &Value) -> Vec<String> {
    let count = |key: &str| d.get(key).and_then(Value::as_u64).unwrap_or(0);
    let mut parts = vec![
        format!("{} snapshots", count("snapshots")),
        format!("{} files", count("files")),
        format!("{} problems", count("problems")),
    ];
    if d.get("read_data").and_then(Value::as_bool) == Some(true) {
        parts.push("data read back".to_string());
    }
    parts
}

/// `label value` when the entry has the text field `key`.
fn field(d: &Value, key: &str, label: &str) -> Vec<String> {
    text(d, key)
        .map(|v| format!("{label} {v}"))
        .into_iter()
        .collect()
}

fn text<'a>(d: &'a Value, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_str)
}

/// The first 8 characters of an id, as `snapshots` shows it.
fn short(id: &str) -> &str {
    id.char_indices().nth(8).map_or(id, |(at, _)| &id[..at])
}

/// Details this version has no row for: the JSON, as one line.
fn compact(d: &Value) -> String {
    match d {
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(operation: &str, outcome: Outcome, details: Value) -> Activity {
        Activity {
            time: chrono::DateTime::UNIX_EPOCH,
            host: "h1".into(),
            operation: operation.parse().unwrap(),
            outcome,
            details,
        }
    }

    #[test]
    fn each_operation_shows_its_key_details() {
        let snap =
            json!({"id": "0123456789abcdef", "source": "voice", "items": 12, "bytes_added": 2048});
        assert_eq!(
            details(&entry("snapshot", Outcome::Ok, snap)),
            "source voice, snapshot 01234567, 12 items, added 2.00 KiB"
        );
        let restore = json!({"item": "acme/a.wav", "reason": "ticket 7", "forced": true,
            "restore": {"snapshot": "fedcba9876543210"}});
        assert_eq!(
            details(&entry("restore", Outcome::Ok, restore)),
            "item acme/a.wav, snapshot fedcba98, reason \"ticket 7\", forced"
        );
        let failed =
            json!({"item": "x", "reason": null, "forced": false, "error": "item x not found"});
        assert_eq!(
            details(&entry("restore", Outcome::Failed, failed)),
            "item x, no reason given, error: item x not found"
        );
        let prune = json!({"snapshots_removed": 2, "packs_deleted": 1, "bytes_freed": 0,
            "expired_recordings": [{"path": "acme/r.wav", "tenant": "acme", "expires_at": "2026-10-07T00:00:00Z"}]});
        assert_eq!(
            details(&entry("prune", Outcome::Ok, prune)),
            "2 snapshots forgotten, 1 recordings expired, acme/r.wav (tenant acme, expired 2026-10-07T00:00:00Z), 1 packs deleted, 0 B freed"
        );
        assert_eq!(
            details(&entry("compact", Outcome::Ok, json!({"n": 1}))),
            "{\"n\":1}"
        );
    }

    #[test]
    fn an_old_prune_entry_without_the_list_still_counts() {
        let old = json!({"snapshots_removed": 0, "expired_items": 4});
        assert!(details(&entry("prune", Outcome::Ok, old)).contains("4 recordings expired"));
    }
}
