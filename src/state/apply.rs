//! The one place where each change of the update state and its bookkeeping happen: the
//! state tag (through [`transition`]), the slot records, known-good, the denylist, the
//! rollback counter, the history entry and the queued outcome report. Nothing outside this
//! module writes those fields; the agent says what happened ([`Event`], [`Note`]) with its
//! facts, and [`PersistedState::apply`] / [`PersistedState::note`] do the rest.

use super::history::{HistoryEntry, HistoryEvent as H};
use super::machine::{transition, Disallowed, Event, UpdateState};
use super::schema::CheckRecord;
use super::{Outcome, Partial, PersistedState, SlotRecord, Unidentified};
use crate::config::Policy;
use crate::index::LastIndex;
use crate::slot::Slot;
use crate::version::Version;

/// Most outcomes kept waiting for delivery (the oldest go first).
const MAX_PENDING: usize = 16;
/// The outcome report's format version.
const OUTCOME_SCHEMA: u32 = 1;

/// What is true when a change happens, beyond the change itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The device's clock (Unix seconds).
    pub at: u64,
    /// Who outcomes are reported as, when reporting is on.
    pub reporter: Option<Reporter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    pub device: String,
    pub board: String,
}

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
        detail: String,
        from_archive: bool,
    },
    /// The owner drops the pin or the hold.
    Unpinned,
    /// The owner holds the running version (None: unidentified firmware, held as it is).
    Held { version: Option<Version> },
    /// The owner sets the policy (`auto`, `download-only`, `notify`, `off`).
    PolicySet { policy: Policy },
    /// The owner follows another channel.
    ChannelSet { channel: String },
    /// A newer index was accepted: replay protection and the time floor move up to it.
    IndexAccepted { last: LastIndex },
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
}

impl PersistedState {
    /// Apply an event through the state machine, with its whole bookkeeping.
    pub fn apply(&mut self, event: Event, facts: &Facts) -> Result<(), Disallowed> {
        let next = transition(&self.update, &event)?;
        let before = std::mem::replace(&mut self.update, next);
        self.bookkeep(before, event, facts);
        Ok(())
    }

    fn entry(
        &mut self,
        facts: &Facts,
        event: H,
        version: &Version,
        slot: Slot,
        detail: impl Into<String>,
        checks: Vec<CheckRecord>,
    ) {
        self.record(
            HistoryEntry::new(facts.at, event, Some(version), Some(slot), detail)
                .with_checks(checks),
        );
    }

    fn bookkeep(&mut self, before: UpdateState, event: Event, facts: &Facts) {
        use UpdateState as S;
        let after = self.update.clone();
        match (before, event, after) {
            (_, Event::Begin { release, target }, _) => {
                self.set_slot(target, None);
                // An earlier download's checkpoint is consumed: this install resumes from it
                // (in memory) or starts over, and checkpoints again as it goes.
                self.partial = None;
                let detail = format!("writing {} bytes into slot {target}", release.size);
                self.entry(
                    facts,
                    H::Install,
                    &release.version,
                    target,
                    detail,
                    Vec::new(),
                );
            }
            (S::Installing { release, target }, Event::Verified, _) => {
                self.partial = None;
                self.forget_bad_sources(&release.sha256);
                self.set_slot(
                    target,
                    Some(SlotRecord {
                        version: release.version.clone(),
                        size: release.size,
                        sha256: release.sha256.clone(),
                        good: false,
                        origin: super::Origin::Installed,
                    }),
                );
                let detail = "image read back and verified";
                self.entry(
                    facts,
                    H::Verified,
                    &release.version,
                    target,
                    detail,
                    Vec::new(),
                );
            }
            (
                S::Installing { release, target }
                | S::Staged {
                    release, target, ..
                },
                Event::Failed { why },
                _,
            ) => {
                self.set_slot(target, None);
                self.entry(
                    facts,
                    H::InstallFailed,
                    &release.version,
                    target,
                    why,
                    Vec::new(),
                );
            }
            (S::Installing { release, target }, Event::Interrupted { detail }, _) => {
                self.set_slot(target, None);
                let event = H::InstallInterrupted;
                self.entry(facts, event, &release.version, target, detail, Vec::new());
            }
            (
                _,
                Event::Arm { previous },
                S::Armed {
                    release, target, ..
                },
            ) => {
                let detail = format!("trial boot of slot {target} armed; previous slot {previous}");
                self.entry(
                    facts,
                    H::Armed,
                    &release.version,
                    target,
                    detail,
                    Vec::new(),
                );
            }
            (
                _,
                Event::ArmFailed { why },
                S::Staged {
                    release, target, ..
                },
            ) => {
                self.entry(
                    facts,
                    H::ArmFailed,
                    &release.version,
                    target,
                    why,
                    Vec::new(),
                );
            }
            (
                _,
                Event::Rearm,
                S::Staged {
                    release, target, ..
                },
            ) => {
                let detail = "the boot switch was cut off; the image stays staged";
                self.entry(
                    facts,
                    H::ArmInterrupted,
                    &release.version,
                    target,
                    detail,
                    Vec::new(),
                );
            }
            (S::Armed { .. }, Event::BootedTrial { .. }, S::Trial { release, slot, .. }) => {
                let detail = format!("booted slot {slot} on trial");
                self.entry(
                    facts,
                    H::TrialStarted,
                    &release.version,
                    slot,
                    detail,
                    Vec::new(),
                );
            }
            (
                S::Trial { boot_id: old, .. },
                Event::BootedTrial {
                    boot_id, bootcount, ..
                },
                S::Trial { release, slot, .. },
            ) if old != boot_id => {
                let detail = format!("rebooted during the trial (bootcount {bootcount})");
                self.entry(
                    facts,
                    H::TrialReboot,
                    &release.version,
                    slot,
                    detail,
                    Vec::new(),
                );
            }
            (S::Trial { release, slot, .. }, Event::Commit { checks, detail }, _) => {
                self.set_slot(
                    slot,
                    Some(SlotRecord {
                        version: release.version.clone(),
                        size: release.size,
                        sha256: release.sha256.clone(),
                        good: true,
                        origin: super::Origin::Installed,
                    }),
                );
                self.known_good = Some(slot);
                self.rollbacks_in_a_row = 0;
                self.entry(facts, H::Committed, &release.version, slot, detail, checks);
                self.queue_outcome(facts, "committed", None);
            }
            (
                S::Armed {
                    release, target, ..
                }
                | S::Trial {
                    release,
                    slot: target,
                    ..
                },
                Event::Abandoned { why, by_bootloader },
                _,
            ) => {
                self.deny(release.version.clone(), why.clone(), facts.at);
                self.rollbacks_in_a_row += 1;
                self.entry(
                    facts,
                    H::TrialFailed,
                    &release.version,
                    target,
                    why,
                    Vec::new(),
                );
                if by_bootloader {
                    self.queue_outcome(facts, "trial-failed", None);
                }
            }
            (
                _,
                Event::Rollback {
                    to,
                    version,
                    reason,
                    checks,
                    by_owner,
                },
                S::RollingBack { from, .. },
            ) => {
                // The version left is denylisted either way: the agent does not re-install
                // what the owner rolled back from, nor what failed its checks.
                self.deny(version.clone(), reason.clone(), facts.at);
                // The owner acting resets the count of automatic rollbacks; the agent's own
                // adds one.
                if by_owner {
                    self.rollbacks_in_a_row = 0;
                } else {
                    self.rollbacks_in_a_row += 1;
                }
                let detail = format!("switching to slot {to}: {reason}");
                self.entry(facts, H::Rollback, &version, from, detail, checks);
            }
            (
                S::RollingBack {
                    version,
                    to,
                    reason,
                    ..
                },
                Event::RolledBack,
                _,
            ) => {
                self.known_good = Some(to);
                let detail = format!("running slot {to} again ({reason})");
                self.entry(facts, H::RolledBack, &version, to, detail, Vec::new());
                // The checks that decided it are on the rollback entry written before the
                // reboot.
                let failing = self
                    .history
                    .iter()
                    .rev()
                    .find(|h| h.event == H::Rollback)
                    .map(HistoryEntry::failing)
                    .unwrap_or_default();
                self.queue_outcome(facts, "rolled-back", Some(failing));
            }
            (
                S::RollingBack {
                    version,
                    from,
                    to,
                    attempts,
                    ..
                },
                Event::RollbackFailed,
                _,
            ) => {
                let detail = format!("the bootloader kept booting slot {from} after {attempts} reboots into slot {to}: it does not read the environment fwguard writes (check its location with `fwguard doctor`); staying on slot {from}");
                self.entry(facts, H::RollbackFailed, &version, from, detail, Vec::new());
            }
            // RetryBoot, a trial's boot seen again, and nothing else: no bookkeeping.
            _ => {}
        }
    }

    /// Queue the outcome of the change just recorded as the last history entry, when
    /// reporting is on; `failing` defaults to the entry's failed checks.
    fn queue_outcome(&mut self, facts: &Facts, result: &str, failing: Option<Vec<String>>) {
        let Some(r) = &facts.reporter else { return };
        let Some(e) = self.history.last() else { return };
        let Some(release) = e.version.clone() else {
            return;
        };
        self.outcomes.push(Outcome {
            schema: OUTCOME_SCHEMA,
            device: r.device.clone(),
            board: r.board.clone(),
            release,
            result: result.to_string(),
            failing: failing.unwrap_or_else(|| e.failing()),
            detail: e.detail.clone(),
            at: e.at,
        });
        if self.outcomes.len() > MAX_PENDING {
            self.outcomes.remove(0);
        }
    }

    /// Pin `version`: kept, installed even if it was rolled back before, whatever a hold
    /// said, with a fresh count of automatic rollbacks.
    fn pin_to(&mut self, version: &Version, insecure: bool) {
        self.pin = Some(version.clone());
        self.pin_insecure = insecure;
        self.hold = false;
        self.rollbacks_in_a_row = 0;
        self.denylist.retain(|d| &d.version != version);
    }

    /// This state as it would be with `version` pinned (to choose a release with the
    /// pin's rules before anything is recorded).
    pub fn as_pinned(&self, version: &Version, insecure: bool) -> PersistedState {
        let mut probe = self.clone();
        probe.pin_to(version, insecure);
        probe
    }

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
                detail,
                from_archive,
            } => {
                self.pin_to(&version, insecure);
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
                self.policy = Some(policy);
                entry(H::Policy, None, None, detail)
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
            Note::RootRotated { version, text } => {
                self.root = text;
                self.last_index = None;
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
        };
        self.record(e);
    }
}
