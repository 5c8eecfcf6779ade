//! An interrupted first snapshot resumes: stopped by SIGTERM (a clean stop:
//! its packs are indexed, one line says how much was kept, no manifest) or
//! killed (SIGKILL: its packs are adopted from their headers) at about half
//! of the data, the next run uploads at most 10 % more than what was left.
//!
//! The snapshot is held at a known point by the `pack-written` pause point
//! (after each pack is written), so the test stops it once half the data is
//! in packs, without racing it.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FILES: usize = 32;
const FILE_SIZE: usize = 8 << 20;
const TOTAL: u64 = (FILES * FILE_SIZE) as u64;

/// Bytes in packs now. A pack is written to a temporary name and renamed,
/// so a file listed may be gone by the time it is measured: skipped.
fn pack_bytes(w: &World) -> u64 {
    w.packs()
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// A snapshot held after each pack it writes (the `pack-written` pause
/// point) until the returned pause file is removed.
fn snapshot_pausing_after_each_pack(w: &World) -> (std::process::Child, std::path::PathBuf) {
    let pause = w.path("pause");
    let child = Command::new(env!("CARGO_BIN_EXE_offsite"))
        .arg("--config")
        .arg(&w.config)
        .arg("snapshot")
        .env("OFFSITE_PAUSEPOINT", "pack-written")
        .env("OFFSITE_PAUSE_FILE", &pause)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, pause)
}

/// Run a first snapshot, stop it with `signal` once half the data is in
/// packs; returns the bytes kept in packs and the run's stderr.
fn interrupt_at_half(w: &World, signal: &str) -> (u64, String) {
    let (mut child, pause) = snapshot_pausing_after_each_pack(w);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut signalled = false;
    let status = loop {
        assert!(Instant::now() < deadline, "the snapshot did not stop");
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if !pause.exists() {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if !signalled && pack_bytes(w) >= TOTAL / 2 {
            signalled = true;
            let pid = child.id().to_string();
            let ok = Command::new("kill").args([signal, &pid]).status().unwrap();
            assert!(ok.success());
        }
        // Let it go on (to the next pack, or to its clean stop).
        let _ = std::fs::remove_file(&pause);
    };
    assert!(
        signalled,
        "the snapshot finished before half its data was in"
    );
    assert!(!status.success(), "an interrupted snapshot fails");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (pack_bytes(w), stderr)
}

fn world() -> World {
    let w = World::new();
    let mut rng = Rng::new(9);
    for i in 0..FILES {
        put(&w.src(), &format!("f{i:02}.bin"), &rng.bytes(FILE_SIZE));
    }
    w.ok(&["init"]);
    w
}

/// The second run after an interruption that kept `kept` bytes.
fn resume(w: &World, kept: u64) {
    assert!(
        (TOTAL * 2 / 5..TOTAL * 4 / 5).contains(&kept),
        "stopped at about half: {kept} of {TOTAL}"
    );
    assert!(
        w.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no manifest"
    );
    let second = w.json(&["snapshot"]);
    let added = second["bytes_added"].as_u64().unwrap();
    let remaining = TOTAL - kept.min(TOTAL);
    assert!(
        added <= remaining + remaining / 10,
        "uploaded {added} where {remaining} were left: {second}"
    );
    assert_eq!(second["items"], FILES as u64, "{second}");
    w.ok(&["check"]);
}

#[test]
fn a_snapshot_stopped_by_sigterm_keeps_its_packs_and_resumes() {
    let w = world();
    let (kept, stderr) = interrupt_at_half(&w, "-TERM");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("snapshot of data interrupted;")
            && lines[0].contains("MiB kept, the next run resumes"),
        "{stderr}"
    );
    // The clean stop indexed every pack it wrote (a checkpoint).
    let check = w.json(&["check", "--read-data"]);
    assert_eq!(check["unindexed_packs"], 0, "{check}");
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    resume(&w, kept);
}

#[test]
fn a_snapshot_killed_at_half_resumes_from_its_packs() {
    let w = world();
    let (kept, _) = interrupt_at_half(&w, "-KILL");
    resume(&w, kept);
}

/// A long snapshot indexes the packs it has written as it goes (here after
/// every byte), so the index file of the end lists only the packs after it.
#[test]
fn a_writer_with_checkpoints_indexes_packs_as_it_goes() {
    use offsite::repo::pack::BlobKind;
    use offsite::repo::writer::{BlobWriter, Compress};
    let dir = tempfile::tempdir().unwrap();
    let location = offsite::repo::Location::Local(dir.path().join("repo"));
    let t0 = chrono::DateTime::UNIX_EPOCH;
    let repo =
        offsite::repo::Repository::init(&location, t0, &offsite::repo::MasterKey::generate())
            .unwrap();
    let writer = BlobWriter::new(&repo, t0).with_checkpoints(1);
    let mut rng = Rng::new(4);
    let first = writer
        .store(None, BlobKind::Data, &rng.bytes(5 << 20), Compress::Never)
        .unwrap();
    assert!(repo.list_index_files().unwrap().is_empty());
    writer
        .store(None, BlobKind::Data, &rng.bytes(5 << 20), Compress::Never)
        .unwrap();
    let index = repo.list_index_files().unwrap();
    assert_eq!(index.len(), 1, "the first pack was indexed when written");
    let listed = repo.read_index_file(&index[0]).unwrap();
    assert_eq!(listed.packs.len(), 1);
    assert_eq!(listed.packs[0].id, first.pack);
    let rest = writer.finish().unwrap();
    assert!(rest.iter().all(|p| p.id != first.pack), "listed once");
    assert_eq!(rest.len(), 1);
}

/// A second Ctrl-C quits at once with exit 130, even while the snapshot is
/// held where the clean stop cannot proceed (here: paused after a pack is
/// written, as a hung upload would hold it); the next run completes.
#[test]
fn a_second_ctrl_c_quits_a_snapshot_at_once() {
    let w = world();
    let (mut child, pause) = snapshot_pausing_after_each_pack(&w);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pause.exists() {
        assert!(Instant::now() < deadline, "the snapshot never paused");
        assert!(child.try_wait().unwrap().is_none(), "it ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Signals sent close together may arrive as one: send SIGINT until the
    // process ends. It stays paused (the pause file is kept), so only the
    // force-quit of a second signal can end it before the deadline.
    let pid = child.id().to_string();
    let status = loop {
        assert!(
            Instant::now() < deadline,
            "a second SIGINT did not quit the paused snapshot"
        );
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}: {stderr}");
    assert!(
        stderr.contains("second SIGINT: quitting at once"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(&pause);
    let second = w.json(&["snapshot"]);
    assert_eq!(second["items"], FILES as u64, "{second}");
    w.ok(&["check", "--read-data"]);
}

/// A prune between an interrupted snapshot and its next run keeps the
/// interrupted run's packs (its index files name a snapshot that has no
/// manifest): the next run still uploads only the rest.
#[test]
fn a_prune_between_an_interrupted_snapshot_and_its_next_run_keeps_its_packs() {
    let w = world();
    let (kept, _) = interrupt_at_half(&w, "-TERM");
    let packs = w.packs().len();
    let prune = w.json(&["prune"]);
    assert_eq!(prune["packs_deleted"], 0, "{prune}");
    assert_eq!(
        prune["plan"]["sweep"]["kept_for_resume"]
            .as_array()
            .unwrap()
            .len(),
        packs,
        "{prune}"
    );
    assert_eq!(pack_bytes(&w), kept, "nothing deleted");
    resume(&w, kept);
    // Its packs are now referenced: a prune keeps them as any others.
    let prune = w.json(&["prune"]);
    assert_eq!(prune["packs_deleted"], 0, "{prune}");
    assert!(
        prune["plan"]["sweep"]["kept_for_resume"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{prune}"
    );
    w.ok(&["check", "--read-data"]);
}

/// The packs of a snapshot that never finished are kept a week, then
/// collected like any unreferenced pack.
#[test]
fn the_packs_of_an_unfinished_snapshot_go_after_the_resume_grace() {
    let w = world();
    interrupt_at_half(&w, "-TERM");
    let index = w.repo().join("index");
    let mut files = Vec::new();
    walk_files(&index, &mut |p| files.push(p.to_path_buf()));
    assert!(!files.is_empty(), "the interrupted run indexed its packs");
    let aged = Command::new("touch")
        .arg("-d")
        .arg("8 days ago")
        .args(&files)
        .status()
        .unwrap();
    assert!(aged.success());
    let packs = w.packs().len();
    let prune = w.json(&["prune"]);
    assert_eq!(prune["packs_deleted"], packs, "{prune}");
    assert!(w.packs().is_empty(), "every pack collected");
    w.ok(&["check"]);
}
