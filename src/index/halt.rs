//! Halts: `halt.toml` next to the index, signed by the trust root's halt keys, a role that can
//! only stop rollouts (a fleet service holds such a key online and halts a release whose
//! first wave fails; the offline index keys stay offline).
//!
//! ```toml
//! format = 1
//! version = 4                         # strictly increasing, never back
//! issued_at = "2026-12-04T10:00:00Z"
//! expires = "2026-12-11T10:00:00Z"    # a halt lasts while it is signed again in time
//!
//! [[halt]]
//! release = "2.0"
//! boards = ["linksys-wrt32x"]         # optional: every board
//! reason = "wave 1: 3 of 10 trials rolled back (wan-link)"
//! ```
//!
//! What a halt file can say is only that: a listed release is not installed by a device that
//! does not run it yet, as if the index halted its rollout. It names no image, URL or hash and
//! cannot add, un-pull or change a release (its fields are these; others are refused). It is
//! checked as the index is: signatures over the exact bytes first (the halt keys and
//! threshold), then the format, the version against the last one accepted under the same
//! root (older: replayed; the same with other bytes: forked), and its expiry at the trusted
//! time. A halt file refused, or none published, leaves the last accepted one in force until
//! it expires. A root rotation starts afresh (the next root may revoke the halt keys).

use super::{IndexError, TrustPolicy};
use crate::config::keys::{KeyError, Keys};
use crate::time::{format_time, parse_time};
use crate::version::Version;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const HALT_FORMAT: u32 = 1;
/// Its name, next to the index.
pub const HALT_FILE: &str = "halt.toml";
/// Cap on its size.
pub const MAX_HALT_BYTES: u64 = 64 * 1024;

/// The document (written by serde; read by hand, key by key, as the router's config is: a
/// derived deserializer is KBs of the router build).
#[derive(Debug, Serialize)]
struct HaltDoc {
    format: u32,
    version: u64,
    issued_at: String,
    expires: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    halt: Vec<HaltEntryDoc>,
}

#[derive(Debug, Serialize)]
struct HaltEntryDoc {
    release: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    boards: Vec<String>,
    reason: String,
}

/// Key `e` names, under `section`, and what is wrong with it.
fn at(section: &str, e: KeyError) -> String {
    let (key, problem) = e.describe(section);
    format!("{key}: {problem}")
}

impl HaltDoc {
    /// Read `text`: these keys only, each of its type; the error names the key.
    fn read(text: &str) -> Result<HaltDoc, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut k = Keys::new(table);
        let format = k.number("format").map_err(|e| at("", e))?;
        let version = k.number("version").map_err(|e| at("", e))?;
        let issued_at = k.string("issued_at").map_err(|e| at("", e))?;
        let expires = k.string("expires").map_err(|e| at("", e))?;
        let halt = k.tables("halt").map_err(|e| at("", e))?.unwrap_or_default();
        let doc = HaltDoc {
            format: k.need("format", format) as u32,
            version: k.need("version", version),
            issued_at: k.need("issued_at", issued_at),
            expires: k.need("expires", expires),
            halt: halt
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    let section = format!("halt[{i}]");
                    let mut k = Keys::new(t);
                    let e = HaltEntryDoc {
                        release: k.need_string("release").map_err(|e| at(&section, e))?,
                        boards: k
                            .strings("boards")
                            .map_err(|e| at(&section, e))?
                            .unwrap_or_default(),
                        reason: k.need_string("reason").map_err(|e| at(&section, e))?,
                    };
                    k.done().map_err(|e| at(&section, e))?;
                    Ok(e)
                })
                .collect::<Result<_, String>>()?,
        };
        k.done().map_err(|e| at("", e))?;
        Ok(doc)
    }
}

/// One release halted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Halt {
    pub release: Version,
    /// The boards it is halted for (empty: every board).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub boards: Vec<String>,
    pub reason: String,
}

/// An accepted halt file: what it halts, and what replay protection needs. The state keeps
/// its exact text and the root version ([`Halts::accepted`] reads it again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halts {
    pub version: u64,
    pub sha256: String,
    pub issued_at: u64,
    pub expires: u64,
    /// The trust root version whose halt keys signed it.
    pub root_version: u64,
    pub entries: Vec<Halt>,
}

#[derive(Debug, thiserror::Error)]
pub enum HaltError {
    #[error(transparent)]
    Signature(IndexError),
    #[error("{HALT_FILE} is signed but malformed: {0}")]
    Malformed(String),
    #[error("{HALT_FILE} format {0} is not supported (this fwguard reads format {HALT_FORMAT})")]
    Format(u32),
    #[error(
        "{HALT_FILE} version {got} is older than version {last} accepted before (a replayed halt)"
    )]
    Rollback { got: u64, last: u64 },
    #[error("{HALT_FILE} version {version} was accepted before with different contents")]
    Forked { version: u64 },
    #[error("{HALT_FILE} version {version} expired at {expires} (trusted time is {now})")]
    Expired {
        version: u64,
        expires: String,
        now: String,
    },
}

/// Fetched halt bytes that nothing has vouched for yet.
#[derive(Debug, Clone)]
pub struct UntrustedHalt {
    pub bytes: Vec<u8>,
    pub signatures: Vec<u8>,
}

impl UntrustedHalt {
    /// Check it against the halt keys of root version `root_version`, the halt accepted
    /// before (`last`) and the trusted time `now`.
    pub fn verify(
        &self,
        keys: &TrustPolicy,
        root_version: u64,
        last: Option<&Halts>,
        now: u64,
    ) -> Result<Halts, HaltError> {
        keys.verify(HALT_FILE, &self.bytes, &self.signatures)
            .map_err(HaltError::Signature)?;
        let h = Halts::read(&self.bytes, root_version)?;
        if let Some(last) = last.filter(|l| l.root_version == root_version) {
            if h.version < last.version {
                return Err(HaltError::Rollback {
                    got: h.version,
                    last: last.version,
                });
            }
            if h.version == last.version && h.sha256 != last.sha256 {
                return Err(HaltError::Forked { version: h.version });
            }
        }
        if h.expires <= now {
            return Err(HaltError::Expired {
                version: h.version,
                expires: format_time(h.expires),
                now: format_time(now),
            });
        }
        Ok(h)
    }
}

impl Halts {
    /// Parse halt bytes (their signatures checked by the caller) signed under `root_version`.
    fn read(bytes: &[u8], root_version: u64) -> Result<Halts, HaltError> {
        let bad = HaltError::Malformed;
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let doc = HaltDoc::read(text).map_err(bad)?;
        if doc.format != HALT_FORMAT {
            return Err(HaltError::Format(doc.format));
        }
        let time = |field: &str, v: &str| parse_time(v).map_err(|e| bad(format!("{field}: {e}")));
        let entries = doc
            .halt
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let release = h
                    .release
                    .parse()
                    .map_err(|e| bad(format!("halt[{i}].release: {e}")))?;
                Ok(Halt {
                    release,
                    boards: h.boards,
                    reason: h.reason,
                })
            })
            .collect::<Result<_, HaltError>>()?;
        Ok(Halts {
            version: doc.version,
            sha256: hex::encode(Sha256::digest(bytes)),
            issued_at: time("issued_at", &doc.issued_at)?,
            expires: time("expires", &doc.expires)?,
            root_version,
            entries,
        })
    }

    /// A halt file accepted before, from its text as the state keeps it.
    pub fn accepted(text: &str, root_version: u64) -> Option<Halts> {
        Halts::read(text.as_bytes(), root_version).ok()
    }

    /// Why `version` is halted for `board` at trusted time `now`, if it is.
    pub fn halting(&self, version: &Version, board: &str, now: u64) -> Option<&str> {
        if self.expires <= now {
            return None;
        }
        self.entries
            .iter()
            .find(|h| {
                &h.release == version
                    && (h.boards.is_empty() || h.boards.iter().any(|b| b == board))
            })
            .map(|h| h.reason.as_str())
    }
}

/// A halt file being written (vendor side: `fwguard-index halt`, a fleet service).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaltDraft {
    pub version: u64,
    pub entries: Vec<Halt>,
}

impl HaltDraft {
    /// Read a halt file written before (its signatures are not checked: the vendor's own).
    pub fn parse(text: &str) -> Result<HaltDraft, String> {
        let doc = HaltDoc::read(text)?;
        let entries = doc
            .halt
            .into_iter()
            .map(|h| {
                Ok(Halt {
                    release: h
                        .release
                        .parse()
                        .map_err(|e| format!("{}: {e}", h.release))?,
                    boards: h.boards,
                    reason: h.reason,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(HaltDraft {
            version: doc.version,
            entries,
        })
    }

    /// Halt `release` on `boards` (empty: every board) for `reason`; replaces a halt of the
    /// same release and boards.
    pub fn halt(&mut self, release: Version, boards: Vec<String>, reason: String) {
        self.entries
            .retain(|h| !(h.release == release && h.boards == boards));
        self.entries.push(Halt {
            release,
            boards,
            reason,
        });
    }

    /// Lift every halt of `release`; whether there was one.
    pub fn resume(&mut self, release: &Version) -> bool {
        let before = self.entries.len();
        self.entries.retain(|h| &h.release != release);
        self.entries.len() != before
    }

    /// The next version's text, issued at `now` and expiring at `expires`.
    pub fn next_toml(&mut self, now: u64, expires: u64) -> String {
        self.version += 1;
        let doc = HaltDoc {
            format: HALT_FORMAT,
            version: self.version,
            issued_at: format_time(now),
            expires: format_time(expires),
            halt: self
                .entries
                .iter()
                .map(|h| HaltEntryDoc {
                    release: h.release.to_string(),
                    boards: h.boards.clone(),
                    reason: h.reason.clone(),
                })
                .collect(),
        };
        toml::to_string(&doc).expect("halt document serialises")
    }
}

#[cfg(test)]
#[path = "halt_tests.rs"]
mod tests;
