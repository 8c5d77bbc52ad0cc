//! After a boot: find out what this boot is by reconciling the persisted state with what the
//! bootloader did, and finish or clean up whatever a power cut interrupted. A trial that the
//! bootloader has armed but fwguard's state does not explain (state lost, or someone ran
//! `fw_setenv`) is left to the bootloader's counter: nothing is written then.

use super::plan::{plan, trial_explained, BootFacts, Plan, Situation, Step};
use super::Agent;
use crate::error::{Error, Result};
use crate::flash::{self, Expected, VerifiedSlot};
use crate::slot::Slot;
use crate::state::{Note, PersistedState, SlotRecord};

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
    /// finishes or cleans up whatever a power cut interrupted: the facts of this boot are
    /// gathered, [`plan`] decides, and the plan is carried out in order.
    pub fn reconcile(&self) -> Result<Situation> {
        let _lock = self.lock_wait()?;
        let mut st = self.load()?;
        let facts = BootFacts {
            booted: self.board.platform.booted_slot()?,
            boot: self
                .board
                .bootloader
                .read_state()
                .map_err(|e| e.to_string()),
            boot_id: self.board.platform.boot_id()?,
            now_ms: self.board.platform.uptime_ms(),
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
                    self.board.bootloader.switch_to(&verified)?;
                }
                Step::Adopt(slot) => unsaved |= self.adopt(&mut st, slot)?,
            }
        }
        if unsaved {
            self.save(&st)?;
        }
        Ok(situation)
    }
}
