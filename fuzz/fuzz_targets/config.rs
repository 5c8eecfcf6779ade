//! The config file (TOML), parsed and validated.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = offsite_fuzz::ALLOCATION_LIMIT;
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = offsite::config::Config::parse(text);
    }
});
