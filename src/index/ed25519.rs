//! Ed25519 verification as `ed25519-dalek`'s `verify_strict` does it, with the SHA-512 of
//! the signature's challenge computed by `ring` (already in the binary, for TLS) instead of
//! the `sha2` crate: `sha2`'s portable SHA-512 is 27 KB of an armv7 build that only ever
//! verifies, and ring's is the assembly (NEON where the CPU has it) TLS uses anyway.
//!
//! Strict, as `verify_strict`: the public key and the signature's `R` must not be points of
//! small order, `R` must decode, and the recomputed `R` must equal the signature's bytes
//! (which also refuses a non-canonical `R`). `s` must be canonical (checked by the library).

use ed25519_dalek::{Signature, VerifyingKey};

/// SHA-512 by ring, as the `digest` traits that ed25519-dalek's hazmat API takes.
#[derive(Clone)]
pub struct RingSha512(ring::digest::Context);

impl Default for RingSha512 {
    fn default() -> Self {
        RingSha512(ring::digest::Context::new(&ring::digest::SHA512))
    }
}

impl digest::HashMarker for RingSha512 {}

impl digest::OutputSizeUser for RingSha512 {
    type OutputSize = digest::consts::U64;
}

impl digest::Update for RingSha512 {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

impl digest::FixedOutput for RingSha512 {
    fn finalize_into(self, out: &mut digest::Output<Self>) {
        out.copy_from_slice(self.0.finish().as_ref());
    }
}

/// Whether `sig` is `key`'s valid signature over exactly `message`, strictly.
pub fn verify_strict(key: &VerifyingKey, message: &[u8], sig: &Signature) -> bool {
    let r = curve25519_dalek::edwards::CompressedEdwardsY(sig.r_bytes().to_owned());
    let Some(r) = r.decompress() else {
        return false;
    };
    if r.is_small_order() || key.is_weak() {
        return false;
    }
    ed25519_dalek::hazmat::raw_verify::<RingSha512>(key, message, sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use sha2::Digest as _;

    #[test]
    fn ring_sha512_is_sha512() {
        for len in [0usize, 1, 111, 112, 127, 128, 129, 1000, 4096] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut h = <RingSha512 as Default>::default();
            digest::Update::update(&mut h, &data[..len / 2]);
            digest::Update::update(&mut h, &data[len / 2..]);
            let ours = digest::FixedOutput::finalize_fixed(h);
            assert_eq!(ours[..], sha2::Sha512::digest(&data)[..], "length {len}");
        }
    }

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
    fn small_order_points_are_refused_as_verify_strict_refuses_them() {
        // The identity point (small order) as the public key and as R, with s = 0: the
        // equation holds for every message, which is why strict verification refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity);
        let sig = Signature::from_bytes(&sig);
        assert!(ed25519_dalek::hazmat::raw_verify::<RingSha512>(&weak, b"any", &sig).is_ok());
        assert!(weak.verify_strict(b"any", &sig).is_err());
        assert!(!verify_strict(&weak, b"any", &sig));
        // A strong key with a small-order R is refused too.
        let vk = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        assert!(!verify_strict(&vk, b"any", &sig));
    }
}
