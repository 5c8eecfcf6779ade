//! A whole pack as read from the bucket: trailer, header length, zstd JSON header.
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::repo::pack::{header_of, parse_header, parse_trailer, TRAILER_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = offsite_fuzz::ALLOCATION_LIMIT;
    let _ = header_of("packs/fu/fuzz", data);
    let _ = parse_header("packs/fu/fuzz", data);
    if let Some(at) = data.len().checked_sub(TRAILER_LEN as usize) {
        let _ = parse_trailer("packs/fu/fuzz", &data[at..]);
    }
});
