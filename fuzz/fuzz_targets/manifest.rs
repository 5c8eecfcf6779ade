//! A snapshot key as a listing shows it, and the opened manifest (JSON) read
//! from it. (Sealing is authenticated: bytes that do not open never reach the
//! parser, so the parser is what untrusted input with the key can reach.)
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::snapshot::{parse_manifest, SnapshotRef};

fuzz_target!(|data: &[u8]| {
    let _ = SnapshotRef::parse(&String::from_utf8_lossy(data));
    let key = format!(
        "snapshots/{}/{}/20261127T020000.000Z-{}",
        "ab".repeat(16),
        "cd".repeat(16),
        "ef".repeat(32)
    );
    if SnapshotRef::parse(&key).is_none() {
        panic!("a well-formed key must parse: {key}");
    }
    if let Ok(manifest) = parse_manifest(&key, data) {
        offsite_fuzz::touch_ranges([&manifest.tree]);
    }
});
