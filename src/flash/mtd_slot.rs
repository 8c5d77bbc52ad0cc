//! A slot on raw flash (an MTD partition): erase before program, skip bad blocks, program
//! whole erase blocks in order, read each back and compare, never past the partition end. A
//! block that fails its erase or program (the kernel's EIO: it wore out) is marked bad and the
//! next good block takes its place, as nandwrite and UBI do; the reader skips it from then on.
//!
//! Flash cannot rewrite a page without erasing its block, so the first erase block (which
//! holds the image header) is erased to invalidate the slot, kept in memory while the rest
//! is written, and programmed last.

use super::mtd::{Mtd, MtdInfo};
use super::{FlashError, SlotDevice, SlotSink};
use crate::slot::Slot;
use std::io::{self, Read};

pub struct MtdSlot<M: Mtd> {
    slot: Slot,
    mtd: M,
}

impl<M: Mtd> MtdSlot<M> {
    pub fn new(slot: Slot, mtd: M) -> Self {
        MtdSlot { slot, mtd }
    }

    fn err(&self, op: &'static str, source: io::Error) -> FlashError {
        FlashError::Io {
            slot: self.slot,
            device: self.mtd.describe(),
            op,
            source,
        }
    }

    /// The partition.
    pub fn mtd(&self) -> &M {
        &self.mtd
    }

    /// The offsets of the good erase blocks, in order.
    pub fn good_blocks(&self) -> Result<Vec<u64>, FlashError> {
        Ok(self.layout()?.1)
    }

    /// The geometry and the offsets of the good erase blocks, in order.
    fn layout(&self) -> Result<(MtdInfo, Vec<u64>), FlashError> {
        let info = self.mtd.info().map_err(|e| self.err("MEMGETINFO", e))?;
        if info.erase_size == 0 || info.write_size == 0 || info.erase_size % info.write_size != 0 {
            return Err(self.err(
                "MEMGETINFO",
                io::Error::other(format!("implausible geometry {info:?}")),
            ));
        }
        let mut good = Vec::new();
        for off in (0..info.size / info.erase_size).map(|b| b * info.erase_size) {
            if !self
                .mtd
                .is_bad(off)
                .map_err(|e| self.err("MEMGETBADBLOCK", e))?
            {
                good.push(off);
            }
        }
        Ok((info, good))
    }
}

impl<M: Mtd> SlotDevice for MtdSlot<M> {
    fn slot(&self) -> Slot {
        self.slot
    }

    fn describe(&self) -> String {
        self.mtd.describe()
    }

    fn device_path(&self) -> &std::path::Path {
        self.mtd.path()
    }

    /// The good blocks only: an image never goes past the partition end.
    fn capacity(&self) -> Result<u64, FlashError> {
        let (info, good) = self.layout()?;
        Ok(good.len() as u64 * info.erase_size)
    }

    fn reader(&self) -> Result<Box<dyn Read + Send + '_>, FlashError> {
        let (info, good) = self.layout()?;
        Ok(Box::new(MtdReader {
            slot: self,
            erase: info.erase_size,
            good,
            pos: 0,
        }))
    }

    fn open_sink(&self) -> Result<Box<dyn SlotSink + '_>, FlashError> {
        let (info, good) = self.layout()?;
        Ok(Box::new(MtdSink {
            slot: self,
            info,
            good,
            first: vec![0xff; info.erase_size as usize],
            block: Vec::with_capacity(info.erase_size as usize),
            next: 0,
            sealed: false,
            max_programmed: 0,
        }))
    }
}

/// Reads the good blocks as one stream.
struct MtdReader<'a, M: Mtd> {
    slot: &'a MtdSlot<M>,
    erase: u64,
    good: Vec<u64>,
    pos: u64,
}

impl<M: Mtd> Read for MtdReader<'_, M> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (b, within) = (self.pos / self.erase, self.pos % self.erase);
        let Some(&phys) = self.good.get(b as usize) else {
            return Ok(0);
        };
        let n = buf.len().min((self.erase - within) as usize);
        self.slot.mtd.read(phys + within, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

struct MtdSink<'a, M: Mtd> {
    slot: &'a MtdSlot<M>,
    info: MtdInfo,
    good: Vec<u64>,
    /// The first erase block, programmed last (it holds the header).
    first: Vec<u8>,
    /// The erase block being filled (logical block `next / erase_size`).
    block: Vec<u8>,
    /// The next logical offset expected.
    next: u64,
    /// A partial block was flushed by `sync`: nothing more may follow it.
    sealed: bool,
    /// The highest logical block programmed so far (0: none past the first).
    max_programmed: u64,
}

/// A failed erase or program that means the block wore out (the kernel reports EIO).
fn worn(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EIO)
}

impl<M: Mtd> MtdSink<'_, M> {
    fn phys(&self, logical_block: u64) -> Result<u64, FlashError> {
        self.good
            .get(logical_block as usize)
            .copied()
            .ok_or(FlashError::TooSmall {
                slot: self.slot.slot,
                device: self.slot.mtd.describe(),
                capacity: self.good.len() as u64 * self.info.erase_size,
                needed: (logical_block + 1) * self.info.erase_size,
            })
    }

    /// Erase the good block that holds `logical_block`; one that wears out on the way is
    /// retired. Returns the block erased.
    fn erase_good(&mut self, logical_block: u64) -> Result<u64, FlashError> {
        loop {
            let phys = self.phys(logical_block)?;
            match self.slot.mtd.erase(phys) {
                Ok(()) => return Ok(phys),
                Err(e) if worn(&e) => self.retire(logical_block, phys, "MEMERASE", e)?,
                Err(e) => return Err(self.slot.err("MEMERASE", e)),
            }
        }
    }

    /// Mark a worn block bad and let the next good block hold `logical_block`: only while no
    /// later block holds data (the first block, programmed last, cannot move then: the write
    /// fails and the slot, invalidated, is written again by the next install).
    fn retire(
        &mut self,
        logical_block: u64,
        phys: u64,
        op: &'static str,
        e: io::Error,
    ) -> Result<(), FlashError> {
        let m = &self.slot.mtd;
        let marked = m.mark_bad(phys);
        if self.max_programmed > logical_block || marked.is_err() {
            return Err(self.slot.err(
                op,
                io::Error::other(format!(
                    "erase block {phys:#x} wore out ({e}; {}); the slot must be written again",
                    match marked {
                        Ok(()) => "now marked bad".to_string(),
                        Err(m) => format!("marking it bad failed: {m}"),
                    }
                )),
            ));
        }
        tracing::warn!(
            "erase block {phys:#x} of {} wore out ({op}: {e}): marked bad, the next good block takes its place",
            m.describe()
        );
        self.good.remove(logical_block as usize);
        Ok(())
    }

    /// Erase the block, program it (padded to whole pages with 0xFF), read it back.
    fn program_block(&mut self, logical_block: u64, data: &[u8]) -> Result<(), FlashError> {
        let ws = self.info.write_size as usize;
        let mut padded = data.to_vec();
        padded.resize(data.len().div_ceil(ws) * ws, 0xff);
        let phys = loop {
            let phys = self.erase_good(logical_block)?;
            match self.slot.mtd.program(phys, &padded) {
                Ok(()) => break phys,
                Err(e) if worn(&e) => self.retire(logical_block, phys, "write", e)?,
                Err(e) => return Err(self.slot.err("write", e)),
            }
        };
        self.max_programmed = self.max_programmed.max(logical_block);
        let m = &self.slot.mtd;
        let mut back = vec![0u8; padded.len()];
        m.read(phys, &mut back)
            .map_err(|e| self.slot.err("read back", e))?;
        if back != padded {
            return Err(FlashError::Verify {
                slot: self.slot.slot,
                what: format!(
                    "erase block at {phys:#x} of {} did not read back as written",
                    m.describe()
                ),
            });
        }
        Ok(())
    }
}

impl<M: Mtd> SlotSink for MtdSink<'_, M> {
    fn invalidate(&mut self, head_len: usize, _size: u64) -> Result<(), FlashError> {
        self.erase_good(0)?;
        self.next = head_len as u64;
        Ok(())
    }

    fn write_at(&mut self, offset: u64, mut bytes: &[u8]) -> Result<(), FlashError> {
        if offset != self.next || self.sealed {
            return Err(self.slot.err(
                "write",
                io::Error::other(format!(
                    "flash is written in order: offset {offset:#x}, expected {:#x}",
                    self.next
                )),
            ));
        }
        let erase = self.info.erase_size;
        while !bytes.is_empty() {
            let (b, within) = (self.next / erase, (self.next % erase) as usize);
            let n = bytes.len().min(erase as usize - within);
            if b == 0 {
                self.first[within..within + n].copy_from_slice(&bytes[..n]);
            } else {
                self.phys(b)?; // never buffer past the partition end
                self.block.extend_from_slice(&bytes[..n]);
                if self.block.len() == erase as usize {
                    let block = std::mem::take(&mut self.block);
                    self.program_block(b, &block)?;
                    self.block = block;
                    self.block.clear();
                }
            }
            self.next += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        if !self.block.is_empty() {
            let block = std::mem::take(&mut self.block);
            self.program_block(self.next / self.info.erase_size, &block)?;
            self.block = block;
            self.block.clear();
            self.sealed = true;
        }
        Ok(())
    }

    fn finish(&mut self, head: &[u8]) -> Result<(), FlashError> {
        self.sync()?;
        self.first[..head.len()].copy_from_slice(head);
        let used = (self.next.min(self.info.erase_size)) as usize;
        let first = std::mem::take(&mut self.first);
        self.program_block(0, &first[..used])
    }
}
