//! A target that is the root volume of a UBI on raw flash which the running firmware has not
//! attached: the other slot's `rootfsN` on a Linksys board. Installing a root into it writes
//! a fresh UBI (`ubi_write`: the root as volume `rootfs`, an empty `rootfs_data`, as
//! OpenWrt's sysupgrade leaves that slot); reading it reads the volume's content out of the
//! raw flash (`ubi_image`), so a slot still verifies after its firmware ran and its UBI
//! rewrote its own headers.

use super::mtd::Mtd;
use super::mtd_slot::MtdSlot;
use super::ubi_image::{be32, be64, ubi_crc, UbiArea, VolumeMap, EC_MAGIC, HDR, VID_MAGIC};
use super::ubi_write::{FreshUbi, Geometry, OVERHEAD_PEBS};
use super::{FlashError, SlotDevice, SlotSink};
use crate::slot::Slot;
use std::io::{self, Read};

pub struct UbiRoot {
    raw: MtdSlot<Box<dyn Mtd>>,
    g: Geometry,
    volume: String,
    boot_room: Option<u64>,
    /// Blocks kept beyond the UBI's own: the kernel's bad-block reserve, room for the data
    /// volume's file system.
    reserve: u64,
    /// Why nothing may be installed into it (the firmware's kernel may not attach it).
    refuse: Option<String>,
    /// sysfs `class/ubi`, and the MTD numbers no attached UBI device may be on while it is
    /// written.
    attach_check: Option<(std::path::PathBuf, Vec<String>)>,
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
            reserve: 0,
            refuse: None,
            attach_check: None,
        })
    }

    /// Keep `pebs` erase blocks more free (the kernel's bad-block reserve, the data volume).
    pub fn with_reserve(mut self, pebs: u64) -> Self {
        self.reserve = pebs;
        self
    }

    /// Refuse every install into it, saying `why`.
    pub fn refusing(mut self, why: String) -> Self {
        self.refuse = Some(why);
        self
    }

    /// Refuse to write while a UBI device under sysfs `class_ubi` is attached to MTD
    /// partition number `mtds` (ubiformat refuses the same).
    pub fn with_attach_check(mut self, class_ubi: std::path::PathBuf, mtds: [String; 2]) -> Self {
        self.attach_check = Some((class_ubi, mtds.to_vec()));
        self
    }

    /// Nothing may be written now: the reason.
    fn busy(&self) -> Option<String> {
        if let Some(why) = &self.refuse {
            return Some(why.clone());
        }
        let (dir, mtds) = self.attach_check.as_ref()?;
        let entries = std::fs::read_dir(dir).ok()?;
        entries.flatten().find_map(|e| {
            let num = std::fs::read_to_string(e.path().join("mtd_num")).ok()?;
            mtds.contains(&num.trim().to_string()).then(|| {
                format!(
                    "UBI device {} is attached to mtd{}; detach it (ubidetach) first",
                    e.file_name().to_string_lossy(),
                    num.trim()
                )
            })
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

    /// The root volume's room: the good blocks less the UBI's own and those kept free.
    fn capacity(&self) -> Result<u64, FlashError> {
        let pebs = self.raw.capacity()? / self.g.peb;
        Ok(pebs.saturating_sub(OVERHEAD_PEBS + self.reserve) * self.g.leb())
    }

    fn reader(&self) -> Result<Box<dyn Read + Send + '_>, FlashError> {
        let map = self.area().volume_map(&self.volume)?;
        Ok(Box::new(VolumeReader {
            root: self,
            good: self.raw.good_blocks()?,
            end: map.reserved * map.leb_size,
            map,
            pos: 0,
        }))
    }

    fn open_sink(&self) -> Result<Box<dyn SlotSink + '_>, FlashError> {
        if let Some(why) = self.busy() {
            return Err(FlashError::Verify {
                slot: self.slot(),
                what: format!("not writing {}: {why}", self.describe()),
            });
        }
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

    fn write_refused(&self) -> Option<String> {
        self.busy()
    }
}

/// A volume's content, block by block from wherever the UBI keeps it; a block no erase
/// block holds reads as erased flash (0xff), as UBI reads it. A block that the UBI in use
/// (the running firmware's) moved meanwhile is found again by a new map of the volume.
struct VolumeReader<'a> {
    root: &'a UbiRoot,
    good: Vec<u64>,
    map: VolumeMap,
    pos: u64,
    end: u64,
}

impl VolumeReader<'_> {
    /// Whether the erase block at `at` holds block `lnum` of the map, as the map says.
    fn holds(&self, at: u64, lnum: u32, sqnum: u64) -> io::Result<bool> {
        let mtd = self.root.raw.mtd();
        let mut ec = [0u8; HDR];
        mtd.read(at, &mut ec)?;
        let vid_at = u64::from(be32(&ec, 16));
        if &ec[..4] != EC_MAGIC
            || ubi_crc(&ec[..60]) != be32(&ec, 60)
            || vid_at + HDR as u64 > self.root.g.peb
        {
            return Ok(false); // erased, or being rewritten
        }
        let mut vid = [0u8; HDR];
        mtd.read(at + vid_at, &mut vid)?;
        Ok(&vid[..4] == VID_MAGIC
            && ubi_crc(&vid[..60]) == be32(&vid, 60)
            && be32(&vid, 8) == self.map.id
            && be32(&vid, 12) == lnum
            && be64(&vid, 40) == sqnum)
    }

    /// Read `buf.len()` bytes of block `lnum` from `within`, the block still where the map
    /// says before and after.
    fn read_block(&mut self, lnum: u32, within: u64, buf: &mut [u8]) -> io::Result<()> {
        for _ in 0..3 {
            let Some(leb) = self.map.lebs.get(&lnum).copied() else {
                return Ok(()); // unmapped: erased flash
            };
            let at = *self.good.get(leb.peb as usize).ok_or_else(|| {
                io::Error::other(format!("UBI block {lnum} maps past the good erase blocks"))
            })?;
            if self.holds(at, lnum, leb.sqnum)? {
                let have = u64::from(leb.data_size)
                    .saturating_sub(within)
                    .min(buf.len() as u64);
                buf.fill(0xff);
                let from = at + self.map.data_offset + within;
                self.root.raw.mtd().read(from, &mut buf[..have as usize])?;
                if self.holds(at, lnum, leb.sqnum)? {
                    return Ok(());
                }
            }
            self.map = self
                .root
                .area()
                .volume_map(&self.root.volume)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Err(io::Error::other(format!(
            "UBI block {lnum} kept moving while it was read (the UBI is in use)"
        )))
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
        self.read_block(lnum as u32, within, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}
