//! The one place where each change of the update state and its bookkeeping happen: the
//! state tag (through [`transition`]), the slot records, known-good, the denylist, the
//! rollback counter, the history entry and the queued outcome report. Nothing outside this
//! module writes those fields; the agent says what happened ([`Event`], [`Note`]) with its
//! facts, and [`PersistedState::apply`] / [`PersistedState::note`] do the rest.

use super::history::{HistoryEntry, HistoryEvent as H};
use super::machine::{transition, Disallowed, Event, UpdateState};
use super::schema::CheckRecord;
use super::{Outcome, PersistedState, SlotRecord};
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
    /// The seconds a trial has from its boot to commit (for `armed`).
    pub trial_seconds: u64,
}

impl PersistedState {
    /// Apply an event through the state machine, with its whole bookkeeping.
    pub fn apply(&mut self, event: Event, facts: &Facts) -> Result<(), Disallowed> {
        let next = transition(&self.update, &event)?;
        let before = std::mem::replace(&mut self.update, next);
        self.bookkeep(before, event, facts);
        Ok(())
    }

    pub(super) fn entry(
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
                // What waited for the owner was the image this write replaces.
                self.awaiting = None;
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
                self.queue_outcome(facts, "installing", Some(Vec::new()));
            }
            (S::Installing { release, target }, Event::Verified, _) => {
                self.partial = None;
                self.forget_bad_sources(&release.sha256);
                for p in &release.parts {
                    self.forget_bad_sources(&p.sha256);
                }
                self.set_slot(target, Some(SlotRecord::installed(&release, false)));
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
                self.queue_outcome(facts, "armed", Some(Vec::new()));
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
                self.set_slot(slot, Some(SlotRecord::installed(&release, true)));
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
            (_, Event::TakeTrial { trial }, _) => self.take_trial(&trial, facts),
            (_, Event::Returned { outcome }, _) => {
                let booted = !outcome.slot;
                self.take_outcome(&outcome, booted, facts)
            }
            // RetryBoot, a trial's boot seen again, and nothing else: no bookkeeping.
            _ => {}
        }
    }

    /// Queue the outcome of the change just recorded as the last history entry, when
    /// reporting is on; `failing` defaults to the entry's failed checks.
    pub(super) fn queue_outcome(
        &mut self,
        facts: &Facts,
        result: &str,
        failing: Option<Vec<String>>,
    ) {
        let Some(r) = &facts.reporter else { return };
        let Some(e) = self.history.last() else { return };
        let Some(release) = e.version.clone() else {
            return;
        };
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id).expect("the kernel provides randomness");
        self.outcomes.push(Outcome {
            schema: OUTCOME_SCHEMA,
            device: r.device.clone(),
            board: r.board.clone(),
            release,
            result: result.to_string(),
            failing: failing.unwrap_or_else(|| e.failing()),
            detail: e.detail.clone(),
            at: e.at,
            id: hex::encode(id),
            deadline_s: (result == "armed").then_some(r.trial_seconds),
        });
        if self.outcomes.len() > MAX_PENDING {
            self.outcomes.remove(0);
        }
    }

    /// Pin `version`: kept, installed even if it was rolled back before, whatever a hold
    /// said, with a fresh count of automatic rollbacks.
    pub(super) fn pin_to(&mut self, version: &Version, insecure: bool, no_settings: bool) {
        self.pin = Some(version.clone());
        self.pin_insecure = insecure;
        self.pin_no_settings = no_settings;
        self.hold = false;
        self.rollbacks_in_a_row = 0;
        self.denylist.retain(|d| &d.version != version);
    }

    /// This state as it would be with `version` pinned (to choose a release with the
    /// pin's rules before anything is recorded).
    pub fn as_pinned(
        &self,
        version: &Version,
        insecure: bool,
        no_settings: bool,
    ) -> PersistedState {
        let mut probe = self.clone();
        probe.pin_to(version, insecure, no_settings);
        probe
    }
}
