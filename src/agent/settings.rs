//! The owner's settings carried into the slot being installed, between the arm persisted and
//! the bootloader switched: the backup then holds the state as the trial will find it
//! (on boards whose slots share nothing, the state travels with the settings). A failure
//! leaves the trial unarmed, the running firmware and its settings as they were.

use super::Agent;
use crate::error::{Error, Result};
use crate::slot::Slot;
use crate::state::{PersistedState, UpdateState};
use crate::version::Version;

impl Agent {
    /// Whether `version`, about to be installed, boots on its own defaults: the owner said
    /// so for this command, or pinned it so (`--no-settings`).
    pub(super) fn on_own_defaults_for(&self, st: &PersistedState, version: &Version) -> bool {
        self.owner_defaults || (st.pin_no_settings && st.pin.as_ref() == Some(version))
    }

    /// Whether the release armed in `st` boots on its own defaults: the owner said so for
    /// this command, or when it was installed (a staged release approved later), or pinned
    /// it so.
    fn on_own_defaults(&self, st: &PersistedState) -> bool {
        let UpdateState::Armed { release, .. } = &st.update else {
            return self.owner_defaults;
        };
        release.own_defaults || self.on_own_defaults_for(st, &release.version)
    }

    /// Carry the settings into `target` as the configuration says, or nothing.
    pub(super) fn carry_settings(
        &self,
        st: &PersistedState,
        target: Slot,
        booted: Slot,
    ) -> Result<()> {
        let Some(medium) = &self.settings_medium else {
            return Ok(());
        };
        if target == booted {
            return Err(Error::Refused(format!(
                "the settings are carried only into the slot being installed, and slot {target} is the one running"
            )));
        }
        if self.on_own_defaults(st) {
            tracing::info!(
                "the owner's settings are not carried into slot {target} (--no-settings): it boots on its own defaults"
            );
            return Ok(());
        }
        let carried = crate::carry::write::carry(
            &self.settings.carry,
            medium.as_ref(),
            target,
            &self.settings.runtime_dir,
        )
        .map_err(|source| Error::Carry {
            slot: target,
            source,
        })?;
        crate::failpoint::hit("settings-carried");
        tracing::info!("carried the owner's settings into slot {target}: {carried}");
        Ok(())
    }
}
