//! A partition that is a range of another: on Linksys dual-firmware boards `rootfsN` is the
//! tail of `kernelN` (the same erase blocks under two names). Reached through the larger
//! partition's device, so it needs no device node or image file of its own; `node` is the
//! name it has (`/dev/mtd6`), for telling storage apart.

use super::mtd::{Mtd, MtdInfo};
use std::io;
use std::path::{Path, PathBuf};

pub struct MtdWindow<M: Mtd> {
    inner: M,
    offset: u64,
    size: u64,
    node: PathBuf,
}

impl<M: Mtd> MtdWindow<M> {
    /// `size` bytes of `inner` from `offset` (both erase-block aligned), known as `node`.
    pub fn new(inner: M, offset: u64, size: u64, node: PathBuf) -> io::Result<Self> {
        let info = inner.info()?;
        let aligned = |v: u64| info.erase_size > 0 && v % info.erase_size == 0;
        if !aligned(offset)
            || !aligned(size)
            || offset.checked_add(size).is_none_or(|end| end > info.size)
        {
            return Err(io::Error::other(format!(
                "{:#x} bytes at {offset:#x} are not whole erase blocks of {} ({:#x} bytes, erase size {:#x})",
                size,
                inner.describe(),
                info.size,
                info.erase_size
            )));
        }
        Ok(MtdWindow {
            inner,
            offset,
            size,
            node,
        })
    }

    /// The partition this one is a range of.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// Where this partition starts in the larger one.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn at(&self, offset: u64, len: u64) -> io::Result<u64> {
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(io::Error::other(format!(
                "{len:#x} bytes at {offset:#x} are past the end of {} ({:#x} bytes)",
                self.describe(),
                self.size
            )));
        }
        Ok(self.offset + offset)
    }
}

impl<M: Mtd> Mtd for MtdWindow<M> {
    fn describe(&self) -> String {
        format!(
            "{} (the last {:#x} bytes of {}, from {:#x})",
            self.node.display(),
            self.size,
            self.inner.describe(),
            self.offset
        )
    }

    fn path(&self) -> &Path {
        &self.node
    }

    fn info(&self) -> io::Result<MtdInfo> {
        Ok(MtdInfo {
            size: self.size,
            ..self.inner.info()?
        })
    }

    fn is_bad(&self, offset: u64) -> io::Result<bool> {
        self.inner.is_bad(self.at(offset, 1)?)
    }

    fn mark_bad(&self, offset: u64) -> io::Result<()> {
        self.inner.mark_bad(self.at(offset, 1)?)
    }

    fn erase(&self, offset: u64) -> io::Result<()> {
        self.inner.erase(self.at(offset, 1)?)
    }

    fn program(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.inner
            .program(self.at(offset, data.len() as u64)?, data)
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(self.at(offset, buf.len() as u64)?, buf)
    }
}
