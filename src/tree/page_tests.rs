//! Pages and pieces: round trips, the checks of the decoder, and how the
//! builders cut (an unchanged region keeps its pages and pieces).

use std::collections::HashMap;

use super::*;
use crate::crypto::Secret;
use crate::id::ObjectId;
use crate::repo::keys::DataKey;
use crate::tree::build::{store_chunk_list, Boundary, DirBuilder, StoreFn, MAX_PAGE_ENTRIES};
use crate::tree::read::{lookup, ChunkIter, DirIter, PageSource};

fn blob(n: u64) -> BlobRef {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    BlobRef {
        id: ObjectId(id),
        pack: ObjectId([0xAB; 32]),
        offset: n,
        length: 100,
        raw_length: 8192,
        compression: Default::default(),
        tenant: None,
    }
}

fn file(name: &str, size: u64) -> Entry {
    Entry::File(FileEntry {
        name: name.into(),
        size,
        mtime_ns: -5,
        mode: 0o100644,
        inode: 7,
        tenant: Some("acme".into()),
        sha256: ObjectId([3; 32]),
        chunks: ChunkList::Inline(vec![blob(1), blob(2)]),
        carried: true,
    })
}

/// Pages kept in memory, by id; counts reads.
#[derive(Default)]
struct Mem {
    blobs: HashMap<ObjectId, Vec<u8>>,
    reads: usize,
    /// Bytes of every `put`, in order.
    puts: Vec<ObjectId>,
}

impl Mem {
    fn put(&mut self, bytes: &[u8]) -> Result<BlobRef> {
        let id = ObjectId::hash(bytes);
        self.blobs.insert(id, bytes.to_vec());
        self.puts.push(id);
        Ok(BlobRef {
            id,
            length: bytes.len() as u32,
            raw_length: bytes.len() as u32,
            ..blob(0)
        })
    }

    fn get(&mut self, blob: &BlobRef) -> Result<Vec<u8>> {
        self.reads += 1;
        Ok(self.blobs[&blob.id].clone())
    }
}

impl PageSource for Mem {
    fn page(&mut self, blob: &BlobRef) -> Result<Page> {
        decode(blob, &self.get(blob)?)
    }
    fn piece(&mut self, blob: &BlobRef) -> Result<Vec<BlobRef>> {
        decode_piece(blob, &self.get(blob)?)
    }
    fn piece_list(&mut self, blob: &BlobRef, chunks: u64) -> Result<Vec<PieceRef>> {
        decode_piece_list(blob, chunks, &self.get(blob)?)
    }
}

fn boundary() -> Boundary {
    Boundary::new(std::sync::Arc::new(DataKey::from_secret(
        &Secret::from_bytes([7; 32]),
    )))
}

/// Build a directory of `names` (sorted) into `mem`; its root.
fn build(mem: &mut Mem, entries: &[Entry]) -> BlobRef {
    let mut builder = DirBuilder::new(boundary());
    let store: &mut StoreFn = &mut |bytes| mem.put(bytes);
    for e in entries {
        builder.push(e, store).unwrap();
    }
    builder.finish(store).unwrap().0
}

fn names(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| file(&format!("mail-{i:07}.eml"), i as u64))
        .collect()
}

#[test]
fn a_leaf_round_trips_with_tenants_filled_in() {
    let entries = vec![file("a", 1), file("ab", 2), file("b", 3)];
    let Page::Leaf(back) = decode(&blob(1), &encode_leaf(&entries)).unwrap() else {
        panic!("not a leaf");
    };
    assert_eq!(back.len(), 3);
    let Entry::File(f) = &back[1] else { panic!() };
    assert_eq!(f.name, "ab");
    assert!(f.carried);
    assert_eq!(f.mtime_ns, -5);
    let chunks = f.chunks.inline().unwrap();
    assert_eq!(chunks[0].tenant.as_deref(), Some("acme"));
    // Without the tenants, the entries are what was encoded.
    let mut plain = back.clone();
    for e in &mut plain {
        if let Entry::File(f) = e {
            if let ChunkList::Inline(c) = &mut f.chunks {
                c.iter_mut().for_each(|c| c.tenant = None);
            }
        }
    }
    assert_eq!(plain, entries);
}

#[test]
fn truncated_or_extended_pages_are_corrupt() {
    let bytes = encode_leaf(&[file("a", 1), file("b", 2)]);
    for cut in 0..bytes.len() {
        assert!(decode(&blob(1), &bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode(&blob(1), &longer).is_err());
}

#[test]
fn a_small_directory_is_one_page_and_a_big_one_is_found_in_few_reads() {
    let mut mem = Mem::default();
    let root = build(&mut mem, &names(10));
    assert_eq!(mem.puts.len(), 1);
    assert!(matches!(mem.page(&root).unwrap(), Page::Leaf(_)));

    let mut mem = Mem::default();
    let entries = names(100_000);
    let root = build(&mut mem, &entries);
    let pages = mem.puts.len();
    assert!(
        pages > 100_000 / MAX_PAGE_ENTRIES && pages < 2_000,
        "{pages} pages"
    );
    for i in [0, 1, 4_567, 99_999] {
        mem.reads = 0;
        let name = entries[i].name();
        let found = lookup(&mut mem, &root, name).unwrap().expect("found");
        assert_eq!(found.name(), name);
        assert!(mem.reads <= 3, "{} reads for one name", mem.reads);
    }
    assert!(lookup(&mut mem, &root, "mail-0000000.em")
        .unwrap()
        .is_none());
    assert!(lookup(&mut mem, &root, "a").unwrap().is_none());
    assert!(lookup(&mut mem, &root, "z").unwrap().is_none());
    // Every entry comes back in order, page by page.
    let all: Vec<Entry> = DirIter::new(&mut mem, &root)
        .unwrap()
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(all.len(), entries.len());
    assert!(all.iter().zip(&entries).all(|(a, b)| a.name() == b.name()));
}

#[test]
fn one_changed_entry_in_a_big_directory_writes_only_a_few_pages() {
    let mut mem = Mem::default();
    let mut entries = names(100_000);
    build(&mut mem, &entries);
    let before: std::collections::HashSet<ObjectId> = mem.blobs.keys().copied().collect();
    entries[51_234] = file(entries[51_234].name(), 999_999_999);
    mem.puts.clear();
    build(&mut mem, &entries);
    let new = mem.puts.iter().filter(|id| !before.contains(id)).count();
    assert!(new <= 4, "{new} new pages for one changed entry");
}

#[test]
fn pages_out_of_order_across_a_boundary_are_corrupt() {
    let mut mem = Mem::default();
    let entries = names(20_000);
    let root = build(&mut mem, &entries);
    let Page::Internal {
        level,
        mut children,
    } = mem.page(&root).unwrap()
    else {
        panic!("a directory of 20 000 entries is one page");
    };
    children.swap(0, 1);
    // A forged root with children in the wrong order: its names are out of
    // order (the decoder refuses it).
    let mut w = crate::codec::Writer::new();
    let mut names = NameCoder::default();
    children
        .iter()
        .for_each(|c| put_child(&mut w, &mut names, c));
    let forged = internal_bytes(level, children.len(), w.as_bytes());
    let forged = mem.put(&forged).unwrap();
    assert!(mem.page(&forged).is_err());
}

#[test]
fn a_child_page_at_the_wrong_level_is_corrupt() {
    let mut mem = Mem::default();
    let leaf = mem.put(&encode_leaf(&[file("a", 1)])).unwrap();
    // A level-2 page pointing straight at a leaf.
    let mut w = crate::codec::Writer::new();
    let child = Child {
        first: "a".into(),
        page: leaf,
        entries: 1,
        files: 1,
        bytes: 1,
    };
    put_child(&mut w, &mut NameCoder::default(), &child);
    let root = mem.put(&internal_bytes(2, 1, w.as_bytes())).unwrap();
    let err = lookup(&mut mem, &root, "a").unwrap_err().to_string();
    assert!(err.contains("level"), "{err}");
    assert!(DirIter::new(&mut mem, &root).unwrap().any(|e| e.is_err()));
}

fn chunks(seed: u64, n: u64) -> Vec<BlobRef> {
    (0..n)
        .map(|i| {
            let id = ObjectId::hash(&(seed + i).to_le_bytes());
            BlobRef { id, ..blob(i) }
        })
        .collect()
}

#[test]
fn a_long_chunk_list_is_stored_in_pieces_that_read_back_in_order() {
    let mut mem = Mem::default();
    let few = store_chunk_list(chunks(0, 32), &mut |b| mem.put(b)).unwrap();
    assert!(matches!(few, ChunkList::Inline(ref c) if c.len() == 32));
    assert!(mem.puts.is_empty());

    let all = chunks(0, 5_000);
    let list = store_chunk_list(all.clone(), &mut |b| mem.put(b)).unwrap();
    assert_eq!(list.len(), 5_000);
    let back: Vec<BlobRef> = ChunkIter::new(&mut mem, &list)
        .unwrap()
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(back, all);
    let ChunkList::Pieces { list: l, .. } = &list else {
        panic!("inline")
    };
    let pieces = mem.piece_list(l, 5_000).unwrap();
    assert!(
        pieces.len() > 5 && pieces.len() < 5_000 / 16,
        "{}",
        pieces.len()
    );
    assert_eq!(pieces.iter().map(|p| p.bytes).sum::<u64>(), 5_000 * 8192);
    // A list that says another count is corrupt.
    assert!(mem.piece_list(l, 4_999).is_err());
}

#[test]
fn one_changed_chunk_in_the_middle_stores_only_a_few_pieces() {
    let mut mem = Mem::default();
    let mut all = chunks(0, 20_000);
    store_chunk_list(all.clone(), &mut |b| mem.put(b)).unwrap();
    let before: std::collections::HashSet<ObjectId> = mem.blobs.keys().copied().collect();
    all[10_000] = chunks(1 << 40, 1)[0].clone();
    mem.puts.clear();
    store_chunk_list(all, &mut |b| mem.put(b)).unwrap();
    let new = mem.puts.iter().filter(|id| !before.contains(id)).count();
    // The piece with the changed chunk (and its neighbour if the change
    // moved a boundary), and the list.
    assert!(new <= 3, "{new} new blobs for one changed chunk");
}
