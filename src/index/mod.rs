//! The signed firmware index.
//!
//! An [`UntrustedIndex`] holds the exact bytes fetched and their detached signatures. Only
//! [`UntrustedIndex::verify`] builds a [`VerifiedIndex`]: it checks the signatures over the
//! exact bytes against the trust root *before* parsing anything, then the format, the
//! version against the last accepted one, and the expiry against a clock that cannot go
//! back past the persisted time floor. See `firmware-index/FORMAT.md`.

pub mod build;
mod doc;
pub mod ed25519;
pub mod extent;
pub mod factory;
pub mod halt;
mod parse;
pub mod part;
pub mod rollout;
pub mod root;
pub mod select;
pub mod sign;
pub mod sysupgrade;

use crate::time::{format_time, parse_time};
use crate::version::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sign::{DetachedSignature, KeyId, PublicKey};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) use doc::{check_release, IndexDoc, IndexMeta, ReleaseDoc, RolloutDoc, WaveDoc};

/// The only index format this build understands.
pub const FORMAT: u32 = 1;
/// Default cap on the index size, enforced while downloading.
pub const DEFAULT_MAX_INDEX_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{what} signature file is invalid: {source}")]
    SignatureFormat {
        what: String,
        #[source]
        source: sign::KeyError,
    },
    #[error("{what} is not signed by enough trusted keys: {valid} valid signature(s) from distinct trusted keys, {threshold} required{detail}")]
    Untrusted {
        what: String,
        valid: usize,
        threshold: usize,
        detail: String,
    },
    #[error("{what} is signed but malformed: {problem}")]
    Malformed { what: String, problem: String },
    #[error("index format {0} is not supported (this fwguard reads format {FORMAT})")]
    Format(u32),
    #[error("index version {got} is older than version {last} accepted before (rollback attack or stale mirror)")]
    Rollback { got: u64, last: u64 },
    #[error("index version {version} was accepted before with different contents (replayed or forked index)")]
    Forked { version: u64 },
    #[error("index expired at {expires} (trusted time is {now})")]
    Expired { expires: String, now: String },
    #[error("index was issued at {issued}, before the trusted time floor {floor}: it is stale")]
    IssuedBeforeFloor { issued: String, floor: String },
    #[error("new root version {got} does not follow the current root version {current}")]
    RootVersion { got: u64, current: u64 },
    #[error("trust root: {0}")]
    Root(String),
    #[error("the signed index does not list version {version} for board {board}")]
    NotListed { version: String, board: String },
}

/// Keys trusted for one role, and how many distinct ones must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    pub keys: Vec<PublicKey>,
    pub threshold: usize,
}

impl TrustPolicy {
    /// The keys of this policy whose signatures over exactly `message` are valid, one entry
    /// per distinct public key, or an error when fewer than the threshold signed.
    pub fn verify(
        &self,
        what: &str,
        message: &[u8],
        signatures: &[u8],
    ) -> Result<Vec<KeyId>, IndexError> {
        let sigs = std::str::from_utf8(signatures)
            .map_err(|_| sign::KeyError::Format {
                what: "signature",
                problem: "not text".into(),
            })
            .and_then(DetachedSignature::parse_all)
            .map_err(|source| IndexError::SignatureFormat {
                what: what.to_string(),
                source,
            })?;
        let mut good_keys: BTreeSet<[u8; 32]> = BTreeSet::new();
        let mut good = Vec::new();
        let (mut unknown, mut bad) = (BTreeSet::new(), BTreeSet::new());
        for sig in &sigs {
            let matching: Vec<&PublicKey> =
                self.keys.iter().filter(|k| k.id == sig.key_id).collect();
            if matching.is_empty() {
                unknown.insert(sig.key_id);
                continue;
            }
            match matching.into_iter().find(|k| k.verify(message, sig)) {
                Some(k) => {
                    if good_keys.insert(k.key_bytes()) {
                        good.push(k.id);
                    }
                }
                None => {
                    bad.insert(sig.key_id);
                }
            }
        }
        let threshold = self.threshold.max(1);
        if good.len() < threshold {
            let join = |ids: &BTreeSet<KeyId>| {
                ids.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut detail = String::new();
            if !unknown.is_empty() {
                detail += &format!("; signed by unknown key(s) {}", join(&unknown));
            }
            if !bad.is_empty() {
                detail += &format!(
                    "; signature(s) by trusted key(s) {} do not match the signed bytes",
                    join(&bad)
                );
            }
            return Err(IndexError::Untrusted {
                what: what.to_string(),
                valid: good.len(),
                threshold,
                detail,
            });
        }
        Ok(good)
    }
}

/// What the device remembers about the last index it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastIndex {
    pub version: u64,
    pub sha256: String,
    pub issued_at: u64,
    /// The security floor for this device's board in that index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_floor: Option<Version>,
    /// Releases for this board that the vendor pulled, with the reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pulled: BTreeMap<String, String>,
}

/// Fetched bytes that nothing has vouched for yet.
#[derive(Debug, Clone)]
pub struct UntrustedIndex {
    pub bytes: Vec<u8>,
    pub signatures: Vec<u8>,
}

/// A staged rollout: wave `i` admits devices whose bucket is below `percent` from
/// `start + after` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub start: u64,
    pub waves: Vec<Wave>,
    pub halted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// Seconds after the rollout start.
    pub after: u64,
    pub percent: u8,
}

/// One release as the verified index describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: Version,
    pub boards: Vec<String>,
    pub channels: Vec<String>,
    /// As written in the index: absolute, or relative to the index URL.
    pub urls: Vec<String>,
    pub size: u64,
    #[serde(with = "hex_sha")]
    pub sha256: [u8; 32],
    /// The lowest running version this release may be installed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_from: Option<Version>,
    /// Withdrawn by the vendor, with the reason: never installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The version of its configuration format (OpenWrt's `compat_version`); None: 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat_version: Option<crate::carry::CompatVersion>,
    /// The vendor's word to an owner whose firmware cannot take it (`compat_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat_message: Option<String>,
    /// The file is a container (OpenWrt's sysupgrade image): the slot's boot image is this
    /// range of it, and every part is a range of it too; nothing else of it is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<part::BootRange>,
    /// Parts besides the boot image, each to its own target of the slot, written before
    /// the boot image (whose head is written last of all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<part::Part>,
    /// How a slot holding it is checked once its firmware has run, when not by the whole
    /// image (an image with a UBI area in it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<extent::Extent>,
}

#[cfg(test)]
impl Release {
    /// Release 1.1 for board `sim`: 10 bytes hashing to `[7; 32]`, one relative URL (unit
    /// tests of the state and the recovery plan).
    pub(crate) fn sample() -> Release {
        Release {
            version: "1.1".parse().expect("static version"),
            boards: vec!["sim".into()],
            channels: vec!["stable".into()],
            urls: vec!["fw.img".into()],
            size: 10,
            sha256: [7; 32],
            min_from: None,
            pulled: None,
            rollout: None,
            compat_version: None,
            compat_message: None,
            boot: None,
            parts: Vec::new(),
            verify: Vec::new(),
        }
    }
}

impl Release {
    /// Its configuration format version (1.0 when the index gives none, as in OpenWrt).
    pub fn compat(&self) -> crate::carry::CompatVersion {
        self.compat_version
            .unwrap_or(crate::carry::CompatVersion::DEFAULT)
    }

    /// What the slot's boot device holds once the release is installed: the file, or a
    /// container's boot range.
    pub fn boot_image(&self) -> crate::flash::Expected {
        match &self.boot {
            Some(b) => crate::flash::Expected {
                size: b.size,
                sha256: b.sha256,
            },
            None => crate::flash::Expected {
                size: self.size,
                sha256: self.sha256,
            },
        }
    }
}

mod hex_sha {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// An index whose signatures, format, version and freshness were checked.
#[derive(Debug, Clone)]
pub struct VerifiedIndex {
    version: u64,
    issued_at: u64,
    expires: u64,
    /// The trusted time the index was checked at.
    now: u64,
    sha256: String,
    signers: Vec<KeyId>,
    security_floor: BTreeMap<String, Version>,
    releases: Vec<Release>,
    /// The exact bytes and signatures that were verified (kept in the archive).
    signed: UntrustedIndex,
}

impl VerifiedIndex {
    /// The exact bytes and detached signatures this index was verified from.
    pub fn signed(&self) -> &UntrustedIndex {
        &self.signed
    }
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    pub fn expires(&self) -> u64 {
        self.expires
    }
    /// The trusted time (the later of the clock and the time floor) of the verification.
    pub fn trusted_now(&self) -> u64 {
        self.now
    }
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }
    pub fn releases(&self) -> &[Release] {
        &self.releases
    }
    pub fn security_floor(&self, board: &str) -> Option<&Version> {
        self.security_floor.get(board)
    }
    /// What to persist so that older or forked indexes are refused later.
    pub fn as_last(&self, board: &str) -> LastIndex {
        LastIndex {
            version: self.version,
            sha256: self.sha256.clone(),
            issued_at: self.issued_at,
            security_floor: self.security_floor.get(board).cloned(),
            pulled: self
                .releases
                .iter()
                .filter(|r| r.boards.iter().any(|b| b == board))
                .filter_map(|r| {
                    r.pulled
                        .as_ref()
                        .map(|why| (r.version.to_string(), why.clone()))
                })
                .collect(),
        }
    }
}

fn malformed(problem: impl Into<String>) -> IndexError {
    IndexError::Malformed {
        what: "index".into(),
        problem: problem.into(),
    }
}

/// An index whose signatures checked out and whose fields parsed, before any freshness check.
struct Opened {
    version: u64,
    security_floor: BTreeMap<String, Version>,
    releases: Vec<Release>,
    issued_at: u64,
    expires: u64,
    sha256: String,
    signers: Vec<KeyId>,
}

impl UntrustedIndex {
    /// Signatures over the exact bytes first; only then parse, and check format and fields.
    fn open(&self, trust: &TrustPolicy) -> Result<Opened, IndexError> {
        let signers = trust.verify("index", &self.bytes, &self.signatures)?;

        // Only now are the bytes parsed.
        let text = std::str::from_utf8(&self.bytes).map_err(|_| malformed("not UTF-8"))?;
        let doc = parse::document(text).map_err(|e| malformed(e.to_string()))?;
        if doc.index.format != FORMAT {
            return Err(IndexError::Format(doc.index.format));
        }
        let issued_at = parse_time(&doc.index.issued_at)
            .map_err(|e| malformed(format!("index.issued_at: {e}")))?;
        let expires =
            parse_time(&doc.index.expires).map_err(|e| malformed(format!("index.expires: {e}")))?;
        let releases = doc
            .releases
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                check_release(r).map_err(|e| malformed(format!("release #{}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Opened {
            version: doc.index.version,
            security_floor: doc.index.security_floor,
            releases,
            issued_at,
            expires,
            sha256: hex::encode(Sha256::digest(&self.bytes)),
            signers,
        })
    }

    fn into_verified(self, o: Opened, now: u64) -> VerifiedIndex {
        VerifiedIndex {
            version: o.version,
            issued_at: o.issued_at,
            expires: o.expires,
            now,
            sha256: o.sha256,
            signers: o.signers,
            security_floor: o.security_floor,
            releases: o.releases,
            signed: self,
        }
    }

    /// Verify, in this order: signatures over the exact bytes; then parse; then format,
    /// fields, version against `last`, and time against `max(clock, floor)`.
    pub fn verify(
        self,
        trust: &TrustPolicy,
        last: Option<&LastIndex>,
        clock: u64,
        floor: u64,
    ) -> Result<VerifiedIndex, IndexError> {
        let o = self.open(trust)?;
        let version = o.version;
        if let Some(last) = last {
            if version < last.version {
                return Err(IndexError::Rollback {
                    got: version,
                    last: last.version,
                });
            }
            if version == last.version && o.sha256 != last.sha256 {
                return Err(IndexError::Forked {
                    version: last.version,
                });
            }
        }
        if o.issued_at < floor && last.is_none_or(|l| l.sha256 != o.sha256) {
            return Err(IndexError::IssuedBeforeFloor {
                issued: format_time(o.issued_at),
                floor: format_time(floor),
            });
        }
        let now = clock.max(floor);
        if o.expires <= now {
            return Err(IndexError::Expired {
                expires: format_time(o.expires),
                now: format_time(now),
            });
        }
        Ok(self.into_verified(o, now))
    }

    /// Verify a copy of an index kept in the archive of known-good images: its signatures
    /// over the exact bytes against the trust root in force, its format and fields. Not its
    /// freshness, version or expiry: it is old by design, and it vouches only for the images
    /// kept with it, never for what is current.
    pub fn verify_archived(self, trust: &TrustPolicy) -> Result<VerifiedIndex, IndexError> {
        let o = self.open(trust)?;
        let issued = o.issued_at;
        Ok(self.into_verified(o, issued))
    }
}
