//! The kernel's MTD character device (`/dev/mtdN`) through its ioctls (via nix).

use super::mtd::{Mtd, MtdInfo};
use std::io;
use std::path::PathBuf;

/// The kernel's MTD character device (`/dev/mtdN`), through its ioctls; opened on first use.
pub struct MtdChar {
    file: super::LazyFile,
}

mod ioctl {
    /// `struct mtd_info_user` of <mtd/mtd-abi.h>.
    #[repr(C)]
    #[derive(Default)]
    pub struct MtdInfoUser {
        pub kind: u8,
        pub flags: u32,
        pub size: u32,
        pub erasesize: u32,
        pub writesize: u32,
        pub oobsize: u32,
        pub padding: u64,
    }
    /// `struct erase_info_user`.
    #[repr(C)]
    pub struct EraseInfoUser {
        pub start: u32,
        pub length: u32,
    }
    nix::ioctl_read!(mem_get_info, b'M', 1, MtdInfoUser);
    nix::ioctl_write_ptr!(mem_erase, b'M', 2, EraseInfoUser);
    nix::ioctl_write_ptr!(mem_get_bad_block, b'M', 11, i64);
    nix::ioctl_write_ptr!(mem_set_bad_block, b'M', 12, i64);
}

impl MtdChar {
    pub fn new(path: impl Into<PathBuf>) -> MtdChar {
        MtdChar {
            file: super::LazyFile::new(path.into()),
        }
    }
}

fn fd(f: &std::fs::File) -> std::os::fd::RawFd {
    use std::os::fd::AsRawFd;
    f.as_raw_fd()
}

impl Mtd for MtdChar {
    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }

    fn path(&self) -> &std::path::Path {
        self.file.path()
    }

    fn info(&self) -> io::Result<MtdInfo> {
        let mut i = ioctl::MtdInfoUser::default();
        // SAFETY: MEMGETINFO fills a `struct mtd_info_user`, which `i` is.
        self.file
            .with(|f| Ok(unsafe { ioctl::mem_get_info(fd(f), &mut i) }?))?;
        Ok(MtdInfo {
            size: i.size.into(),
            erase_size: i.erasesize.into(),
            write_size: i.writesize.max(1).into(),
        })
    }

    fn is_bad(&self, offset: u64) -> io::Result<bool> {
        let off = offset as i64;
        // SAFETY: MEMGETBADBLOCK reads one loff_t; it returns 1 for a bad block.
        self.file
            .with(|f| Ok(unsafe { ioctl::mem_get_bad_block(fd(f), &off) }? > 0))
    }

    fn mark_bad(&self, offset: u64) -> io::Result<()> {
        let off = offset as i64;
        // SAFETY: MEMSETBADBLOCK reads one loff_t.
        self.file
            .with(|f| Ok(unsafe { ioctl::mem_set_bad_block(fd(f), &off) }?))?;
        Ok(())
    }

    fn erase(&self, offset: u64) -> io::Result<()> {
        let info = self.info()?;
        let e = ioctl::EraseInfoUser {
            start: offset as u32,
            length: info.erase_size as u32,
        };
        // SAFETY: MEMERASE reads one `struct erase_info_user`.
        self.file
            .with(|f| Ok(unsafe { ioctl::mem_erase(fd(f), &e) }?))?;
        Ok(())
    }

    fn program(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.with(|f| f.write_all_at(data, offset))
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.with(|f| f.read_exact_at(buf, offset))
    }
}
