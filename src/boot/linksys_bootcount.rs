//! The boot counter of Linksys WRT dual-firmware boards (the `s_env` MTD partition): a log
//! of 12-byte records `{magic 0x20110811, count, checksum}` (little-endian words), one per
//! write page (at least 16 bytes apart), appended by U-Boot at every boot. The last record
//! holds the count; the partition is erased only when the log is full. With
//! `auto_recovery=yes`, U-Boot boots the other firmware after a few counted boots.
//!
//! Stock OpenWrt resets the count at every boot, healthy or not; fwguard resets it only when
//! it has judged the boot healthy, and writes nothing when the count is already 0.

use crate::flash::{Mtd, MtdInfo};
use std::io;

pub const MAGIC: u32 = 0x2011_0811;
const RECORD: usize = 12;
/// Records are at least this far apart (NOR flash reports a write size of 1).
const MIN_STRIDE: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum BootCountError {
    #[error("boot counter {device}: {source}")]
    Io {
        device: String,
        #[source]
        source: io::Error,
    },
    #[error("boot counter {device}: unexpected magic {magic:#010x} at {offset:#x} (not a Linksys boot-count log); refusing to write")]
    BadMagic {
        device: String,
        magic: u32,
        offset: u64,
    },
    #[error("boot counter {device}: reset did not read back (count {count})")]
    ReadBack { device: String, count: u32 },
}

/// What the log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The boots counted since the last reset (0 for an empty log).
    pub count: u32,
    /// Records in the log.
    pub records: u64,
    /// Room for no more records: the next write erases the partition first.
    pub full: bool,
}

pub struct BootCountLog<M: Mtd> {
    mtd: M,
}

impl<M: Mtd> BootCountLog<M> {
    pub fn new(mtd: M) -> Self {
        BootCountLog { mtd }
    }

    pub fn describe(&self) -> String {
        self.mtd.describe()
    }

    fn io(&self, source: io::Error) -> BootCountError {
        BootCountError::Io {
            device: self.mtd.describe(),
            source,
        }
    }

    fn geometry(&self) -> Result<(MtdInfo, u64), BootCountError> {
        let info = self.mtd.info().map_err(|e| self.io(e))?;
        Ok((info, info.write_size.max(MIN_STRIDE)))
    }

    pub fn read(&self) -> Result<Count, BootCountError> {
        let (info, stride) = self.geometry()?;
        let slots = info.size / stride;
        let mut count = 0;
        let mut buf = [0u8; RECORD];
        for i in 0..slots {
            self.mtd
                .read(i * stride, &mut buf)
                .map_err(|e| self.io(e))?;
            let word = |n: usize| u32::from_le_bytes(buf[n * 4..n * 4 + 4].try_into().unwrap());
            match word(0) {
                0xffff_ffff => {
                    return Ok(Count {
                        count,
                        records: i,
                        full: false,
                    })
                }
                MAGIC => count = word(1),
                magic => {
                    return Err(BootCountError::BadMagic {
                        device: self.mtd.describe(),
                        magic,
                        offset: i * stride,
                    })
                }
            }
        }
        Ok(Count {
            count,
            records: slots,
            full: true,
        })
    }

    /// Append a record with `count` (what U-Boot does at each boot; tests and the simulated
    /// board use it to play the bootloader).
    pub fn append(&self, count: u32) -> Result<(), BootCountError> {
        let (info, stride) = self.geometry()?;
        let now = self.read()?;
        let at = if now.full {
            for block in (0..info.size / info.erase_size).map(|b| b * info.erase_size) {
                self.mtd.erase(block).map_err(|e| self.io(e))?;
            }
            0
        } else {
            now.records * stride
        };
        let mut page = vec![0xffu8; stride.max(info.write_size) as usize];
        page[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        page[4..8].copy_from_slice(&count.to_le_bytes());
        page[8..12].copy_from_slice(&MAGIC.wrapping_add(count).to_le_bytes());
        self.mtd.program(at, &page).map_err(|e| self.io(e))
    }

    /// Reset the count to 0 after a boot judged healthy. Writes nothing when it is already
    /// 0; returns whether it wrote.
    pub fn reset(&self) -> Result<bool, BootCountError> {
        if self.read()?.count == 0 {
            return Ok(false);
        }
        self.append(0)?;
        let back = self.read()?;
        if back.count != 0 {
            return Err(BootCountError::ReadBack {
                device: self.mtd.describe(),
                count: back.count,
            });
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::mtd_image::MtdImage;

    const INFO: MtdInfo = MtdInfo {
        size: 2 * 0x20000,
        erase_size: 0x20000,
        write_size: 2048,
    };

    fn log(dir: &std::path::Path, info: MtdInfo) -> BootCountLog<MtdImage> {
        BootCountLog::new(MtdImage::create(&dir.join("s_env"), info).unwrap())
    }

    fn ops(l: &BootCountLog<MtdImage>) -> (u64, u64) {
        *l.mtd.ops.lock().unwrap()
    }

    #[test]
    fn counts_and_resets_only_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path(), INFO);
        assert_eq!(
            l.read().unwrap(),
            Count {
                count: 0,
                records: 0,
                full: false
            }
        );
        assert!(!l.reset().unwrap(), "an empty log needs no write");
        assert_eq!(ops(&l), (0, 0));
        for boot in 1..=3 {
            l.append(boot).unwrap();
        }
        assert_eq!(l.read().unwrap().count, 3);
        assert!(l.reset().unwrap());
        assert_eq!(
            l.read().unwrap(),
            Count {
                count: 0,
                records: 4,
                full: false
            }
        );
        let before = ops(&l);
        assert!(!l.reset().unwrap(), "already 0: nothing written");
        assert_eq!(ops(&l), before);
        // Record layout: little-endian magic, count, magic + count, one per page; the first
        // (count 1) at 0, the second at the next page.
        let raw = std::fs::read(dir.path().join("s_env")).unwrap();
        assert_eq!(&raw[2048..2052], &MAGIC.to_le_bytes());
        assert_eq!(
            &raw[..12],
            &[0x11, 0x08, 0x11, 0x20, 1, 0, 0, 0, 0x12, 0x08, 0x11, 0x20]
        );
    }

    #[test]
    fn a_full_log_is_erased_before_the_reset_record() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path(), INFO);
        let slots = INFO.size / 2048;
        for i in 0..slots {
            l.append(i as u32 + 1).unwrap();
        }
        assert_eq!(
            l.read().unwrap(),
            Count {
                count: slots as u32,
                records: slots,
                full: true
            }
        );
        assert_eq!(ops(&l).0, 0, "no erase while there was room");
        assert!(l.reset().unwrap());
        assert_eq!(ops(&l).0, 2, "both erase blocks erased once");
        assert_eq!(
            l.read().unwrap(),
            Count {
                count: 0,
                records: 1,
                full: false
            }
        );
    }

    #[test]
    fn nor_flash_records_are_16_bytes_apart_and_foreign_data_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let nor = MtdInfo {
            size: 0x10000,
            erase_size: 0x10000,
            write_size: 1,
        };
        let l = log(dir.path(), nor);
        l.append(2).unwrap();
        l.append(3).unwrap();
        let raw = std::fs::read(dir.path().join("s_env")).unwrap();
        assert_eq!(&raw[16..20], &MAGIC.to_le_bytes());
        assert_eq!(l.read().unwrap().count, 3);
        let mut raw = raw;
        raw[32..36].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        std::fs::write(dir.path().join("s_env"), &raw).unwrap();
        let e = l.reset().unwrap_err().to_string();
        assert!(e.contains("unexpected magic 0x12345678 at 0x20"), "{e}");
    }
}
