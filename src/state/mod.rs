//! Persistent agent state: one versioned JSON file, written atomically, guarded by a lock.

mod apply;
mod approval;
pub mod carried;
#[cfg(test)]
mod edges;
#[cfg(test)]
mod fixtures_tests;
mod history;
pub mod machine;
mod note;
mod range;
mod schema;
mod store;

pub use apply::{Facts, Reporter};
pub use approval::{Awaiting, Decision, Gate, ReleaseKey, Verdict};
pub use carried::{Carried, CarriedOutcome, CarriedTrial, TrialResult, CARRY_VAR};
pub use history::{HistoryEntry, HistoryEvent, HISTORY_MAX};
pub use machine::{transition, Disallowed, Event, UpdateState};
pub use note::Note;
pub use schema::{
    check_records, extent_records, part_records, CheckRecord, ExtentRecord, PartRecord,
    RangeRecord, ReleaseRef,
};
pub use store::{Lock, StateStore};

use crate::index::LastIndex;
use crate::slot::Slot;
use crate::version::Version;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const SCHEMA: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is unreadable ({problem}); move it aside to start from scratch")]
    Corrupt { path: PathBuf, problem: String },
    #[error("state file {path} has schema {found}; this fwguard reads schema {SCHEMA}")]
    Schema { path: PathBuf, found: u32 },
}

/// What fwguard knows a slot holds: a release of the signed index, its image's extent from
/// the start of the slot, and that extent's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub version: Version,
    pub size: u64,
    pub sha256: String,
    /// The slot booted and passed its health checks at some point (known-good).
    pub good: bool,
    /// How fwguard came to know it.
    #[serde(default)]
    pub origin: Origin,
    /// The release's parts besides its boot image, each in its own target of the slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartRecord>,
    /// How the slot is checked once its firmware has run, when not by the whole image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<ExtentRecord>,
}

impl SlotRecord {
    /// The record of `release` written into a slot by fwguard.
    pub fn installed(release: &ReleaseRef, good: bool) -> SlotRecord {
        let (size, sha256) = release.boot_image();
        SlotRecord {
            version: release.version.clone(),
            size,
            sha256: sha256.to_string(),
            good,
            origin: Origin::Installed,
            parts: release.parts.clone(),
            verify: release.verify.clone(),
        }
    }
}

/// How a slot's content became known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// fwguard wrote it (and read it back).
    #[default]
    Installed,
    /// It was on the device already and matched a release of the signed index, byte for
    /// byte.
    Adopted,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Installed => "installed by fwguard",
            Origin::Adopted => "adopted: matches a release of the signed index",
        }
    }
}

/// The running firmware when it is no release of the signed index that fwguard could find
/// (stock firmware, a build of the owner's, an index that no longer lists it). It is kept as
/// known-good, so its slot is never written; it can be checked again only by its boot image
/// (the kernel, FIT or uImage the bootloader loads, by the extent its own header gives),
/// when it has one that fwguard reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unidentified {
    pub slot: Slot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_image: Option<BootImageRecord>,
    /// The index version it was last compared with (it is compared again with a newer one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_version: Option<u64>,
}

/// A boot image at the start of a slot, as read from its own header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootImageRecord {
    /// `uImage "name" (N bytes)`, for people.
    pub describe: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyEntry {
    pub version: Version,
    pub reason: String,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    pub schema: u32,
    pub update: UpdateState,
    pub slot_a: Option<SlotRecord>,
    pub slot_b: Option<SlotRecord>,
    /// The last slot committed as good: never written.
    pub known_good: Option<Slot>,
    /// The arm id of the trial this state's update is about, on boards that carry trials in
    /// the bootloader environment ([`carried`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_arm: Option<String>,
    /// The running (or last known-good) firmware, when it is no release fwguard knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unidentified: Option<Unidentified>,
    pub pin: Option<Version>,
    /// The pin was forced below the security floor by the owner.
    #[serde(default)]
    pub pin_insecure: bool,
    /// The pin takes the new firmware's defaults (`--no-settings`): the owner accepted that
    /// its configuration format breaks with the running firmware's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin_no_settings: bool,
    /// Stable random id of this device (rollout buckets), unless the config sets one.
    #[serde(default = "new_device_id")]
    pub device_id: String,
    /// The seed of the Ed25519 key this device signs its reports with (hex), made on its
    /// first run; travels with a carried trial, so both slots sign with it.
    #[serde(default = "new_report_key")]
    pub report_key: String,
    /// Health groups that passed on the running firmware just before the last install: only
    /// these are required of the new firmware (None: all required groups are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Vec<String>>,
    /// Automatic rollbacks since the last commit; at the configured maximum the daemon stops
    /// installing until the owner acts.
    #[serde(default)]
    pub rollbacks_in_a_row: u32,
    /// A trust root accepted by rotation (its exact text), newer than the installed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    pub denylist: Vec<DenyEntry>,
    pub last_index: Option<LastIndex>,
    /// The exact text of the last `halt.toml` accepted (signed by the halt keys of trust
    /// root version `halt_root`): releases the vendor's fleet service halted, until it
    /// expires ([`PersistedState::halts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub halt_root: u64,
    /// Newest trusted time seen (unix seconds): the clock is never trusted below it.
    pub time_floor: u64,
    /// The owner's choices, which win over the shipped configuration: the policy
    /// (`auto`, `approve`, `download-only`, `notify`, `off`), the channel, and a hold on the running
    /// version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::config::Policy>,
    /// The owner's policy is `approve`. `policy` then says `download-only`: what an older
    /// fwguard, which has no `approve`, does in its place (stage, and wait for the owner).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approve: bool,
    /// The owner's approvals (of exact bytes) and denials (of versions), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
    /// The release the daemon staged for the owner's approval, and since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<Awaiting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default)]
    pub hold: bool,
    /// How far an interrupted download got, so the next install of the same release into the
    /// same slot continues from there instead of starting over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
    /// Sources (a mirror, a file) that streamed a wrong image for a release (size or hash
    /// not as signed): after [`MAX_BAD_STREAMS`] such streams a source is not tried again
    /// for that release, so a hostile mirror cannot keep the inactive slot invalid forever.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_sources: Vec<BadSource>,
    /// Outcomes waiting to be reported to the vendor (`[report]`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<Outcome>,
    pub history: Vec<HistoryEntry>,
}

/// An event of an update as reported to the vendor: an install begun, a trial armed, and the
/// outcome (JSON; see docs/status-schema.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The format's version: fields are only added within it.
    pub schema: u32,
    pub device: String,
    pub board: String,
    pub release: Version,
    /// `committed`, `rolled-back` (fwguard went back after failed checks or on the owner's
    /// word) or `trial-failed` (the bootloader gave the new firmware up).
    pub result: String,
    /// The health checks that failed (for a commit: advisory ones).
    pub failing: Vec<String>,
    pub detail: String,
    /// Unix seconds (the device's clock).
    pub at: u64,
    /// Random, one per event: a report retried is the same report.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// `armed` only: the seconds the trial has, from its boot, to commit (trial deadline and
    /// soak); a receiver that hears nothing after that (and the reboot) presumes it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_s: Option<u64>,
}

/// Wrong images streamed from one source for one release (by its signed hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadSource {
    pub sha256: String,
    /// The source, without credentials or query.
    pub url: String,
    pub failures: u32,
}

/// Wrong streams after which a source is given up for a release.
pub const MAX_BAD_STREAMS: u32 = 3;
/// Most bad sources remembered (the oldest are forgotten first).
const BAD_SOURCES_MAX: usize = 32;

/// A checkpoint of an interrupted install: the release (by its signed hash), the slot, the
/// bytes durably written, and the held-back first bytes of the image (hex), which were never
/// written to the slot. Only a hint: the resumed image is hashed whole and read back as any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    pub version: Version,
    pub sha256: String,
    pub target: Slot,
    pub written: u64,
    pub head: String,
}

impl Default for PersistedState {
    fn default() -> Self {
        PersistedState {
            schema: SCHEMA,
            update: UpdateState::Idle,
            slot_a: None,
            slot_b: None,
            known_good: None,
            unidentified: None,
            carried_arm: None,
            pin: None,
            pin_insecure: false,
            pin_no_settings: false,
            baseline: None,
            rollbacks_in_a_row: 0,
            device_id: new_device_id(),
            report_key: new_report_key(),
            root: None,
            denylist: Vec::new(),
            last_index: None,
            halt: None,
            halt_root: 0,
            time_floor: 0,
            policy: None,
            approve: false,
            decisions: Vec::new(),
            awaiting: None,
            channel: None,
            hold: false,
            partial: None,
            bad_sources: Vec::new(),
            outcomes: Vec::new(),
            history: Vec::new(),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// 32 random bytes, hex: an Ed25519 seed.
pub fn new_report_key() -> String {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the kernel provides randomness");
    hex::encode(seed)
}

/// 16 random bytes, hex.
pub fn new_device_id() -> String {
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id).expect("the kernel provides randomness");
    hex::encode(id)
}

impl PersistedState {
    /// The last halt file accepted, read from its text.
    pub fn halts(&self) -> Option<crate::index::halt::Halts> {
        let text = self.halt.as_deref()?;
        crate::index::halt::Halts::accepted(text, self.halt_root)
    }

    pub fn slot(&self, s: Slot) -> Option<&SlotRecord> {
        match s {
            Slot::A => self.slot_a.as_ref(),
            Slot::B => self.slot_b.as_ref(),
        }
    }

    /// Set what `s` holds; the slot is then no longer unidentified.
    fn set_slot(&mut self, s: Slot, rec: Option<SlotRecord>) {
        match s {
            Slot::A => self.slot_a = rec,
            Slot::B => self.slot_b = rec,
        }
        if self.unidentified.as_ref().is_some_and(|u| u.slot == s) {
            self.unidentified = None;
        }
    }

    /// The unidentified firmware in slot `s`, if that is what it holds.
    pub fn unidentified_in(&self, s: Slot) -> Option<&Unidentified> {
        self.unidentified.as_ref().filter(|u| u.slot == s)
    }

    pub fn is_denylisted(&self, v: &Version) -> bool {
        self.denylist.iter().any(|d| &d.version == v)
    }

    pub fn denylisted_versions(&self) -> Vec<Version> {
        self.denylist.iter().map(|d| d.version.clone()).collect()
    }

    fn deny(&mut self, version: Version, reason: String, at: u64) {
        self.denylist.retain(|d| d.version != version);
        self.denylist.push(DenyEntry {
            version,
            reason: crate::redact::text(&reason),
            at,
        });
    }

    /// A wrong image came from `url` for the release with hash `sha256`.
    pub fn note_bad_source(&mut self, sha256: &str, url: &str) {
        let url = crate::redact::text(url);
        match self
            .bad_sources
            .iter_mut()
            .find(|b| b.sha256 == sha256 && b.url == url)
        {
            Some(b) => b.failures += 1,
            None => {
                self.bad_sources.push(BadSource {
                    sha256: sha256.to_string(),
                    url,
                    failures: 1,
                });
                if self.bad_sources.len() > BAD_SOURCES_MAX {
                    self.bad_sources.remove(0);
                }
            }
        }
    }

    /// Whether `url` gave wrong images for the release with hash `sha256` too often to be
    /// tried again.
    pub fn source_given_up(&self, sha256: &str, url: &str) -> bool {
        let url = crate::redact::text(url);
        self.bad_sources
            .iter()
            .any(|b| b.sha256 == sha256 && b.url == url && b.failures >= MAX_BAD_STREAMS)
    }

    /// The release with hash `sha256` was written right: forget its bad streams.
    fn forget_bad_sources(&mut self, sha256: &str) {
        self.bad_sources.retain(|b| b.sha256 != sha256);
    }

    fn record(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
        if self.history.len() > HISTORY_MAX {
            let drop = self.history.len() - HISTORY_MAX;
            self.history.drain(..drop);
        }
    }
}
