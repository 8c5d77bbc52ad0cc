//! A file that behaves like raw NAND behind the [`Mtd`] trait, for tests and the simulated
//! router: erase sets a block to 0xFF, programming must be page-aligned and can only clear
//! bits (programming a page that was not erased fails, as on flash), and blocks can be
//! marked bad (erasing or programming one fails).

use super::mtd::{Mtd, MtdInfo};
use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct FakeMtd {
    path: PathBuf,
    file: File,
    info: MtdInfo,
    bad: BTreeSet<u64>,
    /// Erase and program calls, for tests that count flash wear.
    pub ops: Mutex<(u64, u64)>,
}

impl FakeMtd {
    /// Create a fresh (all 0xFF) device of `size` bytes.
    pub fn create(path: &Path, info: MtdInfo) -> io::Result<FakeMtd> {
        std::fs::write(path, vec![0xffu8; info.size as usize])?;
        Self::open(path, info)
    }

    pub fn open(path: &Path, info: MtdInfo) -> io::Result<FakeMtd> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(FakeMtd {
            path: path.to_path_buf(),
            file,
            info,
            bad: BTreeSet::new(),
            ops: Mutex::new((0, 0)),
        })
    }

    /// Mark the erase block at `offset` bad (as the factory bad-block table would).
    pub fn with_bad_block(mut self, offset: u64) -> Self {
        self.bad.insert(offset - offset % self.info.erase_size);
        self
    }

    fn check_block(&self, offset: u64, len: u64) -> io::Result<()> {
        if offset + len > self.info.size {
            return Err(io::Error::other(format!(
                "{offset:#x}+{len:#x} is past the end of the device ({:#x})",
                self.info.size
            )));
        }
        let first = offset - offset % self.info.erase_size;
        let mut b = first;
        while b < offset + len {
            if self.bad.contains(&b) {
                return Err(io::Error::other(format!("block {b:#x} is bad")));
            }
            b += self.info.erase_size;
        }
        Ok(())
    }
}

impl Mtd for FakeMtd {
    fn describe(&self) -> String {
        format!("{} (fake NAND)", self.path.display())
    }

    fn info(&self) -> io::Result<MtdInfo> {
        Ok(self.info)
    }

    fn is_bad(&self, offset: u64) -> io::Result<bool> {
        Ok(self.bad.contains(&(offset - offset % self.info.erase_size)))
    }

    fn erase(&self, offset: u64) -> io::Result<()> {
        if offset % self.info.erase_size != 0 {
            return Err(io::Error::other(format!(
                "erase at {offset:#x}: not block aligned"
            )));
        }
        self.check_block(offset, self.info.erase_size)?;
        self.ops.lock().unwrap().0 += 1;
        self.file
            .write_all_at(&vec![0xff; self.info.erase_size as usize], offset)
    }

    fn program(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let ws = self.info.write_size;
        if offset % ws != 0 || data.len() as u64 % ws != 0 {
            return Err(io::Error::other(format!(
                "program {:#x} bytes at {offset:#x}: not aligned to the {ws}-byte page",
                data.len()
            )));
        }
        self.check_block(offset, data.len() as u64)?;
        let mut old = vec![0u8; data.len()];
        self.file.read_exact_at(&mut old, offset)?;
        if let Some(i) = old.iter().zip(data).position(|(o, n)| o & n != *n) {
            return Err(io::Error::other(format!(
                "program at {:#x}: the page was not erased (a bit would go from 0 to 1)",
                offset + i as u64
            )));
        }
        self.ops.lock().unwrap().1 += 1;
        self.file.write_all_at(data, offset)
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if offset + buf.len() as u64 > self.info.size {
            return Err(io::Error::other("read past the end of the device"));
        }
        self.file.read_exact_at(buf, offset)
    }
}
