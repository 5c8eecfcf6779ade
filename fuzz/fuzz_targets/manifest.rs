//! A snapshot key as a listing shows it, and manifest bytes read from it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::id::ObjectId;
use offsite::snapshot::SnapshotRef;

fuzz_target!(|data: &[u8]| {
    let _ = SnapshotRef::parse(&String::from_utf8_lossy(data));
    // The manifest under a key whose id matches, so parsing is reached.
    let key = format!(
        "snapshots/host/source/20261127T020000.000Z-{}",
        ObjectId::hash(data)
    );
    let Some(snapshot) = SnapshotRef::parse(&key) else {
        panic!("a well-formed key must parse: {key}");
    };
    if let Ok(manifest) = snapshot.decode(data) {
        offsite_fuzz::touch_ranges([&manifest.tree]);
        let _ = manifest.key(&snapshot.id);
    }
});
