//! Raw flash (MTD partitions) behind one trait: the kernel's character device, or an image of
//! a partition in a file; finding which a path is; rewriting a range as the U-Boot tools do.
use std::io;
use std::path::Path;

/// Geometry of an MTD partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtdInfo {
    pub size: u64,
    pub erase_size: u64,
    /// The smallest unit that can be programmed (a NAND page).
    pub write_size: u64,
}

/// The operations of an MTD character device (the real one through ioctls, or a fake with
/// the same semantics for tests).
pub trait Mtd: Send + Sync {
    fn describe(&self) -> String;
    /// The device node or image file: what the partition is, whatever `describe` says.
    fn path(&self) -> &Path;
    fn info(&self) -> io::Result<MtdInfo>;
    /// Whether the erase block at `offset` is marked bad.
    fn is_bad(&self, offset: u64) -> io::Result<bool>;
    /// Mark the erase block at `offset` bad (in the chip's bad-block table), as a writer does
    /// when the block fails an erase or a program.
    fn mark_bad(&self, offset: u64) -> io::Result<()>;
    /// Erase the block at `offset` (every byte becomes 0xFF).
    fn erase(&self, offset: u64) -> io::Result<()>;
    /// Program `data` at `offset` (write-size aligned; can only clear bits).
    fn program(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl Mtd for Box<dyn Mtd> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn path(&self) -> &Path {
        (**self).path()
    }
    fn info(&self) -> io::Result<MtdInfo> {
        (**self).info()
    }
    fn is_bad(&self, offset: u64) -> io::Result<bool> {
        (**self).is_bad(offset)
    }
    fn mark_bad(&self, offset: u64) -> io::Result<()> {
        (**self).mark_bad(offset)
    }
    fn erase(&self, offset: u64) -> io::Result<()> {
        (**self).erase(offset)
    }
    fn program(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).program(offset, data)
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read(offset, buf)
    }
}

/// The MTD partition a device node belongs to (`/dev/mtd3`, `/dev/mtdblock3` -> `mtd3`).
pub fn mtd_name(device: &Path) -> Option<String> {
    let name = device.file_name()?.to_str()?;
    let n = name
        .strip_prefix("mtdblock")
        .or_else(|| name.strip_prefix("mtd"))?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| format!("mtd{n}"))
}

/// Whether `device` is a character device (the kernel's raw MTD interface).
pub fn is_char_device(device: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(device).is_ok_and(|m| m.file_type().is_char_device())
}

/// Raw flash at `device`, if it is raw flash: the kernel's MTD character device (`/dev/mtdN`),
/// or a regular file named `mtdN` taken as an image of that partition with the geometry sysfs
/// gives (a board described by files). `None` for anything else (block devices, `mtdblockN`,
/// other files), which is written as a file.
pub fn open_mtd(device: &Path, sysfs: &Path) -> Option<io::Result<Box<dyn Mtd>>> {
    let name = mtd_name(device)?;
    if device.file_name()?.to_str()?.starts_with("mtdblock") {
        return None; // the block emulation: written as a file
    }
    if is_char_device(device) {
        return Some(Ok(Box::new(super::mtd_char::MtdChar::new(device))));
    }
    Some(
        super::mtd_image::MtdImage::open_with_sysfs(device, &name, sysfs)
            .map(|m| Box::new(m) as Box<dyn Mtd>),
    )
}

/// Replace `bytes.len()` bytes at `offset` of raw flash, as the U-Boot tools do for an
/// environment: read the erase blocks that hold the range, put the bytes in, erase those
/// blocks, program them whole, and read them back. Refuses a range on a bad block.
pub fn rewrite_range(mtd: &dyn Mtd, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let info = mtd.info()?;
    let end = offset + bytes.len() as u64;
    if end > info.size || info.erase_size == 0 {
        return Err(io::Error::other(format!(
            "{:#x} bytes at {offset:#x} do not fit in {} ({:#x} bytes)",
            bytes.len(),
            mtd.describe(),
            info.size
        )));
    }
    let first = offset - offset % info.erase_size;
    let last = end.div_ceil(info.erase_size) * info.erase_size;
    let mut blocks = vec![0u8; (last - first) as usize];
    mtd.read(first, &mut blocks)?;
    let at = (offset - first) as usize;
    blocks[at..at + bytes.len()].copy_from_slice(bytes);
    for (i, block) in blocks.chunks(info.erase_size as usize).enumerate() {
        let b = first + i as u64 * info.erase_size;
        if mtd.is_bad(b)? {
            return Err(io::Error::other(format!(
                "erase block {b:#x} of {} is bad",
                mtd.describe()
            )));
        }
        mtd.erase(b)?;
        mtd.program(b, block)?;
    }
    let mut back = vec![0u8; bytes.len()];
    mtd.read(offset, &mut back)?;
    if back != bytes {
        return Err(io::Error::other(format!(
            "{}: what was programmed at {offset:#x} did not read back",
            mtd.describe()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::mtd_image::MtdImage;

    #[test]
    fn mtd_names() {
        assert_eq!(mtd_name(Path::new("/dev/mtd3")).as_deref(), Some("mtd3"));
        assert_eq!(
            mtd_name(Path::new("/dev/mtdblock12")).as_deref(),
            Some("mtd12")
        );
        assert_eq!(mtd_name(Path::new("/dev/mtd")), None);
        assert_eq!(mtd_name(Path::new("/dev/mmcblk0p1")), None);
        assert_eq!(mtd_name(Path::new("/dev/mtd3ro")), None);
    }

    #[test]
    fn which_paths_are_raw_flash() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        assert!(open_mtd(Path::new("/dev/mtdblock5"), &sys).is_none());
        assert!(open_mtd(Path::new("/dev/vda3"), &sys).is_none());
        // A file named like a partition is an image of it; sysfs must give its geometry.
        let img = dir.path().join("mtd5");
        std::fs::write(&img, vec![0xffu8; 0x40000]).unwrap();
        let e = open_mtd(&img, &sys).unwrap().err().unwrap().to_string();
        assert!(e.contains("class/mtd/mtd5/size"), "{e}");
        let class = sys.join("class/mtd/mtd5");
        std::fs::create_dir_all(&class).unwrap();
        for (k, v) in [
            ("size", "262144"),
            ("erasesize", "131072"),
            ("writesize", "2048"),
        ] {
            std::fs::write(class.join(k), format!("{v}\n")).unwrap();
        }
        let m = open_mtd(&img, &sys).unwrap().unwrap();
        assert_eq!(
            m.info().unwrap(),
            MtdInfo {
                size: 0x40000,
                erase_size: 0x20000,
                write_size: 2048
            }
        );
        std::fs::write(class.join("size"), "4096\n").unwrap();
        let e = open_mtd(&img, &sys).unwrap().err().unwrap().to_string();
        assert!(e.contains("262144 bytes, but"), "{e}");
    }

    #[test]
    fn rewrite_range_keeps_the_rest_of_the_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let info = MtdInfo {
            size: 0x40000,
            erase_size: 0x10000,
            write_size: 0x800,
        };
        let m = MtdImage::create(&dir.path().join("mtd1"), info).unwrap();
        m.program(0x10000, &vec![0x11u8; 0x10000]).unwrap();
        m.program(0x20000, &vec![0x22u8; 0x10000]).unwrap();
        // Over a block boundary: both blocks are erased and programmed again, whole.
        rewrite_range(&m, 0x1f000, &[0xabu8; 0x2000]).unwrap();
        let mut all = vec![0u8; 0x40000];
        m.read(0, &mut all).unwrap();
        assert!(all[..0x10000].iter().all(|&b| b == 0xff));
        assert!(all[0x10000..0x1f000].iter().all(|&b| b == 0x11));
        assert!(all[0x1f000..0x21000].iter().all(|&b| b == 0xab));
        assert!(all[0x21000..0x30000].iter().all(|&b| b == 0x22));
        // Two erases and two whole-block programs (after the two programs of the setup).
        assert_eq!(*m.ops.lock().unwrap(), (2, 4));
        // Rewriting what programming alone could not (bits 0 -> 1) works: it erases first.
        rewrite_range(&m, 0x1f000, &[0xffu8; 0x10]).unwrap();
        let bad = MtdImage::open(&dir.path().join("mtd1"), info)
            .unwrap()
            .with_bad_block(0x30000);
        let e = rewrite_range(&bad, 0x30000, &[0u8; 4])
            .unwrap_err()
            .to_string();
        assert!(e.contains("0x30000") && e.contains("bad"), "{e}");
        let e = rewrite_range(&m, 0x3ffff, &[0u8; 4])
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not fit"), "{e}");
    }
}
