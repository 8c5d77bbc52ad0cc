//! UBI images for the tests: made by the real `ubinize` (mtd-utils), and changed the way a
//! running firmware's UBI changes them (written here byte by byte, independently of fwguard's
//! reader): an erase counter bumped when a block is erased and written again, a logical block
//! moved to another erase block with a higher sequence number, and the volume table rewritten
//! when the kernel grows an `autoresize` volume at the first attach.

use super::tools::tool;
use std::path::Path;

pub const PEB: usize = 0x20000;
pub const PAGE: usize = 2048;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// The kernel's UBI CRC-32 (from 0xffffffff, not inverted at the end).
fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b) ^ 0xffff_ffff
}

/// `ubinize -p 128KiB -m 2048` of a `rootfs` volume holding `root` and an empty
/// `rootfs_data` volume with the autoresize flag, as OpenWrt's NAND images have.
pub fn ubinize_root(dir: &Path, root: &[u8]) -> Vec<u8> {
    let img = dir.join("rootfs.img");
    std::fs::write(&img, root).unwrap();
    let cfg = dir.join("ubinize.cfg");
    std::fs::write(
        &cfg,
        format!(
            "[rootfs]\nmode=ubi\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\nimage={}\n\n[rootfs_data]\nmode=ubi\nvol_id=1\nvol_type=dynamic\nvol_name=rootfs_data\nvol_size=128KiB\nvol_flags=autoresize\n",
            img.display()
        ),
    )
    .unwrap();
    let out = dir.join("root.ubi");
    tool(
        "ubinize",
        &[
            "-o",
            out.to_str().unwrap(),
            "-p",
            "128KiB",
            "-m",
            "2048",
            "-s",
            "2048",
            cfg.to_str().unwrap(),
        ],
    );
    std::fs::read(out).unwrap()
}

/// (vol_id, lnum) of the erase block at `peb` of `area`, if it holds one.
pub fn leb_of(area: &[u8], peb: usize) -> Option<(u32, u32)> {
    let b = &area[peb * PEB..(peb + 1) * PEB];
    if &b[..4] != b"UBI#" {
        return None;
    }
    let vid = &b[be32(b, 16) as usize..];
    (&vid[..4] == b"UBI!").then(|| (be32(vid, 8), be32(vid, 12)))
}

/// Erase block `peb` erased and written again: its erase counter one higher.
pub fn bump_erase_counter(area: &mut [u8], peb: usize) {
    let b = &mut area[peb * PEB..];
    let ec = u64::from_be_bytes(b[8..16].try_into().unwrap()) + 1;
    b[8..16].copy_from_slice(&ec.to_be_bytes());
    let c = crc(&b[..60]);
    put32(b, 60, c);
}

/// What the kernel does on the first attach of an image with an autoresize volume: that
/// volume takes every free erase block of the area (`total_pebs` in all) and loses the flag,
/// in every copy of the volume table (each copy's erase block erased and written again).
pub fn first_attach(area: &mut [u8], total_pebs: usize) {
    let used = (0..area.len() / PEB)
        .filter(|p| leb_of(area, *p).is_some())
        .count();
    for peb in 0..area.len() / PEB {
        if leb_of(area, peb).map(|(v, _)| v) != Some(0x7fff_efff) {
            continue;
        }
        let data = be32(&area[peb * PEB..], 20) as usize;
        let vtbl = &mut area[peb * PEB + data..];
        for r in vtbl.chunks_exact_mut(172).take(128) {
            if be32(r, 0) > 0 && r[144] & 1 == 1 {
                put32(r, 0, (total_pebs - used + be32(r, 0) as usize) as u32);
                r[144] &= !1;
                let c = crc(&r[..168]);
                put32(r, 168, c);
            }
        }
        bump_erase_counter(area, peb);
    }
}

/// Move the logical block in erase block `from` to the erased block `to`, as wear levelling
/// does: a copy with a higher sequence number; `from` is erased.
pub fn move_block(area: &mut [u8], from: usize, to: usize) {
    let mut b = area[from * PEB..(from + 1) * PEB].to_vec();
    let vid_at = be32(&b, 16) as usize;
    let sq = u64::from_be_bytes(b[vid_at + 40..vid_at + 48].try_into().unwrap()) + 1000;
    b[vid_at + 40..vid_at + 48].copy_from_slice(&sq.to_be_bytes());
    b[vid_at + 6] = 1; // copy_flag: then data_size and data_crc say what was copied
    let data_at = be32(&b, 20) as usize;
    let n = PEB - data_at;
    put32(&mut b, vid_at + 20, n as u32);
    let dc = crc(&b[data_at..data_at + n]);
    put32(&mut b, vid_at + 32, dc);
    let c = crc(&b[vid_at..vid_at + 60]);
    put32(&mut b, vid_at + 60, c);
    area[to * PEB..(to + 1) * PEB].copy_from_slice(&b);
    area[from * PEB..(from + 1) * PEB].fill(0xff);
}

/// The content of volume `name` in `area`, as the kernel's UBI would serve it (its logical
/// blocks in order, the newest copy of each), or None when the area holds no such volume.
/// Like the kernel, it refuses to attach an area whose erase blocks belong to different
/// images (another image sequence number or header offsets: a UBI half written over another),
/// or whose headers are not where this flash's geometry puts them.
pub fn volume(area: &[u8], name: &str) -> Option<Vec<u8>> {
    let pebs = area.len() / PEB;
    // (vol_id, lnum) -> (sqnum, peb)
    let mut map = std::collections::BTreeMap::new();
    let mut image = None;
    for peb in 0..pebs {
        let b = &area[peb * PEB..(peb + 1) * PEB];
        if &b[..4] != b"UBI#" || crc(&b[..60]) != be32(b, 60) {
            continue;
        }
        let this = (be32(b, 16), be32(b, 20), be32(b, 24));
        // The emulated NAND has 2 KiB pages and no sub-pages: its kernel wants the volume
        // header at 2 KiB and the data at 4 KiB ("bad VID header offset" otherwise).
        if (this.0, this.1) != (PAGE as u32, 2 * PAGE as u32) || *image.get_or_insert(this) != this
        {
            return None;
        }
        let vid = &b[be32(b, 16) as usize..];
        if &vid[..4] != b"UBI!" || crc(&vid[..60]) != be32(vid, 60) {
            continue;
        }
        let sq = u64::from_be_bytes(vid[40..48].try_into().unwrap());
        let key = (be32(vid, 8), be32(vid, 12));
        let e = map.entry(key).or_insert((sq, peb));
        if sq > e.0 {
            *e = (sq, peb);
        }
    }
    let data_at = |peb: usize| peb * PEB + be32(&area[peb * PEB..], 20) as usize;
    let (_, layout) = map.get(&(0x7fff_efff, 0))?;
    let vtbl = &area[data_at(*layout)..(*layout + 1) * PEB];
    let id = vtbl.chunks_exact(172).take(128).position(|r| {
        let len = u16::from_be_bytes([r[14], r[15]]) as usize;
        be32(r, 0) > 0 && &r[16..16 + len.min(127)] == name.as_bytes()
    })? as u32;
    let mut out = Vec::new();
    for ((v, _), (_, peb)) in map.range((id, 0)..=(id, u32::MAX)) {
        debug_assert_eq!(*v, id);
        out.extend_from_slice(&area[data_at(*peb)..(*peb + 1) * PEB]);
    }
    Some(out)
}

/// Whether `area` has a volume with the autoresize flag (a first attach clears it).
pub fn has_autoresize(area: &[u8]) -> bool {
    (0..area.len() / PEB).any(|peb| {
        leb_of(area, peb).map(|(v, _)| v) == Some(0x7fff_efff) && {
            let data = be32(&area[peb * PEB..], 20) as usize;
            area[peb * PEB + data..]
                .chunks_exact(172)
                .take(128)
                .any(|r| be32(r, 0) > 0 && r[144] & 1 == 1)
        }
    })
}
