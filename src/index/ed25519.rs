//! Ed25519 verification as strict as `ed25519-dalek`'s `verify_strict`, with the equation
//! checked by `ring` (already in the binary, for TLS): its assembly is fast even in a build
//! optimised for size, where dalek's portable field arithmetic is forty times slower (the
//! fleet service checks a signature on every report it ingests), and the device needs no
//! second SHA-512.
//!
//! Strict, as `verify_strict`: the public key and the signature's `R` must be points and not
//! of small order; ring recomputes `R` and compares its encoding with the signature's bytes
//! (which refuses a non-canonical `R`), and refuses an `S` of the group order or more.

use curve25519_dalek::edwards::CompressedEdwardsY;

/// Why a signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The public key's bytes do not decode to a point.
    KeyNotAPoint,
    /// The public key is a point of small order (it would verify forged signatures).
    WeakKey,
    /// The signature is not this key's over these bytes.
    Mismatch,
}

impl Refused {
    /// What is wrong, for an error message.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::KeyNotAPoint => "the key is not a point",
            Refused::WeakKey => "the key is of small order",
            Refused::Mismatch => "the signature does not match the body",
        }
    }
}

/// Check that `sig` is `key`'s valid signature over exactly `message`, strictly.
pub fn check(key: &[u8; 32], message: &[u8], sig: &[u8; 64]) -> Result<(), Refused> {
    let a = CompressedEdwardsY(*key)
        .decompress()
        .ok_or(Refused::KeyNotAPoint)?;
    if a.is_small_order() {
        return Err(Refused::WeakKey);
    }
    let r = CompressedEdwardsY(sig[..32].try_into().expect("32 of 64 bytes"))
        .decompress()
        .ok_or(Refused::Mismatch)?;
    if r.is_small_order() {
        return Err(Refused::Mismatch);
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(message, sig)
        .map_err(|_| Refused::Mismatch)
}

/// Whether `sig` is `key`'s valid signature over exactly `message`, strictly.
pub fn verify_strict(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    sig: &ed25519_dalek::Signature,
) -> bool {
    check(key.as_bytes(), message, &sig.to_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

    #[test]
    fn agrees_with_the_library_on_good_and_bad_signatures() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let vk = key.verifying_key();
        for msg in [&b""[..], b"exact bytes", &[0u8; 300][..]] {
            let sig = key.sign(msg);
            assert!(verify_strict(&vk, msg, &sig));
            assert!(vk.verify_strict(msg, &sig).is_ok());
            let mut other = msg.to_vec();
            other.push(1);
            assert!(!verify_strict(&vk, &other, &sig));
            // Every flipped bit of the signature: refused by both.
            let bytes = sig.to_bytes();
            for bit in (0..512).step_by(7) {
                let mut b = bytes;
                b[bit / 8] ^= 1 << (bit % 8);
                let bad = Signature::from_bytes(&b);
                assert!(!verify_strict(&vk, msg, &bad), "bit {bit}");
                assert!(vk.verify_strict(msg, &bad).is_err(), "bit {bit}");
            }
        }
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(!verify_strict(
            &other,
            b"exact bytes",
            &key.sign(b"exact bytes")
        ));
    }

    #[test]
    fn a_non_canonical_s_is_refused_as_verify_strict_refuses_it() {
        // S + L (the group order) satisfies the same equation; only canonical S is taken.
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let sig = key.sign(b"a report").to_bytes();
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut bumped = sig;
        let mut carry = 0u16;
        for i in 0..32 {
            let v = bumped[32 + i] as u16 + l[i] as u16 + carry;
            bumped[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_ne!(bumped, sig);
        let bumped_sig = Signature::from_bytes(&bumped);
        assert!(key
            .verifying_key()
            .verify_strict(b"a report", &bumped_sig)
            .is_err());
        let public = key.verifying_key().to_bytes();
        assert_eq!(check(&public, b"a report", &bumped), Err(Refused::Mismatch));
        assert_eq!(check(&public, b"a report", &sig), Ok(()));
    }

    #[test]
    fn small_order_points_and_non_points_are_refused() {
        // The identity point (small order) as the public key and as R, with s = 0: the
        // equation holds for every message, which is why strict verification refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity);
        assert!(weak.verify(b"any", &Signature::from_bytes(&sig)).is_ok());
        assert!(weak
            .verify_strict(b"any", &Signature::from_bytes(&sig))
            .is_err());
        assert_eq!(check(&identity, b"any", &sig), Err(Refused::WeakKey));
        // A strong key with a small-order R is refused too.
        let vk = SigningKey::from_bytes(&[7u8; 32])
            .verifying_key()
            .to_bytes();
        assert_eq!(check(&vk, b"any", &sig), Err(Refused::Mismatch));
        // Bytes that are no point at all: the first y whose encoding does not decompress.
        let bad = (2u8..)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| CompressedEdwardsY(*b).decompress().is_none())
            .expect("some y is not on the curve");
        assert_eq!(check(&bad, b"any", &sig), Err(Refused::KeyNotAPoint));
    }
}
