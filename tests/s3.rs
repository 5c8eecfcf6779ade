//! Acceptance: the second region on a real S3 cluster (Ceph's RADOS gateway,
//! started by `.ci/ceph`). One storage conformance suite runs over the local
//! directory store and S3; offsite runs end to end on S3; the region guard,
//! bad credentials, a missing bucket, an unreachable endpoint and a gateway
//! that drops connections for a moment each behave as an operator expects.

mod common;
use common::*;

use bytes::Bytes;
use offsite::repo::store::{Location, Store};

fn s3_store(bucket: &str, prefix: &str) -> Store {
    Store::connect(&Location::S3(s3_location(bucket, prefix)), false).unwrap()
}

/// The conformance suite: the same checks for every store.
fn conformance(store: &Store) {
    let data = Bytes::from(Rng::new(4).bytes(300_000));
    store.put("a/one", data.clone()).unwrap();
    assert_eq!(store.get("a/one").unwrap(), data);
    assert_eq!(
        store.get_range("a/one", 1000..1100).unwrap(),
        data.slice(1000..1100)
    );
    assert_eq!(store.size("a/one").unwrap(), 300_000);
    // Create-only: a second create of the same key is refused and changes nothing.
    store
        .put_new("a/two", Bytes::from_static(b"first"))
        .unwrap();
    let err = store
        .put_new("a/two", Bytes::from_static(b"second"))
        .unwrap_err();
    assert!(matches!(err, offsite::Error::AlreadyExists { .. }), "{err}");
    assert_eq!(store.get("a/two").unwrap(), Bytes::from_static(b"first"));
    // Multipart: an object over the threshold goes up in parts and reads back whole.
    let big = Bytes::from(Rng::new(5).bytes(offsite::repo::store::MULTIPART_THRESHOLD + 3_000_000));
    let before = store.requests();
    store.put("b/big", big.clone()).unwrap();
    assert!(
        store.requests().since(&before).put >= 4,
        "uploaded in parts"
    );
    assert!(store.get("b/big").unwrap() == big);
    // Listing with a prefix, sorted, with sizes.
    let listed = store.list("a").unwrap();
    assert_eq!(
        listed,
        vec![("a/one".to_string(), 300_000), ("a/two".to_string(), 5)]
    );
    assert_eq!(store.list("nothing-here").unwrap(), vec![]);
    // Not found names the object; deleting is idempotent.
    let err = store.get("a/missing").unwrap_err();
    assert!(
        matches!(err, offsite::Error::NotFound { .. }) && err.to_string().contains("a/missing"),
        "{err}"
    );
    store.delete("a/one").unwrap();
    store.delete("a/one").unwrap();
    assert!(matches!(
        store.get("a/one").unwrap_err(),
        offsite::Error::NotFound { .. }
    ));
    let counts = store.requests();
    assert!(
        counts.put >= 3
            && counts.get >= 4
            && counts.list >= 2
            && counts.delete >= 2
            && counts.head >= 1,
        "{counts:?}"
    );
}

#[test]
fn conformance_on_the_local_directory_store() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&Store::connect(&Location::Local(dir.path().join("store")), true).unwrap());
}

#[test]
fn conformance_on_s3() {
    let bucket = new_bucket("conf");
    conformance(&s3_store(&bucket, "prefix/x"));
}

#[test]
fn access_denied_is_its_own_error() {
    let bucket = new_bucket("denied");
    let w = World::s3(&bucket, "");
    w.ok(&["init"]);
    let out = w.offsite_env(&["snapshots"], &[("AWS_SECRET_ACCESS_KEY", "wrong-secret")]);
    let line = one_line_error(&out);
    assert!(
        line.contains("access denied") || line.contains("SignatureDoesNotMatch"),
        "{line}"
    );
}

#[test]
fn end_to_end_on_ceph_matches_the_local_store() {
    let bucket = new_bucket("e2e");
    let w = World::s3(&bucket, "");
    let mut rng = Rng::new(41);
    for t in ["acme", "beta"] {
        put(&w.src(), &format!("{t}/db/dump.sql"), &rng.text(3 << 20));
        for i in 0..150 {
            put(&w.src(), &format!("{t}/emails/{i}.eml"), &rng.text(4000));
        }
        for i in 0..6 {
            put(
                &w.src(),
                &format!("{t}/voice/2026/11/0{i}/call.opus"),
                &rng.bytes(1_500_000),
            );
        }
    }
    let init = w.offsite(&["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for line in w
        .ok(&["--json", "snapshot", "--time", "2026-11-20T02:00:00Z"])
        .lines()
    {
        let report: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(report["requests"]["put"].as_u64().unwrap() > 0, "{report}");
    }
    let deleted = std::fs::read(w.src().join("acme/emails/7.eml")).unwrap();
    std::fs::remove_file(w.src().join("acme/emails/7.eml")).unwrap();
    w.ok(&["snapshot", "--time", "2026-11-21T02:00:00Z"]);
    let to = w.path("out");
    for item in [
        "beta/db/dump.sql",
        "acme/voice/2026/11/03/call.opus",
        "acme/emails/8.eml",
    ] {
        w.ok(&["restore", "--item", item, "--to", to.to_str().unwrap()]);
        assert!(
            std::fs::read(to.join(item)).unwrap() == std::fs::read(w.src().join(item)).unwrap(),
            "{item} byte-identical"
        );
    }
    w.ok(&[
        "restore",
        "--item",
        "acme/emails/7.eml",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(to.join("acme/emails/7.eml")).unwrap(),
        deleted,
        "the deleted e-mail comes back from the older snapshot"
    );
    for seed in 0..5 {
        w.ok(&["restore-test", "--seed", &seed.to_string()]);
    }
    let report = w.json(&["prune", "--really-at-now", "--now", "2026-11-21T03:00:00Z"]);
    assert_eq!(report["snapshots_removed"], 0);
    w.ok(&["check", "--read-data"]);
    assert_eq!(
        w.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

fn config_with_regions(w: &World, source_region: &str, repository_region: &str) {
    let text: Vec<String> = std::fs::read_to_string(&w.config)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("source_region = ") {
                format!("source_region = \"{source_region}\"")
            } else if l.starts_with("region = ") {
                format!("region = \"{repository_region}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&w.config, text.join("\n")).unwrap();
}

#[test]
fn region_guard_refuses_the_hosts_own_region_and_a_wrong_region() {
    let gateway_region = &s3_env().region;
    let bucket = new_bucket("region");
    // The bucket is in the host's own region (the config claims otherwise).
    let w = World::s3(&bucket, "");
    config_with_regions(&w, gateway_region, "ap-south-1");
    for args in [&["init"][..], &["run"][..], &["config", "check"][..]] {
        let out = w.offsite(args);
        let line = one_line_error(&out);
        assert!(line.contains("host's own region"), "{args:?}: {line}");
    }
    // The configured region is not where the bucket is.
    config_with_regions(&w, "eu-north-1", "us-west-2");
    let line = one_line_error(&w.offsite(&["init"]));
    assert!(line.contains("not in the configured us-west-2"), "{line}");
    // Right regions pass.
    config_with_regions(&w, "eu-north-1", gateway_region);
    let out = w.ok(&["config", "check"]);
    assert!(out.contains("the bucket reports it"), "{out}");
    w.ok(&["init"]);
}

#[test]
fn missing_bucket_bad_credentials_and_unreachable_endpoint_get_one_line() {
    let w = World::s3("t-no-such-bucket-here", "");
    put(&w.src(), "acme/db/dump.sql", b"data");
    let line = one_line_error(&w.offsite(&["init"]));
    assert!(
        line.contains("t-no-such-bucket-here") && line.contains("not found"),
        "{line}"
    );

    let bucket = new_bucket("creds");
    let w = World::s3(&bucket, "");
    put(&w.src(), "acme/db/dump.sql", b"data");
    w.ok(&["init"]);
    let out = w.offsite_env(&["snapshot"], &[("AWS_ACCESS_KEY_ID", "nobody")]);
    let line = one_line_error(&out);
    assert!(
        line.contains("denied") || line.contains("InvalidAccessKeyId"),
        "{line}"
    );
    assert!(
        w.json(&["snapshots"])["snapshots"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no partial snapshot"
    );

    let w = World::s3(&bucket, "");
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace(&s3_env().endpoint, "http://127.0.0.1:9");
    std::fs::write(&w.config, text).unwrap();
    let started = std::time::Instant::now();
    let line = one_line_error(&w.offsite(&["init"]));
    assert!(
        line.contains("cannot reach") || line.contains("127.0.0.1:9"),
        "{line}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "gives up in bounded time"
    );
}

#[test]
fn request_counts_show_packs_not_files() {
    let bucket = new_bucket("count");
    let w = World::s3(&bucket, "");
    let mut rng = Rng::new(77);
    for i in 0..2000 {
        put(&w.src(), &format!("acme/emails/{i}.eml"), &rng.text(3000));
    }
    for i in 0..20 {
        put(
            &w.src(),
            &format!("acme/voice/{i}.opus"),
            &rng.bytes(2_000_000),
        );
    }
    w.ok(&["init"]);
    let before = w.json(&["snapshots"])["snapshots"].take();
    assert!(before.as_array().unwrap().is_empty());
    let mut puts = 0;
    let mut stored = 0;
    for line in w.ok(&["--json", "snapshot"]).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        puts += r["requests"]["put"].as_u64().unwrap();
        stored += r["bytes_added"].as_u64().unwrap();
    }
    // Per snapshot: index, manifest, lock, activity-log entry.
    let bound = 2 * (stored / offsite::repo::writer::PACK_TARGET as u64 + 2 + 2 * 4);
    eprintln!("{puts} PUT requests for {stored} bytes stored and 2020 files (bound {bound})");
    assert!(puts <= bound, "{puts} PUTs > {bound}: no per-file PUTs");
}

/// A TCP proxy to the gateway that can drop every connection for a while.
struct FlakyProxy {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The next request whose head holds both strings reaches the gateway,
    /// but its reply is dropped and the connection cut (one shot).
    lose_reply_to: std::sync::Arc<std::sync::Mutex<Option<(&'static str, &'static str)>>>,
}

impl FlakyProxy {
    /// A proxy in front of the test gateway, and `w`'s config pointed at it.
    fn between(w: &World) -> Self {
        let upstream: u16 = s3_env()
            .endpoint
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let proxy = FlakyProxy::start(upstream);
        let text = std::fs::read_to_string(&w.config).unwrap().replace(
            &s3_env().endpoint,
            &format!("http://127.0.0.1:{}", proxy.port),
        );
        std::fs::write(&w.config, text).unwrap();
        proxy
    }

    fn start(upstream: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = FlakyProxy {
            port,
            down: Default::default(),
            conns: Default::default(),
            forwarded: Default::default(),
            lose_reply_to: Default::default(),
        };
        let (down, conns, forwarded, lose_reply_to) = (
            proxy.down.clone(),
            proxy.conns.clone(),
            proxy.forwarded.clone(),
            proxy.lose_reply_to.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if down.load(Ordering::SeqCst) {
                    drop(client); // refused while down
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                conns
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                let lose_this_reply =
                    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                for (upward, mut from, mut to) in [
                    (
                        true,
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                    ),
                    (false, server, client),
                ] {
                    let (forwarded, lose_reply_to, lose_this_reply) = (
                        forwarded.clone(),
                        lose_reply_to.clone(),
                        lose_this_reply.clone(),
                    );
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        while let Ok(n) = std::io::Read::read(&mut from, &mut buf) {
                            if upward {
                                let mut armed = lose_reply_to.lock().unwrap();
                                let text = String::from_utf8_lossy(&buf[..n]);
                                if armed.is_some_and(|(a, b)| text.contains(a) && text.contains(b))
                                {
                                    *armed = None;
                                    lose_this_reply.store(true, Ordering::SeqCst);
                                }
                            } else if lose_this_reply.load(Ordering::SeqCst) {
                                break; // the gateway answered; the client never hears it
                            }
                            if n == 0 || std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                                break;
                            }
                            forwarded.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    /// Drop every open connection and refuse new ones for `pause`.
    fn outage(&self, pause: std::time::Duration) {
        use std::sync::atomic::Ordering;
        self.down.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        std::thread::sleep(pause);
        self.down.store(false, Ordering::SeqCst);
    }
}

/// A create-only write (the manifest) that reached the gateway but whose
/// reply was lost is sent again, finds its key taken, reads the object back
/// and, finding its own bytes, goes on: the snapshot completes (regression:
/// the S3 client does not retry create-only writes, and the snapshot failed).
#[test]
fn a_manifest_write_whose_reply_is_lost_is_confirmed_by_reading_it_back() {
    let bucket = new_bucket("lostreply");
    let w = World::s3(&bucket, "");
    let proxy = FlakyProxy::between(&w);
    put(&w.src(), "acme/voice/a.opus", &Rng::new(9).bytes(100_000));
    w.ok(&["init"]);
    *proxy.lose_reply_to.lock().unwrap() = Some(("PUT ", "/snapshots/"));
    let report = w.json(&["snapshot", "--source", "voice"]);
    assert!(
        proxy.lose_reply_to.lock().unwrap().is_none(),
        "the manifest write went through the proxy"
    );
    assert_eq!(report["items"], 1);
    let snapshots = w.json(&["snapshots"])["snapshots"].take();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    w.ok(&["check", "--read-data"]);
}

#[test]
fn a_gateway_outage_mid_upload_is_retried() {
    let bucket = new_bucket("flaky");
    let w = World::s3(&bucket, "");
    let proxy = FlakyProxy::between(&w);
    let mut rng = Rng::new(5);
    for i in 0..40 {
        put(
            &w.src(),
            &format!("acme/voice/{i}.opus"),
            &rng.bytes(2_000_000),
        );
    }
    w.ok(&["init"]);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_offsite"))
        .arg("--config")
        .arg(&w.config)
        .args(["--json", "snapshot", "--source", "voice"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while proxy.forwarded.load(std::sync::atomic::Ordering::Relaxed) < 20_000_000 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the upload never got going"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    proxy.outage(std::time::Duration::from_secs(2));
    let out = child.wait_with_output().unwrap();
    // The writes cut by the outage are sent again: the snapshot completes.
    assert!(
        out.status.success(),
        "snapshot failed through a 2 s outage: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["items"], 40);
    let snapshots = w.json(&["snapshots"])["snapshots"].take();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    w.ok(&["check", "--read-data"]);
    let to = w.path("out");
    w.ok(&[
        "restore",
        "--item",
        "acme/voice/39.opus",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(to.join("acme/voice/39.opus")).unwrap()
            == std::fs::read(w.src().join("acme/voice/39.opus")).unwrap()
    );
}
