//! Generic U-Boot A/B backend: the A/B variables ([`AbVars`]) in a U-Boot environment
//! stored in a file, block device or raw flash, as one copy or a redundant pair
//! ([`EnvStore`]).
//!
//! The boot script that acts on these variables is in `packaging/uboot/ab-boot.env`.

use super::ab_vars::{AbVars, VarStore};
use super::env_store::EnvStore;
use super::uboot_env::EnvVars;
use super::BootError;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where one copy of the environment lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvLocation {
    pub path: PathBuf,
    pub offset: u64,
    pub size: usize,
}

/// Default pad byte for a fresh environment (what mkenvimage uses).
pub const PAD: u8 = 0xff;

impl EnvLocation {
    fn io(&self, source: std::io::Error) -> BootError {
        BootError::Io {
            path: self.path.clone(),
            source,
        }
    }

    pub fn read_raw(&self) -> Result<Vec<u8>, BootError> {
        let mut f = std::fs::File::open(&self.path).map_err(|e| self.io(e))?;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| self.io(e))?;
        let mut buf = vec![0u8; self.size];
        f.read_exact(&mut buf).map_err(|e| self.io(e))?;
        Ok(buf)
    }

    /// Write one whole copy. On raw flash (an MTD character device) the erase blocks that
    /// hold it are read, erased and programmed again, as the U-Boot tools do; anywhere else
    /// (a block device, a file) it is written in place and synced.
    pub fn write_raw(&self, bytes: &[u8]) -> Result<(), BootError> {
        debug_assert_eq!(bytes.len(), self.size);
        if crate::flash::mtd::is_char_device(&self.path) {
            let mtd = crate::flash::MtdChar::new(&self.path);
            return crate::flash::mtd::rewrite_range(&mtd, self.offset, bytes)
                .map_err(|e| self.io(e));
        }
        let mut f = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| self.io(e))?;
        f.write_all(bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))
    }

    /// Read this copy as a single-copy environment.
    pub fn read_vars(&self) -> Result<EnvVars, BootError> {
        Ok(EnvStore::single(self.clone()).read()?.vars)
    }

    /// Write all of `vars` to this single-copy environment in one write, then read back and
    /// compare.
    pub fn write_vars(&self, vars: &EnvVars) -> Result<(), BootError> {
        let store = EnvStore::single(self.clone());
        // A single copy is overwritten whatever it holds (even a bad CRC): a fresh env.
        store.write_fresh(vars)
    }
}

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
