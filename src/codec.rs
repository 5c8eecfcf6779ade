//! The compact binary encoding of repository metadata (format 3).
//!
//! JSON with hex ids made a blob reference ~200 bytes and a directory of a
//! million files a 300 MB object; this encoding makes a reference ~70 bytes
//! and lets directory pages and chunk-list pieces be cut and decoded one at a
//! time. It is hand-written (about a page) because content-addressed
//! metadata needs **canonical** bytes: the same value must always encode to
//! the same bytes, or unchanged directories would stop deduplicating.
//!
//! * Unsigned integers are LEB128 varints ([`Writer::uvarint`]); a reader
//!   refuses an over-long encoding (a trailing zero byte, more than 10 bytes)
//!   and a value past 64 bits, so every value has exactly one encoding.
//! * Signed integers are zigzag varints ([`Writer::svarint`]).
//! * Byte strings and names carry their length first; the reader checks it
//!   against the bytes left and a caller's maximum **before** it allocates.
//! * Ids are their 32 raw bytes.
//!
//! The bytes come from an untrusted bucket (sealed, but a host that holds the
//! key can still write anything), so [`Reader`] never panics and never
//! allocates more than the input's length: every failure is a [`DecodeError`]
//! naming what was being read and where, which callers turn into
//! [`crate::error::Error::Corrupt`] naming the object.

use std::fmt;

use crate::id::ObjectId;
use crate::repo::pack::{BlobRef, Compression};

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset where reading failed.
    pub at: usize,
    pub what: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for DecodeError {}

/// Result of decoding.
pub type Decoded<T> = std::result::Result<T, DecodeError>;

/// Appends encoded values to a buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    /// An unsigned LEB128 varint (1 byte below 128, at most 10).
    pub fn uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    /// A signed zigzag varint (small magnitudes are short either side of 0).
    pub fn svarint(&mut self, value: i64) {
        self.uvarint(((value << 1) ^ (value >> 63)) as u64);
    }

    /// Bytes without a length (the reader must know how many).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A length, then the bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.uvarint(bytes.len() as u64);
        self.raw(bytes);
    }

    /// A length, then the UTF-8 bytes.
    pub fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    pub fn id(&mut self, id: &ObjectId) {
        self.raw(&id.0);
    }

    /// A blob reference without its tenant (trees record the tenant once
    /// per entry): id, pack, offset, length, raw length, compression.
    pub fn blob_ref(&mut self, blob: &BlobRef) {
        self.id(&blob.id);
        self.id(&blob.pack);
        self.uvarint(blob.offset);
        self.uvarint(u64::from(blob.length));
        self.uvarint(u64::from(blob.raw_length));
        self.u8(blob.compression.code());
    }
}

/// Reads encoded values from a byte slice, checking every step.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The byte offset of the next read.
    pub fn position(&self) -> usize {
        self.at
    }

    /// An error at the current position.
    pub fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            at: self.at,
            what: what.into(),
        }
    }

    /// Succeeds only when every byte was read (trailing bytes would let one
    /// value have two encodings).
    pub fn finish(&self) -> Decoded<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(format!("{n} trailing bytes"))),
        }
    }

    pub fn u8(&mut self, what: &str) -> Decoded<u8> {
        Ok(self.raw(1, what)?[0])
    }

    /// `n` bytes as they are.
    pub fn raw(&mut self, n: usize, what: &str) -> Decoded<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "{what}: {n} bytes wanted, {} left",
                self.remaining()
            )));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    /// An unsigned varint in its one canonical encoding.
    pub fn uvarint(&mut self, what: &str) -> Decoded<u64> {
        let start = self.at;
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                self.at = start;
                return Err(self.error(format!("{what}: varint past 64 bits")));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    self.at = start;
                    return Err(self.error(format!("{what}: over-long varint")));
                }
                return Ok(value);
            }
        }
        self.at = start;
        Err(self.error(format!("{what}: varint longer than 10 bytes")))
    }

    /// An unsigned varint that must be at most `max`.
    pub fn uvarint_max(&mut self, max: u64, what: &str) -> Decoded<u64> {
        let start = self.at;
        let value = self.uvarint(what)?;
        if value > max {
            self.at = start;
            return Err(self.error(format!("{what}: {value} is more than {max}")));
        }
        Ok(value)
    }

    /// A varint that must fit a `u32`.
    pub fn u32(&mut self, what: &str) -> Decoded<u32> {
        Ok(self.uvarint_max(u64::from(u32::MAX), what)? as u32)
    }

    /// A count or length that must be at most `max` (so a caller can
    /// allocate for it).
    pub fn len(&mut self, max: usize, what: &str) -> Decoded<usize> {
        Ok(self.uvarint_max(max as u64, what)? as usize)
    }

    pub fn svarint(&mut self, what: &str) -> Decoded<i64> {
        let zigzag = self.uvarint(what)?;
        Ok((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
    }

    /// A length (at most `max`), then that many bytes.
    pub fn bytes(&mut self, max: usize, what: &str) -> Decoded<&'a [u8]> {
        let n = self.len(max, what)?;
        self.raw(n, what)
    }

    /// A length (at most `max` bytes), then UTF-8.
    pub fn str(&mut self, max: usize, what: &str) -> Decoded<&'a str> {
        let start = self.at;
        let bytes = self.bytes(max, what)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError {
            at: start,
            what: format!("{what}: not UTF-8"),
        })
    }

    pub fn id(&mut self, what: &str) -> Decoded<ObjectId> {
        let mut id = [0u8; 32];
        id.copy_from_slice(self.raw(32, what)?);
        Ok(ObjectId(id))
    }

    /// A blob reference written by [`Writer::blob_ref`] (tenant unset).
    pub fn blob_ref(&mut self) -> Decoded<BlobRef> {
        let id = self.id("blob id")?;
        let pack = self.id("pack id")?;
        let offset = self.uvarint("blob offset")?;
        let length = self.u32("blob length")?;
        let raw_length = self.u32("blob raw length")?;
        let code = self.u8("compression")?;
        let Some(compression) = Compression::from_code(code) else {
            return Err(self.error(format!("unknown compression {code}")));
        };
        Ok(BlobRef {
            id,
            pack,
            offset,
            length,
            raw_length,
            compression,
            tenant: None,
        })
    }
}

#[cfg(test)]
mod tests;
