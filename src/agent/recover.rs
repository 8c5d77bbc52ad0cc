//! After a boot: find out what this boot is by reconciling the persisted state with what the
//! bootloader did, and finish or clean up whatever a power cut interrupted. A trial that the
//! bootloader has armed but fwguard's state does not explain (state lost, or someone ran
//! `fw_setenv`) is left to the bootloader's counter: nothing is written then.

use super::Agent;
use crate::boot::BootState;
use crate::error::{Error, Result};
use crate::flash::{self, Expected, VerifiedSlot};
use crate::health::Report;
use crate::slot::Slot;
use crate::state::{Event, Note, PersistedState, SlotRecord, UpdateState};

/// What this boot is, once reconciled with the persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Situation {
    /// A committed firmware is running.
    Idle,
    /// A trial boot is running: health checks decide.
    Trial,
    /// An announced action needs a reboot to complete (it was cut off before the reboot).
    NeedsReboot(String),
    /// The bootloader has a trial armed that the state does not explain: fwguard writes
    /// nothing and leaves the decision to the bootloader's boot counter.
    Unexplained(String),
}

/// Boots that may pass without the bootloader acting on an armed trial or a rollback before
/// fwguard gives it up (the bootloader then reads another environment than fwguard writes).
pub(super) const MAX_ARM_ATTEMPTS: u8 = 3;

/// Whether the persisted state accounts for the bootloader's armed trial (if any): the trial
/// is the one fwguard armed (or was arming, when its read-back failed).
pub(super) fn trial_explained(st: &PersistedState, boot: &BootState) -> bool {
    if !boot.trial {
        return true;
    }
    match &st.update {
        UpdateState::Armed { target, .. } | UpdateState::Staged { target, .. } => {
            boot.primary == *target
        }
        UpdateState::Trial { slot, .. } => boot.primary == *slot,
        // Cut off between persisting the rollback and the env switch: the trial left.
        UpdateState::RollingBack { from, .. } => boot.primary == *from,
        UpdateState::Idle | UpdateState::Installing { .. } => false,
    }
}

impl Agent {
    /// Hash a slot against what the state recorded for it.
    pub(super) fn verify_recorded(&self, st: &PersistedState, slot: Slot) -> Result<VerifiedSlot> {
        let rec = st.slot(slot).ok_or_else(|| {
            Error::Refused(format!("slot {slot} holds no image fwguard has verified"))
        })?;
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&rec.sha256, &mut sha256).map_err(|_| {
            Error::Refused(format!("state records a malformed hash for slot {slot}"))
        })?;
        Ok(flash::verify_existing(
            self.board.slot(slot),
            &Expected {
                size: rec.size,
                sha256,
            },
        )?)
    }

    /// Refuse anything that writes a slot or commits while the bootloader has a trial armed
    /// that the state does not explain: the slot it would fall back to must stay as it is.
    pub(super) fn ensure_trial_explained(&self, st: &PersistedState) -> Result<()> {
        let boot = self.board.bootloader.read_state()?;
        if trial_explained(st, &boot) {
            return Ok(());
        }
        Err(Error::UnexplainedTrial {
            slot: boot.primary,
            fallback: !boot.primary,
        })
    }

    /// Record the running committed firmware the first time fwguard sees it.
    pub(super) fn adopt(&self, st: &mut PersistedState, booted: Slot) -> Result<bool> {
        let header = self.header_of(booted)?;
        let known = st
            .slot(booted)
            .is_some_and(|r| r.version == header.version && r.good);
        if known && st.known_good == Some(booted) {
            return Ok(false);
        }
        let size = header.image_size();
        let sha = flash::hash_prefix(self.board.slot(booted), size)?;
        let record = SlotRecord {
            version: header.version.clone(),
            size,
            sha256: hex::encode(sha),
            good: true,
        };
        st.note(
            Note::Adopted {
                slot: booted,
                record,
            },
            &self.facts(st),
        );
        Ok(true)
    }

    /// Reconcile the persisted state with what the bootloader did. Run at daemon start;
    /// finishes or cleans up whatever a power cut interrupted.
    pub fn reconcile(&self) -> Result<Situation> {
        let _lock = self.lock_wait()?;
        let mut st = self.load()?;
        let booted = self.board.platform.booted_slot()?;
        let boot = self.board.bootloader.read_state()?;
        if !trial_explained(&st, &boot) {
            let why = format!(
                "the bootloader has a trial of slot {} armed that fwguard's state does not explain (state lost, or the environment changed by hand); nothing is written and the bootloader's counter decides; slot {} is its fallback and stays untouched",
                boot.primary, !boot.primary
            );
            tracing::warn!("{why}");
            return Ok(Situation::Unexplained(why));
        }
        let boot_id = self.board.platform.boot_id()?;
        let now_ms = self.board.platform.uptime_ms();
        let facts = self.facts(&st);
        let mut changed = false;
        let situation = match st.update.clone() {
            UpdateState::Idle => {
                changed |= self.adopt(&mut st, booted)?;
                Situation::Idle
            }
            UpdateState::Installing { release, target } => {
                let detail = match &st.partial {
                    Some(p) if p.target == target && p.version == release.version => format!(
                        "write was cut off; slot left invalid; the next install resumes after byte {}",
                        p.written
                    ),
                    _ => "write was cut off; slot left invalid, will install again".into(),
                };
                st.apply(Event::Interrupted { detail }, &facts)?;
                changed = true;
                Situation::Idle
            }
            UpdateState::Staged { .. } if boot.trial => {
                // Arming wrote the env but its read-back failed, so the state went back to
                // staged: the bootloader will boot (or booted) the staged slot on trial.
                let previous = !boot.primary;
                st.apply(Event::Arm { previous }, &facts)?;
                changed = true;
                self.reconcile_armed(&mut st, booted, &boot, boot_id, now_ms)?
            }
            UpdateState::Staged { .. } => Situation::Idle,
            UpdateState::Armed { .. } => {
                changed = true;
                self.reconcile_armed(&mut st, booted, &boot, boot_id, now_ms)?
            }
            UpdateState::Trial {
                slot,
                previous,
                boot_id: old_id,
                ..
            } => {
                if booted != slot {
                    let why = format!("trial of slot {slot} ended without a commit: the bootloader returned to slot {previous}");
                    st.apply(
                        Event::Abandoned {
                            why,
                            by_bootloader: true,
                        },
                        &facts,
                    )?;
                    changed = true;
                    Situation::Idle
                } else if !boot.trial {
                    // The env was committed but the state was not: finish the commit.
                    self.finish_commit(
                        &mut st,
                        Report {
                            results: Vec::new(),
                        },
                        "commit completed after restart",
                    )?;
                    changed = true;
                    Situation::Idle
                } else {
                    if old_id != boot_id {
                        st.apply(
                            Event::BootedTrial {
                                boot_id,
                                started_ms: now_ms,
                                bootcount: boot.bootcount,
                            },
                            &facts,
                        )?;
                        changed = true;
                    }
                    Situation::Trial
                }
            }
            UpdateState::RollingBack {
                from, to, attempts, ..
            } => {
                changed = true;
                if booted == to {
                    st.apply(Event::RolledBack, &facts)?;
                    Situation::Idle
                } else if attempts >= MAX_ARM_ATTEMPTS {
                    st.apply(Event::RollbackFailed, &facts)?;
                    Situation::Idle
                } else {
                    let verified = self.verify_recorded(&st, to)?;
                    st.apply(Event::RetryBoot, &facts)?;
                    self.save(&st)?;
                    self.board.bootloader.switch_to(&verified)?;
                    Situation::NeedsReboot(format!(
                        "rollback from slot {from} to {to} was not finished (reboot {} of at most {MAX_ARM_ATTEMPTS})",
                        attempts + 1
                    ))
                }
            }
        };
        if changed {
            self.save(&st)?;
        }
        Ok(situation)
    }

    /// The state is Armed: this boot is the trial, the reboot into it is still to come, or
    /// the switch never took effect. Every boot that does not land in the armed slot counts,
    /// and past the limit the release is given up and the env points at the running slot
    /// again, so a bootloader that reads another env than fwguard writes cannot loop.
    fn reconcile_armed(
        &self,
        st: &mut PersistedState,
        booted: Slot,
        boot: &BootState,
        boot_id: String,
        now_ms: u64,
    ) -> Result<Situation> {
        let UpdateState::Armed {
            release,
            target,
            arm_attempts,
            ..
        } = st.update.clone()
        else {
            unreachable!("called in the armed state");
        };
        let facts = self.facts(st);
        if booted == target {
            st.apply(
                Event::BootedTrial {
                    boot_id,
                    started_ms: now_ms,
                    bootcount: boot.bootcount,
                },
                &facts,
            )?;
            return Ok(Situation::Trial);
        }
        let gave_up = boot.fell_back_from == Some(target);
        if gave_up || arm_attempts >= MAX_ARM_ATTEMPTS {
            let why = if gave_up {
                format!("slot {target} never reached userspace; the bootloader gave it up after {} tries", boot.bootlimit)
            } else {
                format!("the boot switch to slot {target} did not take effect after {arm_attempts} attempts: the bootloader does not read the environment fwguard writes (check its location with `fwguard doctor`)")
            };
            if !gave_up && boot.trial {
                // Point the env back at the running slot, so that fwguard and the bootloader
                // agree again.
                self.board.bootloader.commit(booted)?;
            }
            let by_bootloader = gave_up;
            st.apply(Event::Abandoned { why, by_bootloader }, &facts)?;
            return Ok(Situation::Idle);
        }
        if boot.primary == target && boot.trial {
            st.apply(Event::RetryBoot, &facts)?;
            return Ok(Situation::NeedsReboot(format!(
                "trial boot of {} was armed but not yet booted (boot {} of at most {MAX_ARM_ATTEMPTS})",
                release.version,
                arm_attempts + 1
            )));
        }
        st.apply(Event::Rearm, &facts)?;
        Ok(Situation::Idle)
    }
}
