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
use super::BoardError;
use crate::config::LinksysSettings;
use crate::flash::mtd_window::MtdWindow;
use crate::flash::ubi_image::{be32, ubi_crc, EC_MAGIC, HDR};
use crate::flash::ubi_root::UbiRoot;
use crate::flash::ubi_write::Geometry;
use crate::flash::{Mtd, SlotDevice};
use crate::slot::Slot;

/// The target of a release's root part: volume `rootfs` of the UBI on `rootfsN`, written
/// as a fresh UBI (an empty `rootfs_data` beside it), as OpenWrt's sysupgrade leaves a slot.
pub const ROOT_TARGET: &str = "rootfs";

/// Blocks UBIFS needs at least (`UBIFS_MIN_LEB_CNT`): the room kept for `rootfs_data`.
const UBIFS_MIN_LEBS: u64 = 17;
/// The kernel's default bad-block reserve: 20 per 1024 blocks of the whole chip.
const BEB_PER_1024: u64 = 20;

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

/// A number in sysfs `class/mtd/DEV/FIELD`.
fn sysfs_number(s: &LinksysSettings, dev: &str, field: &str) -> Result<u64, String> {
    let p = s.sysfs.join("class/mtd").join(dev).join(field);
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    crate::boot::fw_env::number(text.trim())
        .ok_or_else(|| format!("{}: not a number: {:?}", p.display(), text.trim()))
}

/// Where the first UBI header found in the first blocks of `mtd` puts the volume header and
/// the data, if it holds a UBI.
fn header_offsets(mtd: &dyn Mtd) -> Option<(u64, u64)> {
    let info = mtd.info().ok()?;
    (0..info.size / info.erase_size).take(8).find_map(|b| {
        let mut h = [0u8; HDR];
        mtd.read(b * info.erase_size, &mut h).ok()?;
        (&h[..4] == EC_MAGIC && ubi_crc(&h[..60]) == be32(&h, 60))
            .then(|| (be32(&h, 16) as u64, be32(&h, 20) as u64))
    })
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
    let subpage = sysfs_number(s, &rootfs.dev, "subpagesize").unwrap_or_else(|e| {
        problems.push(format!(
            "the sub-page size, which decides where UBI puts its headers, is unknown ({e})"
        ));
        info.write_size
    });
    if let (Ok(ko), Ok(ro)) = (
        sysfs_number(s, &kernel.dev, "offset"),
        sysfs_number(s, &rootfs.dev, "offset"),
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
    if let Ok(g) = Geometry::new(info, subpage) {
        for other in Slot::ALL {
            let Ok((w, _)) = window(table, other, s) else {
                continue;
            };
            if let Some((vid, data)) = header_offsets(&w).filter(|o| *o != (g.vid_at, g.data_at)) {
                problems.push(format!(
                    "the UBI on {} has its headers at {vid:#x} and data at {data:#x}, but a sub-page of {subpage:#x} puts them at {:#x} and {:#x}",
                    slot_parts(other).1,
                    g.vid_at,
                    g.data_at
                ));
            }
        }
    }
    // The chip's blocks (every partition but the rootfsN inside kernelN), for the kernel's
    // bad-block reserve.
    let chip: u64 = table
        .parts
        .iter()
        .filter(|p| !p.name.starts_with("rootfs"))
        .map(|p| p.size / info.erase_size.max(1))
        .sum();
    let reserve = (chip * BEB_PER_1024).div_ceil(1024) + UBIFS_MIN_LEBS;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_read_from_the_first_ubi_header() {
        let d = tempfile::tempdir().unwrap();
        let info = crate::flash::MtdInfo {
            size: 4 * 0x20000,
            erase_size: 0x20000,
            write_size: 2048,
        };
        let m = crate::flash::mtd_image::MtdImage::create(&d.path().join("mtd6"), info).unwrap();
        assert_eq!(header_offsets(&m), None);
        let mut h = [0u8; 2048];
        h[..4].copy_from_slice(EC_MAGIC);
        h[16..20].copy_from_slice(&512u32.to_be_bytes());
        h[20..24].copy_from_slice(&2048u32.to_be_bytes());
        let crc = ubi_crc(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_be_bytes());
        m.program(0x40000, &h).unwrap();
        assert_eq!(header_offsets(&m), Some((512, 2048)));
    }
}
