//! The signed firmware index.
//!
//! An [`UntrustedIndex`] holds the exact bytes fetched and their detached signatures. Only
//! [`UntrustedIndex::verify`] builds a [`VerifiedIndex`]: it checks the signatures over the
//! exact bytes against the trusted keys *before* parsing anything, then the format, the
//! version against the last accepted one, and the expiry against a clock that cannot go
//! back past the persisted time floor. See `firmware-index/FORMAT.md`.

pub mod build;
pub mod select;
pub mod sign;

use crate::version::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sign::{DetachedSignature, KeyId, PublicKey};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The only index format this build understands.
pub const FORMAT: u32 = 1;
/// Default cap on the index size, enforced while downloading.
pub const DEFAULT_MAX_INDEX_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index signature file is invalid: {0}")]
    SignatureFormat(#[from] sign::KeyError),
    #[error("index is not signed by enough trusted keys: {valid} valid signature(s) from distinct trusted keys, {threshold} required{detail}")]
    Untrusted {
        valid: usize,
        threshold: usize,
        detail: String,
    },
    #[error("index is signed but malformed: {0}")]
    Malformed(String),
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
}

/// Keys the device trusts for the index, and how many must sign.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    pub keys: Vec<PublicKey>,
    pub threshold: usize,
}

/// What the device remembers about the last index it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastIndex {
    pub version: u64,
    pub sha256: String,
    pub issued_at: u64,
}

/// Fetched bytes that nothing has vouched for yet.
pub struct UntrustedIndex {
    pub bytes: Vec<u8>,
    pub signatures: Vec<u8>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexDoc {
    pub index: IndexMeta,
    #[serde(default, rename = "release", skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseDoc>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexMeta {
    pub format: u32,
    pub version: u64,
    pub issued_at: String,
    pub expires: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseDoc {
    pub version: Version,
    pub boards: Vec<String>,
    pub channels: Vec<String>,
    pub urls: Vec<String>,
    pub size: u64,
    pub sha256: String,
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
    sha256: String,
    signers: Vec<KeyId>,
    releases: Vec<Release>,
}

impl VerifiedIndex {
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    pub fn expires(&self) -> u64 {
        self.expires
    }
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }
    pub fn releases(&self) -> &[Release] {
        &self.releases
    }
    /// What to persist so that older or forked indexes are refused later.
    pub fn as_last(&self) -> LastIndex {
        LastIndex {
            version: self.version,
            sha256: self.sha256.clone(),
            issued_at: self.issued_at,
        }
    }
}

pub fn parse_time(s: &str) -> Result<u64, String> {
    humantime::parse_rfc3339(s)
        .map_err(|e| {
            format!("{s:?} is not an RFC 3339 UTC time such as 2026-11-01T00:00:00Z ({e})")
        })
        .and_then(|t| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(|_| format!("{s:?} is before 1970"))
        })
}

pub fn format_time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl UntrustedIndex {
    /// Verify, in this order: signatures over the exact bytes; then parse; then format,
    /// fields, version against `last`, and time against `max(clock, floor)`.
    pub fn verify(
        &self,
        trust: &TrustPolicy,
        last: Option<&LastIndex>,
        clock: u64,
        floor: u64,
    ) -> Result<VerifiedIndex, IndexError> {
        let sigs = std::str::from_utf8(&self.signatures)
            .map_err(|_| sign::KeyError::Format {
                what: "signature",
                problem: "not text".into(),
            })
            .and_then(DetachedSignature::parse_all)?;
        let mut good: BTreeSet<KeyId> = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        let mut bad = BTreeSet::new();
        for sig in &sigs {
            match trust.keys.iter().find(|k| k.id == sig.key_id) {
                None => {
                    unknown.insert(sig.key_id);
                }
                Some(k) if k.verify(&self.bytes, sig) => {
                    good.insert(sig.key_id);
                }
                Some(_) => {
                    bad.insert(sig.key_id);
                }
            }
        }
        if good.len() < trust.threshold.max(1) {
            let mut detail = String::new();
            if !unknown.is_empty() {
                detail += &format!("; signed by unknown key(s) {}", join(&unknown));
            }
            if !bad.is_empty() {
                detail += &format!(
                    "; signature(s) by trusted key(s) {} do not match the index bytes",
                    join(&bad)
                );
            }
            return Err(IndexError::Untrusted {
                valid: good.len(),
                threshold: trust.threshold.max(1),
                detail,
            });
        }

        // Only now are the bytes parsed.
        let text = std::str::from_utf8(&self.bytes)
            .map_err(|_| IndexError::Malformed("not UTF-8".into()))?;
        let doc: IndexDoc =
            toml::from_str(text).map_err(|e| IndexError::Malformed(e.to_string()))?;
        if doc.index.format != FORMAT {
            return Err(IndexError::Format(doc.index.format));
        }
        let issued_at = parse_time(&doc.index.issued_at)
            .map_err(|e| IndexError::Malformed(format!("index.issued_at: {e}")))?;
        let expires = parse_time(&doc.index.expires)
            .map_err(|e| IndexError::Malformed(format!("index.expires: {e}")))?;
        let releases = doc
            .releases
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                check_release(r)
                    .map_err(|e| IndexError::Malformed(format!("release #{}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sha256 = hex::encode(Sha256::digest(&self.bytes));

        if let Some(last) = last {
            if doc.index.version < last.version {
                return Err(IndexError::Rollback {
                    got: doc.index.version,
                    last: last.version,
                });
            }
            if doc.index.version == last.version && sha256 != last.sha256 {
                return Err(IndexError::Forked {
                    version: last.version,
                });
            }
        }
        if issued_at < floor && last.is_none_or(|l| l.sha256 != sha256) {
            return Err(IndexError::IssuedBeforeFloor {
                issued: format_time(issued_at),
                floor: format_time(floor),
            });
        }
        let now = clock.max(floor);
        if expires <= now {
            return Err(IndexError::Expired {
                expires: format_time(expires),
                now: format_time(now),
            });
        }
        Ok(VerifiedIndex {
            version: doc.index.version,
            issued_at,
            expires,
            sha256,
            signers: good.into_iter().collect(),
            releases,
        })
    }
}

fn join(ids: &BTreeSet<KeyId>) -> String {
    ids.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn check_release(r: ReleaseDoc) -> Result<Release, String> {
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&r.sha256, &mut sha256)
        .map_err(|_| format!("sha256 {:?} is not 64 hex digits", r.sha256))?;
    if r.boards.is_empty() || r.boards.iter().any(String::is_empty) {
        return Err("boards must list at least one non-empty board id".into());
    }
    if r.channels.is_empty() {
        return Err("channels must list at least one channel".into());
    }
    if r.urls.is_empty() {
        return Err("urls must list at least one image URL".into());
    }
    if r.size == 0 {
        return Err("size must be greater than 0".into());
    }
    Ok(Release {
        version: r.version,
        boards: r.boards,
        channels: r.channels,
        urls: r.urls,
        size: r.size,
        sha256,
    })
}
