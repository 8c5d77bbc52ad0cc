//! A target that is the root volume of a fresh UBI on a raw flash partition, as OpenWrt lays
//! out a NAND board's firmware: `[board.targets.NAME] ubi_volume = "rootfs"` on the uboot,
//! grub and script profiles (the Linksys profile builds its own, `linksys_root.rs`, from the
//! tail of `kernelN`). What could make the UBI one the firmware's kernel does not attach
//! refuses installs of a root part (not the board: whole images, commits and rollbacks go on):
//! - the sub-page size (sysfs) decides where the headers go, and a UBI already on either
//!   slot's partition, attached by this board's kernel, says where that kernel wants them;
//! - no UBI device may be attached to the target partition while it is written (the running
//!   firmware's own UBI, on its own partition, may be).
//!
//! Room is kept for the kernel's bad-block reserve (20 per 1024 blocks of the chip, the
//! chip's size from `/proc/mtd` where it can be read) and for UBIFS in `rootfs_data`.

use super::mtd_table::MtdTable;
use super::BoardError;
use crate::config::targets::TargetPaths;
use crate::flash::ubi_image::{be32, ubi_crc, EC_MAGIC, HDR};
use crate::flash::ubi_root::UbiRoot;
use crate::flash::ubi_write::Geometry;
use crate::flash::{Mtd, MtdInfo, SlotDevice};
use crate::slot::Slot;
use std::path::Path;

/// Blocks UBIFS needs at least (`UBIFS_MIN_LEB_CNT`): the room kept for `rootfs_data`.
pub const UBIFS_MIN_LEBS: u64 = 17;
/// The kernel's default bad-block reserve: 20 per 1024 blocks of the whole chip.
pub const BEB_PER_1024: u64 = 20;

/// The blocks kept free in a UBI on a chip of `chip_blocks` erase blocks.
pub fn reserve(chip_blocks: u64) -> u64 {
    (chip_blocks * BEB_PER_1024).div_ceil(1024) + UBIFS_MIN_LEBS
}

/// A number in sysfs `class/mtd/DEV/FIELD`.
pub fn sysfs_number(sysfs: &Path, dev: &str, field: &str) -> Result<u64, String> {
    let p = sysfs.join("class/mtd").join(dev).join(field);
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    crate::boot::fw_env::number(text.trim())
        .ok_or_else(|| format!("{}: not a number: {:?}", p.display(), text.trim()))
}

/// Where the first UBI header found in the first blocks of `mtd` puts the volume header and
/// the data, if it holds a UBI.
pub fn header_offsets(mtd: &dyn Mtd) -> Option<(u64, u64)> {
    let info = mtd.info().ok()?;
    (0..info.size / info.erase_size).take(8).find_map(|b| {
        let mut h = [0u8; HDR];
        mtd.read(b * info.erase_size, &mut h).ok()?;
        (&h[..4] == EC_MAGIC && ubi_crc(&h[..60]) == be32(&h, 60))
            .then(|| (be32(&h, 16) as u64, be32(&h, 20) as u64))
    })
}

/// The sub-page size of MTD `dev` and the geometry it gives, with what is wrong with them
/// against the UBIs already on `others` (named), added to `problems`.
pub fn geometry(
    sysfs: &Path,
    dev: &str,
    info: MtdInfo,
    others: &[(&str, &dyn Mtd)],
    problems: &mut Vec<String>,
) -> u64 {
    let subpage = sysfs_number(sysfs, dev, "subpagesize").unwrap_or_else(|e| {
        problems.push(format!(
            "the sub-page size, which decides where UBI puts its headers, is unknown ({e})"
        ));
        info.write_size
    });
    if let Ok(g) = Geometry::new(info, subpage) {
        for (name, mtd) in others {
            if let Some((vid, data)) = header_offsets(*mtd).filter(|o| *o != (g.vid_at, g.data_at))
            {
                problems.push(format!(
                    "the UBI on {name} has its headers at {vid:#x} and data at {data:#x}, but a sub-page of {subpage:#x} puts them at {:#x} and {:#x}",
                    g.vid_at, g.data_at
                ));
            }
        }
    }
    subpage
}

/// Target `t` of `slot`, whose part is volume `volume` of a fresh UBI on its partition.
pub fn fresh_ubi_target(
    slot: Slot,
    t: &TargetPaths,
    volume: &str,
    sysfs: &Path,
    proc: &Path,
) -> Result<Box<dyn SlotDevice>, BoardError> {
    let path = |s: Slot| match s {
        Slot::A => &t.slot_a,
        Slot::B => &t.slot_b,
    };
    let open = |s: Slot| -> Result<(Box<dyn Mtd>, String), BoardError> {
        let p = path(s);
        let io = |e: std::io::Error| BoardError::Io {
            path: p.clone(),
            source: e,
        };
        let name = crate::flash::mtd::mtd_name(p).filter(|_| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mtdblock"))
        });
        let not_raw = || {
            io(std::io::Error::other(format!(
                "board.targets.{}: ubi_volume needs the partition on raw flash (/dev/mtdN), which a UBI is written onto",
                t.name
            )))
        };
        let name = name.ok_or_else(not_raw)?;
        let mtd = crate::flash::mtd::open_mtd(p, sysfs).ok_or_else(not_raw)?;
        Ok((mtd.map_err(io)?, name))
    };
    let (mtd, dev) = open(slot)?;
    let (other, _) = open(!slot)?;
    let io = |e: std::io::Error| BoardError::Io {
        path: path(slot).clone(),
        source: e,
    };
    let info = mtd.info().map_err(io)?;
    let mut problems = Vec::new();
    let names = [
        path(slot).display().to_string(),
        path(!slot).display().to_string(),
    ];
    let others: [(&str, &dyn Mtd); 2] = [(&names[0], &*mtd), (&names[1], &*other)];
    let subpage = geometry(sysfs, &dev, info, &others, &mut problems);
    let erase = info.erase_size.max(1);
    let chip = match MtdTable::load(&proc.join("mtd")) {
        Ok(table) => table
            .parts
            .iter()
            .filter(|p| p.erase_size == info.erase_size)
            .map(|p| p.size / erase)
            .sum(),
        Err(_) => (info.size + other.info().map_err(io)?.size) / erase,
    };
    let dev_num = |d: &str| d.trim_start_matches("mtd").to_string();
    let root = UbiRoot::new(slot, mtd, subpage, volume)
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let root = root
        .with_reserve(reserve(chip))
        .with_attach_check(sysfs.join("class/ubi"), [dev_num(&dev), dev_num(&dev)]);
    Ok(Box::new(match problems.is_empty() {
        true => root,
        false => root.refusing(problems.join("; ")),
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
