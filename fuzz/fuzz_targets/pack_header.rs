//! A whole pack as read from the bucket: trailer, header length, sealed
//! header (opened under a fixed metadata key; the fuzzer's bytes do not
//! authenticate, so this covers the framing and the refusal), and its
//! start as a dictionary section (length checks before the seal opens).
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::crypto::Secret;
use offsite::id::ObjectId;
use offsite::repo::dictionary::open_section;
use offsite::repo::keys::DataKey;
use offsite::repo::pack::{dictionary_of, header_of, parse_header, parse_trailer, TRAILER_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = offsite_fuzz::ALLOCATION_LIMIT;
    let meta = DataKey::from_secret(&Secret::from_bytes([9; 32]));
    let pack = ObjectId::hash(b"pack");
    let _ = header_of(&pack, data, &meta);
    let _ = parse_header(&pack, data, &meta);
    let seal = meta.pack_key(&pack);
    let _ = open_section(&pack, &seal, data);
    let _ = dictionary_of(&pack, data, &seal);
    if let Some(at) = data.len().checked_sub(TRAILER_LEN as usize) {
        let _ = parse_trailer("packs/fu/fuzz", &data[at..]);
    }
});
