//! A lock object (JSON) of another writer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = offsite_fuzz::ALLOCATION_LIMIT;
    let _ = offsite::repo::lock::parse_lock("locks/fuzz", data);
});
