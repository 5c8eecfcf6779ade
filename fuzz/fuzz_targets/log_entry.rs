//! An activity log entry (one JSON line).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = offsite_fuzz::ALLOCATION_LIMIT;
    let _ = offsite::activity::parse_entry("log/2026-11-27/fuzz.json", data);
});
