//! Linksys WRT dual-firmware boards: partitions found by name in `/proc/mtd` (`u_env` through
//! the board's fw_env.config, `s_env`, `kernel1`/`rootfs1` = slot A, `kernel2`/`rootfs2` =
//! slot B); the running slot is the partition that holds the mounted UBI root (`ubi0`).
//!
//! On these boards `kernelN` spans `rootfsN` (the kernel partition starts the firmware area
//! and the root file system follows inside it), so a firmware image is written whole to
//! `kernelN`, as the stock firmware and OpenWrt's factory images are; or, for a release with
//! a root part (OpenWrt's sysupgrade image), the kernel to `kernelN` and the root into a
//! fresh UBI on `rootfsN` (target [`ROOT_TARGET`]), as OpenWrt's sysupgrade writes them.

use super::mtd_table::{MtdPart, MtdTable};
use super::preflight::Finding;
use super::{slot_device, Board, BoardError, Platform};
use crate::boot::env_store::EnvStore;
use crate::boot::linksys::LinksysDual;
use crate::config::LinksysSettings;
use crate::slot::Slot;
use std::path::{Path, PathBuf};

/// The partitions of one slot.
pub fn slot_parts(slot: Slot) -> (&'static str, &'static str) {
    match slot {
        Slot::A => ("kernel1", "rootfs1"),
        Slot::B => ("kernel2", "rootfs2"),
    }
}

/// The device node of a partition.
pub fn node(dev_dir: &Path, part: &MtdPart) -> PathBuf {
    dev_dir.join(&part.dev)
}

pub fn board(s: &LinksysSettings) -> Result<Board, BoardError> {
    let table = MtdTable::load(&s.proc.join("mtd"))?;
    let s_env_path = node(&s.dev, table.by_name("s_env")?);
    let s_env = crate::flash::mtd::open_mtd(&s_env_path, &s.sysfs)
        .ok_or_else(|| BoardError::Io {
            path: s_env_path.clone(),
            source: std::io::Error::other("s_env is not on raw flash (expected /dev/mtdN)"),
        })?
        .map_err(|source| BoardError::Io {
            path: s_env_path.clone(),
            source,
        })?;
    let slot = |slot: Slot| -> Result<_, BoardError> {
        let kernel = table.by_name(slot_parts(slot).0)?;
        slot_device(slot, &node(&s.dev, kernel), &s.sysfs)
    };
    let rootfs = |slot: Slot| root_target(&table, slot, s);
    let targets = vec![(
        ROOT_TARGET.to_string(),
        [rootfs(Slot::A)?, rootfs(Slot::B)?] as super::SlotPair,
    )];
    Ok(Board::new(
        s.id.clone(),
        Box::new(LinksysDual::new(
            EnvStore::from_fw_env_on(&s.env, &s.sysfs),
            s_env,
        )),
        [slot(Slot::A)?, slot(Slot::B)?],
        Box::new(LinksysPlatform {
            table,
            sysfs: s.sysfs.clone(),
            boot_id: s.proc.join("sys/kernel/random/boot_id"),
            reboot_command: s.reboot_command.clone(),
        }),
    )
    .with_targets(targets))
}

pub use super::linksys_root::{root_target, ROOT_TARGET};

pub struct LinksysPlatform {
    table: MtdTable,
    sysfs: PathBuf,
    boot_id: PathBuf,
    reboot_command: Vec<String>,
}

impl LinksysPlatform {
    /// The slot whose partition carries the UBI device of the root file system.
    pub fn running_slot(table: &MtdTable, sysfs: &Path) -> Result<Slot, BoardError> {
        let path = sysfs.join("class/ubi/ubi0/mtd_num");
        let num = super::read(&path)?;
        let dev = format!("mtd{}", num.trim());
        let part = table.by_dev(&dev).ok_or_else(|| {
            BoardError::RunningSlot(format!(
                "{} says ubi0 is on {dev}, which {} does not list",
                path.display(),
                table.source.display()
            ))
        })?;
        Slot::ALL
            .into_iter()
            .find(|s| {
                let (k, r) = slot_parts(*s);
                part.name == k || part.name == r
            })
            .ok_or_else(|| {
                BoardError::RunningSlot(format!(
                    "the root file system (ubi0) is on {dev} ({:?}), which is neither firmware partition",
                    part.name
                ))
            })
    }
}

impl Platform for LinksysPlatform {
    fn booted_slot(&self) -> Result<Slot, BoardError> {
        Self::running_slot(&self.table, &self.sysfs)
    }

    fn boot_id(&self) -> Result<String, BoardError> {
        Ok(super::read(&self.boot_id)?.trim().to_string())
    }

    fn uptime_ms(&self) -> u64 {
        super::boottime_ms()
    }

    fn reboot(&self) -> Result<(), BoardError> {
        super::run_reboot(&self.reboot_command)
    }
}

/// The dual-firmware layout, for `doctor` and before any write: the partitions this profile
/// uses exist, and each `kernelN` spans its `rootfsN` (the image is written whole to it).
pub fn preflight(s: &LinksysSettings) -> Vec<Finding> {
    const CHECK: &str = "flash layout";
    let table = match MtdTable::load(&s.proc.join("mtd")) {
        Ok(t) => t,
        Err(e) => {
            return vec![Finding::fail(
                CHECK,
                e.to_string(),
                "the linksys profile finds its partitions in /proc/mtd; set [board] proc if procfs is elsewhere".into(),
            )]
        }
    };
    let mut out = Vec::new();
    match table.by_name("s_env") {
        Ok(p) => out.push(Finding::ok(
            CHECK,
            format!("boot counter s_env on {} ({:#x} bytes)", p.dev, p.size),
        )),
        Err(e) => out.push(Finding::fail(
            CHECK,
            e.to_string(),
            "this is not a Linksys dual-firmware flash layout; use the uboot profile".into(),
        )),
    }
    for slot in Slot::ALL {
        let (k, r) = slot_parts(slot);
        out.push(match (table.by_name(k), table.by_name(r)) {
            (Ok(kernel), Ok(rootfs)) if kernel.size > rootfs.size => Finding::ok(
                CHECK,
                format!(
                    "slot {slot}: {k} on {} ({:#x} bytes, spanning {r} on {})",
                    kernel.dev, kernel.size, rootfs.dev
                ),
            ),
            (Ok(kernel), Ok(rootfs)) => Finding::fail(
                CHECK,
                format!(
                    "slot {slot}: {k} ({:#x} bytes) does not span {r} ({:#x} bytes), so a whole image cannot be written to {k}",
                    kernel.size, rootfs.size
                ),
                "this profile needs the stock layout where kernelN covers rootfsN (see the board's device tree)".into(),
            ),
            (Err(e), _) | (_, Err(e)) => Finding::fail(
                CHECK,
                e.to_string(),
                "this is not a Linksys dual-firmware flash layout; use the uboot profile".into(),
            ),
        });
    }
    out
}
