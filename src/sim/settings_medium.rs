//! The stand-in for the kernel's UBI attach and UBIFS mount on a board whose flash is files
//! (the simulated Linksys router of the suites): a directory per slot is that slot's
//! `rootfs_data` file system. What the kernel would refuse is refused the same way: the
//! target partition must hold a UBI (read with fwguard's own UBI reader) with the volume.
//! An empty volume, as a freshly written UBI has (or none, which the kernel's medium makes),
//! is formatted at its first mount: the directory starts empty then. A volume with data is a file system this stand-in cannot
//! read, so its directory is taken as it is.

use crate::board::linksys::{node, slot_parts};
use crate::board::mtd_table::MtdTable;
use crate::carry::{CarryError, Opened, SettingsMedium};
use crate::config::LinksysSettings;
use crate::flash::ubi_image::UbiArea;
use crate::flash::MtdSlot;
use crate::slot::Slot;
use std::path::{Path, PathBuf};

/// One slot's UBI: the kernel partition whose tail it is, and where in it it starts.
struct Area {
    kernel: PathBuf,
    at: u64,
    rootfs: PathBuf,
}

pub struct DirMedium {
    areas: [Area; 2],
    volume: String,
    sysfs: PathBuf,
    /// Slot A's file system, then slot B's.
    dirs: [PathBuf; 2],
}

impl DirMedium {
    /// The stand-in for volume `volume` of each slot's `rootfsN` on a Linksys flash of files.
    pub fn linksys(
        s: &LinksysSettings,
        volume: &str,
        dirs: [PathBuf; 2],
    ) -> Result<DirMedium, CarryError> {
        let table =
            MtdTable::load(&s.proc.join("mtd")).map_err(|e| CarryError::Refused(e.to_string()))?;
        let area = |slot| -> Result<Area, CarryError> {
            let (k, r) = slot_parts(slot);
            let (k, r) = (
                table
                    .by_name(k)
                    .map_err(|e| CarryError::Refused(e.to_string()))?,
                table
                    .by_name(r)
                    .map_err(|e| CarryError::Refused(e.to_string()))?,
            );
            Ok(Area {
                kernel: node(&s.dev, k),
                at: k.size.saturating_sub(r.size),
                rootfs: node(&s.dev, r),
            })
        };
        Ok(DirMedium {
            areas: [area(Slot::A)?, area(Slot::B)?],
            volume: volume.into(),
            sysfs: s.sysfs.clone(),
            dirs,
        })
    }
}

struct Dir(PathBuf);

impl Opened for Dir {
    fn root(&self) -> &Path {
        &self.0
    }

    fn close(self: Box<Self>) -> Result<(), CarryError> {
        crate::fsutil::sync_dir(&self.0)
            .map_err(|e| CarryError::io(self.0.display().to_string(), e))
    }
}

impl SettingsMedium for DirMedium {
    fn open(&self, slot: Slot) -> Result<Box<dyn Opened + '_>, CarryError> {
        let a = &self.areas[slot.index()];
        let refuse =
            |why: String| CarryError::Refused(format!("mount {}: {why}", self.describe(slot)));
        let mtd = crate::flash::mtd::open_mtd(&a.kernel, &self.sysfs)
            .ok_or_else(|| refuse("not an MTD partition".into()))?
            .map_err(|e| refuse(e.to_string()))?;
        let peb_size = mtd.info().map_err(|e| refuse(e.to_string()))?.erase_size;
        let dev = MtdSlot::new(slot, mtd);
        let area = UbiArea {
            dev: &dev,
            offset: a.at,
            peb_size,
        };
        // No volume: the kernel's medium makes it, empty (as OpenWrt's nand.sh does).
        let fresh = match area.volumes().map_err(|e| refuse(e.to_string()))? {
            v if !v.contains(&self.volume) => true,
            _ => {
                area.volume_len(&self.volume)
                    .map_err(|e| refuse(e.to_string()))?
                    == 0
            }
        };
        let dir = &self.dirs[slot.index()];
        if fresh {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::fs::create_dir_all(dir).map_err(|e| CarryError::io(dir.display().to_string(), e))?;
        Ok(Box::new(Dir(dir.clone())))
    }

    fn describe(&self, slot: Slot) -> String {
        format!(
            "volume {:?} of the UBI on {} (simulated by {})",
            self.volume,
            self.areas[slot.index()].rootfs.display(),
            self.dirs[slot.index()].display()
        )
    }
}

/// For the suites that run the fwguard binary: `FWGUARD_SIM_SETTINGS_DIRS=A:B` (builds with
/// failpoints only) puts this stand-in under the binary's OpenWrt carry on a Linksys board.
#[cfg(feature = "failpoints")]
pub fn from_env(settings: &crate::config::Settings) -> Option<Box<dyn SettingsMedium>> {
    let dirs = std::env::var("FWGUARD_SIM_SETTINGS_DIRS").ok()?;
    let (a, b) = dirs.split_once(':')?;
    let crate::carry::CarryPlan::OpenWrt { volume, .. } = &settings.carry else {
        return None;
    };
    let crate::config::BoardSettings::Linksys(l) = &settings.board else {
        return None;
    };
    DirMedium::linksys(l, volume, [a.into(), b.into()])
        .ok()
        .map(|m| Box::new(m) as Box<dyn SettingsMedium>)
}
