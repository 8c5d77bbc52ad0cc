//! The changes that are not moves of the update state ([`Note`]), each with its bookkeeping
//! in one place ([`PersistedState::note`]).

use super::history::{HistoryEntry, HistoryEvent as H};
use super::schema::CheckRecord;
use super::{Carried, Facts, Outcome, Partial, PersistedState, SlotRecord, Unidentified};
use crate::config::Policy;
use crate::index::LastIndex;
use crate::slot::Slot;
use crate::version::Version;

/// Changes that are not moves of the update state, with their bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The running committed firmware recorded as known-good: a release of the signed index
    /// it matched, or the release fwguard's record says and its hash confirms.
    Adopted {
        slot: Slot,
        record: SlotRecord,
        detail: String,
    },
    /// The running committed firmware is no release fwguard knows: recorded as known-good by
    /// its boot image, if it has one (see [`Unidentified`]).
    Unidentified { unidentified: Unidentified },
    /// The health checks on the running firmware before an install: the groups passing now
    /// are the ones the new firmware must pass. The owner asking resets the rollback count.
    Baseline {
        version: Version,
        passing: Vec<String>,
        checks: Vec<CheckRecord>,
        detail: String,
        by_owner: bool,
    },
    /// The owner pins `version` (by `fwguard pin`, or with an offline or archive install):
    /// it is installed and kept, tried again even if it was rolled back before.
    Pinned {
        version: Version,
        insecure: bool,
        /// Installed on its own defaults: the owner's settings are not carried.
        no_settings: bool,
        detail: String,
        from_archive: bool,
    },
    /// The owner drops the pin or the hold.
    Unpinned,
    /// The owner holds the running version (None: unidentified firmware, held as it is).
    Held { version: Option<Version> },
    /// The owner sets the policy (`auto`, `approve`, `download-only`, `notify`, `off`).
    PolicySet { policy: Policy },
    /// The daemon staged `key` and waits for the owner's approval (policy `approve`), since
    /// `since` on a trusted clock (None: the clock is not trusted yet). Recorded again for
    /// the same release only to start its timer.
    AwaitingApproval {
        key: super::ReleaseKey,
        since: Option<u64>,
    },
    /// The owner approved `key`'s exact bytes (an earlier denial of its version is undone).
    Approved {
        key: super::ReleaseKey,
        detail: String,
    },
    /// The owner denied `version`: never installed automatically.
    Denied { version: Version },
    /// The owner follows another channel.
    ChannelSet { channel: String },
    /// A newer index was accepted: replay protection and the time floor move up to it.
    IndexAccepted { last: LastIndex },
    /// A newer `halt.toml` was accepted (replay protection moves up to it); what it halts
    /// is recorded when it changed.
    HaltAccepted {
        halts: Box<crate::index::halt::Halts>,
        text: String,
    },
    /// A rotated trust root (its exact text) was accepted; it starts a new epoch of index
    /// versions.
    RootRotated { version: u64, text: Option<String> },
    /// How far an install's download got durably (None: start over next time).
    Checkpoint { partial: Option<Partial> },
    /// A rotated trust root set the time floor back to `floor` (recovery from an index whose
    /// `issued_at` was fast-forwarded).
    TimeFloorReset { floor: u64, detail: String },
    /// These outcomes reached the vendor.
    Delivered { outcomes: Vec<Outcome> },
    /// The other slot's fwguard carried trust data and denylist entries in the bootloader
    /// environment: the newer index, the later time floor and every denied release are kept.
    CarriedTrust { carried: Box<Carried> },
    /// The id of the trial about to be armed, carried with it in the bootloader environment.
    CarriedArm { id: String },
}

impl PersistedState {
    /// Record a change that is not a move of the update state, with its bookkeeping.
    pub fn note(&mut self, note: Note, facts: &Facts) {
        let entry = |event: H, version: Option<&Version>, slot: Option<Slot>, detail: String| {
            HistoryEntry::new(facts.at, event, version, slot, detail)
        };
        let e = match note {
            Note::Adopted {
                slot,
                record,
                detail,
            } => {
                let version = record.version.clone();
                self.set_slot(slot, Some(record));
                self.known_good = Some(slot);
                entry(H::Adopted, Some(&version), Some(slot), detail)
            }
            Note::Unidentified { unidentified: u } => {
                let slot = u.slot;
                let seen = self
                    .unidentified_in(slot)
                    .is_some_and(|old| old.boot_image == u.boot_image);
                self.set_slot(slot, None);
                self.known_good = Some(slot);
                let what = match u.index_version {
                    Some(v) => {
                        format!("running firmware is no release of the signed index (version {v})")
                    }
                    None => {
                        "running firmware is not on record yet (an index check may identify it)"
                            .to_string()
                    }
                };
                let detail = match &u.boot_image {
                    Some(b) => format!(
                        "{what}; kept as known-good, checked by its boot image, {}",
                        b.describe
                    ),
                    None => format!("{what}, and has no boot image fwguard reads; kept as known-good, and only the bootloader's own fallback returns to it"),
                };
                self.unidentified = Some(u);
                if seen {
                    // Compared with a newer index only: nothing new to tell.
                    return;
                }
                entry(H::Unidentified, None, Some(slot), detail)
            }
            Note::Baseline {
                version,
                passing,
                checks,
                detail,
                by_owner,
            } => {
                self.baseline = Some(passing);
                if by_owner {
                    self.rollbacks_in_a_row = 0;
                }
                entry(H::Baseline, Some(&version), None, detail).with_checks(checks)
            }
            Note::Pinned {
                version,
                insecure,
                no_settings,
                detail,
                from_archive,
            } => {
                self.pin_to(&version, insecure, no_settings);
                let event = if from_archive {
                    H::ArchiveInstall
                } else {
                    H::Pin
                };
                entry(event, Some(&version), None, detail)
            }
            Note::Unpinned => {
                let old = self.pin.take();
                self.hold = false;
                self.pin_insecure = false;
                self.pin_no_settings = false;
                self.rollbacks_in_a_row = 0;
                let detail = "following the channel again".to_string();
                entry(H::Unpin, old.as_ref(), None, detail)
            }
            Note::Held { version } => {
                self.hold = true;
                entry(H::Hold, version.as_ref(), None, "held by the owner".into())
            }
            Note::PolicySet { policy } => {
                let detail = format!("policy set to {} by the owner", policy.as_str());
                self.approve = policy == Policy::Approve;
                self.policy = Some(if self.approve {
                    Policy::DownloadOnly
                } else {
                    policy
                });
                entry(H::Policy, None, None, detail)
            }
            Note::AwaitingApproval { key, since } => {
                if let Some(a) = self.awaiting.as_mut().filter(|a| a.key == key) {
                    a.since = a.since.or(since);
                    return;
                }
                let detail = format!(
                    "staged; waiting for the owner's approval (sha256 {})",
                    key.sha256
                );
                let version = key.version.clone();
                self.awaiting = Some(super::Awaiting { key, since });
                entry(H::AwaitingApproval, Some(&version), None, detail)
            }
            Note::Approved { key, detail } => {
                let version = key.version.clone();
                let verdict = super::Verdict::Approved;
                self.decide(super::Decision {
                    verdict,
                    key,
                    at: facts.at,
                });
                entry(H::Approve, Some(&version), None, detail)
            }
            Note::Denied { version } => {
                let key = super::ReleaseKey {
                    version: version.clone(),
                    sha256: String::new(),
                    layout: String::new(),
                };
                let verdict = super::Verdict::Denied;
                self.decide(super::Decision {
                    verdict,
                    key,
                    at: facts.at,
                });
                let detail = "denied by the owner: never installed automatically".to_string();
                entry(H::Deny, Some(&version), None, detail)
            }
            Note::ChannelSet { channel } => {
                let detail = format!("following channel {channel}, set by the owner");
                self.channel = Some(channel);
                entry(H::Channel, None, None, detail)
            }
            Note::IndexAccepted { last } => {
                self.time_floor = self.time_floor.max(last.issued_at);
                self.last_index = Some(last);
                return;
            }
            Note::Checkpoint { partial } => {
                self.partial = partial;
                return;
            }
            Note::HaltAccepted { halts: h, text } => {
                let before = self.halts();
                self.halt = Some(text);
                self.halt_root = h.root_version;
                if before.is_some_and(|b| b.entries == h.entries) {
                    return;
                }
                let halted: Vec<String> = h
                    .entries
                    .iter()
                    .map(|e| match e.boards.is_empty() {
                        true => format!("{} ({})", e.release, e.reason),
                        false => format!("{} on {} ({})", e.release, e.boards.join(", "), e.reason),
                    })
                    .collect();
                let detail = match halted.is_empty() {
                    true => format!("the vendor's halt version {} halts no release", h.version),
                    false => format!(
                        "the vendor's halt version {} halts {}",
                        h.version,
                        halted.join("; ")
                    ),
                };
                entry(H::Halt, None, None, detail)
            }
            Note::RootRotated { version, text } => {
                self.root = text;
                self.last_index = None;
                // The next root may have revoked the keys that signed it.
                self.halt = None;
                self.halt_root = 0;
                let detail = format!("trust root version {version} accepted");
                entry(H::RootRotated, None, None, detail)
            }
            Note::TimeFloorReset { floor, detail } => {
                self.time_floor = floor;
                entry(H::TimeFloorReset, None, None, detail)
            }
            Note::Delivered { outcomes } => {
                self.outcomes.retain(|o| !outcomes.contains(o));
                return;
            }
            Note::CarriedTrust { carried } => {
                self.merge_carried(&carried);
                return;
            }
            Note::CarriedArm { id } => {
                self.carried_arm = Some(id);
                return;
            }
        };
        self.record(e);
    }
}
