//! Target `rootfs` of a Linksys slot: `rootfsN`, the tail of `kernelN` (the same erase
//! blocks), into which a release's root part is written as a fresh UBI. What could make such
//! a UBI one the firmware's kernel does not attach is checked here, and refuses installs of a
//! root part (not the board: whole images, commits and rollbacks go on):
//! - the sub-page size (sysfs) decides where the headers go; the UBI the running firmware's
//!   kernel attached, or the one in the target, says where that kernel wants them;
//! - where sysfs gives partition offsets, `rootfsN` must start where `kernelN`'s room ends;
//! - no UBI device may be attached to the target's partitions while it is written.

use super::linksys::{node, slot_parts};
use super::mtd_table::MtdTable;
use super::ubi_target::{geometry, reserve, sysfs_number};
use super::BoardError;
use crate::config::LinksysSettings;
use crate::flash::mtd_window::MtdWindow;
use crate::flash::ubi_root::UbiRoot;
use crate::flash::{Mtd, SlotDevice};
use crate::slot::Slot;

/// The target of a release's root part: volume `rootfs` of the UBI on `rootfsN`, written
/// as a fresh UBI (an empty `rootfs_data` beside it), as OpenWrt's sysupgrade leaves a slot.
pub const ROOT_TARGET: &str = "rootfs";

/// The window of `kernelN` that is `rootfsN`, its room before it, and the chip's blocks.
fn window(
    table: &MtdTable,
    slot: Slot,
    s: &LinksysSettings,
) -> Result<(MtdWindow<Box<dyn Mtd>>, u64), BoardError> {
    let (k, r) = slot_parts(slot);
    let (kernel, rootfs) = (table.by_name(k)?, table.by_name(r)?);
    let kernel_node = node(&s.dev, kernel);
    let io = |e: std::io::Error| BoardError::Io {
        path: kernel_node.clone(),
        source: e,
    };
    let mtd = crate::flash::mtd::open_mtd(&kernel_node, &s.sysfs)
        .ok_or_else(|| {
            io(std::io::Error::other(
                "not on raw flash (expected /dev/mtdN)",
            ))
        })?
        .map_err(io)?;
    let at = kernel.size.checked_sub(rootfs.size).filter(|a| *a > 0);
    let at = at.ok_or_else(|| io(std::io::Error::other(format!("{k} does not span {r}"))))?;
    let erase = mtd.info().map_err(io)?.erase_size;
    let mut room = 0;
    for b in (0..at / erase.max(1)).map(|b| b * erase) {
        if !mtd.is_bad(b).map_err(io)? {
            room += erase;
        }
    }
    let w = MtdWindow::new(mtd, at, rootfs.size, node(&s.dev, rootfs)).map_err(io)?;
    Ok((w, room))
}

/// Target `rootfs` of `slot`.
pub fn root_target(
    table: &MtdTable,
    slot: Slot,
    s: &LinksysSettings,
) -> Result<Box<dyn SlotDevice>, BoardError> {
    let (k, r) = slot_parts(slot);
    let (kernel, rootfs) = (table.by_name(k)?, table.by_name(r)?);
    let (win, room) = window(table, slot, s)?;
    let info = win.info().map_err(|source| BoardError::Io {
        path: node(&s.dev, rootfs),
        source,
    })?;
    let mut problems = Vec::new();
    if let (Ok(ko), Ok(ro)) = (
        sysfs_number(&s.sysfs, &kernel.dev, "offset"),
        sysfs_number(&s.sysfs, &rootfs.dev, "offset"),
    ) {
        if ro != ko + (kernel.size - rootfs.size) {
            problems.push(format!(
                "{r} starts at {ro:#x}, not at the end of {k}'s room ({:#x}): it is not the tail of {k}",
                ko + kernel.size - rootfs.size
            ));
        }
    }
    // The UBI of either firmware was attached by a kernel of this board: ours must sit where
    // that one's headers do.
    let windows: Vec<_> = Slot::ALL
        .into_iter()
        .filter_map(|o| Some((slot_parts(o).1, window(table, o, s).ok()?.0)))
        .collect();
    let others: Vec<(&str, &dyn Mtd)> = windows.iter().map(|(n, w)| (*n, w as &dyn Mtd)).collect();
    let subpage = geometry(&s.sysfs, &rootfs.dev, info, &others, &mut problems);
    // The chip's blocks (every partition but the rootfsN inside kernelN), for the kernel's
    // bad-block reserve.
    let chip: u64 = table
        .parts
        .iter()
        .filter(|p| !p.name.starts_with("rootfs"))
        .map(|p| p.size / info.erase_size.max(1))
        .sum();
    let reserve = reserve(chip);
    let dev =
        UbiRoot::new(slot, Box::new(win), subpage, ROOT_TARGET).map_err(|e| BoardError::Io {
            path: node(&s.dev, rootfs),
            source: std::io::Error::other(e.to_string()),
        })?;
    let dev = dev
        .with_boot_room(room)
        .with_reserve(reserve)
        .with_attach_check(
            s.sysfs.join("class/ubi"),
            [&kernel.dev, &rootfs.dev].map(|d| d.trim_start_matches("mtd").to_string()),
        );
    Ok(Box::new(match problems.is_empty() {
        true => dev,
        false => dev.refusing(problems.join("; ")),
    }))
}
