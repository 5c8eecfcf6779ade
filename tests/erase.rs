//! `offsite erase`: crypto-erasure of a tenant (master-key rotation with a
//! tombstone, then prune drops it everywhere) and erasing items from every
//! snapshot of every host (`--item`, `--glob`, `--dry-run` == the real run).

mod common;

use std::path::Path;

use common::{relative_files, walk_files, Rng, World};
use offsite::Error;

const REASON: &str = "contract ended (ticket 4711)";

/// Deterministic bytes that do not compress (so their packs weigh).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn write(w: &World, rel: &str, bytes: &[u8]) {
    let p = w.src().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Two tenants (acme with a big dump), a contact list each, a file of no tenant.
fn world() -> World {
    let w = World::new();
    write(&w, "acme/db/dump.sql", &noise(1, 400_000));
    write(&w, "acme/contacts/list-1.csv", b"anna;+46 70 111\n");
    write(&w, "beta/db/dump.sql", &noise(2, 50_000));
    write(&w, "beta/contacts/list-2.csv", b"bert;+46 70 222\n");
    write(&w, "top.txt", b"no tenant\n");
    w.ok(&["init"]);
    w
}

/// The tenants' keys as the first snapshot makes them (written here too, so
/// the test does not depend on which layer creates them).
fn tenant_keys(w: &World) {
    let repo = w.open_repo();
    for t in ["acme", "beta"] {
        repo.data_key_for_writing(Some(t), chrono::Utc::now())
            .unwrap();
    }
}

/// Two snapshots, the second after beta's dump changed.
fn two_snapshots(w: &World) {
    tenant_keys(w);
    w.ok(&["snapshot"]);
    write(w, "beta/db/dump.sql", &noise(3, 50_000));
    w.ok(&["snapshot"]);
}

fn restore_same(w: &World, item: &str, expect: &[u8]) {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let to = w.path(&format!("out-{n}"));
    w.ok(&["restore", "--item", item, "--to", to.to_str().unwrap()]);
    assert_eq!(std::fs::read(to.join(item)).unwrap(), expect, "{item}");
}

fn erased_in_process(w: &World) -> Error {
    w.open_repo().data_key(Some("acme")).unwrap_err()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `path` of each element of a JSON array.
fn paths(rows: &serde_json::Value) -> Vec<&str> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect()
}

/// Every file below `dir` (relative paths), for comparing key directories.
fn listing(dir: &Path) -> Vec<String> {
    relative_files(dir)
}

#[test]
fn erasing_a_tenant_destroys_its_key_and_prune_removes_its_data_everywhere() {
    let w = world();
    two_snapshots(&w);
    let keys_before = w.path("keys-before");
    copy_dir(&w.repo().join("keys"), &keys_before);
    std::fs::create_dir_all(w.repo().join("keys/envelopes")).unwrap();
    std::fs::write(w.repo().join("keys/envelopes/old-passphrase"), b"x").unwrap();

    // Without --yes: one line, exit 2, nothing changed.
    let out = w.offsite(&["erase", "--tenant", "acme", "--reason", REASON]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("add --yes"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
    // A tenant the repository never had: exit 1, named exactly, nothing changed.
    let out = w.offsite(&["erase", "--tenant", "acmee", "--reason", REASON, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no tenant acmee in the repository"));
    assert_eq!(
        listing(&w.repo().join("keys/epoch")),
        listing(&keys_before.join("epoch"))
    );

    let out = w.offsite(&[
        "--json", "erase", "--tenant", "acme", "--reason", REASON, "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["rotated"], true);
    assert_eq!(report["epoch"], 2);
    assert_eq!(report["envelopes_deleted"], 1);
    assert!(stderr(&out).contains("offsite key add"), "{}", stderr(&out));
    let key = std::fs::read_to_string(w.path("offsite.key")).unwrap();
    assert!(key.contains("\nepoch 2\n"));
    // The old epoch's wraps and the envelope are gone.
    assert!(listing(&w.repo().join("keys/tenants/0000000001")).is_empty());
    assert!(listing(&w.repo().join("keys/envelopes")).is_empty());

    // Immediately: acme's key says erased (when and why), the others read.
    match erased_in_process(&w) {
        Error::Erased { tenant, reason, .. } => {
            assert_eq!((tenant.as_str(), reason.as_str()), ("acme", REASON))
        }
        other => panic!("expected Erased, got {other}"),
    }
    restore_same(&w, "beta/db/dump.sql", &noise(3, 50_000));
    restore_same(&w, "beta/contacts/list-2.csv", b"bert;+46 70 222\n");
    restore_same(&w, "top.txt", b"no tenant\n");
    w.ok(&["check", "--read-data"]);
    let entry = w
        .activity()
        .into_iter()
        .rfind(|e| e["operation"] == "erase" && e["outcome"] == "ok")
        .expect("an erase entry");
    assert_eq!(entry["details"]["tenant"], "acme");
    assert_eq!(entry["details"]["reason"], REASON);

    // Restore tests never pick the erased tenant.
    for seed in 1..=12 {
        let r = w.json(&["restore-test", "--seed", &seed.to_string()]);
        assert_eq!(r["result"], "ok", "{r}");
        assert_ne!(r["tenant"], "acme", "seed {seed}: {r}");
    }

    // A snapshot after the erase leaves acme out, with a warning.
    let snap = w.json(&["snapshot"]);
    let text = snap.to_string();
    assert!(text.contains("tenant acme was erased at"), "{text}");
    assert!(snap.to_string().contains(REASON));
    let ls = w.json(&["ls", "latest"]);
    assert_eq!(paths(&ls["entries"]), ["beta", "top.txt"], "{ls}");

    // Prune: acme is gone from every snapshot, its space is freed.
    let before = w.repo_bytes();
    let prune = w.json(&["prune"]);
    // Retention forgets the second snapshot; the first still holds acme, the
    // one taken after the erase does not.
    assert_eq!(
        prune["plan"]["erase"].as_array().unwrap().len(),
        1,
        "{prune}"
    );
    let after = w.repo_bytes();
    assert!(
        after + 300_000 < before,
        "stored bytes {before} -> {after}: acme's 400 kB dump should be gone"
    );
    let found = w.json(&["find", "**", "--host", "all"]);
    let rows = found["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["tenant"] != "acme"), "{found}");
    let stats = w.json(&["stats"]);
    assert!(stats["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["tenant"] != "acme"));
    w.ok(&["check", "--read-data"]);
    restore_same(&w, "beta/db/dump.sql", &noise(3, 50_000));

    // An old copy of keys/ put back: the new key still does not open acme.
    copy_dir(&keys_before.join("tenants"), &w.repo().join("keys/tenants"));
    assert!(matches!(erased_in_process(&w), Error::Erased { .. }));
}

#[test]
fn restoring_an_erased_tenants_item_says_when_and_why() {
    let w = world();
    two_snapshots(&w);
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    let to = w.path("out");
    let out = w.offsite(&[
        "restore",
        "--item",
        "acme/db/dump.sql",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("tenant acme was erased at"), "{err}");
    assert!(err.contains(REASON), "{err}");
    assert!(!err.contains("corrupt"), "{err}");
    restore_same(&w, "beta/db/dump.sql", &noise(3, 50_000));
}

#[test]
fn another_host_follows_the_rotation_and_rewrites_its_key_file() {
    let w = world();
    two_snapshots(&w);
    // Host 2: same bucket, its own config and a copy of the key made before.
    let config2 = w.path("offsite2.toml");
    let key2 = w.path("offsite2.key");
    std::fs::copy(w.path("offsite.key"), &key2).unwrap();
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("host = \"test-host\"", "host = \"host-2\"")
        .replace(
            &w.path("offsite.key").display().to_string(),
            &key2.display().to_string(),
        );
    std::fs::write(&config2, text).unwrap();
    assert!(std::fs::read_to_string(&key2)
        .unwrap()
        .contains("\nepoch 1\n"));

    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    let out = common::offsite_with(&config2, &["snapshots", "--host", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new_key = std::fs::read_to_string(&key2).unwrap();
    assert!(new_key.contains("\nepoch 2\n"), "{new_key}");
    assert_eq!(
        new_key,
        std::fs::read_to_string(w.path("offsite.key")).unwrap()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key2).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

/// The restored tree of the whole source, as (path, bytes).
fn restored(w: &World, name: &str) -> Vec<(String, Vec<u8>)> {
    let to = w.path(name);
    w.ok(&["restore", "--source", "data", "--to", to.to_str().unwrap()]);
    let mut out = Vec::new();
    walk_files(&to, &mut |p| {
        out.push((
            p.strip_prefix(&to).unwrap().display().to_string(),
            std::fs::read(p).unwrap(),
        ))
    });
    out
}

#[test]
fn erase_glob_removes_the_contact_lists_from_every_snapshot_and_nothing_else() {
    let w = world();
    two_snapshots(&w);
    let glob = "*/contacts/list-*.csv";
    let everything = restored(&w, "before");

    let out = w.offsite(&["erase", "--glob", glob, "--reason", "anonymised"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--dry-run"));

    let erase = |last: &str| w.json(&["erase", "--glob", glob, "--reason", "anonymised", last]);
    let dry = erase("--dry-run");
    let planned = dry["items"].as_array().unwrap().clone();
    // Two lists in each of two snapshots.
    assert_eq!(planned.len(), 4, "{dry}");
    assert!(planned
        .iter()
        .all(|i| i["path"].as_str().unwrap().contains("/contacts/list-")));
    assert_eq!(w.json(&["find", glob])["rows"].as_array().unwrap().len(), 2);

    let real = erase("--yes");
    assert_eq!(real["items"].as_array().unwrap(), &planned);
    assert_eq!(real["dry_run"], false);
    assert!(w.json(&["find", glob, "--host", "all"])["rows"]
        .as_array()
        .unwrap()
        .is_empty());
    // A second run finds nothing left.
    let again = erase("--dry-run");
    assert!(again["items"].as_array().unwrap().is_empty());

    let expected: Vec<_> = everything
        .into_iter()
        .filter(|(p, _)| !p.contains("/contacts/list-"))
        .collect();
    assert_eq!(restored(&w, "after"), expected);
    w.ok(&["check", "--read-data"]);
    let entry = w
        .activity()
        .into_iter()
        .rfind(|e| e["operation"] == "erase")
        .unwrap();
    assert_eq!(entry["details"]["kind"], "item");
    assert_eq!(entry["details"]["items"].as_array().unwrap().len(), 4);

    // The next prune collects what they held; everything else still reads.
    w.ok(&["prune"]);
    w.ok(&["check", "--read-data"]);
    assert_eq!(restored(&w, "after-prune"), expected);
}

#[test]
fn erase_item_removes_one_directory_of_one_host_only() {
    let w = world();
    two_snapshots(&w);
    let erase = |last: &str| {
        let args = [
            "erase",
            "--item",
            "beta/db",
            "--host",
            "test-host",
            "--reason",
            "deletion request",
            last,
        ];
        w.json(&args)
    };
    let dry = erase("--dry-run");
    assert_eq!(
        paths(&dry["items"]),
        ["beta/db/dump.sql", "beta/db/dump.sql"]
    );
    assert_eq!(erase("--yes")["items"], dry["items"]);
    assert!(w.json(&["find", "beta/db/**"])["rows"]
        .as_array()
        .unwrap()
        .is_empty());
    restore_same(&w, "acme/db/dump.sql", &noise(1, 400_000));
    w.ok(&["check", "--read-data"]);
}

#[test]
fn a_crash_at_any_step_of_the_rotation_leaves_a_repository_that_opens() {
    for point in [
        "erase-after-wraps",
        "erase-after-link",
        "erase-after-epoch",
        "erase-after-key-file",
        "erase-after-envelopes",
    ] {
        let w = world();
        tenant_keys(&w);
        w.ok(&["snapshot"]);
        let out = w.offsite_env(
            &["erase", "--tenant", "acme", "--reason", REASON, "--yes"],
            &[("OFFSITE_FAILPOINT", point)],
        );
        assert!(!out.status.success(), "{point}: the failpoint did not fire");
        // Opens with whichever key the key file holds (old or new).
        w.ok(&["unlock", "--force"]);
        restore_same(&w, "beta/db/dump.sql", &noise(2, 50_000));
        w.ok(&["check", "--read-data"]);
        // Running the erase again finishes the job: a rotation that died
        // before its commit point is redone (its leftovers replaced), one
        // that committed is only cleaned up.
        let again = w.json(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
        let committed = !matches!(point, "erase-after-wraps" | "erase-after-link");
        assert_eq!(again["rotated"], !committed, "{point}: {again}");
        assert_eq!(again["epoch"], 2, "{point}");
        // meta, shared, acme (a tombstone), beta: no leftover of the crash.
        assert_eq!(
            listing(&w.repo().join("keys/tenants/0000000002")).len(),
            4,
            "{point}"
        );
        assert!(
            matches!(erased_in_process(&w), Error::Erased { .. }),
            "{point}"
        );
        assert!(
            std::fs::read_to_string(w.path("offsite.key"))
                .unwrap()
                .contains("\nepoch 2\n"),
            "{point}"
        );
        assert!(
            listing(&w.repo().join("keys/tenants/0000000001")).is_empty(),
            "{point}: old wraps left"
        );
        restore_same(&w, "top.txt", b"no tenant\n");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    walk_files(from, &mut |p| {
        let dest = to.join(p.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(p, dest).unwrap();
    });
}

#[test]
fn a_process_opened_before_the_erase_follows_it_when_it_takes_a_lock() {
    let w = world();
    two_snapshots(&w);
    // An agent's handle, opened before the erase, with acme's key cached.
    let repo = w.open_repo();
    repo.data_key(Some("acme")).unwrap();
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    let clock = offsite::clock::SystemClock;
    let lock = repo.shared("test-host", "snapshot", &clock).unwrap();
    assert_eq!(repo.keys().master().epoch, 2);
    assert!(matches!(
        repo.data_key(Some("acme")),
        Err(Error::Erased { .. })
    ));
    // Not re-created under the old key either.
    assert!(matches!(
        repo.data_key_for_writing(Some("acme"), chrono::Utc::now()),
        Err(Error::Erased { .. })
    ));
    repo.data_key(Some("beta")).unwrap();
    drop(lock);
}

/// A `key add` that opened the repository before an erase on another host
/// (a passphrase typed slowly) must not leave an envelope of the old key
/// behind: with it and an old bucket version, the erased key opens again.
#[test]
fn an_envelope_added_by_a_process_opened_before_the_erase_holds_the_new_key() {
    let w = world();
    two_snapshots(&w);
    let repo = w.open_repo();
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    repo.add_envelope(b"a long recovery phrase", "late", chrono::Utc::now())
        .unwrap();
    assert_eq!(
        envelope_epochs(&w),
        [2],
        "the late envelope holds the new key"
    );
}

/// The epoch of every envelope in `w`'s repository.
fn envelope_epochs(w: &World) -> Vec<u64> {
    w.open_repo()
        .envelopes()
        .unwrap()
        .iter()
        .map(|e| e.info.epoch)
        .collect()
}

/// Wraps under the epoch's prefix that this key does not open (what an
/// `init` that lost the race to another host's, or crashed before its
/// epoch record, leaves behind) are nobody's tombstones: snapshots, find
/// and prune go on, and none of them takes a tenant for erased.
#[test]
fn wraps_of_another_key_in_the_epoch_stop_nothing() {
    let w = world();
    two_snapshots(&w);
    let other = World::new();
    other.ok(&["init"]);
    copy_dir(
        &other.repo().join("keys/tenants/0000000001"),
        &w.repo().join("keys/tenants/0000000001"),
    );
    w.ok(&["snapshot"]);
    w.ok(&["find", "**/list-*.csv", "--host", "all"]);
    w.ok(&["prune"]);
    restore_same(&w, "beta/db/dump.sql", &noise(3, 50_000));
    restore_same(&w, "acme/contacts/list-1.csv", b"anna;+46 70 111\n");
}

/// Finishing an erasure left half done (old wraps still there) deletes the
/// envelopes of the old key, never the recovery passphrase added since
/// for the new one.
#[test]
fn finishing_an_erase_keeps_envelopes_of_the_new_key() {
    let w = world();
    two_snapshots(&w);
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    let repo = w.open_repo();
    repo.add_envelope(b"a long recovery phrase", "new", chrono::Utc::now())
        .unwrap();
    // An old wrap left behind by a crash in the last step.
    let old = w.repo().join("keys/tenants/0000000001");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("00".repeat(16)), b"left over").unwrap();
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    assert!(listing(&old).is_empty(), "old wraps finished off");
    assert_eq!(envelope_epochs(&w), [2], "the new key's envelope is kept");
}

/// A damaged key wrap is damage of the key, not of the tenant's packs:
/// `repair` keeps every pack (quarantining them would take the tenant's
/// history out of every snapshot), and once the wrap is back all restores.
#[test]
fn a_damaged_tenant_key_quarantines_none_of_its_packs() {
    let w = world();
    let wraps = w.repo().join("keys/tenants/0000000001");
    let before = listing(&wraps);
    w.open_repo()
        .data_key_for_writing(Some("beta"), chrono::Utc::now())
        .unwrap();
    let beta: Vec<String> = listing(&wraps)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    let beta = wraps.join(&beta[0]);
    two_snapshots(&w);
    let packs = w.packs();
    let good = std::fs::read(&beta).unwrap();
    let mut bad = good.clone();
    bad[20] ^= 1;
    std::fs::write(&beta, &bad).unwrap();
    let out = w.offsite(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("tenant key does not authenticate"));
    let _ = w.offsite(&["repair"]);
    assert_eq!(w.packs(), packs, "no pack moved");
    std::fs::write(&beta, &good).unwrap();
    restore_same(&w, "beta/db/dump.sql", &noise(3, 50_000));
    w.ok(&["check", "--read-data"]);
}

/// `repair` between the erase and the next prune: the erased tenant's
/// directories are not damage, and they do not stop the report.
#[test]
fn repair_after_an_erase_passes_over_the_erased_tenant() {
    let w = world();
    two_snapshots(&w);
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    let packs = w.packs();
    w.ok(&["repair"]);
    assert_eq!(w.packs(), packs, "no pack moved");
    restore_same(&w, "beta/db/dump.sql", &noise(3, 50_000));
}

/// Between the erase and the next prune, a whole source (or a glob over
/// every tenant) still restores every other tenant's files, byte for
/// byte, and says once that the erased tenant's are not restored.
#[test]
fn a_whole_source_restores_after_an_erase_without_the_tenant() {
    let w = world();
    two_snapshots(&w);
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    let to = w.path("whole");
    let out = w.offsite(&["restore", "--source", "data", "--to", to.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tenant acme was erased"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        relative_files(&to),
        ["beta/contacts/list-2.csv", "beta/db/dump.sql", "top.txt"]
    );
    assert_eq!(
        std::fs::read(to.join("beta/db/dump.sql")).unwrap(),
        noise(3, 50_000)
    );
    let to = w.path("glob");
    w.ok(&[
        "restore",
        "--glob",
        "*/contacts/*",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(relative_files(&to), ["beta/contacts/list-2.csv"]);
    // Asked for by name, the tenant says it was erased.
    let to = w.path("acme");
    let out = w.offsite(&["restore", "--tenant", "acme", "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("tenant acme was erased"),
        "{}",
        stderr(&out)
    );
    // Another tenant asked for by name: nothing to say about acme.
    let to = w.path("beta");
    let out = w.offsite(&["restore", "--tenant", "beta", "--to", to.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("acme"), "{}", stderr(&out));
    assert_eq!(
        relative_files(&to),
        ["beta/contacts/list-2.csv", "beta/db/dump.sql"]
    );
}

/// `stats` between the erase and the next prune counts every other
/// tenant and passes over the erased one's directories.
#[test]
fn stats_after_an_erase_count_the_other_tenants() {
    let w = world();
    two_snapshots(&w);
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    let out = w.offsite(&["--json", "stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"beta\""), "{text}");
}

/// `ls -r` between the erase and the next prune lists the erased tenant's
/// directory without entering it, and everything else.
#[test]
fn a_recursive_listing_after_an_erase_lists_the_other_tenants() {
    let w = world();
    two_snapshots(&w);
    w.ok(&["erase", "--tenant", "acme", "--reason", REASON, "--yes"]);
    let out = w.offsite(&["ls", "-r"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tenant acme was erased"),
        "{}",
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("beta/db/dump.sql"), "{text}");
    assert!(
        text.contains("acme/") && !text.contains("acme/db"),
        "{text}"
    );
}

/// An erase run through a passphrase (the key file lost) where the key
/// file cannot be written changes nothing: the rotation would commit, the
/// new key would live nowhere, and the then stale envelope would open
/// nothing.
#[test]
fn an_erase_that_cannot_write_the_key_file_changes_nothing() {
    let w = world();
    two_snapshots(&w);
    let phrase = w.path("phrase");
    std::fs::write(&phrase, "a long recovery phrase\n").unwrap();
    let phrase = phrase.to_str().unwrap();
    w.ok(&["key", "add", "--passphrase-file", phrase]);
    std::fs::rename(w.path("offsite.key"), w.path("lost.key")).unwrap();
    std::fs::create_dir(w.path("offsite.key.tmp")).unwrap();
    let env = [("OFFSITE_PASSPHRASE_FILE", phrase)];
    let erase = ["erase", "--tenant", "acme", "--reason", REASON, "--yes"];
    let out = w.offsite_env(&erase, &env);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let to = w.path("acme-out");
    let out = w.offsite_env(
        &[
            "restore",
            "--item",
            "acme/contacts/list-1.csv",
            "--to",
            to.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Once the key file can be written, the erase goes through.
    std::fs::remove_dir(w.path("offsite.key.tmp")).unwrap();
    let out = w.offsite_env(&erase, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(w.path("offsite.key").exists());
}
