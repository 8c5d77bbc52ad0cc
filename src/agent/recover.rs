//! After a boot: find out what this boot is by reconciling the persisted state with what the
//! bootloader did, and finish or clean up whatever a power cut interrupted. A trial that the
//! bootloader has armed but fwguard's state does not explain (state lost, or someone ran
//! `fw_setenv`) is left to the bootloader's counter: nothing is written then.

use super::plan::{plan, trial_explained, BootFacts, Plan, Situation, Step};
use super::Agent;
use crate::error::{Error, Result};
use crate::state::PersistedState;

impl Agent {
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
