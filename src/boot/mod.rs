//! Bootloader backends: where the A/B boot decision lives.
//!
//! Every backend decodes the bootloader state, changes it in memory and persists a whole
//! change in one write, which it reads back and compares before returning.

pub mod ab_vars;
pub mod env_store;
pub mod fw_env;
pub mod grub;
pub mod linksys;
pub mod linksys_bootcount;
pub mod script;
pub mod uboot;
pub mod uboot_env;

use crate::flash::VerifiedSlot;
use crate::slot::Slot;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("bootloader env {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bootloader env {path}: {source}; refusing to write over an environment that cannot be read")]
    Format {
        path: PathBuf,
        #[source]
        source: uboot_env::EnvFormatError,
    },
    #[error("bootloader env {path}: variable {name}={value:?} is invalid: {problem}")]
    BadVar {
        path: PathBuf,
        name: String,
        value: String,
        problem: String,
    },
    #[error("bootloader env: both copies of the redundant environment are unreadable ({first}; {second}); refusing to write over them")]
    BothCopiesBad { first: String, second: String },
    #[error("bootloader env {path}: written change did not read back: {detail}")]
    ReadBack { path: PathBuf, detail: String },
    #[error("{path}: {source}; refusing to write over it")]
    Grub {
        path: PathBuf,
        #[source]
        source: grub::GrubEnvError,
    },
    #[error("bootloader command `{command}` failed: {detail}")]
    Script { command: String, detail: String },
    #[error(transparent)]
    BootCount(#[from] linksys_bootcount::BootCountError),
    #[error("refusing to arm slot {0} for a trial: it is the slot that is running")]
    TargetIsBooted(Slot),
}

/// The A/B decision as the bootloader will act on it at the next boot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootState {
    /// The slot the bootloader boots next.
    pub primary: Slot,
    /// A trial is armed: the bootloader counts boots and gives the slot up past the limit.
    pub trial: bool,
    pub bootcount: u32,
    pub bootlimit: u32,
    /// Set by the bootloader when it gave a trial slot up (`ab_rollback` in U-Boot).
    pub fell_back_from: Option<Slot>,
}

/// A bootloader that holds the A/B decision.
pub trait Bootloader: Send {
    /// A short description for status and doctor output.
    fn describe(&self) -> String;
    /// Read and decode the current state.
    fn read_state(&self) -> Result<BootState, BootError>;
    /// Whether the bootloader counts every boot, not only trial boots (Linksys dual firmware):
    /// then every boot judged healthy must be confirmed with [`Bootloader::commit`], or the
    /// bootloader gives the running firmware up after a few boots.
    fn counts_every_boot(&self) -> bool {
        false
    }
    /// Boot `target` next, on trial, in one write: only a slot whose contents were
    /// verified can be armed. `booted` is the slot running now, never armed.
    fn arm_trial(&self, target: &VerifiedSlot, booted: Slot) -> Result<(), BootError>;
    /// Make `slot` permanent and stop counting (reset the count). Writes nothing when already
    /// committed with no boots counted.
    fn commit(&self, slot: Slot) -> Result<(), BootError>;
    /// Boot `target` permanently from now on (a rollback to a verified known-good slot).
    fn switch_to(&self, target: &VerifiedSlot) -> Result<(), BootError>;
    /// Raw variables, for status and support output.
    fn dump(&self) -> Result<Vec<(String, String)>, BootError>;
    /// Whether the update state's trial facts travel in the bootloader's storage
    /// ([`crate::state::carried`]): boards whose slots share nothing else.
    fn carries(&self) -> bool {
        false
    }
    /// What the other slot's fwguard carried (the text of the variable), if anything.
    fn carried(&self) -> Result<Option<String>, BootError> {
        Ok(None)
    }
    /// [`Bootloader::arm_trial`], writing `carry` in the same env write where the
    /// bootloader carries state.
    fn arm_trial_carrying(
        &self,
        target: &VerifiedSlot,
        booted: Slot,
        _carry: &str,
    ) -> Result<(), BootError> {
        self.arm_trial(target, booted)
    }
    /// [`Bootloader::commit`] of a trial, with `carry` in the same write.
    fn commit_carrying(&self, slot: Slot, _carry: &str) -> Result<(), BootError> {
        self.commit(slot)
    }
    /// [`Bootloader::switch_to`], with `carry` in the same write.
    fn switch_to_carrying(&self, target: &VerifiedSlot, _carry: &str) -> Result<(), BootError> {
        self.switch_to(target)
    }
}
