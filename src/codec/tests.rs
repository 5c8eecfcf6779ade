use super::*;

fn uvarint_bytes(value: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.uvarint(value);
    w.into_bytes()
}

#[test]
fn varints_round_trip_at_every_width() {
    let mut values = vec![0, 1, 127, 128, 300, u64::MAX, u64::MAX - 1];
    values.extend((0..64).map(|shift| 1u64 << shift));
    values.extend((1..64).map(|shift| (1u64 << shift) - 1));
    for value in values {
        let bytes = uvarint_bytes(value);
        assert!(bytes.len() <= 10, "{value}: {} bytes", bytes.len());
        let mut r = Reader::new(&bytes);
        assert_eq!(r.uvarint("v").unwrap(), value);
        r.finish().unwrap();
    }
    for value in [
        0i64,
        1,
        -1,
        63,
        -64,
        64,
        i64::MAX,
        i64::MIN,
        -1_700_000_000_000_000_000,
    ] {
        let mut w = Writer::new();
        w.svarint(value);
        let bytes = w.into_bytes();
        assert_eq!(Reader::new(&bytes).svarint("v").unwrap(), value);
    }
}

#[test]
fn small_values_are_one_byte() {
    assert_eq!(uvarint_bytes(0), [0]);
    assert_eq!(uvarint_bytes(127), [127]);
    assert_eq!(uvarint_bytes(128), [0x80, 1]);
    let mut w = Writer::new();
    w.svarint(-1);
    assert_eq!(w.into_bytes(), [1]);
}

#[test]
fn non_canonical_and_oversized_varints_are_refused() {
    // 0 written in two bytes, 1 with a trailing zero group.
    for bytes in [&[0x80, 0x00][..], &[0x81, 0x00], &[0xff; 11], &[0x80; 3]] {
        let err = Reader::new(bytes).uvarint("count").unwrap_err();
        assert!(err.what.starts_with("count"), "{err}");
    }
    // 2^64 does not fit.
    let mut past = vec![0x80u8; 9];
    past.push(0x02);
    let err = Reader::new(&past).uvarint("v").unwrap_err();
    assert!(err.what.contains("past 64 bits"), "{err}");
    let err = Reader::new(&uvarint_bytes(u64::from(u32::MAX) + 1))
        .u32("length")
        .unwrap_err();
    assert!(err.what.contains("more than"), "{err}");
}

#[test]
fn lengths_are_checked_before_anything_is_allocated() {
    let mut w = Writer::new();
    w.uvarint(1 << 40);
    let bytes = w.into_bytes();
    let err = Reader::new(&bytes).bytes(usize::MAX, "name").unwrap_err();
    assert!(err.what.contains("bytes wanted"), "{err}");
    let err = Reader::new(&bytes).bytes(255, "name").unwrap_err();
    assert!(err.what.contains("more than 255"), "{err}");
}

#[test]
fn strings_must_be_utf8_and_trailing_bytes_are_refused() {
    let mut w = Writer::new();
    w.bytes(&[0xff, 0xfe]);
    let bytes = w.into_bytes();
    let err = Reader::new(&bytes).str(10, "name").unwrap_err();
    assert_eq!(err.at, 0);
    assert!(err.what.contains("UTF-8"), "{err}");

    let mut w = Writer::new();
    w.str("chats");
    w.u8(7);
    let bytes = w.into_bytes();
    let mut r = Reader::new(&bytes);
    assert_eq!(r.str(10, "name").unwrap(), "chats");
    assert!(r.finish().unwrap_err().what.contains("1 trailing"));
}

#[test]
fn blob_refs_round_trip_and_unknown_compression_is_refused() {
    let blob = BlobRef {
        id: ObjectId([7; 32]),
        pack: ObjectId([9; 32]),
        offset: 123_456_789,
        length: 8000,
        raw_length: 8192,
        compression: Compression::Zstd,
        tenant: None,
    };
    let mut w = Writer::new();
    w.blob_ref(&blob);
    let mut bytes = w.into_bytes();
    assert!(bytes.len() < 80, "{} bytes", bytes.len());
    let mut r = Reader::new(&bytes);
    assert_eq!(r.blob_ref().unwrap(), blob);
    r.finish().unwrap();

    *bytes.last_mut().unwrap() = 9;
    let err = Reader::new(&bytes).blob_ref().unwrap_err();
    assert!(err.what.contains("unknown compression 9"), "{err}");
    for cut in 0..bytes.len() {
        assert!(
            Reader::new(&bytes[..cut]).blob_ref().is_err(),
            "cut at {cut}"
        );
    }
}
