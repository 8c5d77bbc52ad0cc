//! An image of an MTD partition in a regular file, behaving like raw NAND behind the [`Mtd`]
//! trait (the simulated router, tests, and a board described by files): erase sets a block to
//! 0xFF, programming must be page-aligned and can only clear bits (programming a page that
//! was not erased fails, as on flash), and blocks can be marked bad (erasing or programming
//! one fails). A worn block fails its erase with EIO, as the kernel reports a failed erase;
//! the bad-block marks the writer adds are kept by this instance (a real chip keeps them in its
//! bad-block table).

use super::mtd::{Mtd, MtdInfo};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct MtdImage {
    path: PathBuf,
    file: File,
    info: MtdInfo,
    /// The bad blocks' offsets (a Vec: a handful at most, and small code for the router).
    bad: Mutex<Vec<u64>>,
    /// Blocks that wear out: how many more erases each survives; then every erase fails.
    worn: Mutex<Vec<(u64, u64)>>,
    /// Erase and program calls, for tests that count flash wear.
    pub ops: Mutex<(u64, u64)>,
}

impl MtdImage {
    /// Create a fresh (all 0xFF) device of `size` bytes.
    pub fn create(path: &Path, info: MtdInfo) -> io::Result<MtdImage> {
        std::fs::write(path, vec![0xffu8; info.size as usize])?;
        Self::open(path, info)
    }

    pub fn open(path: &Path, info: MtdInfo) -> io::Result<MtdImage> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(MtdImage {
            path: path.to_path_buf(),
            file,
            info,
            bad: Mutex::new(Vec::new()),
            worn: Mutex::new(Vec::new()),
            ops: Mutex::new((0, 0)),
        })
    }

    /// Open the image of partition `mtdN` with the geometry the sysfs tree at `sysfs` gives
    /// for it (`class/mtd/mtdN/{size,erasesize,writesize}`), as the kernel would report it.
    pub fn open_with_sysfs(path: &Path, mtd: &str, sysfs: &Path) -> io::Result<MtdImage> {
        let class = sysfs.join("class/mtd").join(mtd);
        let field = |name: &str| -> io::Result<u64> {
            let p = class.join(name);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
            crate::boot::fw_env::number(text.trim()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a number: {:?}", p.display(), text.trim()),
                )
            })
        };
        let info = MtdInfo {
            size: field("size")?,
            erase_size: field("erasesize")?,
            write_size: field("writesize")?.max(1),
        };
        let len = std::fs::metadata(path)?.len();
        if len != info.size || info.erase_size == 0 || info.size % info.erase_size != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {len} bytes, but {} gives size {:#x} and erase size {:#x}",
                    path.display(),
                    class.display(),
                    info.size,
                    info.erase_size
                ),
            ));
        }
        Self::open(path, info)
    }

    /// Mark the erase block at `offset` bad (as the factory bad-block table would).
    pub fn with_bad_block(self, offset: u64) -> Self {
        self.set_bad(offset);
        self
    }

    fn block_of(&self, offset: u64) -> u64 {
        offset - offset % self.info.erase_size
    }

    fn set_bad(&self, offset: u64) {
        let b = self.block_of(offset);
        let mut bad = self.bad.lock().unwrap_or_else(|p| p.into_inner());
        if !bad.contains(&b) {
            bad.push(b);
        }
    }

    fn bad_block(&self, offset: u64) -> bool {
        let b = self.block_of(offset);
        self.bad
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&b)
    }

    /// The erase block at `offset` is worn out: erasing it fails with EIO.
    pub fn with_worn_block(self, offset: u64) -> Self {
        self.with_block_wearing_out(offset, 0)
    }

    /// The erase block at `offset` survives `erases` more erases; after them it fails as a
    /// worn block does.
    pub fn with_block_wearing_out(self, offset: u64, erases: u64) -> Self {
        let b = self.block_of(offset);
        self.worn.lock().unwrap().push((b, erases));
        self
    }

    /// The blocks marked bad, factory or since.
    pub fn bad_blocks(&self) -> Vec<u64> {
        let mut v = self.bad.lock().unwrap().clone();
        v.sort_unstable();
        v
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
            if self.bad_block(b) {
                return Err(io::Error::other(format!("block {b:#x} is bad")));
            }
            b += self.info.erase_size;
        }
        Ok(())
    }
}

impl Mtd for MtdImage {
    fn describe(&self) -> String {
        format!("{} (NAND image)", self.path.display())
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn info(&self) -> io::Result<MtdInfo> {
        Ok(self.info)
    }

    fn is_bad(&self, offset: u64) -> io::Result<bool> {
        Ok(self.bad_block(offset))
    }

    fn mark_bad(&self, offset: u64) -> io::Result<()> {
        self.check_block(offset, 1)?;
        self.set_bad(offset);
        Ok(())
    }

    fn erase(&self, offset: u64) -> io::Result<()> {
        if offset % self.info.erase_size != 0 {
            return Err(io::Error::other(format!(
                "erase at {offset:#x}: not block aligned"
            )));
        }
        self.check_block(offset, self.info.erase_size)?;
        self.ops.lock().unwrap().0 += 1;
        let mut worn = self.worn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, left)) = worn.iter_mut().find(|(b, _)| *b == offset) {
            if *left == 0 {
                return Err(io::Error::from_raw_os_error(nix::libc::EIO));
            }
            *left -= 1;
        }
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
