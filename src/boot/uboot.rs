//! Generic U-Boot A/B backend: the A/B variables ([`AbVars`]) in a U-Boot environment
//! stored in a file, block device or raw flash, as one copy or a redundant pair
//! ([`EnvStore`]).
//!
//! The boot script that acts on these variables is in `packaging/uboot/ab-boot.env`.

use super::ab_vars::{AbVars, VarStore};
use super::env_store::EnvLocation;
use super::env_store::EnvStore;
use super::uboot_env::EnvVars;
use super::BootError;
use std::path::Path;

/// The generic U-Boot A/B backend.
pub type UBootAb = AbVars;

impl AbVars {
    /// A single-copy U-Boot environment at `env`.
    pub fn new(env: EnvLocation) -> Self {
        Self::with_store(EnvStore::single(env))
    }

    /// A U-Boot environment, single or redundant.
    pub fn with_store(env: EnvStore) -> Self {
        AbVars::on(Box::new(env))
    }
}

impl VarStore for EnvStore {
    fn describe(&self) -> String {
        EnvStore::describe(self)
    }

    fn location(&self) -> &Path {
        &self.copies()[0].path
    }

    fn read_vars(&self) -> Result<EnvVars, BootError> {
        Ok(self.read()?.vars)
    }

    fn change_vars(
        &self,
        f: &mut dyn FnMut(&mut EnvVars) -> Result<(), BootError>,
    ) -> Result<bool, BootError> {
        self.change(f)
    }
}
