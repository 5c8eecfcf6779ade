//! A directory tree blob (JSON), then the lookups and locations restores use.
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::tree::{Entry, Tree};

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = Tree::from_bytes("packs/fu/fuzz", data) else {
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
