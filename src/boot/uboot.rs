//! Generic U-Boot A/B backend: `boot_slot`, `upgrade_available`, `bootcount`, `bootlimit`
//! and `ab_rollback` in a U-Boot environment stored in a file or block device, as one copy
//! or a redundant pair ([`EnvStore`]).
//!
//! The boot script that acts on these variables is in `packaging/uboot/ab-boot.env`.

use super::env_store::EnvStore;
use super::uboot_env::EnvVars;
use super::{BootError, BootState, Bootloader};
use crate::flash::VerifiedSlot;
use crate::slot::Slot;
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

pub struct UBootAb {
    env: EnvStore,
}

impl UBootAb {
    /// A single-copy environment at `env`.
    pub fn new(env: EnvLocation) -> Self {
        Self::with_store(EnvStore::single(env))
    }

    pub fn with_store(env: EnvStore) -> Self {
        UBootAb { env }
    }

    pub fn location(&self) -> &Path {
        &self.env.copies()[0].path
    }

    fn bad(&self, name: &str, value: &str, problem: &str) -> BootError {
        BootError::BadVar {
            path: self.location().to_path_buf(),
            name: name.into(),
            value: value.into(),
            problem: problem.into(),
        }
    }

    /// Decode the A/B variables from a variable set.
    pub fn decode_state(&self, vars: &EnvVars) -> Result<BootState, BootError> {
        let slot = vars.get("boot_slot").unwrap_or("A");
        let primary = slot
            .parse::<Slot>()
            .map_err(|_| self.bad("boot_slot", slot, "expected A or B"))?;
        let ua = vars.get("upgrade_available").unwrap_or("0");
        let trial = match ua {
            "0" | "" => false,
            "1" => true,
            _ => return Err(self.bad("upgrade_available", ua, "expected 0 or 1")),
        };
        // U-Boot's setexpr writes hex without a 0x prefix, and itest reads hex.
        let hex = |name: &str, default: &str| -> Result<u32, BootError> {
            let v = vars.get(name).unwrap_or(default);
            let digits = v.trim_start_matches("0x");
            u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16)
                .map_err(|_| self.bad(name, v, "expected a hexadecimal number"))
        };
        let fell_back_from = match vars.get("ab_rollback").unwrap_or("") {
            "" => None,
            s => Some(
                s.parse::<Slot>()
                    .map_err(|_| self.bad("ab_rollback", s, "expected A, B or empty"))?,
            ),
        };
        Ok(BootState {
            primary,
            trial,
            bootcount: hex("bootcount", "0")?,
            bootlimit: hex("bootlimit", "3")?,
            fell_back_from,
        })
    }

    /// Apply a change to the variables in memory and persist it in one write, refusing an
    /// env whose A/B variables cannot be understood.
    fn change(&self, f: impl FnOnce(&mut EnvVars)) -> Result<(), BootError> {
        self.env.change(|vars| {
            self.decode_state(vars)?;
            f(vars);
            Ok(())
        })?;
        Ok(())
    }
}

pub(super) fn set(vars: &mut EnvVars, name: &str, value: &str) {
    vars.set(name, value).expect("fixed valid names and values");
}

impl Bootloader for UBootAb {
    fn describe(&self) -> String {
        self.env.describe()
    }

    fn read_state(&self) -> Result<BootState, BootError> {
        self.decode_state(&self.env.read()?.vars)
    }

    fn arm_trial(&self, target: &VerifiedSlot, booted: Slot) -> Result<(), BootError> {
        let slot = target.slot();
        if slot == booted {
            return Err(BootError::TargetIsBooted(slot));
        }
        self.change(|v| {
            set(v, "boot_slot", slot.as_str());
            set(v, "upgrade_available", "1");
            set(v, "bootcount", "0");
            v.remove("ab_rollback");
        })
    }

    fn commit(&self, slot: Slot) -> Result<(), BootError> {
        self.change(|v| {
            set(v, "boot_slot", slot.as_str());
            set(v, "upgrade_available", "0");
            set(v, "bootcount", "0");
        })
    }

    fn switch_to(&self, target: &VerifiedSlot) -> Result<(), BootError> {
        let slot = target.slot();
        self.change(|v| {
            set(v, "boot_slot", slot.as_str());
            set(v, "upgrade_available", "0");
            set(v, "bootcount", "0");
        })
    }

    fn dump(&self) -> Result<Vec<(String, String)>, BootError> {
        Ok(self
            .env
            .read()?
            .vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}
