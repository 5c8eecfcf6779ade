//! Bounded zstd decompression for bytes read from the repository.
//!
//! Bucket content is untrusted: a few KiB of zstd can expand to GiBs, and a
//! blob's `raw_length` is a number anyone with write access could set to
//! 4 GiB. So nothing here allocates from a length field or decompresses
//! without a ceiling: output grows only as the decoder produces it, and
//! decoding stops one byte past `max`. (A `max` up to [`PREALLOC_MAX`] is
//! reserved whole and decoded in one call into it, the common case of a
//! chunk; the decoder never writes past the buffer.)

use std::cell::RefCell;
use std::io::Read;

/// The most bytes preallocated before any are decompressed (a little over
/// the largest data chunk, so ordinary blobs decode without regrowing).
const PREALLOC_MAX: u64 = 9 << 20;

/// A zstd-compressed JSON document (pack header, index file) decompresses to
/// at most this many times its stored size, plus [`JSON_SLACK`]. Their
/// content is mostly random 64-digit hex ids, which zstd shrinks at most
/// about 5 times; 64 leaves a wide margin while stopping a bomb.
pub const JSON_EXPANSION: u64 = 64;
/// Headroom for tiny documents.
pub const JSON_SLACK: u64 = 1 << 20;

/// The ceiling for a compressed JSON document of `stored_len` bytes.
pub fn json_limit(stored_len: usize) -> u64 {
    (stored_len as u64)
        .saturating_mul(JSON_EXPANSION)
        .saturating_add(JSON_SLACK)
}

/// Decompress `stored` (one or more zstd frames), refusing more than `max`
/// bytes of output.
pub fn decompress_at_most(stored: &[u8], max: u64) -> std::io::Result<Vec<u8>> {
    if let Some(out) = usize::try_from(max)
        .ok()
        .filter(|m| *m as u64 <= PREALLOC_MAX)
        .and_then(|m| bulk(stored, m))
    {
        return Ok(out);
    }
    let mut out = Vec::with_capacity(usize::try_from(max.min(PREALLOC_MAX)).unwrap_or(0));
    zstd::stream::read::Decoder::with_buffer(stored)?
        .take(max.saturating_add(1))
        .read_to_end(&mut out)?;
    at_most(out, max)
}

/// [`decompress_at_most`] for frames compressed with `dictionary`.
pub fn decompress_with_dictionary_at_most(
    stored: &[u8],
    dictionary: &zstd::dict::DecoderDictionary<'_>,
    max: u64,
) -> std::io::Result<Vec<u8>> {
    if let Some(out) = usize::try_from(max)
        .ok()
        .filter(|m| *m as u64 <= PREALLOC_MAX)
        .and_then(|m| bulk_with_dictionary(stored, dictionary, m))
    {
        return Ok(out);
    }
    let mut out = Vec::with_capacity(usize::try_from(max.min(PREALLOC_MAX)).unwrap_or(0));
    zstd::stream::read::Decoder::with_prepared_dictionary(stored, dictionary)?
        .take(max.saturating_add(1))
        .read_to_end(&mut out)?;
    at_most(out, max)
}

fn at_most(out: Vec<u8>, max: u64) -> std::io::Result<Vec<u8>> {
    if out.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "decompresses to more than {max} bytes"
        )));
    }
    Ok(out)
}

thread_local! {
    /// One decompression context per thread, kept: a blob is a few KiB,
    /// and creating a context for each cost more than decoding it (15 % of
    /// a large restore's CPU went to `ZSTD_createDCtx`).
    static CONTEXT: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

thread_local! {
    /// The same for blobs compressed with a dictionary: the dictionary is
    /// referenced per call, the context kept (creating one per blob was a
    /// quarter of a large restore's CPU once dictionaries came).
    static DICTIONARY_CONTEXT: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

/// [`bulk`] for a blob compressed with `dictionary`.
fn bulk_with_dictionary(
    stored: &[u8],
    dictionary: &zstd::dict::DecoderDictionary<'_>,
    max: usize,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(max);
    DICTIONARY_CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match &mut *slot {
            Some(c) => c,
            None => slot.insert(zstd::zstd_safe::DCtx::try_create()?),
        };
        context
            .decompress_using_ddict(&mut out, stored, dictionary.as_ddict())
            .ok()
    })?;
    Some(out)
}

/// Decompress `stored` into a buffer of exactly `max` bytes' capacity with
/// this thread's context (the decoder writes nothing past it); `None` when
/// that fails for any reason (more than `max` bytes, damage): the streaming
/// path then gives the error its exact wording.
fn bulk(stored: &[u8], max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(max);
    CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match &mut *slot {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Decompressor::new().ok()?),
        };
        context.decompress_to_buffer(stored, &mut out).ok()
    })?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_over_the_ceiling_is_refused() {
        let stored = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap();
        assert_eq!(decompress_at_most(&stored, 1 << 20).unwrap().len(), 1 << 20);
        let err = decompress_at_most(&stored, (1 << 20) - 1).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        // Over the preallocation (the streaming path) too.
        let big = zstd::bulk::compress(&vec![0u8; 10 << 20], 3).unwrap();
        assert_eq!(decompress_at_most(&big, 10 << 20).unwrap().len(), 10 << 20);
        let err = decompress_at_most(&big, (10 << 20) - 1).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    /// Two frames back to back decode as one (the bulk path), and a damaged
    /// frame is an error, not a short result, with the context reused after.
    #[test]
    fn concatenated_frames_and_damage() {
        let mut two = zstd::bulk::compress(b"hello ", 3).unwrap();
        two.extend(zstd::bulk::compress(b"world", 3).unwrap());
        assert_eq!(decompress_at_most(&two, 11).unwrap(), b"hello world");
        let mut bad = zstd::bulk::compress(&[7u8; 5000], 3).unwrap();
        let last = bad.len() - 3;
        bad[last] ^= 0xff;
        assert!(decompress_at_most(&bad, 5000).is_err());
        assert!(decompress_at_most(&bad[..bad.len() / 2], 5000).is_err());
        assert_eq!(decompress_at_most(&two, 100).unwrap(), b"hello world");
    }

    #[test]
    fn output_over_the_ceiling_is_refused_with_a_dictionary_too() {
        let dictionary = b"zeros and more zeros".repeat(50);
        let mut c = zstd::bulk::Compressor::with_dictionary(3, &dictionary).unwrap();
        let stored = c.compress(&vec![0u8; 1 << 20]).unwrap();
        let loaded = zstd::dict::DecoderDictionary::copy(&dictionary);
        let out = decompress_with_dictionary_at_most(&stored, &loaded, 1 << 20).unwrap();
        assert_eq!(out.len(), 1 << 20);
        let err = decompress_with_dictionary_at_most(&stored, &loaded, 1000).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        // The kept context decodes the next blob, with or without damage.
        let mut bad = stored.clone();
        let last = bad.len() - 3;
        bad[last] ^= 0xff;
        assert!(decompress_with_dictionary_at_most(&bad, &loaded, 1 << 20).is_err());
        let again = decompress_with_dictionary_at_most(&stored, &loaded, 1 << 20).unwrap();
        assert_eq!(again, vec![0u8; 1 << 20]);
    }

    #[test]
    fn json_limit_saturates() {
        assert_eq!(json_limit(0), JSON_SLACK);
        assert_eq!(json_limit(usize::MAX), u64::MAX);
    }
}
