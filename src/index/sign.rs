//! Ed25519 keys and detached signatures in the signify / usign file format, so vendors can
//! use keys they already have (OpenWrt's usign, OpenBSD's signify) and fwguard's keys work
//! with those tools.
//!
//! Files are two lines: `untrusted comment: ...` and a base64 blob.
//! - public key: `"Ed" | keynum[8] | public[32]`
//! - signature:  `"Ed" | keynum[8] | signature[64]`
//! - secret key: `"Ed" | "BK" | kdfrounds[4, BE] | salt[16] | checksum[8] | keynum[8] | secret[64]`
//!   where `secret` is seed followed by public key and `checksum` the first 8 bytes of
//!   SHA-512(secret). Only unencrypted secret keys (kdfrounds = 0, `signify -n`) are read.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};
use std::fmt;

const PKALG: &[u8; 2] = b"Ed";
const KDFALG: &[u8; 2] = b"BK";
const COMMENT_PREFIX: &str = "untrusted comment: ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a signify/usign {what}: {problem}")]
    Format { what: &'static str, problem: String },
    #[error("secret key is passphrase-protected (kdfrounds {0}); create keys with `fwguard-index keygen` or `signify -G -n`")]
    Encrypted(u32),
    #[error("secret key checksum does not match its contents")]
    Checksum,
}

/// The 8-byte key number signify uses to tell keys apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Split a signify file into (comment, decoded blob). A bare base64 line is accepted too.
fn decode_file(text: &str, what: &'static str) -> Result<(String, Vec<u8>), KeyError> {
    let fmt_err = |problem: &str| KeyError::Format {
        what,
        problem: problem.to_string(),
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().ok_or_else(|| fmt_err("empty"))?;
    let (comment, b64) = match first.strip_prefix(COMMENT_PREFIX) {
        Some(c) => (
            c.to_string(),
            lines
                .next()
                .ok_or_else(|| fmt_err("no base64 line after the comment"))?,
        ),
        None => (String::new(), first),
    };
    let blob = B64
        .decode(b64)
        .map_err(|e| fmt_err(&format!("bad base64: {e}")))?;
    if blob.len() < 2 || &blob[..2] != PKALG {
        return Err(fmt_err("algorithm is not Ed"));
    }
    Ok((comment, blob))
}

fn encode_file(comment: &str, blob: &[u8]) -> String {
    format!("{COMMENT_PREFIX}{comment}\n{}\n", B64.encode(blob))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: KeyId,
    key: VerifyingKey,
}

impl PublicKey {
    /// Parse a public key file, or just its base64 line.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let (_, blob) = decode_file(text, "public key")?;
        if blob.len() != 42 {
            return Err(KeyError::Format {
                what: "public key",
                problem: format!("{} bytes, expected 42", blob.len()),
            });
        }
        let key =
            VerifyingKey::from_bytes(blob[10..42].try_into().expect("32 bytes")).map_err(|e| {
                KeyError::Format {
                    what: "public key",
                    problem: e.to_string(),
                }
            })?;
        Ok(PublicKey {
            id: KeyId(blob[2..10].try_into().expect("8 bytes")),
            key,
        })
    }

    /// The raw Ed25519 public key.
    pub fn key_bytes(&self) -> [u8; 32] {
        *self.key.as_bytes()
    }

    /// The base64 line alone (what goes into `trusted_keys`).
    pub fn to_base64(&self) -> String {
        let mut blob = PKALG.to_vec();
        blob.extend_from_slice(&self.id.0);
        blob.extend_from_slice(self.key.as_bytes());
        B64.encode(blob)
    }

    pub fn to_file(&self, comment: &str) -> String {
        format!("{COMMENT_PREFIX}{comment}\n{}\n", self.to_base64())
    }

    /// Verify a signature over exactly `message`.
    pub fn verify(&self, message: &[u8], sig: &DetachedSignature) -> bool {
        sig.key_id == self.id && super::ed25519::verify_strict(&self.key, message, &sig.sig)
    }
}

#[derive(Debug, Clone)]
pub struct DetachedSignature {
    pub key_id: KeyId,
    sig: Signature,
}

impl DetachedSignature {
    fn from_blob(blob: &[u8]) -> Result<Self, KeyError> {
        if blob.len() != 74 {
            return Err(KeyError::Format {
                what: "signature",
                problem: format!("{} bytes, expected 74", blob.len()),
            });
        }
        Ok(DetachedSignature {
            key_id: KeyId(blob[2..10].try_into().expect("8 bytes")),
            sig: Signature::from_bytes(blob[10..74].try_into().expect("64 bytes")),
        })
    }

    /// Parse a signature file: one or more signify signatures (comment line + base64 line).
    pub fn parse_all(text: &str) -> Result<Vec<DetachedSignature>, KeyError> {
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with(COMMENT_PREFIX) {
                continue;
            }
            let (_, blob) = decode_file(line, "signature")?;
            out.push(Self::from_blob(&blob)?);
        }
        if out.is_empty() {
            return Err(KeyError::Format {
                what: "signature",
                problem: "no signature in the file".into(),
            });
        }
        Ok(out)
    }

    pub fn to_file(&self, comment: &str) -> String {
        let mut blob = PKALG.to_vec();
        blob.extend_from_slice(&self.key_id.0);
        blob.extend_from_slice(&self.sig.to_bytes());
        encode_file(comment, &blob)
    }
}

pub struct SecretKey {
    pub id: KeyId,
    key: SigningKey,
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<SecretKey, getrandom::Error> {
        let mut seed = [0u8; 32];
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut seed)?;
        getrandom::getrandom(&mut id)?;
        Ok(SecretKey {
            id: KeyId(id),
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    pub fn sign(&self, message: &[u8]) -> DetachedSignature {
        DetachedSignature {
            key_id: self.id,
            sig: self.key.sign(message),
        }
    }

    fn secret64(&self) -> [u8; 64] {
        self.key.to_keypair_bytes()
    }

    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let (_, blob) = decode_file(text, "secret key")?;
        if blob.len() != 104 || &blob[2..4] != KDFALG {
            return Err(KeyError::Format {
                what: "secret key",
                problem: format!("{} bytes or wrong kdf algorithm", blob.len()),
            });
        }
        let rounds = u32::from_be_bytes(blob[4..8].try_into().expect("4 bytes"));
        if rounds != 0 {
            return Err(KeyError::Encrypted(rounds));
        }
        let checksum = &blob[24..32];
        let id = KeyId(blob[32..40].try_into().expect("8 bytes"));
        let secret: [u8; 64] = blob[40..104].try_into().expect("64 bytes");
        if &Sha512::digest(secret)[..8] != checksum {
            return Err(KeyError::Checksum);
        }
        let key = SigningKey::from_keypair_bytes(&secret).map_err(|e| KeyError::Format {
            what: "secret key",
            problem: e.to_string(),
        })?;
        Ok(SecretKey { id, key })
    }

    pub fn to_file(&self, comment: &str) -> String {
        let secret = self.secret64();
        let mut blob = PKALG.to_vec();
        blob.extend_from_slice(KDFALG);
        blob.extend_from_slice(&0u32.to_be_bytes());
        blob.extend_from_slice(&[0u8; 16]);
        blob.extend_from_slice(&Sha512::digest(secret)[..8]);
        blob.extend_from_slice(&self.id.0);
        blob.extend_from_slice(&secret);
        encode_file(comment, &blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sign() {
        let sk = SecretKey::generate().unwrap();
        let sk2 = SecretKey::parse(&sk.to_file("test secret key")).unwrap();
        assert_eq!(sk2.id, sk.id);
        let pk = PublicKey::parse(&sk.public().to_file("test public key")).unwrap();
        assert_eq!(pk, sk.public());
        assert_eq!(PublicKey::parse(&pk.to_base64()).unwrap(), pk);
        let sig = sk2.sign(b"exact bytes");
        let sigs = DetachedSignature::parse_all(&sig.to_file("verify with test.pub")).unwrap();
        assert!(pk.verify(b"exact bytes", &sigs[0]));
        assert!(!pk.verify(b"exact bytes ", &sigs[0]));
    }

    #[test]
    fn rejects_bad_files() {
        assert!(PublicKey::parse("").is_err());
        assert!(PublicKey::parse("untrusted comment: x\n!!!!\n").is_err());
        assert!(DetachedSignature::parse_all("untrusted comment: only a comment\n").is_err());
        let sk = SecretKey::generate().unwrap();
        let mut f = sk.to_file("c");
        // Corrupt one base64 character of the secret part.
        let idx = f.len() - 10;
        let c = if &f[idx..idx + 1] == "A" { "B" } else { "A" };
        f.replace_range(idx..idx + 1, c);
        assert!(SecretKey::parse(&f).is_err());
    }
}
