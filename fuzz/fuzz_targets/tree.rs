//! A directory page, chunk-list piece or piece list (format 3), then the
//! lookups and locations restores use.
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::id::ObjectId;
use offsite::repo::pack::{BlobRef, Compression};
use offsite::tree::page::{self, Page};
use offsite::tree::{ChunkList, Entry};

fuzz_target!(|data: &[u8]| {
    // The blob these bytes were read from (the decoder names it in errors).
    let blob = BlobRef {
        id: ObjectId::hash(data),
        pack: ObjectId::hash(b"pack"),
        offset: 0,
        length: data.len() as u32,
        raw_length: data.len() as u32,
        compression: Compression::None,
        tenant: None,
    };
    if let Ok(chunks) = page::decode_piece(&blob, data) {
        offsite_fuzz::touch_ranges(&chunks);
    }
    if let Ok(pieces) = page::decode_piece_list(&blob, 40, data) {
        offsite_fuzz::touch_ranges(pieces.iter().map(|p| &p.piece));
    }
    match page::decode(&blob, data) {
        Ok(Page::Leaf(entries)) => {
            for entry in &entries {
                let _ = entries.binary_search_by(|e| e.name().cmp(entry.name()));
                match entry {
                    Entry::File(f) => match &f.chunks {
                        ChunkList::Inline(c) => offsite_fuzz::touch_ranges(c),
                        ChunkList::Pieces { list, .. } => offsite_fuzz::touch_ranges([list]),
                    },
                    Entry::Dir(d) => offsite_fuzz::touch_ranges([&d.tree]),
                }
            }
        }
        Ok(Page::Internal { children, .. }) => {
            offsite_fuzz::touch_ranges(children.iter().map(|c| &c.page));
        }
        Err(_) => {}
    }
});
