//! Acceptance: bad input gets one clear line on stderr, a non-zero exit, and
//! nothing is written or lost.

mod common;
use common::*;

fn world_with_snapshot() -> World {
    let w = World::new();
    put(&w.src(), "acme/db/dump.sql", &Rng::new(2).text(100_000));
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    w
}

fn config_error(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = offsite_with(&path, &["config", "check"]);
    (out.status.code(), one_line_error(&out))
}

const GOOD: &str = "source_region = \"eu-north-1\"\n[repository]\nurl = \"file:///tmp/offsite-never-created\"\nregion = \"eu-central-1\"\n[[source]]\nname = \"s\"\npath = \"/srv\"\n";

#[test]
fn config_errors_name_the_key() {
    let (code, line) = config_error(&format!("colour = \"blue\"\n{GOOD}"));
    assert_eq!(code, Some(2));
    assert!(line.contains("colour"), "{line}");

    let (code, line) =
        config_error(&GOOD.replace("file:///tmp/offsite-never-created", "ftp://host/x"));
    assert_eq!(code, Some(2));
    assert!(line.contains("repository.url"), "{line}");

    let (_, line) =
        config_error(&GOOD.replace("region = \"eu-central-1\"", "region = \"eu-north-1\""));
    assert!(line.contains("another region"), "{line}");

    let (_, line) = config_error(&format!("{GOOD}retention = {{ keep_daily = 0 }}\n"));
    assert!(
        line.contains("retention") && line.contains("keeps nothing"),
        "{line}"
    );

    let (_, line) = config_error(&format!("data_retention_months = 121\n{GOOD}"));
    assert!(line.contains("data_retention_months"), "{line}");

    let (_, line) = config_error(&format!("timezone = \"Mars/Olympus\"\n{GOOD}"));
    assert!(line.contains("timezone"), "{line}");

    let (_, line) = config_error(&format!("{GOOD}include = [\"/abs/**\"]\n"));
    assert!(line.contains("include"), "{line}");
    assert!(!std::path::Path::new("/tmp/offsite-never-created").exists());
}

#[test]
fn missing_source_directory_fails_and_commits_nothing() {
    let w = World::new();
    w.ok(&["init"]);
    std::fs::remove_dir_all(w.src()).unwrap();
    let before = w.data_objects();
    let out = w.offsite(&["snapshot"]);
    let line = one_line_error(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(line.contains(w.src().to_str().unwrap()), "{line}");
    assert_eq!(w.data_objects(), before, "nothing written");
    let log = w.activity();
    assert_eq!(log.last().unwrap()["operation"], "snapshot");
    assert_eq!(
        log.last().unwrap()["outcome"],
        "failed",
        "the failure is in the activity log"
    );
}

#[test]
fn escaping_item_path_is_refused_and_nothing_written() {
    let w = world_with_snapshot();
    let to = w.path("out");
    for item in ["../../etc/passwd", "/etc/passwd", "acme/../../x"] {
        let out = w.offsite(&["restore", "--item", item, "--to", to.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{item}");
        one_line_error(&out);
    }
    assert!(!to.exists() || relative_files(&to).is_empty());
}

#[test]
fn restore_never_follows_a_symlink_out_of_the_target() {
    let w = world_with_snapshot();
    let to = w.path("out");
    let outside = w.path("outside");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, to.join("acme")).unwrap();
    let out = w.offsite(&[
        "restore",
        "--item",
        "acme/db/dump.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    let line = one_line_error(&out);
    assert!(line.contains("symlink"), "{line}");
    assert!(
        relative_files(&outside).is_empty(),
        "nothing written outside the target"
    );
}

#[test]
fn restore_onto_an_existing_file_needs_overwrite() {
    let w = world_with_snapshot();
    let to = w.path("out");
    put(&to, "acme/db/dump.sql", b"precious local edits");
    let out = w.offsite(&[
        "restore",
        "--item",
        "acme/db/dump.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    let line = one_line_error(&out);
    assert!(line.contains("--overwrite"), "{line}");
    assert_eq!(
        std::fs::read(to.join("acme/db/dump.sql")).unwrap(),
        b"precious local edits"
    );
    assert_eq!(
        relative_files(&to),
        ["acme/db/dump.sql"],
        "no temporary file left"
    );

    w.ok(&[
        "restore",
        "--item",
        "acme/db/dump.sql",
        "--to",
        to.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(
        std::fs::read(to.join("acme/db/dump.sql")).unwrap(),
        std::fs::read(w.src().join("acme/db/dump.sql")).unwrap()
    );
}

#[test]
fn unknown_item_and_bad_arguments_get_one_line() {
    let w = world_with_snapshot();
    let out = w.offsite(&[
        "restore",
        "--item",
        "acme/nope.txt",
        "--to",
        w.path("o").to_str().unwrap(),
    ]);
    assert!(one_line_error(&out).contains("not found"));
    let out = w.offsite(&["snapshot", "--time", "yesterday"]);
    assert!(usage_error(&out).contains("RFC 3339"));
    let out = w.offsite(&["snapshot", "--source", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    one_line_error(&out);
    let out = w.offsite(&["init"]);
    assert!(one_line_error(&out).contains("already exists"));
}

#[test]
fn unreadable_entries_are_warnings_and_the_snapshot_commits() {
    let w = World::new();
    put(&w.src(), "acme/chats/ok.json", b"{}");
    std::os::unix::fs::symlink("/nonexistent/target", w.src().join("acme/chats/dangling")).unwrap();
    w.ok(&["init"]);
    let r = w.json(&["snapshot"]);
    assert_eq!(r["items"], 1);
    assert_eq!(r["warnings"], 1);
    assert_eq!(
        w.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn output_into_a_closed_pipe_does_not_panic() {
    let w = world_with_snapshot();
    let cmd = format!(
        "{} --config {} config check | true",
        env!("CARGO_BIN_EXE_offsite"),
        w.config.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn clap_errors_come_in_full_with_suggestions() {
    let w = world_with_snapshot();
    let before = w.objects();
    let err = usage_error(&w.offsite(&["prune", "--dry-rn"]));
    assert!(err.contains("'--dry-rn'"), "{err}");
    assert!(
        err.contains("a similar argument exists: '--dry-run'"),
        "{err}"
    );
    assert!(err.contains("\nUsage: offsite prune"), "{err}");
    let err = usage_error(&w.offsite(&["snapshtos"]));
    assert!(err.contains("'snapshots'"), "{err}");
    // Options that mean nothing for a command are not offered there.
    let out = w.offsite(&["init", "--now", "2026-01-01T00:00:00Z"]);
    assert!(usage_error(&out).contains("'--now'"));
    assert_eq!(w.objects(), before, "nothing written");
}

/// A real prune with a future `--now` once deleted a recording before its
/// expiry; it is refused now unless `--really-at-now` says it is meant.
#[test]
fn prune_now_without_really_at_now_changes_nothing() {
    let w = World::configured(
        "",
        &[("voice", "voice", "")],
        "[contracts]\ndefault_voice_retention_days = 5\n",
    );
    put(&w.src(), "acme/voice/1.opus", &Rng::new(3).bytes(10_000));
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let future = (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339();
    let before = w.objects();
    let activity = w.activity().len();
    let out = w.offsite(&["prune", "--now", &future]);
    assert_eq!(out.status.code(), Some(2));
    let line = one_line_error(&out);
    assert!(
        line.contains("--really-at-now") && line.contains("--dry-run"),
        "{line}"
    );
    assert_eq!(w.objects(), before, "nothing changed");
    assert_eq!(w.activity().len(), activity, "not even a log entry");
    // The dry run stays free and shows what would go.
    let plan = w.json(&["prune", "--dry-run", "--now", &future]);
    assert_eq!(plan["expired_items"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(w.objects(), before, "a dry run changes nothing");
    // --really-at-now applies it, and needs --now.
    let out = w.offsite(&["prune", "--really-at-now"]);
    assert!(usage_error(&out).contains("--now"));
    let report = w.json(&["prune", "--really-at-now", "--now", &future]);
    assert_eq!(report["expired_items"].as_array().unwrap().len(), 1);
}

#[test]
fn a_format_2_or_3_repository_is_named_and_refused() {
    let w = world_with_snapshot();
    let config = w.repo().join("config");
    let text = std::fs::read_to_string(&config).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], 4, "this offsite writes format 4");
    for old in [2, 3] {
        json["version"] = old.into();
        std::fs::write(&config, serde_json::to_vec(&json).unwrap()).unwrap();
        for args in [
            &["snapshots"][..],
            &["restore", "--item", "x", "--to", "/nonexistent"],
        ] {
            let out = w.offsite(args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let line = one_line_error(&out);
            assert!(line.contains(&format!("format {old}")), "{line}");
            assert!(line.contains("init a new repository"), "{line}");
        }
    }
}
