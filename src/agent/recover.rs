//! After a boot: find out what this boot is by reconciling the persisted state with what the
//! bootloader did, and finish or clean up whatever a power cut interrupted. A trial that the
//! bootloader has armed but fwguard's state does not explain (state lost, or someone ran
//! `fw_setenv`) is left to the bootloader's counter: nothing is written then.

use super::plan::{plan, trial_explained, BootFacts, Plan, Situation, Step};
use super::Agent;
use crate::error::{Error, Result};
use crate::slot::Slot;
use crate::state::{Carried, CarriedOutcome, PersistedState, TrialResult, UpdateState};

impl Agent {
    /// What the other slot's fwguard carried in the bootloader environment, if the board
    /// carries state there; unreadable text is ignored, with a warning.
    pub(super) fn carried(&self) -> Option<Carried> {
        let text = match self.board.bootloader.carried() {
            Ok(t) => t?,
            Err(e) => {
                tracing::warn!("{e}");
                return None;
            }
        };
        Carried::decode(&text)
            .map_err(|e| tracing::warn!("{e}; ignored"))
            .ok()
    }

    /// The carried trial of `booted`, if it can be taken over: what it says the slot holds
    /// is what the slot holds (its extent hashed), and what it says of the slot left is
    /// something fwguard can return to. Otherwise it is dropped, with a warning (the
    /// bootloader's counter decides then).
    fn checked_trial(&self, c: &mut Carried, booted: Slot) {
        let Some(t) = &c.trial else { return };
        if t.slot != booted {
            return;
        }
        let problem = if t.previous_record.is_none()
            && t.previous_unidentified.as_ref().map(|u| u.slot) != Some(t.previous)
        {
            Some(format!(
                "nothing on record for slot {}, the slot left",
                t.previous
            ))
        } else {
            self.verify_release(booted, &t.release)
                .err()
                .map(|e| e.to_string())
        };
        if let Some(why) = problem {
            tracing::warn!(
                "the trial of {} in slot {booted} carried in the bootloader environment is not taken over: {why}",
                t.release.version
            );
            c.trial = None;
        }
    }

    /// The version of the trust root in force.
    fn root_version(&self, st: &PersistedState) -> u64 {
        self.trust_root(st).map(|r| r.version).unwrap_or(0)
    }

    /// What a board that carries state writes with an arm (`st` in `Armed`, with its arm
    /// id): the trial, the outcome of the trial before (still in the env), and the trust data.
    pub(super) fn carry_arm(&self, st: &PersistedState) -> Option<String> {
        if !self.board.bootloader.carries() {
            return None;
        }
        let before = self.carried().and_then(|c| c.outcome);
        Some(st.carry(before, self.root_version(st)).encode())
    }

    /// How the trial in `st` ended, for the other slot's fwguard.
    fn carry_outcome(
        &self,
        st: &PersistedState,
        version: &crate::version::Version,
        slot: Slot,
        result: TrialResult,
        reason: &str,
    ) -> Option<String> {
        if !self.board.bootloader.carries() {
            return None;
        }
        let outcome = st.carried_arm.as_ref().map(|arm_id| CarriedOutcome {
            arm_id: arm_id.clone(),
            version: version.clone(),
            slot,
            result,
            reason: reason.to_string(),
        });
        Some(st.carry(outcome, self.root_version(st)).encode())
    }

    /// What a board that carries state writes with a commit of the trial in `st`.
    pub(super) fn carry_commit(&self, st: &PersistedState) -> Option<String> {
        let UpdateState::Trial { release, slot, .. } = &st.update else {
            return None;
        };
        self.carry_outcome(st, &release.version, *slot, TrialResult::Committed, "")
    }

    /// What a board that carries state writes with the switch of a rollback in `st`.
    pub(super) fn carry_rollback(&self, st: &PersistedState) -> Option<String> {
        let UpdateState::RollingBack {
            version,
            from,
            reason,
            ..
        } = &st.update
        else {
            return None;
        };
        self.carry_outcome(st, version, *from, TrialResult::RolledBack, reason)
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

    /// Reconcile the persisted state with what the bootloader did. Run at daemon start;
    /// finishes or cleans up whatever a power cut interrupted: the facts of this boot are
    /// gathered, [`plan`] decides, and the plan is carried out in order.
    pub fn reconcile(&self) -> Result<Situation> {
        let _lock = self.lock_wait()?;
        let mut st = self.load()?;
        let booted = self.board.platform.booted_slot()?;
        let mut carried = self.carried();
        if let Some(c) = &mut carried {
            self.checked_trial(c, booted);
        }
        let facts = BootFacts {
            booted,
            boot: self
                .board
                .bootloader
                .read_state()
                .map_err(|e| e.to_string()),
            boot_id: self.board.platform.boot_id()?,
            now_ms: self.board.platform.uptime_ms(),
            carried,
            root_version: self.root_version(&st),
        };
        let Plan { steps, situation } = plan(&st, &facts);
        if let Situation::Unexplained(why) = &situation {
            tracing::warn!("{why}");
        }
        let mut unsaved = false;
        for step in steps {
            match step {
                Step::Apply(event) => {
                    let facts = self.facts(&st);
                    st.apply(event, &facts)?;
                    unsaved = true;
                }
                Step::Save => {
                    self.save(&st)?;
                    unsaved = false;
                }
                Step::CommitEnv(slot) => {
                    self.board.bootloader.commit(slot)?;
                    crate::failpoint::hit("commit-env-written");
                }
                Step::SwitchTo(slot) => {
                    let verified = self.verify_recorded(&st, slot)?;
                    match self.carry_rollback(&st) {
                        Some(c) => self.board.bootloader.switch_to_carrying(&verified, &c)?,
                        None => self.board.bootloader.switch_to(&verified)?,
                    }
                }
                Step::Adopt(slot) => unsaved |= self.adopt(&mut st, slot)?,
                Step::Note(note) => {
                    let facts = self.facts(&st);
                    st.note(note, &facts);
                    unsaved = true;
                }
            }
        }
        if unsaved {
            self.save(&st)?;
        }
        Ok(situation)
    }
}
