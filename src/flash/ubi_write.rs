//! A fresh UBI written onto raw flash, as `ubiformat --flash-image` writes what `ubinize`
//! makes of a root file system: the two copies of the volume table, then the root volume's
//! logical blocks in order, then an erase counter header on every other good block; an
//! empty `rootfs_data` volume with the autoresize flag takes the free blocks at the kernel's
//! first attach, as in OpenWrt's NAND images. Every block keeps its erase count plus one
//! (the mean count where a block had none), as ubiformat keeps them for wear levelling.
//! The blocks are ubinize's own bytes (a test compares them), so the firmware's kernel
//! attaches the UBI as it attaches a factory image; no UBI is attached for it here.
//!
//! Power cuts: the old UBI's volume tables are erased first, and the new table is written
//! last, once every other block is in place and the stream matched the signed index. Until
//! then the partition holds no volume table: neither the kernel nor fwguard reads it as a
//! UBI (and the slot's kernel, written after it, is not bootable yet either).

use super::mtd::{Mtd, MtdInfo};
use super::ubi_image::{be32, be64, ubi_crc, EC_MAGIC, HDR, LAYOUT_VOL, MAX_VOLUMES};
use super::ubi_image::{VID_MAGIC, VTBL_RECORD};
use super::{FlashError, SlotSink};
use crate::slot::Slot;

/// Blocks needed besides the root volume's: the volume table's two copies, the one block
/// of the empty `rootfs_data`, and the two the kernel keeps for itself (atomic block
/// changes and wear levelling).
pub const OVERHEAD_PEBS: u64 = 5;
/// The data volume made fresh beside the root.
pub const DATA_VOLUME: &str = "rootfs_data";

/// Where UBI puts its headers and data in an erase block of this flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub peb: u64,
    pub page: u64,
    pub vid_at: u64,
    pub data_at: u64,
}

impl Geometry {
    /// As the kernel lays them out: the erase counter header in the first sub-page, the
    /// volume header in the next (`subpage`: the flash's sub-page size, its page where it
    /// has none), the data from the page after that.
    pub fn new(info: MtdInfo, subpage: u64) -> Result<Geometry, String> {
        let (peb, page) = (info.erase_size, info.write_size);
        let plausible = page.is_power_of_two()
            && subpage.is_power_of_two()
            && subpage <= page
            && peb.is_power_of_two()
            && peb >= 8 * page;
        if !plausible {
            return Err(format!(
                "erase block {peb:#x}, page {page:#x}, sub-page {subpage:#x}: not a NAND geometry UBI can use"
            ));
        }
        let vid_at = (HDR as u64).div_ceil(subpage) * subpage;
        Ok(Geometry {
            peb,
            page,
            vid_at,
            data_at: (vid_at + HDR as u64).div_ceil(page) * page,
        })
    }

    /// Bytes of data a logical block holds.
    pub fn leb(&self) -> u64 {
        self.peb - self.data_at
    }
}

fn seal(h: &mut [u8]) {
    let at = h.len() - 4;
    let crc = ubi_crc(&h[..at]);
    h[at..].copy_from_slice(&crc.to_be_bytes());
}

fn ec_header(g: &Geometry, ec: u64, image_seq: u32) -> [u8; HDR] {
    let mut h = [0u8; HDR];
    h[..4].copy_from_slice(EC_MAGIC);
    h[4] = 1;
    h[8..16].copy_from_slice(&ec.to_be_bytes());
    h[16..20].copy_from_slice(&(g.vid_at as u32).to_be_bytes());
    h[20..24].copy_from_slice(&(g.data_at as u32).to_be_bytes());
    h[24..28].copy_from_slice(&image_seq.to_be_bytes());
    seal(&mut h);
    h
}

/// A dynamic volume's block header (`compat` 5, "reject", for the layout volume).
fn vid_header(vol_id: u32, lnum: u32, compat: u8) -> [u8; HDR] {
    let mut h = [0u8; HDR];
    h[..4].copy_from_slice(VID_MAGIC);
    h[4] = 1;
    h[5] = 1;
    h[7] = compat;
    h[8..12].copy_from_slice(&vol_id.to_be_bytes());
    h[12..16].copy_from_slice(&lnum.to_be_bytes());
    seal(&mut h);
    h
}

/// The volume table: `vols` (blocks reserved, name, autoresize) as volumes 0, 1, …, the
/// other records empty; as many records as a block holds, 128 at most.
pub fn volume_table(g: &Geometry, vols: &[(u64, &str, bool)]) -> Vec<u8> {
    let slots = (g.leb() as usize / VTBL_RECORD).min(MAX_VOLUMES);
    let mut t = vec![0u8; slots * VTBL_RECORD];
    for (i, r) in t.chunks_exact_mut(VTBL_RECORD).enumerate() {
        if let Some(&(reserved, name, autoresize)) = vols.get(i) {
            r[..4].copy_from_slice(&(reserved as u32).to_be_bytes());
            r[4..8].copy_from_slice(&1u32.to_be_bytes()); // alignment
            r[12] = 1; // dynamic
            r[14..16].copy_from_slice(&(name.len() as u16).to_be_bytes());
            r[16..16 + name.len()].copy_from_slice(name.as_bytes());
            r[144] = u8::from(autoresize);
        }
        seal(r);
    }
    t
}

/// Writes a fresh UBI holding volume `volume` (the stream) and an empty [`DATA_VOLUME`]
/// onto the good blocks of `mtd`. Sequential: the stream arrives in order from offset 0.
pub struct FreshUbi<'a> {
    slot: Slot,
    mtd: &'a dyn Mtd,
    g: Geometry,
    volume: &'a str,
    image_seq: u32,
    good: Vec<u64>,
    /// The erase count each good block gets when it is written.
    ec: Vec<u64>,
    /// Logical blocks of the volume, from `invalidate`.
    lebs: u64,
    buf: Vec<u8>,
    next: u64,
    lnum: u64,
}

impl<'a> FreshUbi<'a> {
    pub fn new(
        slot: Slot,
        mtd: &'a dyn Mtd,
        g: Geometry,
        volume: &'a str,
        image_seq: u32,
    ) -> Result<Self, FlashError> {
        let mut s = FreshUbi {
            slot,
            mtd,
            g,
            volume,
            image_seq,
            good: Vec::new(),
            ec: Vec::new(),
            lebs: 0,
            buf: Vec::new(),
            next: 0,
            lnum: 0,
        };
        let info = mtd.info().map_err(|e| s.io("MEMGETINFO", e))?;
        for off in (0..info.size / g.peb).map(|b| b * g.peb) {
            if !mtd.is_bad(off).map_err(|e| s.io("MEMGETBADBLOCK", e))? {
                s.good.push(off);
            }
        }
        Ok(s)
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> FlashError {
        FlashError::Io {
            slot: self.slot,
            device: self.mtd.describe(),
            op,
            source,
        }
    }

    /// Erase good block `i` and program `block` (trailing erased pages left unwritten, as
    /// ubiformat leaves them), then read it back.
    fn put(&self, i: usize, block: &[u8], erase: bool) -> Result<(), FlashError> {
        let at = self.good[i];
        if erase {
            self.mtd.erase(at).map_err(|e| self.io("MEMERASE", e))?;
        }
        let used = block.iter().rposition(|&b| b != 0xff).map_or(0, |p| p + 1);
        let len = (used as u64).div_ceil(self.g.page).max(1) * self.g.page;
        let data = &block[..len as usize];
        self.mtd
            .program(at, data)
            .map_err(|e| self.io("write", e))?;
        let mut back = vec![0u8; data.len()];
        self.mtd
            .read(at, &mut back)
            .map_err(|e| self.io("read back", e))?;
        if back != data {
            return Err(FlashError::Verify {
                slot: self.slot,
                what: format!(
                    "erase block at {at:#x} of {} did not read back as written",
                    self.mtd.describe()
                ),
            });
        }
        Ok(())
    }

    /// Good block `i` with its headers and `data`.
    fn block(&self, i: usize, vid: Option<[u8; HDR]>, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0xffu8; self.g.peb as usize];
        b[..HDR].copy_from_slice(&ec_header(&self.g, self.ec[i], self.image_seq));
        if let Some(vid) = vid {
            let at = self.g.vid_at as usize;
            b[at..at + HDR].copy_from_slice(&vid);
            let at = self.g.data_at as usize;
            b[at..at + data.len()].copy_from_slice(data);
        }
        b
    }

    fn write_leb(&mut self, data: &[u8]) -> Result<(), FlashError> {
        let i = 2 + self.lnum as usize;
        let block = self.block(i, Some(vid_header(0, self.lnum as u32, 0)), data);
        self.put(i, &block, true)?;
        self.lnum += 1;
        Ok(())
    }

    /// The erase counts of the good blocks as the old UBI has them, and which blocks hold
    /// its volume table; refuses a UBI whose headers sit elsewhere than this flash's
    /// geometry puts them (made for another sub-page size: the kernel would not attach ours).
    fn survey(&self) -> Result<(Vec<Option<u64>>, Vec<usize>), FlashError> {
        let mut counts = Vec::with_capacity(self.good.len());
        let mut tables = Vec::new();
        let mut h = vec![0u8; (self.g.vid_at as usize) + HDR];
        for (i, &at) in self.good.iter().enumerate() {
            self.mtd.read(at, &mut h).map_err(|e| self.io("read", e))?;
            if &h[..4] != EC_MAGIC || ubi_crc(&h[..60]) != be32(&h, 60) {
                counts.push(None);
                continue;
            }
            let (vid_at, data_at) = (be32(&h, 16) as u64, be32(&h, 20) as u64);
            if (vid_at, data_at) != (self.g.vid_at, self.g.data_at) {
                return Err(FlashError::Verify {
                    slot: self.slot,
                    what: format!(
                        "the UBI on {} has its headers at {vid_at:#x} and data at {data_at:#x}, but this flash's geometry puts them at {:#x} and {:#x}; not writing a UBI the kernel may not attach",
                        self.mtd.describe(),
                        self.g.vid_at,
                        self.g.data_at
                    ),
                });
            }
            // A count past UBI's maximum is damage: unknown, as ubiformat takes it.
            counts.push(Some(be64(&h, 8)).filter(|c| *c <= 0x7fff_ffff));
            let vid = &h[vid_at as usize..];
            if &vid[..4] == VID_MAGIC
                && ubi_crc(&vid[..60]) == be32(vid, 60)
                && be32(vid, 8) == LAYOUT_VOL
            {
                tables.push(i);
            }
        }
        Ok((counts, tables))
    }
}

impl SlotSink for FreshUbi<'_> {
    fn invalidate(&mut self, head_len: usize, size: u64) -> Result<(), FlashError> {
        debug_assert_eq!(head_len, 0, "a UBI is written in order");
        self.lebs = size.div_ceil(self.g.leb());
        let room = (self.good.len() as u64).saturating_sub(OVERHEAD_PEBS);
        if self.lebs > room {
            return Err(FlashError::TooSmall {
                slot: self.slot,
                device: self.mtd.describe(),
                capacity: room * self.g.leb(),
                needed: size,
            });
        }
        let (counts, tables) = self.survey()?;
        let known: Vec<u64> = counts.iter().flatten().copied().collect();
        let mean = known.iter().sum::<u64>() / (known.len().max(1) as u64);
        self.ec = counts
            .iter()
            .map(|c| c.map_or(mean, |c| c + 1).min(0x7fff_ffff))
            .collect();
        // The old volume tables go first; the new table's two blocks stay erased until the end.
        for i in tables.into_iter().chain([0, 1]) {
            let at = self.good[i];
            self.mtd.erase(at).map_err(|e| self.io("MEMERASE", e))?;
        }
        self.next = 0;
        self.lnum = 0;
        Ok(())
    }

    fn sequential(&self) -> bool {
        true
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), FlashError> {
        if offset != self.next || offset + bytes.len() as u64 > self.lebs * self.g.leb() {
            return Err(self.io(
                "write",
                std::io::Error::other(format!(
                    "a UBI volume is written in order and within its size: offset {offset:#x}, expected {:#x}",
                    self.next
                )),
            ));
        }
        self.next += bytes.len() as u64;
        let leb = self.g.leb() as usize;
        let mut bytes = bytes;
        while !bytes.is_empty() {
            let n = (leb - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == leb {
                let data = std::mem::take(&mut self.buf);
                self.write_leb(&data)?;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        Ok(()) // every block is programmed as it fills; the last one waits for `finish`
    }

    fn finish(&mut self, _head: &[u8]) -> Result<(), FlashError> {
        if !self.buf.is_empty() {
            let data = std::mem::take(&mut self.buf);
            self.write_leb(&data)?;
        }
        if self.lnum != self.lebs {
            return Err(FlashError::Verify {
                slot: self.slot,
                what: format!(
                    "UBI volume {:?}: {} of its {} blocks were written",
                    self.volume, self.lnum, self.lebs
                ),
            });
        }
        for i in 2 + self.lebs as usize..self.good.len() {
            self.put(i, &self.block(i, None, &[]), true)?;
        }
        let table = volume_table(
            &self.g,
            &[(self.lebs, self.volume, false), (1, DATA_VOLUME, true)],
        );
        for copy in 0..2 {
            let block = self.block(copy, Some(vid_header(LAYOUT_VOL, copy as u32, 5)), &table);
            self.put(copy, &block, false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "ubi_write_tests.rs"]
mod tests;
