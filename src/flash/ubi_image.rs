//! Reading a UBI volume's content out of raw flash, as the kernel's UBI sees it, without
//! attaching the UBI device: the erase blocks of the UBI area are scanned for their headers
//! (erase counter `UBI#` and volume id `UBI!`, each with its CRC), the volume table (the
//! layout volume) names the volumes, and a volume's logical blocks are read in order (for a
//! block written twice, the copy with the higher sequence number). A firmware that has run
//! rewrites UBI's own headers, moves blocks and resizes volumes (`autoresize`), so a hash over
//! the raw partition does not survive its first boot; the content of a read-only volume (the
//! root file system) does, and this is how fwguard checks it.
//!
//! Only ever used on a slot whose bytes were verified when they were written, to check
//! whether they still hold what was verified; a header that does not parse or whose CRC does
//! not match is skipped (an erased or half-written block), as UBI itself does.

use super::{FlashError, SlotDevice};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;

pub(crate) const EC_MAGIC: &[u8; 4] = b"UBI#";
pub(crate) const VID_MAGIC: &[u8; 4] = b"UBI!";
pub(crate) const HDR: usize = 64;
/// The volume id of the layout volume, which holds the volume table.
pub(crate) const LAYOUT_VOL: u32 = 0x7fff_efff;
pub(crate) const VTBL_RECORD: usize = 172;
pub(crate) const MAX_VOLUMES: usize = 128;
/// UBI's volume types.
const STATIC: u8 = 2;

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// UBI's CRC-32: the kernel's `crc32_le` from `0xffffffff`, without the final inversion.
pub fn ubi_crc(b: &[u8]) -> u32 {
    crc32fast::hash(b) ^ 0xffff_ffff
}

/// One logical block found in an erase block.
#[derive(Debug, Clone, Copy)]
pub struct Leb {
    pub sqnum: u64,
    /// The erase block, counted from the start of the area.
    pub peb: u64,
    /// Bytes of data in it (a static volume's block says; a dynamic one's is the whole block).
    pub data_size: u32,
}

/// Where a volume's logical blocks are.
pub struct VolumeMap {
    pub id: u32,
    /// Where a block's data starts in its erase block, and how much it holds.
    pub data_offset: u64,
    pub leb_size: u64,
    /// Erase blocks in the area.
    pub pebs: u64,
    /// Logical blocks the volume table reserves for it.
    pub reserved: u64,
    pub lebs: BTreeMap<u32, Leb>,
}

/// What a scan of the UBI area found.
struct Scan {
    /// Where a block's data starts in its erase block.
    data_offset: usize,
    /// Erase blocks in the area.
    pebs: u64,
    /// Per volume id: its logical blocks.
    vols: BTreeMap<u32, BTreeMap<u32, Leb>>,
    /// The volume table, from the newest copy of the layout volume.
    vtbl: Option<(u64, Vec<u8>)>,
}

/// A UBI volume in raw flash: `offset` is where the UBI area starts in `dev`, `peb_size`
/// its erase block size.
pub struct UbiArea<'a> {
    pub dev: &'a dyn SlotDevice,
    pub offset: u64,
    pub peb_size: u64,
}

impl UbiArea<'_> {
    fn err(&self, what: String) -> FlashError {
        FlashError::Verify {
            slot: self.dev.slot(),
            what,
        }
    }

    fn io(&self, source: std::io::Error) -> FlashError {
        FlashError::Io {
            slot: self.dev.slot(),
            device: self.dev.describe(),
            op: "read the UBI area",
            source,
        }
    }

    /// Read every erase block of the area in order, handing each to `each` (its index and
    /// bytes); a short last block is not handed on. Returns how many there were.
    fn blocks(&self, mut each: impl FnMut(u64, &[u8])) -> Result<u64, FlashError> {
        let mut r = self.dev.reader()?;
        std::io::copy(&mut (&mut r).take(self.offset), &mut std::io::sink())
            .map_err(|e| self.io(e))?;
        let mut buf = vec![0u8; self.peb_size as usize];
        let mut peb = 0u64;
        loop {
            let mut got = 0;
            while got < buf.len() {
                match r.read(&mut buf[got..]).map_err(|e| self.io(e))? {
                    0 => return Ok(peb),
                    n => got += n,
                }
            }
            each(peb, &buf);
            peb += 1;
        }
    }

    fn scan(&self) -> Result<Scan, FlashError> {
        if !self.peb_size.is_power_of_two() || !(4096..=16 << 20).contains(&self.peb_size) {
            return Err(self.err(format!(
                "an erase block size of {} bytes is not a power of two from 4 KiB to 16 MiB",
                self.peb_size
            )));
        }
        let mut scan = Scan {
            data_offset: 0,
            pebs: 0,
            vols: BTreeMap::new(),
            vtbl: None,
        };
        let peb_size = self.peb_size as usize;
        scan.pebs = self.blocks(|peb, b| {
            let ec = &b[..HDR];
            if &ec[..4] != EC_MAGIC || ubi_crc(&ec[..60]) != be32(ec, 60) {
                return;
            }
            let (vid_at, data_at) = (be32(ec, 16) as usize, be32(ec, 20) as usize);
            let Some(vid_end) = vid_at.checked_add(HDR) else {
                return;
            };
            if vid_end > peb_size || data_at >= peb_size || data_at < vid_end {
                return;
            }
            let vid = &b[vid_at..vid_end];
            if &vid[..4] != VID_MAGIC || ubi_crc(&vid[..60]) != be32(vid, 60) {
                return;
            }
            // A copy (wear levelling, an atomic change) counts only if its data is whole:
            // a power cut during the copy leaves the older block in force, as UBI has it.
            if vid[6] == 1 {
                let n = be32(vid, 20) as usize;
                let whole = b
                    .get(data_at..data_at.saturating_add(n))
                    .is_some_and(|d| ubi_crc(d) == be32(vid, 32));
                if !whole {
                    return;
                }
            }
            scan.data_offset = data_at;
            let (vol, lnum, sqnum) = (be32(vid, 8), be32(vid, 12), be64(vid, 40));
            let data_size = if vid[5] == STATIC {
                be32(vid, 20)
            } else {
                (peb_size - data_at) as u32
            };
            let leb = Leb {
                sqnum,
                peb,
                data_size,
            };
            let slot = scan.vols.entry(vol).or_default().entry(lnum).or_insert(leb);
            if sqnum > slot.sqnum {
                *slot = leb;
            }
            // The newest copy of the volume table whose every record is intact.
            if vol == LAYOUT_VOL && scan.vtbl.as_ref().is_none_or(|(s, _)| sqnum > *s) {
                let end = (data_at + MAX_VOLUMES * VTBL_RECORD).min(peb_size);
                let vtbl = &b[data_at..end];
                if vtbl
                    .chunks_exact(VTBL_RECORD)
                    .all(|r| ubi_crc(&r[..168]) == be32(r, 168))
                {
                    scan.vtbl = Some((sqnum, vtbl.to_vec()));
                }
            }
        })?;
        Ok(scan)
    }

    /// The id of the volume called `name` in a volume table, and the blocks it reserves.
    fn volume_id(&self, vtbl: &[u8], name: &str) -> Option<(u32, u64)> {
        vtbl.chunks_exact(VTBL_RECORD)
            .enumerate()
            .find_map(|(id, r)| {
                let len = u16::from_be_bytes([r[14], r[15]]) as usize;
                let ok = be32(r, 0) > 0
                    && ubi_crc(&r[..168]) == be32(r, 168)
                    && len <= 127
                    && &r[16..16 + len] == name.as_bytes();
                ok.then_some((id as u32, be32(r, 0) as u64))
            })
    }

    /// The names of the volumes, for an error that says which there are.
    fn volume_names(vtbl: &[u8]) -> Vec<String> {
        vtbl.chunks_exact(VTBL_RECORD)
            .filter(|r| be32(r, 0) > 0 && ubi_crc(&r[..168]) == be32(r, 168))
            .map(|r| {
                let len = (u16::from_be_bytes([r[14], r[15]]) as usize).min(127);
                String::from_utf8_lossy(&r[16..16 + len]).into_owned()
            })
            .collect()
    }

    /// The names of the UBI's volumes (an error: the area holds no UBI volume table).
    pub fn volumes(&self) -> Result<Vec<String>, FlashError> {
        match self.scan()?.vtbl {
            Some((_, vtbl)) => Ok(Self::volume_names(&vtbl)),
            None => Err(self.err(format!(
                "no UBI volume table in the UBI area at {:#x}",
                self.offset
            ))),
        }
    }

    /// The bytes of volume `name` that erase blocks hold: up to the end of its last mapped
    /// logical block (what a vendor tool takes as the extent of a read-only volume).
    pub fn volume_len(&self, name: &str) -> Result<u64, FlashError> {
        let scan = self.scan()?;
        let (id, _) = scan
            .vtbl
            .as_ref()
            .and_then(|(_, vtbl)| self.volume_id(vtbl, name))
            .ok_or_else(|| {
                self.err(format!(
                    "no UBI volume {name:?} in the UBI area at {:#x}",
                    self.offset
                ))
            })?;
        let leb_size = (self.peb_size as usize - scan.data_offset) as u64;
        Ok(
            match scan.vols.get(&id).and_then(|l| l.iter().next_back()) {
                Some((last, leb)) if leb.data_size as u64 != leb_size => {
                    *last as u64 * leb_size + leb.data_size as u64
                }
                Some((last, _)) => (*last as u64 + 1) * leb_size,
                None => 0,
            },
        )
    }

    /// The SHA-256 of the first `size` bytes of volume `name`'s content (a logical block
    /// no erase block holds reads as erased flash, 0xff, as UBI reads it). The area is read
    /// twice (its map, then the volume's blocks); a block that moved in between (the UBI of
    /// the running firmware moves blocks) makes it start over, three times at most.
    pub fn hash_volume(&self, name: &str, size: u64) -> Result<[u8; 32], FlashError> {
        let mut tries = 0;
        loop {
            match self.hash_volume_once(name, size)? {
                Some(h) => return Ok(h),
                None if tries < 2 => tries += 1,
                None => {
                    return Err(self.err(format!(
                        "UBI volume {name:?}: its blocks kept moving while they were read"
                    )))
                }
            }
        }
    }

    /// Where the logical blocks of volume `name` are.
    pub fn volume_map(&self, name: &str) -> Result<VolumeMap, FlashError> {
        let mut scan = self.scan()?;
        let Some((_, vtbl)) = &scan.vtbl else {
            return Err(self.err(format!(
                "no UBI volume table in the UBI area at {:#x} of {}",
                self.offset,
                self.dev.describe()
            )));
        };
        let Some((id, reserved)) = self.volume_id(vtbl, name) else {
            return Err(self.err(format!(
                "no UBI volume {name:?} in the UBI area at {:#x} of {} (volumes: {})",
                self.offset,
                self.dev.describe(),
                Self::volume_names(vtbl).join(", ")
            )));
        };
        Ok(VolumeMap {
            id,
            data_offset: scan.data_offset as u64,
            leb_size: self.peb_size - scan.data_offset as u64,
            pebs: scan.pebs,
            reserved,
            lebs: scan.vols.remove(&id).unwrap_or_default(),
        })
    }

    /// One try of [`UbiArea::hash_volume`]; None when a block moved meanwhile.
    fn hash_volume_once(&self, name: &str, size: u64) -> Result<Option<[u8; 32]>, FlashError> {
        let map = self.volume_map(name)?;
        let (id, leb_size, lebs) = (map.id, map.leb_size, map.lebs);
        if size > map.pebs * leb_size {
            return Err(self.err(format!(
                "UBI volume {name:?}: {size} bytes do not fit the {} erase blocks of the UBI area",
                map.pebs
            )));
        }
        let data_at = map.data_offset as usize;
        // Which erase block serves each logical block of the extent.
        let wanted: BTreeMap<u64, (u32, Leb)> = lebs
            .iter()
            .filter(|(l, _)| (**l as u64) * leb_size < size)
            .map(|(l, leb)| (leb.peb, (*l, *leb)))
            .collect();
        let mut out = InOrder {
            pending: BTreeMap::new(),
            next: 0,
            done: 0,
            size,
            hasher: Sha256::new(),
        };
        let mut moved = false;
        self.blocks(|peb, b| {
            if let Some((lnum, leb)) = wanted.get(&peb) {
                // Still the block the map says (its volume, number and sequence number).
                let vid_at = be32(b, 16) as usize;
                let same = b.get(vid_at..vid_at.saturating_add(HDR)).is_some_and(|v| {
                    &v[..4] == VID_MAGIC
                        && be32(v, 8) == id
                        && be32(v, 12) == *lnum
                        && be64(v, 40) == leb.sqnum
                });
                if !same {
                    moved = true;
                    return;
                }
                let mut bytes = b[data_at..].to_vec();
                // Past a static block's data: erased flash.
                for x in bytes.iter_mut().skip(leb.data_size as usize) {
                    *x = 0xff;
                }
                out.push(*lnum, bytes);
            }
        })?;
        if moved {
            return Ok(None);
        }
        // Logical blocks that no erase block holds read as erased flash.
        while out.done < size {
            let l = out.next;
            if lebs.contains_key(&l) {
                // Mapped, but its erase block was past the end of what could be read.
                return Err(self.err(format!("UBI volume {name:?}: block {l} could not be read")));
            }
            out.push(l, vec![0xff; leb_size as usize]);
        }
        Ok(Some(out.hasher.finalize().into()))
    }
}

/// Logical blocks hashed in order, as they arrive in any order.
struct InOrder {
    pending: BTreeMap<u32, Vec<u8>>,
    next: u32,
    done: u64,
    size: u64,
    hasher: Sha256,
}

impl InOrder {
    fn push(&mut self, lnum: u32, bytes: Vec<u8>) {
        self.pending.insert(lnum, bytes);
        while let Some(b) = self.pending.remove(&self.next) {
            let take = (self.size - self.done).min(b.len() as u64) as usize;
            self.hasher.update(&b[..take]);
            self.done += take as u64;
            self.next += 1;
        }
    }
}
