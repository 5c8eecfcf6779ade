//! A whole pack as read from the bucket: trailer, header length, sealed
//! header (opened under a fixed metadata key; the fuzzer's bytes do not
//! authenticate, so this covers the framing and the refusal).
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::crypto::Secret;
use offsite::id::ObjectId;
use offsite::repo::keys::DataKey;
use offsite::repo::pack::{header_of, parse_header, parse_trailer, TRAILER_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = offsite_fuzz::ALLOCATION_LIMIT;
    let meta = DataKey::from_secret(&Secret::from_bytes([9; 32]));
    let pack = ObjectId::hash(b"pack");
    let _ = header_of(&pack, data, &meta);
    let _ = parse_header(&pack, data, &meta);
    if let Some(at) = data.len().checked_sub(TRAILER_LEN as usize) {
        let _ = parse_trailer("packs/fu/fuzz", &data[at..]);
    }
});
