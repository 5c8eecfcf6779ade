//! Key management as an operator lives with it: a missing, wrong, foreign
//! or unsafe key file is one line (exit 1) and changes nothing; passphrase
//! envelopes get a lost key back; exported copies open the repository; no
//! secret is ever printed or logged.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{one_line_error, put, walk_files, World};

const PASSPHRASE: &str = "correct horse battery staple";

/// Every stored object's bytes, by path: to prove nothing changed.
fn bucket(w: &World) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk_files(&w.repo(), &mut |p| {
        out.insert(p.to_path_buf(), std::fs::read(p).unwrap());
    });
    out
}

/// A world with a repository, one snapshot of two files, and its key.
fn world() -> World {
    let w = World::new();
    put(
        &w.src(),
        "acme/mail/1.eml",
        b"Subject: hello\n\nfirst mail\n",
    );
    put(
        &w.src(),
        "beta/db/dump.sql",
        &common::Rng::new(7).text(200_000),
    );
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    w
}

fn key_path(w: &World) -> PathBuf {
    w.path("offsite.key")
}

/// The key's hex digits, read from the key file.
fn key_hex(w: &World) -> String {
    let text = std::fs::read_to_string(key_path(w)).unwrap();
    let line = text.lines().find(|l| l.starts_with("key ")).unwrap();
    line["key ".len()..].to_string()
}

fn passphrase_file(w: &World, name: &str, phrase: &str) -> String {
    let p = w.path(name);
    std::fs::write(&p, format!("{phrase}\n")).unwrap();
    p.display().to_string()
}

/// Point the world's config at another key file.
fn use_key_file(w: &World, path: &Path) {
    let text = std::fs::read_to_string(&w.config).unwrap();
    let text = text.replace(
        &format!("key_file = \"{}\"", key_path(w).display()),
        &format!("key_file = \"{}\"", path.display()),
    );
    std::fs::write(&w.config, text).unwrap();
}

fn all_text(outs: &[Output]) -> String {
    outs.iter()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect()
}

#[test]
fn without_the_key_every_command_is_one_line_and_changes_nothing() {
    let w = world();
    std::fs::rename(key_path(&w), w.path("elsewhere.key")).unwrap();
    let before = bucket(&w);
    let to = w.path("restored").display().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["snapshot"],
        vec!["snapshots"],
        vec!["restore", "--item", "acme/mail/1.eml", "--to", &to],
        vec!["ls"],
        vec!["find", "**"],
        vec!["stats"],
        vec!["check"],
        vec!["prune", "--dry-run"],
        vec!["log"],
        vec!["restore-test"],
        vec!["rebuild-index"],
        vec!["unlock"],
        vec!["key", "list"],
        vec!["key", "export", "/dev/null/x"],
        vec!["key", "add", "--passphrase-file", "/dev/null"],
        vec!["key", "remove", "00000000000000000000000000000000"],
    ];
    for args in commands {
        let out = w.offsite(&args);
        let line = one_line_error(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {line}");
        assert!(line.contains("no key file at"), "{args:?}: {line}");
        assert_eq!(bucket(&w), before, "{args:?} changed the bucket");
    }
    assert!(!w.path("restored").exists());
}

#[test]
fn a_foreign_unsafe_or_broken_key_file_is_refused_in_one_line() {
    let w = world();
    let other = world();
    let before = bucket(&w);
    let mine = std::fs::read(key_path(&w)).unwrap();
    std::fs::copy(key_path(&other), key_path(&w)).unwrap();
    let line = one_line_error(&w.offsite(&["ls"]));
    let id_of = |w: &World| w.open_repo().config.id.short();
    std::fs::write(key_path(&w), &mine).unwrap();
    let (a, b) = (id_of(&w), id_of(&other));
    assert!(
        line.contains(&a) && line.contains(&b),
        "{line} names {a} and {b}"
    );

    std::fs::set_permissions(key_path(&w), std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = one_line_error(&w.offsite(&["ls"]));
    assert!(line.contains("readable by others"), "{line}");
    std::fs::set_permissions(key_path(&w), std::fs::Permissions::from_mode(0o600)).unwrap();

    std::fs::rename(key_path(&w), w.path("real.key")).unwrap();
    std::os::unix::fs::symlink(w.path("real.key"), key_path(&w)).unwrap();
    let out = w.offsite(&["ls"]);
    let line = one_line_error(&out);
    assert_eq!(out.status.code(), Some(1), "{line}");
    std::fs::remove_file(key_path(&w)).unwrap();

    std::fs::write(key_path(&w), "offsite-key 2\nrepository any\nepoch x\n").unwrap();
    std::fs::set_permissions(key_path(&w), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = w.offsite(&["ls"]);
    let line = one_line_error(&out);
    assert_eq!(out.status.code(), Some(1), "{line}");
    assert!(line.contains("epoch"), "{line}");

    // Right shape, wrong bytes: does not open, says so.
    let text = String::from_utf8(mine).unwrap();
    let wrong = text.replace(
        text[text.find("\nkey ").unwrap() + 5..].trim(),
        &"ab".repeat(32),
    );
    std::fs::write(key_path(&w), wrong).unwrap();
    let line = one_line_error(&w.offsite(&["ls"]));
    assert!(line.contains("does not open this repository"), "{line}");
    assert_eq!(bucket(&w), before);
}

#[test]
fn init_over_an_existing_repository_refuses_even_with_a_fresh_key_path() {
    let w = world();
    let before = bucket(&w);
    let key_before = std::fs::read(key_path(&w)).unwrap();
    let out = w.offsite(&["init"]);
    assert!(!out.status.success());
    assert_eq!(bucket(&w), before);
    assert_eq!(std::fs::read(key_path(&w)).unwrap(), key_before);

    let fresh = w.path("fresh/offsite.key");
    use_key_file(&w, &fresh);
    let line = one_line_error(&w.offsite(&["init"]));
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(bucket(&w), before);
    assert!(!fresh.exists(), "a key for nothing was left behind");
}

#[test]
fn a_passphrase_envelope_recovers_the_key_and_no_secret_is_ever_shown() {
    let w = World::new();
    put(
        &w.src(),
        "acme/mail/1.eml",
        b"Subject: hello\n\nfirst mail\n",
    );
    let mut outs = vec![w.offsite(&["--json", "init"])];
    let init: serde_json::Value = serde_json::from_slice(&outs[0].stdout).unwrap();
    assert_eq!(init["key_file"], key_path(&w).display().to_string());
    assert_eq!(init["key_created"], true);
    outs.push(w.offsite(&["snapshot"]));
    let phrase = passphrase_file(&w, "phrase", PASSPHRASE);
    outs.push(w.offsite(&[
        "key",
        "add",
        "--passphrase-file",
        &phrase,
        "--label",
        "safe",
    ]));
    assert!(outs.last().unwrap().status.success(), "{:?}", outs.last());
    let hex = key_hex(&w);
    let listed = w.json(&["key", "list"]);
    assert_eq!(listed["envelopes"].as_array().unwrap().len(), 1);
    assert_eq!(listed["envelopes"][0]["label"], "safe");
    assert_eq!(listed["envelopes"][0]["stale"], false);
    outs.push(w.offsite(&["key", "list"]));
    outs.push(w.offsite(&["config", "check"]));
    outs.push(w.offsite(&["--json", "config", "check"]));

    std::fs::remove_file(key_path(&w)).unwrap();
    let wrong = passphrase_file(&w, "wrong", "not the passphrase");
    let out = w.offsite(&["key", "recover", "--passphrase-file", &wrong]);
    let line = one_line_error(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        line.contains("no key envelope opens with this passphrase"),
        "{line}"
    );
    assert!(!key_path(&w).exists());
    outs.push(out);

    // One-off read through the envelope: works, writes no key file.
    let out = w.offsite_env(
        &["ls", "acme/mail"],
        &[("OFFSITE_PASSPHRASE_FILE", &phrase)],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1.eml"));
    assert!(!key_path(&w).exists());
    outs.push(out);
    let out = w.offsite_env(&["ls"], &[("OFFSITE_PASSPHRASE_FILE", &wrong)]);
    assert!(one_line_error(&out).contains("no key envelope opens"));

    outs.push(w.offsite(&["key", "recover", "--passphrase-file", &phrase]));
    assert!(outs.last().unwrap().status.success(), "{:?}", outs.last());
    let mode = std::fs::metadata(key_path(&w))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(key_hex(&w), hex);
    let line = one_line_error(&w.offsite(&["key", "recover", "--passphrase-file", &phrase]));
    assert!(line.contains("exists already"), "{line}");
    let to = w.path("out");
    outs.push(w.offsite(&[
        "restore",
        "--item",
        "acme/mail/1.eml",
        "--to",
        &to.display().to_string(),
    ]));
    assert_eq!(
        std::fs::read(to.join("acme/mail/1.eml")).unwrap(),
        b"Subject: hello\n\nfirst mail\n"
    );
    outs.push(w.offsite(&["--json", "log"]));
    let mut shown = all_text(&outs);
    walk_files(&w.repo(), &mut |p| {
        shown += &String::from_utf8_lossy(&std::fs::read(p).unwrap());
    });
    assert!(!shown.contains(&hex), "the key was shown");
    assert!(!shown.contains(PASSPHRASE), "the passphrase was shown");
}

#[test]
fn a_hostile_envelope_is_refused_without_doing_the_work() {
    let w = world();
    let hostile = serde_json::json!({
        "version": 1, "label": "x", "created": "2026-11-29T00:00:00Z", "epoch": 1,
        "kdf": {"alg": "argon2id", "m_kib": 1u64 << 31, "t": 1_000_000, "p": 1, "salt": "00".repeat(16)},
        "sealed": "00".repeat(64),
    });
    let dir = w.repo().join("keys/envelopes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ab".repeat(16)), hostile.to_string()).unwrap();
    let phrase = passphrase_file(&w, "phrase", PASSPHRASE);
    std::fs::remove_file(key_path(&w)).unwrap();
    let out = w.offsite(&["key", "recover", "--passphrase-file", &phrase]);
    let line = one_line_error(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        line.contains("key envelope refused") && line.contains("memory"),
        "{line}"
    );
    assert!(
        line.contains(&"ab".repeat(16)),
        "names the envelope: {line}"
    );
    assert!(!key_path(&w).exists());
}

#[test]
fn removing_the_last_envelope_warns_and_unknown_ids_are_refused() {
    let w = world();
    let phrase = passphrase_file(&w, "phrase", PASSPHRASE);
    let added = w.json(&["key", "add", "--passphrase-file", &phrase]);
    let id = added["id"].as_str().unwrap().to_string();
    let line = one_line_error(&w.offsite(&["key", "remove", &"cd".repeat(16)]));
    assert!(line.contains("not found"), "{line}");
    let out = w.offsite(&["key", "remove", &id]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 left") && stdout.contains("key export"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only way"), "{stderr}");
    assert_eq!(w.json(&["key", "list"])["envelopes"], serde_json::json!([]));
    let logged: Vec<(String, String)> = w
        .activity()
        .iter()
        .filter(|e| e["operation"] == "key")
        .map(|e| {
            let d = &e["details"];
            (
                d["action"].as_str().unwrap().into(),
                d["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(logged, [("add".into(), id.clone()), ("remove".into(), id)]);
    std::fs::remove_file(key_path(&w)).unwrap();
    let line = one_line_error(&w.offsite(&["key", "recover", "--passphrase-file", &phrase]));
    assert!(line.contains("no key envelope"), "{line}");
}

#[test]
fn an_exported_key_opens_the_repository_and_is_never_overwritten() {
    let w = world();
    let copy = w.path("safe/copy.key");
    w.ok(&["key", "export", &copy.display().to_string()]);
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let line = one_line_error(&w.offsite(&["key", "export", &copy.display().to_string()]));
    assert!(line.contains("exists already"), "{line}");
    std::fs::remove_file(key_path(&w)).unwrap();
    use_key_file(&w, &copy);
    let listed = w.ok(&["ls", "acme/mail"]);
    assert!(listed.contains("1.eml"), "{listed}");
    w.ok(&["check", "--read-data"]);
}

#[test]
fn config_check_shows_the_key_path_and_state_never_the_key() {
    let w = World::new();
    let json = w.json(&["config", "check"]);
    assert_eq!(json["key_file"]["state"], "missing");
    assert_eq!(json["key_file"]["path"], key_path(&w).display().to_string());
    w.ok(&["init"]);
    let text = w.ok(&["config", "check"]);
    assert!(
        text.contains(&format!("# key file: {} (present", key_path(&w).display())),
        "{text}"
    );
    assert!(!text.contains(&key_hex(&w)));
    std::fs::set_permissions(key_path(&w), std::fs::Permissions::from_mode(0o640)).unwrap();
    let json = w.json(&["config", "check"]);
    assert!(
        json["key_file"]["state"]
            .as_str()
            .unwrap()
            .contains("readable by others"),
        "{json}"
    );
}

/// `offsite key add` under a pseudo-terminal (util-linux `script`), the
/// passphrase typed twice.
fn add_on_a_terminal(w: &World, typed: &str) -> Output {
    use std::io::Write as _;
    let command = format!(
        "{} --config {} key add --label typed",
        env!("CARGO_BIN_EXE_offsite"),
        w.config.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux script runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_passphrase_is_typed_twice_on_a_terminal_and_never_read_from_a_pipe_unasked() {
    let w = world();
    let out = w.offsite(&["key", "add"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(one_line_error(&out).contains("--passphrase-file"));

    let out = add_on_a_terminal(&w, "first-phrase\nother-phrase\n");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("differ"),
        "{out:?}"
    );
    assert_eq!(w.json(&["key", "list"])["envelopes"], serde_json::json!([]));

    let out = add_on_a_terminal(&w, "typed-phrase\ntyped-phrase\n");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("new passphrase:"));
    std::fs::remove_file(key_path(&w)).unwrap();
    let phrase = passphrase_file(&w, "phrase", "typed-phrase");
    w.ok(&["key", "recover", "--passphrase-file", &phrase]);
    w.ok(&["check", "--read-data"]);
}

#[test]
fn envelopes_work_on_an_s3_bucket_too() {
    let bucket = common::new_bucket("keys");
    let w = World::s3(&bucket, "");
    put(&w.src(), "acme/db/dump.sql", b"INSERT INTO t VALUES (1);\n");
    w.ok(&["init"]);
    w.ok(&["snapshot", "--source", "data"]);
    let phrase = passphrase_file(&w, "phrase", PASSPHRASE);
    let first = w.json(&["key", "add", "--passphrase-file", &phrase, "--label", "a"]);
    w.ok(&["key", "add", "--passphrase-file", &phrase, "--label", "b"]);
    w.ok(&["key", "remove", first["id"].as_str().unwrap()]);
    let listed = w.json(&["key", "list"]);
    assert_eq!(listed["envelopes"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["envelopes"][0]["label"], "b");
    let hex = key_hex(&w);
    std::fs::remove_file(key_path(&w)).unwrap();
    w.ok(&["key", "recover", "--passphrase-file", &phrase]);
    assert_eq!(key_hex(&w), hex);
    let shown = w.ok(&["ls", "acme/db"]);
    assert!(shown.contains("dump.sql"), "{shown}");
}
