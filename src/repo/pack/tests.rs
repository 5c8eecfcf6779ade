use super::*;
use crate::crypto::Secret;

fn keys() -> (DataKey, DataKey) {
    (
        DataKey::from_secret(&Secret::from_bytes([1; 32])),
        DataKey::from_secret(&Secret::from_bytes([2; 32])),
    )
}

fn read(bytes: &[u8], blob: &BlobRef, key: &DataKey) -> Result<Vec<u8>> {
    let dictionary = match blob.compression {
        Compression::ZstdDict => Some(dictionary_of(&blob.pack, bytes, &key.pack_key(&blob.pack))?),
        _ => None,
    };
    decode_blob(
        &bytes[blob.offset as usize..][..blob.length as usize],
        blob,
        key,
        dictionary.as_ref(),
    )
}

/// A pack of one uncompressed data blob holding `content`: its id, bytes
/// and the blob's reference.
fn one_blob_pack(content: &[u8], data: &DataKey, meta: &DataKey) -> (ObjectId, Vec<u8>, BlobRef) {
    let mut pack = PackBuilder::new(Vec::new(), None, data, None);
    let blob = pack.add(
        data.id_of(content),
        BlobKind::Data,
        content,
        content.len(),
        Compression::None,
    );
    let (id, bytes, _) = pack.finish(meta);
    (id, bytes, blob)
}

#[test]
fn pack_round_trip_reads_blobs_and_header() {
    let (data, meta) = keys();
    let mut pack = PackBuilder::new(Vec::new(), Some("acme".into()), &data, None);
    let a = b"hello world, a marker: PLAINTEXT-MARKER".to_vec();
    let b = vec![7u8; 5000];
    let b_packed = zstd::bulk::compress(&b, 3).unwrap();
    let ra = pack.add(
        data.id_of(&a),
        BlobKind::Data,
        &a,
        a.len(),
        Compression::None,
    );
    let rb = pack.add(
        data.id_of(&b),
        BlobKind::Tree,
        &b_packed,
        b.len(),
        Compression::Zstd,
    );
    let (id, bytes, header) = pack.finish(&meta);
    assert_eq!(ra.pack, id);
    assert_eq!(ra.tenant.as_deref(), Some("acme"));
    assert_eq!(ra.length as usize, a.len() + TAG_LEN);
    let parsed = header_of(&id, &bytes, &meta).unwrap();
    assert_eq!(parsed.blobs, header.blobs);
    assert_eq!(parsed.tenant.as_deref(), Some("acme"));
    assert_eq!(read(&bytes, &ra, &data).unwrap(), a);
    assert_eq!(read(&bytes, &rb, &data).unwrap(), b);
    for secret in [&b"PLAINTEXT-MARKER"[..], b"acme", b"\"blobs\""] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{} visible",
            String::from_utf8_lossy(secret)
        );
    }
}

#[test]
fn wrong_key_wrong_place_and_foreign_header_are_corrupt() {
    let (data, meta) = keys();
    let (id, bytes, ra) = one_blob_pack(b"first", &data, &meta);
    let err = read(&bytes, &ra, &meta).unwrap_err().to_string();
    assert!(err.contains("does not authenticate"), "{err}");
    assert!(err.contains(&pack_key(&id)), "{err}");
    // The same bytes read as if they were elsewhere in the pack.
    let mut moved = ra.clone();
    moved.offset += 1;
    let sealed = &bytes[..ra.length as usize];
    assert!(decode_blob(sealed, &moved, &data, None).is_err());
    // Its header does not open as another pack's.
    let other = ObjectId::random();
    assert!(header_of(&other, &bytes, &meta).is_err());
    assert!(header_of(&id, &bytes, &data).is_err());
}

#[test]
fn hostile_location_range_does_not_overflow() {
    let blob = BlobRef {
        id: ObjectId::hash(b"x"),
        pack: ObjectId::hash(b"p"),
        offset: u64::MAX - 1,
        length: 10,
        raw_length: 10,
        compression: Compression::None,
        tenant: None,
    };
    assert_eq!(blob.range(), u64::MAX - 1..u64::MAX);
}

#[test]
fn header_of_many_tiny_blobs_stays_under_the_expansion_limit() {
    let (data, meta) = keys();
    let mut pack = PackBuilder::new(Vec::new(), None, &data, None);
    for i in 0u32..50_000 {
        let bytes = i.to_le_bytes();
        pack.add(
            data.id_of(&bytes),
            BlobKind::Data,
            &bytes,
            4,
            Compression::None,
        );
    }
    let (id, bytes, header) = pack.finish(&meta);
    assert_eq!(header_of(&id, &bytes, &meta).unwrap().blobs, header.blobs);
}

#[test]
fn header_bomb_is_refused_before_it_expands() {
    // 64 MiB of zeros in about 2 KiB, sealed correctly: far beyond any
    // real header's ratio.
    let (_, meta) = keys();
    let id = ObjectId::random();
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap();
    let sealed = meta.seal_bound(HEADER_PURPOSE, &id.0, &bomb);
    let err = parse_header(&id, &sealed, &meta).unwrap_err().to_string();
    assert!(err.contains("does not decompress"), "{err}");
    assert!(err.contains("more than"), "{err}");
}

#[test]
fn every_flipped_byte_is_named_corrupt() {
    let (data, meta) = keys();
    let (id, bytes, ra) = one_blob_pack(b"some bytes", &data, &meta);
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        let blob_ok = read(&bad, &ra, &data).is_ok();
        let header_ok = header_of(&id, &bad, &meta).is_ok();
        assert!(!(blob_ok && header_ok), "byte {i} flipped unnoticed");
        if i < ra.length as usize {
            let err = read(&bad, &ra, &data).unwrap_err();
            assert!(err.to_string().contains(&pack_key(&id)), "{err}");
        }
    }
}

/// Documents packed with a dictionary trained on their kind: the pack
/// round-trips, is smaller than with plain zstd, and says it has a
/// dictionary; a blob claiming the dictionary in a pack without one is
/// corrupt, not a panic.
#[test]
fn a_dictionary_pack_round_trips_and_is_smaller() {
    use crate::repo::compress::{self, tests::documents, Trainer, TRAIN_SAMPLES};
    let (data, meta) = keys();
    let trainer = Trainer::default();
    let tenant: Option<Arc<str>> = Some("acme".into());
    let docs = documents(TRAIN_SAMPLES + 2000);
    for doc in &docs[..TRAIN_SAMPLES] {
        trainer.offer(&tenant, doc);
    }
    let dictionary = trainer.dictionary(&tenant).expect("trained");
    let mut with = PackBuilder::new(Vec::new(), tenant.clone(), &data, Some(&dictionary));
    let mut without = PackBuilder::new(Vec::new(), tenant.clone(), &data, None);
    let mut refs = Vec::new();
    for doc in &docs[TRAIN_SAMPLES..] {
        let id = data.id_of(doc);
        let packed = compress::with_dictionary(&dictionary, doc);
        refs.push(with.add(
            id,
            BlobKind::Data,
            &packed,
            doc.len(),
            Compression::ZstdDict,
        ));
        let plain = compress::plain(doc);
        without.add(id, BlobKind::Data, &plain, doc.len(), Compression::Zstd);
    }
    let (id, bytes, header) = with.finish(&meta);
    let (_, plain_bytes, plain_header) = without.finish(&meta);
    assert!(header.dictionary && !plain_header.dictionary);
    assert!(
        bytes.len() * 10 < plain_bytes.len() * 7,
        "{} bytes with the dictionary (its copy included), {} without",
        bytes.len(),
        plain_bytes.len()
    );
    let parsed = header_of(&id, &bytes, &meta).unwrap();
    assert!(parsed.dictionary);
    assert_eq!(parsed.blobs, header.blobs);
    for (blob, doc) in refs.iter().zip(&docs[TRAIN_SAMPLES..]) {
        assert_eq!(&read(&bytes, blob, &data).unwrap(), doc);
    }
    let sealed = &bytes[refs[0].offset as usize..][..refs[0].length as usize];
    let err = decode_blob(sealed, &refs[0], &data, None).unwrap_err();
    assert!(err.to_string().contains(&pack_key(&id)), "{err}");
    assert!(err.to_string().contains("dictionary"), "{err}");
}

/// A flipped byte in the dictionary section: every blob that needs it
/// is corrupt, named by its pack; the header still opens.
#[test]
fn a_damaged_dictionary_is_corruption_of_its_pack() {
    use crate::repo::compress::{self, Dictionary};
    let (data, meta) = keys();
    let dictionary = Dictionary {
        serial: 0,
        bytes: b"some words some more words".repeat(40),
    };
    let mut pack = PackBuilder::new(Vec::new(), None, &data, Some(&dictionary));
    let doc = b"some words and then some more words".repeat(10);
    let packed = compress::with_dictionary(&dictionary, &doc);
    let blob = pack.add(
        data.id_of(&doc),
        BlobKind::Data,
        &packed,
        doc.len(),
        Compression::ZstdDict,
    );
    let (id, mut bytes, _) = pack.finish(&meta);
    assert_eq!(read(&bytes, &blob, &data).unwrap(), doc);
    bytes[SECTION_LEN / 2] ^= 0x40;
    let err = read(&bytes, &blob, &data).unwrap_err().to_string();
    assert!(
        err.contains(&pack_key(&id)) && err.contains("dictionary"),
        "{err}"
    );
    assert!(header_of(&id, &bytes, &meta).unwrap().dictionary);
}
