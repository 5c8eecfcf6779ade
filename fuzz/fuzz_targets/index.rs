//! An index file (zstd JSON) as opened, then merged into an in-memory index.
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::repo::index::{decode_index_file, Index};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = decode_index_file("index/fuzz", data) else {
        return;
    };
    let mut index = Index::default();
    index.add_file(&file);
    offsite_fuzz::touch_ranges(index.blobs.values());
});
