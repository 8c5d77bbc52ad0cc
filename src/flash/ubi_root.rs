//! A target that is the root volume of a UBI on raw flash which the running firmware has not
//! attached: the other slot's `rootfsN` on a Linksys board. Installing a root into it writes
//! a fresh UBI (`ubi_write`: the root as volume `rootfs`, an empty `rootfs_data`, as
//! OpenWrt's sysupgrade leaves that slot); reading it reads the volume's content out of the
//! raw flash (`ubi_image`), so a slot still verifies after its firmware ran and its UBI
//! rewrote its own headers.

use super::mtd::Mtd;
use super::mtd_slot::MtdSlot;
use super::ubi_image::{be32, be64, UbiArea, VolumeMap, HDR};
use super::ubi_write::{FreshUbi, Geometry, OVERHEAD_PEBS};
use super::{FlashError, SlotDevice, SlotSink};
use crate::slot::Slot;
use std::io::{self, Read};

pub struct UbiRoot {
    raw: MtdSlot<Box<dyn Mtd>>,
    g: Geometry,
    volume: String,
    boot_room: Option<u64>,
}

impl UbiRoot {
    /// Volume `volume` of the UBI on `mtd`, whose sub-page size is `subpage`.
    pub fn new(
        slot: Slot,
        mtd: Box<dyn Mtd>,
        subpage: u64,
        volume: &str,
    ) -> Result<Self, FlashError> {
        let info = mtd.info().map_err(|source| FlashError::Io {
            slot,
            device: mtd.describe(),
            op: "MEMGETINFO",
            source,
        })?;
        let g = Geometry::new(info, subpage).map_err(|what| FlashError::Verify {
            slot,
            what: format!("{}: {what}", mtd.describe()),
        })?;
        Ok(UbiRoot {
            raw: MtdSlot::new(slot, mtd),
            g,
            volume: volume.to_string(),
            boot_room: None,
        })
    }

    /// The partition is the tail of the slot's boot device from `room` (bytes of good
    /// blocks before it).
    pub fn with_boot_room(mut self, room: u64) -> Self {
        self.boot_room = Some(room);
        self
    }

    fn area(&self) -> UbiArea<'_> {
        UbiArea {
            dev: &self.raw,
            offset: 0,
            peb_size: self.g.peb,
        }
    }
}

impl SlotDevice for UbiRoot {
    fn slot(&self) -> Slot {
        self.raw.slot()
    }

    fn describe(&self) -> String {
        format!(
            "UBI volume {:?} on {}",
            self.volume,
            self.raw.mtd().describe()
        )
    }

    fn device_path(&self) -> &std::path::Path {
        self.raw.mtd().path()
    }

    /// The root volume's room: the good blocks less the UBI's own.
    fn capacity(&self) -> Result<u64, FlashError> {
        let pebs = self.raw.capacity()? / self.g.peb;
        Ok(pebs.saturating_sub(OVERHEAD_PEBS) * self.g.leb())
    }

    fn reader(&self) -> Result<Box<dyn Read + Send + '_>, FlashError> {
        let map = self.area().volume_map(&self.volume)?;
        Ok(Box::new(VolumeReader {
            mtd: self.raw.mtd().as_ref(),
            good: self.raw.good_blocks()?,
            end: map.reserved * map.leb_size,
            map,
            pos: 0,
            checked: None,
        }))
    }

    fn open_sink(&self) -> Result<Box<dyn SlotSink + '_>, FlashError> {
        let mut seq = [0u8; 4];
        getrandom::getrandom(&mut seq).map_err(|e| FlashError::Io {
            slot: self.slot(),
            device: self.describe(),
            op: "getrandom",
            source: io::Error::other(e.to_string()),
        })?;
        Ok(Box::new(FreshUbi::new(
            self.slot(),
            self.raw.mtd().as_ref(),
            self.g,
            &self.volume,
            u32::from_be_bytes(seq) | 1,
        )?))
    }

    fn always_written(&self) -> bool {
        true
    }

    fn boot_room(&self) -> Option<u64> {
        self.boot_room
    }
}

/// A volume's content, block by block from wherever the UBI keeps it; a block no erase
/// block holds reads as erased flash (0xff), as UBI reads it.
struct VolumeReader<'a> {
    mtd: &'a dyn Mtd,
    good: Vec<u64>,
    map: VolumeMap,
    pos: u64,
    end: u64,
    /// The logical block whose erase block was last checked to still hold it.
    checked: Option<u32>,
}

impl VolumeReader<'_> {
    /// Where block `lnum`'s data is, once its erase block is seen to still hold it (the
    /// running firmware's UBI may have moved it since the map was made).
    fn locate(&mut self, lnum: u32) -> io::Result<Option<(u64, u64)>> {
        let Some(leb) = self.map.lebs.get(&lnum).copied() else {
            return Ok(None);
        };
        let at = *self.good.get(leb.peb as usize).ok_or_else(|| {
            io::Error::other(format!("block {lnum} maps past the good erase blocks"))
        })?;
        if self.checked != Some(lnum) {
            let mut ec = [0u8; HDR];
            self.mtd.read(at, &mut ec)?;
            let mut vid = [0u8; HDR];
            self.mtd.read(at + be32(&ec, 16) as u64, &mut vid)?;
            if be32(&vid, 8) != self.map.id || be32(&vid, 12) != lnum || be64(&vid, 40) != leb.sqnum
            {
                return Err(io::Error::other(format!(
                    "UBI block {lnum} moved while it was read (the UBI is in use)"
                )));
            }
            self.checked = Some(lnum);
        }
        Ok(Some((at + self.map.data_offset, leb.data_size as u64)))
    }
}

impl Read for VolumeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end || buf.is_empty() {
            return Ok(0);
        }
        let leb = self.map.leb_size;
        let (lnum, within) = (self.pos / leb, self.pos % leb);
        let n = (buf.len() as u64)
            .min(leb - within)
            .min(self.end - self.pos) as usize;
        let buf = &mut buf[..n];
        buf.fill(0xff);
        if let Some((at, data)) = self.locate(lnum as u32)? {
            let have = data.saturating_sub(within).min(n as u64) as usize;
            self.mtd.read(at + within, &mut buf[..have])?;
        }
        self.pos += n as u64;
        Ok(n)
    }
}
