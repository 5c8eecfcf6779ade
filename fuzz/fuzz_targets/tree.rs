//! A directory tree blob (JSON), then the lookups and locations restores use.
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::id::ObjectId;
use offsite::repo::pack::{BlobRef, Compression};
use offsite::tree::{Entry, Tree};

fuzz_target!(|data: &[u8]| {
    // The blob these bytes were read from (the parser names it in errors).
    let blob = BlobRef {
        id: ObjectId::hash(data),
        pack: ObjectId::hash(b"pack"),
        offset: 0,
        length: data.len() as u32,
        raw_length: data.len() as u32,
        compression: Compression::None,
        tenant: None,
    };
    let Ok(tree) = Tree::from_bytes(&blob, data) else {
        return;
    };
    for entry in &tree.entries {
        let _ = tree.get(entry.name());
        match entry {
            Entry::File(f) => offsite_fuzz::touch_ranges(&f.chunks),
            Entry::Dir(d) => offsite_fuzz::touch_ranges([&d.tree]),
        }
    }
});
