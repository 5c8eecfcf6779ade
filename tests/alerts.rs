//! Acceptance: the shipped alert rules and Grafana dashboard (systemd/) are
//! right, and they ask for what the agent really exports.
//!
//! * `promtool check rules` and `promtool test rules` (the unit tests in
//!   systemd/offsite-alerts.test.yml: day one, a failed restore test, a
//!   stale source, a never-succeeded source, a failed job, an empty
//!   snapshot) pass, and every alert has a test in which it fires.
//! * A real agent on day one exports no restore-test result, every counter
//!   at 0, a last success of 0 for each source and when it first scheduled
//!   each job (unchanged by a restart); after a snapshot and a
//!   restore test, every metric name the rules and the dashboard query is in
//!   its `/metrics`, with the labels they use, and no metric has a `job` or
//!   `instance` label.
//! * The dashboard's queries are PromQL: promtool has no offline query
//!   parser (`promtool query` needs a server), so they are checked by
//!   `promtool check rules` on a rules file holding each as a recording
//!   rule (Grafana's `$instance` replaced by `.*` first).
//! * A snapshot that finds no file where its parent found many warns (its
//!   report, the activity log) and the agent reports 0 items for it.

mod common;
use common::agent::*;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run promtool; its output when it fails.
fn promtool(args: &[&str], file: &Path) {
    let out = Command::new(tool("promtool"))
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `expr` of every rule: a one-line value or a `|` block.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        if rest.trim() == "|" {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            exprs.push(block.join("\n"));
        } else {
            exprs.push(rest.trim().to_string());
        }
    }
    exprs
}

/// The names of the rules' alerts.
fn alert_names(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

/// Identifiers in a query or template: runs of `[A-Za-z0-9_:]`.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The metric names of offsite a query asks for.
fn offsite_metrics(expr: &str) -> BTreeSet<String> {
    words(expr)
        .into_iter()
        .filter(|w| w.starts_with("offsite_"))
        .map(str::to_string)
        .collect()
}

/// The label names a query or template uses: in `by (…)`, `on (…)`,
/// `without (…)`, `ignoring (…)`, matchers `{name=…}`, `$labels.name` and
/// Grafana's `{{name}}`.
fn labels_used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for keyword in [
        "by",
        "on",
        "without",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        for (i, _) in text.match_indices(keyword) {
            let before = text[..i].chars().last();
            let rest = text[i + keyword.len()..].trim_start();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(list) = rest.strip_prefix('(').and_then(|r| r.split(')').next()) {
                out.extend(words(list).into_iter().map(str::to_string));
            }
        }
    }
    for part in text.split('{').skip(1) {
        let inner = part.split('}').next().unwrap_or("");
        if inner.contains('=') {
            for matcher in inner.split(',') {
                let name = matcher.split(['=', '!']).next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.insert(name.to_string());
                }
            }
        } else if !inner.contains(' ') && !inner.trim().is_empty() {
            out.insert(inner.trim().trim_start_matches('{').to_string()); // {{name}}
        }
    }
    for part in text.split("$labels.").skip(1) {
        if let Some(name) = words(part).first() {
            out.insert(name.to_string());
        }
    }
    out
}

/// What a scrape exports: metric names and label names of its samples.
fn exported(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut names, mut labels) = (BTreeSet::new(), BTreeSet::new());
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        names.insert(name.to_string());
        if let Some(set) = line
            .split_once('{')
            .and_then(|(_, r)| r.split_once('}'))
            .map(|(set, _)| set)
        {
            for pair in set.split(',') {
                labels.insert(pair.split('=').next().unwrap().to_string());
            }
        }
    }
    (names, labels)
}

/// Every `expr` and templating query of the dashboard, with Grafana's
/// variables replaced so the text is PromQL.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out.into_iter()
        .map(|q| q.replace("$instance", ".*"))
        .collect()
}

/// The legend templates of the dashboard's queries.
fn dashboard_legends(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .filter_map(|t| t["legendFormat"].as_str().map(str::to_string))
        .collect()
}

/// YAML without its comment lines.
fn uncommented(yaml: &str) -> String {
    yaml.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap()
}

#[test]
fn shipped_rules_pass_promtool_and_every_alert_fires_in_a_unit_test() {
    promtool(
        &["check", "rules"],
        &root().join("systemd/offsite-alerts.yml"),
    );
    promtool(
        &["test", "rules"],
        &root().join("systemd/offsite-alerts.test.yml"),
    );
    let rules = read("systemd/offsite-alerts.yml");
    let tests = read("systemd/offsite-alerts.test.yml");
    let lines: Vec<&str> = tests.lines().collect();
    let names = alert_names(&rules);
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        // A block `alertname: X` whose `exp_alerts` names labels: a case where it fires.
        let fires = lines.iter().enumerate().any(|(i, l)| {
            l.trim() == format!("alertname: {name}")
                && lines[i + 1..]
                    .iter()
                    .take(3)
                    .any(|l| l.trim_start().starts_with("- exp_labels:"))
        });
        assert!(fires, "no unit test in which {name} fires");
    }
}

#[test]
fn the_rules_use_no_job_label_of_offsite() {
    let rules = uncommented(&read("systemd/offsite-alerts.yml"));
    assert!(!rules.contains("exported_job"), "the label was renamed");
    for expr in rule_exprs(&rules) {
        // `job` is the scrape target's: only in matching and in `up{job=…}`.
        for label in labels_used(&expr) {
            assert_ne!(label, "exported_job", "{expr}");
        }
    }
    assert!(rules.contains("{{ $labels.operation }}"));
}

/// The agent of `w` scraped once it answers; stopped again.
fn scrape_once(w: &World, port: u16) -> String {
    let mut agent = spawn_agent(w, &[]);
    let text = scrape(port);
    sigterm(&agent);
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(10)), Some(0));
    text
}

#[test]
fn day_one_metrics_and_every_name_the_rules_and_dashboard_query_is_exported() {
    let port = free_port();
    let w = agent_world(port, "0 0 2 * * *", "0 0 5 * * *");
    fill(&w, 2);
    w.ok(&["init"]);

    // Day one: nothing ran yet.
    let fresh = scrape_once(&w, port);
    assert_eq!(
        metric(&fresh, "offsite_restore_test_success"),
        None,
        "{fresh}"
    );
    assert_eq!(
        metric(&fresh, "offsite_restore_test_last_run_timestamp_seconds"),
        None
    );
    for zero in [
        "offsite_restore_test_runs_total{result=\"ok\"}",
        "offsite_restore_test_runs_total{result=\"failed\"}",
        "offsite_job_failures_total{operation=\"snapshot\",source=\"data\"}",
        "offsite_job_failures_total{operation=\"snapshot\",source=\"voice\"}",
        "offsite_job_failures_total{operation=\"prune\"}",
        "offsite_job_failures_total{operation=\"restore-test\"}",
        "offsite_job_consecutive_failures{operation=\"prune\"}",
        "offsite_snapshot_last_success_timestamp_seconds{source=\"data\"}",
        "offsite_snapshot_last_success_timestamp_seconds{source=\"voice\"}",
        "offsite_snapshot_stored_bytes_total{source=\"voice\"}",
        "offsite_restore_test_last_success_timestamp_seconds",
        "offsite_s3_requests_total{op=\"get\"}",
    ] {
        assert_eq!(metric(&fresh, zero), Some(0.0), "{zero} in\n{fresh}");
    }
    let started = metric(&fresh, "offsite_agent_start_timestamp_seconds").unwrap();
    assert!(started > 1.7e9, "{fresh}");
    let since =
        "offsite_job_scheduled_since_timestamp_seconds{operation=\"snapshot\",source=\"voice\"}";
    let first_scheduled = metric(&fresh, since).unwrap();
    assert!((first_scheduled - started).abs() < 60.0, "{fresh}");

    // After a snapshot and a restore test, every metric is there.
    w.ok(&["snapshot"]);
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("schedule = \"0 0 5 * * *\"", "schedule = \"* * * * * *\"");
    std::fs::write(&w.config, text).unwrap();
    let mut agent = spawn_agent(&w, &[]);
    let full = poll_until(Duration::from_secs(60), "a restore test", || {
        let text = scrape(port);
        metric(&text, "offsite_restore_test_success").map(|_| text)
    });
    sigterm(&agent);
    assert_eq!(wait_exit(&mut agent, Duration::from_secs(10)), Some(0));
    assert_eq!(
        metric(&full, "offsite_restore_test_success"),
        Some(1.0),
        "{full}"
    );
    assert!(metric(&full, "offsite_snapshot_items{source=\"data\"}").unwrap() >= 2.0);
    // A restart keeps the day-one grace where it started (the state file).
    assert_eq!(metric(&full, since), Some(first_scheduled), "{full}");
    assert!(metric(&full, "offsite_agent_start_timestamp_seconds").unwrap() >= started);

    let (names, labels) = exported(&full);
    for forbidden in ["job", "instance"] {
        assert!(
            !labels.contains(forbidden),
            "a metric labelled {forbidden}:\n{full}"
        );
    }
    let target_labels = ["job", "instance"];
    let known_label = |l: &str| labels.contains(l) || target_labels.contains(&l);

    let rules = uncommented(&read("systemd/offsite-alerts.yml"));
    let mut queried = BTreeSet::new();
    for expr in rule_exprs(&rules) {
        queried.extend(offsite_metrics(&expr));
        for l in labels_used(&expr) {
            assert!(
                known_label(&l),
                "the rules use label {l} ({expr}); exported: {labels:?}"
            );
        }
    }
    for l in labels_used(&rules) {
        assert!(
            known_label(&l),
            "the rules' annotations use label {l}; exported: {labels:?}"
        );
    }

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("systemd/offsite-dashboard.json")).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 12, "{queries:?}");
    for q in &queries {
        let asked = offsite_metrics(q);
        assert!(
            !asked.is_empty(),
            "a dashboard query without an offsite metric: {q}"
        );
        queried.extend(asked);
        for l in labels_used(q) {
            assert!(known_label(&l), "the dashboard uses label {l} ({q})");
        }
    }
    for legend in dashboard_legends(&dashboard) {
        for l in labels_used(&legend) {
            assert!(known_label(&l), "a legend uses label {l} ({legend})");
        }
    }
    let missing: Vec<_> = queried.iter().filter(|n| !names.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\n{full}"
    );

    // The dashboard's queries parse as PromQL (as recording rules; `label_values` is Grafana's).
    let dir = tempfile::tempdir().unwrap();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .enumerate()
    {
        let quoted = serde_json::to_string(q).unwrap(); // a JSON string is a YAML string
        file.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {quoted}\n"
        ));
    }
    let path: PathBuf = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, file).unwrap();
    promtool(&["check", "rules"], &path);
}

#[test]
fn an_empty_snapshot_after_a_full_one_warns_and_reports_zero_items() {
    let port = free_port();
    let w = agent_world(port, "0 0 2 * * *", "0 0 5 * * *");
    fill(&w, 1);
    for i in 0..10 {
        put(&w.src(), &format!("t0/emails/{i}.eml"), b"an e-mail");
    }
    w.ok(&["init"]);
    let full = w.json(&["snapshot", "--source", "data"]);
    assert_eq!(full["items"], 12);
    assert_eq!(full["warnings"], 0);

    // The mount of the client data vanished: the directories are empty.
    for dir in ["t0/emails", "t0/db"] {
        std::fs::remove_dir_all(w.src().join(dir)).unwrap();
        std::fs::create_dir(w.src().join(dir)).unwrap();
    }
    let empty = w.json(&["snapshot", "--source", "data"]);
    assert_eq!(empty["items"], 0);
    assert_eq!(empty["warnings"], 1, "{empty}");
    let warning = "no files now where the previous snapshot had 12";
    assert!(
        empty["warning_samples"].to_string().contains(warning),
        "{empty}"
    );
    let logged = w
        .activity()
        .into_iter()
        .rfind(|e| e["operation"] == "snapshot")
        .unwrap();
    assert!(logged["details"].to_string().contains(warning), "{logged}");

    // An empty snapshot after an empty one is not news.
    let again = w.json(&["snapshot", "--source", "data"]);
    assert_eq!(again["warnings"], 0, "{again}");

    w.ok(&["snapshot", "--source", "voice"]);
    let text = scrape_once(&w, port);
    assert_eq!(
        metric(&text, "offsite_snapshot_items{source=\"data\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "offsite_snapshot_items{source=\"voice\"}"),
        Some(1.0)
    );
}
