//! Acceptance (issue 11): nothing the bucket holds reveals content, names or
//! tenants. Unique markers are planted in a file's content, in a file name,
//! as a tenant name, as the host name and as a source name; after a snapshot,
//! a restore, a check and a prune no stored byte and no object key contains
//! any of them, on the local store and on the Ceph gateway.

mod common;
use common::*;

use offsite::repo::store::{Location, Store};

const CONTENT: &str = "QZXCONTENTMARKER7731";
const FILE_NAME: &str = "QZXFILEMARKER4410";
const TENANT: &str = "qzxtenantmarker9902";
const HOST: &str = "qzxhostmarker5150";
const SOURCE: &str = "qzxsourcemarker3388";
const MARKERS: [&str; 5] = [CONTENT, FILE_NAME, TENANT, HOST, SOURCE];

/// A world whose host, source, tenant, file name and content carry markers.
/// The content is random bytes around the marker (incompressible, so it
/// would be stored as is without encryption) and a text file repeating it.
fn marked_world(s3_bucket: Option<&str>) -> World {
    let w = World::configured(
        "",
        &[(SOURCE, "client-data", "tenant = \"first-component\"")],
        "",
    );
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace("host = \"test-host\"", &format!("host = \"{HOST}\""));
    std::fs::write(&w.config, &text).unwrap();
    if let Some(bucket) = s3_bucket {
        w.point_at_s3(bucket, "");
    }
    let mut rng = Rng::new(11);
    let mut blob = rng.bytes(200_000);
    blob.extend_from_slice(CONTENT.as_bytes());
    blob.extend(rng.bytes(200_000));
    put(&w.src(), &format!("{TENANT}/emails/{FILE_NAME}.eml"), &blob);
    put(
        &w.src(),
        &format!("{TENANT}/chats/{FILE_NAME}-chat.txt"),
        format!("hello {CONTENT} {FILE_NAME} {TENANT}\n")
            .repeat(500)
            .as_bytes(),
    );
    put(&w.src(), "other/db/dump.sql", &Rng::new(12).text(300_000));
    w
}

/// Snapshot, restore one marked item, check, prune: every kind of object
/// (packs, index, manifest, locks, activity log, keys) gets written.
fn exercise(w: &World) {
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let item = format!("{TENANT}/emails/{FILE_NAME}.eml");
    let target = w.path("restored");
    w.ok(&[
        "restore",
        "--source",
        SOURCE,
        "--item",
        &item,
        "--to",
        target.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(target.join(&item))
            .unwrap()
            .windows(CONTENT.len())
            .any(|win| win == CONTENT.as_bytes()),
        "the restored item holds the marker (the test can see it when it is there)"
    );
    w.ok(&["check", "--read-data"]);
    w.ok(&["prune"]);
}

fn assert_nothing_shows(objects: Vec<(String, Vec<u8>)>) {
    assert!(
        objects.len() >= 5,
        "the repository holds objects: {objects:?}"
    );
    for (key, bytes) in &objects {
        for marker in MARKERS {
            let lower = marker.to_ascii_lowercase();
            assert!(
                !key.to_ascii_lowercase().contains(&lower),
                "object key {key} shows {marker}"
            );
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "object {key} holds {marker} in its bytes"
            );
        }
    }
}

#[test]
fn no_marker_in_any_stored_byte_or_key_on_the_local_store() {
    let w = marked_world(None);
    exercise(&w);
    let mut objects = Vec::new();
    walk_files(&w.repo(), &mut |p| {
        let key = p.strip_prefix(w.repo()).unwrap().display().to_string();
        objects.push((key, std::fs::read(p).unwrap()));
    });
    assert_nothing_shows(objects);
}

#[test]
fn no_marker_in_any_stored_byte_or_key_on_ceph() {
    let bucket = new_bucket("marker");
    let w = marked_world(Some(&bucket));
    exercise(&w);
    let store = Store::connect(&Location::S3(s3_location(&bucket, "")), false).unwrap();
    let objects = store
        .list("")
        .unwrap()
        .into_iter()
        .map(|(key, _)| {
            let bytes = store.get(&key).unwrap().to_vec();
            (key, bytes)
        })
        .collect();
    assert_nothing_shows(objects);
}

/// Flipping any byte of a key object (epoch record, a key wrap) is reported
/// as damage by check, prune deletes nothing while it is damaged, and the
/// repository is whole again once the byte is restored.
#[test]
fn a_flipped_byte_in_any_key_object_is_reported_and_nothing_is_deleted() {
    let w = marked_world(None);
    w.ok(&["init"]);
    w.ok(&["snapshot"]);
    let keys: Vec<(String, u64)> = w
        .objects()
        .into_iter()
        .filter(|(k, _)| k.starts_with("keys/"))
        .collect();
    assert!(
        keys.iter().any(|(k, _)| k.starts_with("keys/epoch/"))
            && keys
                .iter()
                .filter(|(k, _)| k.starts_with("keys/tenants/"))
                .count()
                >= 4,
        "epoch record, metadata and shared keys and two tenants' keys: {keys:?}"
    );
    for (key, len) in keys {
        let path = w.repo().join(&key);
        let original = std::fs::read(&path).unwrap();
        for at in [0, len / 2, len - 1] {
            let mut bad = original.clone();
            bad[at as usize] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let before = w.data_objects();
            let check = w.offsite(&["check", "--read-data"]);
            assert!(
                !check.status.success(),
                "check passed with {key} flipped at {at}"
            );
            let _ = w.offsite(&["prune"]);
            let after = w.data_objects();
            assert!(
                before.iter().all(|o| after.contains(o)),
                "prune deleted something while {key} was damaged"
            );
            std::fs::write(&path, &original).unwrap();
        }
    }
    w.ok(&["check", "--read-data"]);
}
