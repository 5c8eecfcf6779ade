//! Acceptance: a config that parses but would silently cost data is caught.
//! `config check` warns on stderr naming the key (exit 0), `--json` lists the
//! warnings, `config check --strict` fails with exit 2, and the agent prints
//! the same warnings at start. One test per misconfiguration, and a clean
//! config that `--strict` passes (so the failures mean something).

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A world with one source whose extra TOML is `source_extra`, then `trailer`.
fn world(class: &str, source_extra: &str, trailer: &str) -> World {
    World::configured("", &[("s", class, source_extra)], trailer)
}

/// Run `config check` three ways and return the warnings' keys; asserts
/// that each warning's stderr line names its key, that `--json` lists the
/// same keys, and that `--strict` exits 2 with a summary when there is one.
fn check(w: &World) -> Vec<String> {
    let plain = w.offsite(&["config", "check"]);
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    let stderr = String::from_utf8_lossy(&plain.stderr).to_string();
    let json = w.json(&["config", "check"]);
    let keys: Vec<String> = json["warnings"]
        .as_array()
        .expect("a warnings array")
        .iter()
        .map(|w| w["key"].as_str().unwrap().to_string())
        .collect();
    // The second-region guard's own warning (a local repository on the
    // source's filesystem, as every test world has) is not a lint warning.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("on the same filesystem as source"))
        .collect();
    assert_eq!(lines.len(), keys.len(), "one line per warning: {stderr}");
    for (line, key) in lines.iter().zip(&keys) {
        assert!(line.starts_with("offsite: warning: "), "{line}");
        assert!(line.contains(key.as_str()), "{line} names {key}");
    }
    let strict = w.offsite(&["config", "check", "--strict"]);
    if keys.is_empty() {
        assert_eq!(strict.status.code(), Some(0), "{strict:?}");
    } else {
        assert_eq!(strict.status.code(), Some(2), "{strict:?}");
        let err = String::from_utf8_lossy(&strict.stderr);
        let last = err.lines().last().unwrap();
        assert!(
            last.starts_with("offsite: error: config check --strict: ")
                && last.contains(&format!("{} misconfiguration(s)", keys.len())),
            "{err}"
        );
    }
    keys
}

#[test]
fn a_clean_config_has_no_warning_and_passes_strict() {
    let w = world(
        "voice",
        "include = [\"*/voice/**\"]",
        "[contracts.tenants.acme]\nvoice_retention_days = 30\n",
    );
    put(&w.src(), "acme/voice/1.opus", b"x");
    assert!(check(&w).is_empty());
}

#[test]
fn a_source_path_that_does_not_exist() {
    let w = world("client-data", "", "");
    std::fs::remove_dir_all(w.src()).unwrap();
    assert_eq!(check(&w), ["source[0].path"]);
    let err = String::from_utf8_lossy(&w.offsite(&["config", "check"]).stderr).to_string();
    assert!(
        err.contains("source \"s\" (source[0].path)") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn a_source_path_that_is_not_a_directory() {
    let w = world("client-data", "", "");
    std::fs::remove_dir_all(w.src()).unwrap();
    std::fs::write(w.src(), b"a file").unwrap();
    assert_eq!(check(&w), ["source[0].path"]);
}

#[test]
fn include_patterns_that_match_nothing() {
    let w = world("client-data", "include = [\"*/db/**\", \"*/dbb/**\"]", "");
    put(&w.src(), "acme/db/dump.sql", b"x");
    put(&w.src(), "acme/chats/1.json", b"x");
    // The first pattern matches; the typo does not.
    assert_eq!(check(&w), ["source[0].include[1]"]);
    // A pattern whose only match is excluded matches nothing either.
    let w = world(
        "client-data",
        "include = [\"*/db/**\"]\nexclude = [\"**/*.sql\"]",
        "",
    );
    put(&w.src(), "acme/db/dump.sql", b"x");
    assert_eq!(check(&w), ["source[0].include[0]"]);
}

#[test]
fn a_contract_tenant_found_under_no_voice_source() {
    let contracts = "[contracts.tenants.acme]\nvoice_retention_days = 30\n[contracts.tenants.acmee]\nvoice_retention_days = 30\n";
    let w = world("voice", "", contracts);
    put(&w.src(), "acme/voice/1.opus", b"x");
    put(&w.src(), "globex/voice/2.opus", b"x");
    assert_eq!(check(&w), ["contracts.tenants.acmee"]);
    let json = w.json(&["config", "check"]);
    let message = json["warnings"][0]["message"].as_str().unwrap();
    assert!(message.contains("\"acme\", \"globex\""), "{message}");
    // Tenants of a client-data source do not count: contracts are for voice.
    let w = world("client-data", "", contracts);
    put(&w.src(), "acme/voice/1.opus", b"x");
    put(&w.src(), "acmee/voice/1.opus", b"x");
    assert_eq!(
        check(&w),
        ["contracts.tenants.acme", "contracts.tenants.acmee"]
    );
}

#[test]
fn a_schedule_that_never_fires() {
    let w = world(
        "client-data",
        "schedule = \"0 0 2 31 2 *\"",
        "[prune]\nschedule = \"0 0 4 30 2 *\"\n",
    );
    assert_eq!(check(&w), ["prune.schedule", "source[0].schedule"]);
    let err = String::from_utf8_lossy(&w.offsite(&["config", "check"]).stderr).to_string();
    assert!(err.contains("never fires"), "{err}");
}

#[test]
fn no_source_at_all() {
    let w = World::configured("", &[], "");
    assert_eq!(check(&w), ["source"]);
}

#[test]
fn the_agent_prints_the_same_warnings_at_start() {
    let w = world(
        "client-data",
        "include = [\"*/dbb/**\"]",
        "[metrics]\nlisten = \"\"\n",
    );
    let text = std::fs::read_to_string(&w.config).unwrap();
    let state = format!("state_dir = \"{}\"\n", w.path("state").display());
    std::fs::write(&w.config, state + &text).unwrap();
    w.ok(&["init"]);
    let mut agent = Command::new(env!("CARGO_BIN_EXE_offsite"))
        .arg("--config")
        .arg(&w.config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = agent.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = poll_until(Duration::from_secs(30), "the agent's warning", || {
        rx.try_recv()
            .ok()
            .filter(|l| l.starts_with("offsite: warning: ") && !l.contains("same filesystem"))
    });
    let _ = agent.kill();
    agent.wait().unwrap();
    assert!(
        line.contains("source[0].include[0]") && line.contains("matches nothing"),
        "{line}"
    );
}

#[test]
fn regions_compare_case_insensitively_and_follow_aws_syntax() {
    let config = |source: &str, repo: &str, extra: &str| {
        offsite::config::Config::parse(&format!(
            "source_region = \"{source}\"\n[repository]\nurl = \"s3://bucket-a/x\"\nregion = \"{repo}\"\n{extra}"
        ))
    };
    let err = config("EU-Central-1", "eu-central-1", "")
        .unwrap_err()
        .to_string();
    assert!(err.contains("own region"), "{err}");
    let c = config("eu-north-1", "EU-Central-1", "").unwrap();
    assert_eq!(
        c.repository_region, "eu-central-1",
        "stored as AWS spells it"
    );
    for bad in ["eu-central1", "default", "eu central 1"] {
        let err = config("eu-north-1", bad, "").unwrap_err().to_string();
        assert!(err.contains("repository.region"), "{bad}: {err}");
    }
    let err = config("eu-north", "eu-central-1", "")
        .unwrap_err()
        .to_string();
    assert!(err.contains("source_region"), "{err}");
    // An S3-compatible cluster names its own regions (a Ceph zonegroup).
    let endpoint = "endpoint = \"http://127.0.0.1:7480\"";
    let c = config("dc-one", "default", endpoint).unwrap();
    assert_eq!(c.repository_region, "default");
    let err = config("Default", "default", endpoint)
        .unwrap_err()
        .to_string();
    assert!(err.contains("own region"), "{err}");
    assert!(config("dc-one", "zone/a", endpoint).is_err());
}
