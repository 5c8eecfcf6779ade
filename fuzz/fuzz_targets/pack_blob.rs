//! One stored blob and the location that describes it. Input: a compression
//! byte (its code modulo 3: none, zstd, zstd with a dictionary; the pack's
//! dictionary is then the input's first half, prepared as a reader would),
//! the declared raw length (u32 LE), then the stored bytes.
//! Sealed bytes from the fuzzer never authenticate, so the decrypted form
//! goes to `decode_stored` directly (decompression, length and id checks),
//! and the same bytes to `decode_blob` as sealed ones, under a fixed key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use offsite::crypto::Secret;
use offsite::id::ObjectId;
use offsite::repo::dictionary;
use offsite::repo::keys::DataKey;
use offsite::repo::pack::{decode_blob, decode_stored, BlobRef, Compression};

fuzz_target!(|data: &[u8]| {
    let _ = offsite_fuzz::ALLOCATION_LIMIT;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((raw_length, stored)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let key = DataKey::from_secret(&Secret::from_bytes([7; 32]));
    let blob = BlobRef {
        // The keyed id of the stored bytes: uncompressed blobs reach the end.
        id: key.id_of(stored),
        pack: ObjectId::hash(b"pack"),
        offset: 0,
        length: stored.len() as u32,
        raw_length: u32::from_le_bytes(*raw_length),
        compression: Compression::from_code(mode % 3).expect("codes 0 to 2"),
        tenant: None,
    };
    let dictionary = (blob.compression == Compression::ZstdDict)
        .then(|| dictionary::prepare(&stored[..stored.len() / 2]).ok())
        .flatten();
    let _ = decode_blob(stored, &blob, &key, dictionary.as_ref());
    let _ = decode_stored(stored.to_vec(), &blob, &key, dictionary.as_ref());
    let _ = decode_stored(stored.to_vec(), &blob, &key, None);
});
