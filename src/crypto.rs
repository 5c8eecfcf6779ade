//! Cryptographic primitives, all from `aws-lc-rs` (AES-NI / SHA-NI where the
//! CPU has them); nothing here is home-made beyond how they are combined.
//!
//! * [`Secret`]: 32 key bytes, zeroized on drop, `Debug` prints `[redacted]`.
//! * [`Secret::derive`]: HKDF-SHA-256 (RFC 5869) subkeys, one per purpose.
//! * [`seal`] / [`open`]: AES-256-GCM. **Nonces never repeat under one key**
//!   because no long-lived key ever encrypts directly: every object (and every
//!   pack) gets its own subkey derived from a fresh random 128-bit salt, and
//!   the nonce inside it is a position (0 for a whole object, the blob's
//!   offset inside a pack). A (subkey, nonce) pair can only repeat if two
//!   objects draw the same 128-bit salt.
//! * [`Secret::keyed_id`]: HMAC-SHA-256, for blob ids that reveal nothing
//!   about the content to whoever lacks the key.
//! * [`random`]: the operating system's random generator (`getrandom(2)`),
//!   read directly: aws-lc's own generator seeds itself from CPU-timing
//!   jitter on its first use in a process, ~30 ms of CPU, which was a third
//!   of a one-item restore (a temporary name and a log entry are all the
//!   randomness it needs). The kernel's generator is what that one is seeded
//!   from anyway, and what salts and keys need.
//!
//! AES-GCM is not key-committing: a hostile object could be built to
//! authenticate under two keys. Every blob read therefore re-computes the
//! keyed id of what it decrypted ([`crate::repo::keys::DataKey::open_blob`]).

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroize;

/// Length of an AES-GCM tag: what sealing adds to every plaintext.
pub const TAG_LEN: usize = 16;

/// 32 bytes of key material.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Secret {
    /// A fresh random secret.
    pub fn random() -> Self {
        Secret(random())
    }

    /// Wrap key bytes (the caller zeroizes its own copy).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Secret(bytes)
    }

    /// The key bytes, to wrap or to write into a key file. Never log them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The HKDF-SHA-256 subkey of this secret for `salt` and `purpose`.
    pub fn derive(&self, salt: &[u8], purpose: &[u8]) -> Secret {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.0);
        let info = [purpose];
        let okm = prk
            .expand(&info, hkdf::HKDF_SHA256)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        let mut out = [0u8; 32];
        okm.fill(&mut out)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        Secret(out)
    }

    /// HMAC-SHA-256 of `data` under this secret.
    pub fn keyed_id(&self, data: &[u8]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(&key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// A reusable HMAC key (hashing many blobs under one key).
    pub fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }
}

/// HMAC-SHA-256 of `data` under a prepared key.
pub fn hmac_id(key: &hmac::Key, data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(key, data).as_ref());
    out
}

/// Random bytes from the operating system (see the module docs).
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random generator works");
    out
}

/// An AES-256-GCM key ready to seal and open.
pub struct SealingKey(LessSafeKey);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    pub fn new(secret: &Secret) -> Self {
        let unbound =
            UnboundKey::new(&AES_256_GCM, secret.expose()).expect("32 bytes is an AES-256 key");
        SealingKey(LessSafeKey::new(unbound))
    }

    /// Append the sealed form of `plaintext` (ciphertext and tag) to `out`,
    /// encrypting in place in `out` (no second copy of the plaintext).
    pub fn seal_into(&self, position: u64, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce(position), Aad::from(aad), &mut out[start..])
            .expect("AES-GCM seals any plaintext below 64 GiB");
        out.extend_from_slice(tag.as_ref());
    }

    /// The plaintext of `sealed`, or `None` when it does not authenticate
    /// (wrong key, wrong position or context, any changed byte).
    pub fn open(&self, position: u64, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < TAG_LEN {
            return None;
        }
        let mut buf = sealed.to_vec();
        let len = self
            .0
            .open_in_place(nonce(position), Aad::from(aad), &mut buf)
            .ok()?
            .len();
        buf.truncate(len);
        Some(buf)
    }
}

fn nonce(position: u64) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[NONCE_LEN - 8..].copy_from_slice(&position.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// Seal `plaintext` under a subkey of `key` for `purpose`, with a fresh
/// random salt: `salt[16] ‖ ciphertext ‖ tag`. `aad` is bound but not stored.
pub fn seal(key: &Secret, purpose: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let salt: [u8; 16] = random();
    let sealing = SealingKey::new(&key.derive(&salt, purpose));
    let mut out = Vec::with_capacity(16 + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&salt);
    sealing.seal_into(0, aad, plaintext, &mut out);
    out
}

/// The plaintext of what [`seal`] made with the same key, purpose and aad;
/// `None` when anything differs or a byte was changed.
pub fn open(key: &Secret, purpose: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (salt, body) = (sealed.get(..16)?, sealed.get(16..)?);
    SealingKey::new(&key.derive(salt, purpose)).open(0, aad, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_depend_on_salt_and_purpose() {
        let ikm = Secret::from_bytes([0x0b; 32]);
        let a = ikm.derive(&[0, 1, 2], b"x");
        let b = ikm.derive(&[0, 1, 2], b"x");
        let c = ikm.derive(&[0, 1, 2], b"y");
        let d = ikm.derive(&[0, 1, 3], b"x");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn keyed_ids_depend_on_content_and_key() {
        let key = Secret::from_bytes([7; 32]);
        assert_eq!(key.keyed_id(b"abc"), hmac_id(&key.hmac_key(), b"abc"));
        assert_ne!(key.keyed_id(b"abc"), key.keyed_id(b"abd"));
        assert_ne!(
            key.keyed_id(b"abc"),
            Secret::from_bytes([8; 32]).keyed_id(b"abc")
        );
    }

    #[test]
    fn sealed_round_trips_and_any_flipped_bit_fails() {
        let key = Secret::random();
        let sealed = seal(&key, b"test", b"ctx", b"personal data");
        assert!(
            !sealed.windows(8).any(|w| w == b"personal"),
            "plaintext visible"
        );
        assert_eq!(
            open(&key, b"test", b"ctx", &sealed).unwrap(),
            b"personal data"
        );
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    open(&key, b"test", b"ctx", &bad).is_none(),
                    "byte {i} bit {bit}"
                );
            }
        }
        assert!(open(&key, b"other", b"ctx", &sealed).is_none());
        assert!(open(&key, b"test", b"other", &sealed).is_none());
        assert!(open(&Secret::random(), b"test", b"ctx", &sealed).is_none());
        assert!(open(&key, b"test", b"ctx", &sealed[..sealed.len() - 1]).is_none());
        assert!(open(&key, b"test", b"ctx", &sealed[..10]).is_none());
    }

    #[test]
    fn positions_are_bound() {
        let key = SealingKey::new(&Secret::random());
        let mut out = Vec::new();
        key.seal_into(40, b"", b"chunk", &mut out);
        assert_eq!(key.open(40, b"", &out).unwrap(), b"chunk");
        assert!(key.open(41, b"", &out).is_none());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::from_bytes([0xab; 32]);
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
