//! The U-Boot environment on its storage: one copy, or a redundant pair as U-Boot and the
//! U-Boot tools keep it (each copy with a flags byte; the valid copy with the newer flags is
//! the current one; a change is written to the other copy with the flags counted up, so a
//! power cut mid-write leaves the current copy intact).
//!
//! Which copy is current depends on the flag scheme of the board's env driver, and fwguard
//! must follow the one U-Boot uses, or it would believe its own copy while U-Boot reads the
//! other: NAND, MMC, SPI flash and files count the flags up ([`FlagScheme::Incremental`]);
//! parallel NOR flash marks the new copy active (1) and the old one obsolete (0)
//! ([`FlagScheme::Boolean`], as U-Boot's env/flash.c and fw_env.c do for `MTD_NORFLASH`).

use super::fw_env::FwEnvConfig;
use super::uboot_env::{self, EnvVars, Layout};
use super::BootError;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

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

/// Where the environment lives: one or two copies of the same size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvStore {
    copies: Vec<EnvLocation>,
    scheme: FlagScheme,
}

/// How the flags bytes of a redundant pair say which copy is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagScheme {
    /// Each write counts the flags up (0 follows 255); the newer copy is current.
    Incremental,
    /// The current copy's flags are 1 (active), the other's 0 (obsolete).
    Boolean,
}

/// U-Boot's flags of an active and an obsolete copy (boolean scheme).
const ACTIVE: u8 = 1;
const OBSOLETE: u8 = 0;

impl FlagScheme {
    /// The scheme of the env driver for `device`: boolean on parallel NOR flash (sysfs
    /// `class/mtd/mtdN/type` is `nor`), incremental anywhere else.
    pub fn for_device(device: &std::path::Path, sysfs: &std::path::Path) -> FlagScheme {
        let nor = crate::flash::mtd::mtd_name(device).is_some_and(|mtd| {
            std::fs::read_to_string(sysfs.join("class/mtd").join(mtd).join("type"))
                .is_ok_and(|t| t.trim() == "nor")
        });
        if nor {
            FlagScheme::Boolean
        } else {
            FlagScheme::Incremental
        }
    }

    /// Which of two valid copies (by their flags) is current: 0 or 1, as U-Boot decides.
    pub fn current(self, f0: u8, f1: u8) -> usize {
        match self {
            FlagScheme::Incremental => usize::from(newer(f1, f0)),
            FlagScheme::Boolean => match (f0, f1) {
                (ACTIVE, OBSOLETE) => 0,
                (OBSOLETE, ACTIVE) => 1,
                (a, b) if a == b => 0,
                (0xff, _) => 0,
                (_, 0xff) => 1,
                _ => 0,
            },
        }
    }
}

/// The copy the bootloader will read at the next boot, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub vars: EnvVars,
    index: usize,
    flags: u8,
}

/// Whether flags `a` are newer than flags `b` in U-Boot's incremental scheme (each write
/// counts up; 0 follows 255).
pub fn newer(a: u8, b: u8) -> bool {
    match (a, b) {
        (0, 255) => true,
        (255, 0) => false,
        _ => a > b,
    }
}

impl EnvStore {
    pub fn single(copy: EnvLocation) -> Self {
        EnvStore {
            copies: vec![copy],
            scheme: FlagScheme::Incremental,
        }
    }

    /// A redundant pair; both copies must have the same size.
    pub fn redundant(first: EnvLocation, second: EnvLocation) -> Self {
        assert_eq!(first.size, second.size, "redundant copies differ in size");
        EnvStore {
            copies: vec![first, second],
            scheme: FlagScheme::Incremental,
        }
    }

    /// The same copies, with the flags read and written in `scheme`.
    pub fn with_scheme(mut self, scheme: FlagScheme) -> Self {
        self.scheme = scheme;
        self
    }

    pub fn scheme(&self) -> FlagScheme {
        self.scheme
    }

    /// The copies a parsed `fw_env.config` describes, with the flag scheme of the device
    /// they are on (its MTD type from `sysfs`).
    pub fn from_fw_env_on(cfg: &FwEnvConfig, sysfs: &std::path::Path) -> Self {
        let store = Self::from_fw_env(cfg);
        let scheme = FlagScheme::for_device(&store.copies[0].path, sysfs);
        store.with_scheme(scheme)
    }

    /// The copies a parsed `fw_env.config` describes (incremental flags).
    pub fn from_fw_env(cfg: &FwEnvConfig) -> Self {
        let loc = |i: usize| EnvLocation {
            path: cfg.copies[i].device.clone(),
            offset: cfg.copies[i].offset,
            size: cfg.copies[i].size,
        };
        match cfg.copies.len() {
            1 => Self::single(loc(0)),
            _ => Self::redundant(loc(0), loc(1)),
        }
    }

    pub fn layout(&self) -> Layout {
        if self.copies.len() == 2 {
            Layout::Redundant
        } else {
            Layout::Single
        }
    }

    pub fn copies(&self) -> &[EnvLocation] {
        &self.copies
    }

    pub fn describe(&self) -> String {
        let one = |c: &EnvLocation| format!("{} @ {:#x}", c.path.display(), c.offset);
        match self.copies.as_slice() {
            [c] => format!("u-boot env {} ({} bytes, single copy)", one(c), c.size),
            [a, b] => format!(
                "u-boot env {} and {} ({} bytes, redundant)",
                one(a),
                one(b),
                a.size
            ),
            _ => unreachable!("one or two copies"),
        }
    }

    fn format_err(copy: &EnvLocation, source: uboot_env::EnvFormatError) -> BootError {
        BootError::Format {
            path: copy.path.clone(),
            source,
        }
    }

    /// Read the current copy. With a redundant pair, a copy that fails its CRC is passed
    /// over; when both fail, nothing can be trusted and the error says so (never defaults).
    pub fn read(&self) -> Result<Current, BootError> {
        let layout = self.layout();
        let mut decoded = Vec::with_capacity(self.copies.len());
        for copy in &self.copies {
            decoded.push(uboot_env::decode(&copy.read_raw()?, layout));
        }
        let pick = |index: usize, copy: uboot_env::EnvCopy| Current {
            vars: copy.vars,
            index,
            flags: copy.flags.unwrap_or(0),
        };
        let mut it = decoded.into_iter();
        match (it.next(), it.next()) {
            (Some(Ok(a)), None) => Ok(pick(0, a)),
            (Some(Err(e)), None) => Err(Self::format_err(&self.copies[0], e)),
            (Some(Ok(a)), Some(Ok(b))) => {
                if self
                    .scheme
                    .current(a.flags.unwrap_or(0), b.flags.unwrap_or(0))
                    == 1
                {
                    Ok(pick(1, b))
                } else {
                    Ok(pick(0, a))
                }
            }
            (Some(Ok(a)), Some(Err(e))) => {
                tracing::warn!("{}: {e}; using the other copy", self.describe_copy(1));
                Ok(pick(0, a))
            }
            (Some(Err(e)), Some(Ok(b))) => {
                tracing::warn!("{}: {e}; using the other copy", self.describe_copy(0));
                Ok(pick(1, b))
            }
            (Some(Err(e1)), Some(Err(e2))) => Err(BootError::BothCopiesBad {
                first: format!("{}: {e1}", self.describe_copy(0)),
                second: format!("{}: {e2}", self.describe_copy(1)),
            }),
            (None, _) => unreachable!("one or two copies"),
        }
    }

    fn describe_copy(&self, i: usize) -> String {
        let c = &self.copies[i];
        format!(
            "env copy {} ({} @ {:#x})",
            i + 1,
            c.path.display(),
            c.offset
        )
    }

    /// Write `vars` as a fresh environment over every copy, whatever they hold (creating an
    /// environment: simulated boards, tests). The first copy becomes the current one.
    pub fn write_fresh(&self, vars: &EnvVars) -> Result<(), BootError> {
        let layout = self.layout();
        for (i, copy) in self.copies.iter().enumerate().rev() {
            let flags = match (self.scheme, i) {
                (FlagScheme::Boolean, 0) => ACTIVE,
                (FlagScheme::Boolean, _) => OBSOLETE,
                (FlagScheme::Incremental, i) => u8::from(i == 0),
            };
            let bytes = uboot_env::encode(vars, layout, flags, copy.size, PAD)
                .map_err(|e| Self::format_err(copy, e))?;
            copy.write_raw(&bytes)?;
        }
        let back = self.read()?;
        if back.index != 0 || &back.vars != vars {
            return Err(BootError::ReadBack {
                path: self.copies[0].path.clone(),
                detail: "variables differ from what was written".into(),
            });
        }
        Ok(())
    }

    /// Read, change in memory with `f` (which sees the current variables and may refuse),
    /// and persist the change in one write; nothing is written when `f` changes nothing.
    /// Returns whether it wrote.
    pub fn change(
        &self,
        f: impl FnOnce(&mut EnvVars) -> Result<(), BootError>,
    ) -> Result<bool, BootError> {
        let current = self.read()?;
        let mut vars = current.vars.clone();
        f(&mut vars)?;
        if vars == current.vars {
            return Ok(false);
        }
        self.write(&current, &vars)?;
        Ok(true)
    }

    /// Persist `vars` in one write: over the only copy, or over the copy that is not
    /// `current` with the flags counted up. Then read back: the written copy must be the
    /// current one and hold exactly `vars`.
    pub fn write(&self, current: &Current, vars: &EnvVars) -> Result<(), BootError> {
        let layout = self.layout();
        let (target, flags) = match (layout, self.scheme) {
            (Layout::Single, _) => (0, 0),
            (Layout::Redundant, FlagScheme::Incremental) => {
                (1 - current.index, current.flags.wrapping_add(1))
            }
            (Layout::Redundant, FlagScheme::Boolean) => (1 - current.index, ACTIVE),
        };
        let copy = &self.copies[target];
        let bytes = uboot_env::encode(vars, layout, flags, copy.size, PAD)
            .map_err(|e| Self::format_err(copy, e))?;
        copy.write_raw(&bytes)?;
        if (layout, self.scheme) == (Layout::Redundant, FlagScheme::Boolean) {
            // Then the old copy becomes obsolete (its flags byte is outside the CRC). A power
            // cut before this leaves both active, and U-Boot then reads the first copy.
            let old = &self.copies[current.index];
            let mut raw = old.read_raw()?;
            raw[4] = OBSOLETE;
            old.write_raw(&raw)?;
        }
        let back = self.read()?;
        if back.index != target || &back.vars != vars {
            return Err(BootError::ReadBack {
                path: copy.path.clone(),
                detail: if back.index != target {
                    "the written copy is not the one the bootloader will use".into()
                } else {
                    "variables differ from what was written".into()
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_order_wraps_around() {
        assert!(newer(1, 0));
        assert!(newer(0, 255));
        assert!(!newer(255, 0));
        assert!(newer(200, 199));
        assert!(!newer(5, 5));
    }

    fn pair(dir: &std::path::Path) -> EnvStore {
        let f = dir.join("env.img");
        std::fs::write(&f, vec![0u8; 0x2000]).unwrap();
        let at = |offset| EnvLocation {
            path: f.clone(),
            offset,
            size: 0x1000,
        };
        EnvStore::redundant(at(0), at(0x1000))
    }

    fn write_copy(store: &EnvStore, i: usize, flags: u8, pairs: &[(&str, &str)]) {
        let v = EnvVars::from_pairs(pairs).unwrap();
        let c = &store.copies()[i];
        c.write_raw(&uboot_env::encode(&v, Layout::Redundant, flags, c.size, PAD).unwrap())
            .unwrap();
    }

    #[test]
    fn redundant_writes_alternate_and_survive_a_torn_copy() {
        let dir = tempfile::tempdir().unwrap();
        let s = pair(dir.path());
        write_copy(&s, 0, 255, &[("boot_slot", "A")]);
        write_copy(&s, 1, 0, &[("boot_slot", "B")]);
        let cur = s.read().unwrap();
        assert_eq!((cur.index, cur.vars.get("boot_slot")), (1, Some("B")));
        let mut v = cur.vars.clone();
        v.set("boot_slot", "A").unwrap();
        s.write(&cur, &v).unwrap();
        let cur = s.read().unwrap();
        assert_eq!((cur.index, cur.flags), (0, 1));
        // Tear the current copy: the other one (older) is used, and a write goes over the
        // torn one.
        let raw = s.copies()[0].read_raw().unwrap();
        let mut torn = raw.clone();
        torn[100] ^= 0xff;
        s.copies()[0].write_raw(&torn).unwrap();
        let cur = s.read().unwrap();
        assert_eq!((cur.index, cur.vars.get("boot_slot")), (1, Some("B")));
        s.write(&cur, &v).unwrap();
        assert_eq!(s.read().unwrap().vars.get("boot_slot"), Some("A"));
    }

    /// U-Boot's choice of the current copy on parallel NOR flash (env/flash.c, fw_env.c
    /// FLAG_BOOLEAN), written out here independently of fwguard's code.
    fn uboot_nor_current(f0: u8, f1: u8) -> usize {
        if f0 == 1 && f1 == 0 {
            0
        } else if f0 == 0 && f1 == 1 {
            1
        } else if f0 == f1 || f0 == 0xff {
            0
        } else if f1 == 0xff {
            1
        } else {
            0
        }
    }

    #[test]
    fn on_nor_flash_the_written_copy_is_the_one_u_boot_reads() {
        let dir = tempfile::tempdir().unwrap();
        let s = pair(dir.path()).with_scheme(FlagScheme::Boolean);
        s.write_fresh(&EnvVars::from_pairs(&[("boot_slot", "A")]).unwrap())
            .unwrap();
        for (n, slot) in ["B", "A", "B", "B2"].into_iter().enumerate() {
            let cur = s.read().unwrap();
            let mut v = cur.vars.clone();
            v.set("boot_slot", slot).unwrap();
            s.write(&cur, &v).unwrap();
            let flags: Vec<u8> = s
                .copies()
                .iter()
                .map(|c| c.read_raw().unwrap()[4])
                .collect();
            let uboot = uboot_nor_current(flags[0], flags[1]);
            assert_eq!(uboot, s.read().unwrap().index, "write {n}: flags {flags:?}");
            let raw = s.copies()[uboot].read_raw().unwrap();
            let seen = uboot_env::decode(&raw, Layout::Redundant).unwrap();
            assert_eq!(seen.vars.get("boot_slot"), Some(slot), "write {n}");
        }
        // Counting the flags up instead (what fwguard did on every board) leaves U-Boot on
        // the old copy: copy 1 gets flags 2 while copy 0 keeps 1, and U-Boot reads copy 0.
        assert_eq!(uboot_nor_current(1, 2), 0);
        assert_eq!(FlagScheme::Incremental.current(1, 2), 1);
    }

    #[test]
    fn the_flag_scheme_follows_the_mtd_type() {
        let dir = tempfile::tempdir().unwrap();
        let class = dir.path().join("class/mtd/mtd1");
        std::fs::create_dir_all(&class).unwrap();
        std::fs::write(class.join("type"), "nor\n").unwrap();
        let dev = std::path::Path::new("/dev/mtd1");
        assert_eq!(FlagScheme::for_device(dev, dir.path()), FlagScheme::Boolean);
        std::fs::write(class.join("type"), "nand\n").unwrap();
        assert_eq!(
            FlagScheme::for_device(dev, dir.path()),
            FlagScheme::Incremental
        );
        assert_eq!(
            FlagScheme::for_device(std::path::Path::new("/dev/mmcblk0"), dir.path()),
            FlagScheme::Incremental
        );
    }

    #[test]
    fn both_copies_bad_is_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let s = pair(dir.path());
        let e = s.read().unwrap_err().to_string();
        assert!(e.contains("env copy 1") && e.contains("env copy 2"), "{e}");
        assert!(e.contains("bad CRC"), "{e}");
    }
}
