//! The state file's own records of things other modules define: a release as installed
//! ([`ReleaseRef`], from the index's `Release`) and a health check's result
//! ([`CheckRecord`], from the health module's `CheckResult`). The state file's format is the
//! state module's: a change elsewhere (a new field of an index release, of a check result)
//! does not change what `state.json` holds.
//!
//! # Reading older and newer state files
//! `state.json` carries `schema` ([`SCHEMA`](super::SCHEMA)). Within one schema:
//! - fields are only ever added, each with a default for files that lack it, and are never
//!   removed, renamed or given another type;
//! - a reader ignores fields it does not know (no `deny_unknown_fields` on any record), and
//!   keeps a history entry of a kind it does not know as `other`.
//!
//! So a newer fwguard reads every older file of its schema (the files in
//! `tests/fixtures/state/` are loaded by every version), and an older fwguard (the firmware
//! a rollback returns to) reads a newer one, losing only what it does not know. A change
//! that cannot keep these rules (a new update state, a new policy, a field that changes
//! meaning) raises the schema; a reader refuses a file of a schema it does not know, naming
//! both, and changes nothing.

pub use super::range::{BootRecord, ExtentRecord, PartRecord, RangeRecord};
use crate::health::CheckResult;
use crate::index::Release;
use crate::version::Version;
use serde::{Deserialize, Serialize};

/// A release as the state records it: what identifies its image (version, size, signed
/// hash), where it was fetched from, and the boards and channels the signed index listed it
/// for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRef {
    pub version: Version,
    /// The boards and channels the signed index listed it for.
    pub boards: Vec<String>,
    pub channels: Vec<String>,
    /// As written in the index: absolute, or relative to the index URL.
    pub urls: Vec<String>,
    pub size: u64,
    /// Lower-case hex (a file's is checked and normalised when it is read).
    #[serde(deserialize_with = "sha256_hex")]
    pub sha256: String,
    /// The file is a container: the slot's boot image is this range of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootRecord>,
    /// The parts besides the boot image, each to its own target of the slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartRecord>,
    /// How the slot is checked once the firmware has run, when not by the whole image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<ExtentRecord>,
    /// Installed on the owner's word that it boots on its own defaults (`--no-settings`):
    /// no settings are carried into it when it is armed, whenever that is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_defaults: bool,
}

impl ReleaseRef {
    /// What the slot's boot device holds once it is installed: (size, sha256 in hex).
    pub fn boot_image(&self) -> (u64, &str) {
        match &self.boot {
            Some(b) => (b.size, &b.sha256),
            None => (self.size, &self.sha256),
        }
    }
}

/// The records of a release's extents.
pub fn extent_records(r: &Release) -> Vec<ExtentRecord> {
    r.verify.iter().map(RangeRecord::from).collect()
}

/// The records of a release's parts.
pub fn part_records(r: &Release) -> Vec<PartRecord> {
    r.parts.iter().map(RangeRecord::from).collect()
}

/// A SHA-256 in hex, as the index writes it: 64 hex digits of either case, kept in lower
/// case so that comparisons with a hash the agent encodes hold.
pub(super) fn sha256_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(&s, &mut out)
        .map_err(|e| serde::de::Error::custom(format!("sha256 {s:?}: {e}")))?;
    Ok(hex::encode(out))
}

impl ReleaseRef {
    /// Whether `r` is the same image (version, size and hash, and the same parts).
    pub fn is_image_of(&self, r: &Release) -> bool {
        self.version == r.version
            && self.size == r.size
            && self.sha256 == hex::encode(r.sha256)
            && self.boot == r.boot.as_ref().map(RangeRecord::from)
            && self.parts == part_records(r)
            && self.verify == extent_records(r)
    }
}

impl From<&Release> for ReleaseRef {
    fn from(r: &Release) -> ReleaseRef {
        ReleaseRef {
            version: r.version.clone(),
            boards: r.boards.clone(),
            channels: r.channels.clone(),
            urls: r.urls.clone(),
            size: r.size,
            sha256: hex::encode(r.sha256),
            boot: r.boot.as_ref().map(RangeRecord::from),
            parts: part_records(r),
            verify: extent_records(r),
            own_defaults: false,
        }
    }
}

/// The outcome of one health check, as the state's history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub name: String,
    pub passed: bool,
    #[serde(default)]
    pub duration_ms: u64,
    /// Why it failed, or what it saw when it passed.
    #[serde(default)]
    pub detail: String,
}

impl From<&CheckResult> for CheckRecord {
    fn from(c: &CheckResult) -> CheckRecord {
        CheckRecord {
            name: c.name.clone(),
            passed: c.passed,
            duration_ms: c.duration_ms,
            detail: c.detail.clone(),
        }
    }
}

/// The records of a round of checks.
pub fn check_records(results: &[CheckResult]) -> Vec<CheckRecord> {
    results.iter().map(CheckRecord::from).collect()
}
