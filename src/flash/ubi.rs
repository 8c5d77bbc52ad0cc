//! A slot that is a UBI volume (`/dev/ubiX_Y`): written with a volume update
//! (`UBI_IOCVOLUP` with the exact image size, then the image in order). The kernel marks the
//! volume as being updated until the last byte arrives, and a volume with an unfinished
//! update reads as corrupted and is never booted; fwguard withholds the image's last block
//! until the whole stream matched the signed index, so a wrong image never completes.
//!
//! The volume is behind [`UbiVolume`]: the kernel's character device (ioctl via nix), or an
//! image in a file with the same update semantics (a board described by files, tests).

use super::{FlashError, SlotDevice, SlotSink};
use crate::slot::Slot;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The end of the image held back until the stream verified.
const TAIL: u64 = 4096;

pub trait UbiVolume: Send + Sync {
    fn describe(&self) -> String;
    /// The device node or image file of the volume.
    fn path(&self) -> &Path;
    /// Usable bytes of the volume.
    fn capacity(&self) -> io::Result<u64>;
    /// Start a volume update of exactly `size` bytes: the volume is invalid from now until
    /// `size` bytes have been written.
    fn start_update(&self, size: u64) -> io::Result<()>;
    /// The next bytes of the update, in order.
    fn write(&self, bytes: &[u8]) -> io::Result<()>;
    /// Read the volume's data; fails while an update is unfinished.
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// The UBI volume a device node names (`/dev/ubi0_1` -> `ubi0_1`).
pub fn ubi_volume_name(device: &Path) -> Option<String> {
    let name = device.file_name()?.to_str()?;
    let (dev, vol) = name.strip_prefix("ubi")?.split_once('_')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(dev) && digits(vol)).then(|| name.to_string())
}

/// The UBI volume at `device`, if it names one: the kernel's character device, or a regular
/// file taken as an image of the volume (its capacity from sysfs `class/ubi/ubiX_Y/data_bytes`).
pub fn open_ubi(device: &Path, sysfs: &Path) -> Option<io::Result<Box<dyn UbiVolume>>> {
    let name = ubi_volume_name(device)?;
    if super::mtd::is_char_device(device) {
        return Some(Ok(Box::new(UbiChar {
            data_bytes: sysfs.join("class/ubi").join(&name).join("data_bytes"),
            file: super::LazyFile::new(device),
        })));
    }
    Some(UbiImage::open(device).map(|v| Box::new(v) as Box<dyn UbiVolume>))
}

mod ioctl {
    nix::ioctl_write_ptr!(ubi_vol_up, b'O', 0, i64);
}

/// The kernel's UBI volume character device. One descriptor, opened on first use, serves
/// the whole update: the kernel abandons an update (and marks the volume damaged) when the
/// descriptor that is writing it is closed early.
pub struct UbiChar {
    data_bytes: PathBuf,
    file: super::LazyFile,
}

impl UbiVolume for UbiChar {
    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    fn capacity(&self) -> io::Result<u64> {
        let text = std::fs::read_to_string(&self.data_bytes)?;
        text.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a number", self.data_bytes.display()),
            )
        })
    }

    fn start_update(&self, size: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let bytes = size as i64;
        // SAFETY: UBI_IOCVOLUP reads one int64 (the new data size).
        self.file
            .with(|f| Ok(unsafe { ioctl::ubi_vol_up(f.as_raw_fd(), &bytes) }?))?;
        Ok(())
    }

    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.file.with(|mut f| f.write_all(bytes))
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.with(|f| f.read_at(buf, offset))
    }
}

/// A UBI volume image in a file, with the update semantics of the kernel: a marker file
/// (`NAME.update`, holding the announced size and the bytes written so far) exists while an
/// update is unfinished, and reading fails meanwhile.
pub struct UbiImage {
    path: PathBuf,
}

impl UbiImage {
    pub fn open(path: &Path) -> io::Result<UbiImage> {
        std::fs::metadata(path)?;
        Ok(UbiImage {
            path: path.to_path_buf(),
        })
    }

    fn marker(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".update");
        self.path.with_file_name(name)
    }

    /// (announced size, written) of an unfinished update.
    pub fn pending(&self) -> io::Result<Option<(u64, u64)>> {
        match std::fs::read_to_string(self.marker()) {
            Ok(t) => {
                let mut it = t.split_whitespace().map(|n| n.parse::<u64>());
                match (it.next(), it.next()) {
                    (Some(Ok(size)), Some(Ok(done))) => Ok(Some((size, done))),
                    _ => Err(io::Error::other("damaged update marker")),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set_pending(&self, size: u64, done: u64) -> io::Result<()> {
        std::fs::write(self.marker(), format!("{size} {done}\n"))
    }
}

impl UbiVolume for UbiImage {
    fn describe(&self) -> String {
        format!("{} (UBI volume image)", self.path.display())
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn capacity(&self) -> io::Result<u64> {
        Ok(std::fs::metadata(&self.path)?.len())
    }

    fn start_update(&self, size: u64) -> io::Result<()> {
        if size > self.capacity()? {
            return Err(io::Error::other("update larger than the volume"));
        }
        self.set_pending(size, 0)?;
        // The kernel erases the volume's data when an update starts.
        let f = std::fs::OpenOptions::new().write(true).open(&self.path)?;
        f.write_all_at(&vec![0xff; self.capacity()? as usize], 0)?;
        f.sync_all()
    }

    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let (size, done) = self
            .pending()?
            .ok_or_else(|| io::Error::other("write without a volume update"))?;
        if done + bytes.len() as u64 > size {
            return Err(io::Error::other("write past the announced update size"));
        }
        let f = std::fs::OpenOptions::new().write(true).open(&self.path)?;
        f.write_all_at(bytes, done)?;
        f.sync_all()?;
        let done = done + bytes.len() as u64;
        if done == size {
            std::fs::remove_file(self.marker())
        } else {
            self.set_pending(size, done)
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((size, done)) = self.pending()? {
            return Err(io::Error::other(format!(
                "volume corrupted: update of {size} bytes stopped after {done}"
            )));
        }
        std::fs::File::open(&self.path)?.read_at(buf, offset)
    }
}

pub struct UbiSlot<V: UbiVolume> {
    slot: Slot,
    vol: V,
}

impl UbiVolume for Box<dyn UbiVolume> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn path(&self) -> &Path {
        (**self).path()
    }
    fn capacity(&self) -> io::Result<u64> {
        (**self).capacity()
    }
    fn start_update(&self, size: u64) -> io::Result<()> {
        (**self).start_update(size)
    }
    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        (**self).write(bytes)
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read(offset, buf)
    }
}

impl<V: UbiVolume> UbiSlot<V> {
    pub fn new(slot: Slot, vol: V) -> Self {
        UbiSlot { slot, vol }
    }

    fn err(&self, op: &'static str, source: io::Error) -> FlashError {
        FlashError::Io {
            slot: self.slot,
            device: self.vol.describe(),
            op,
            source,
        }
    }
}

impl<V: UbiVolume> SlotDevice for UbiSlot<V> {
    fn slot(&self) -> Slot {
        self.slot
    }

    fn describe(&self) -> String {
        self.vol.describe()
    }

    fn device_path(&self) -> &Path {
        self.vol.path()
    }

    fn capacity(&self) -> Result<u64, FlashError> {
        self.vol.capacity().map_err(|e| self.err("size", e))
    }

    fn reader(&self) -> Result<Box<dyn Read + Send + '_>, FlashError> {
        Ok(Box::new(UbiReader {
            vol: &self.vol,
            at: 0,
        }))
    }

    fn open_sink(&self) -> Result<Box<dyn SlotSink + '_>, FlashError> {
        Ok(Box::new(UbiSink {
            dev: self,
            size: 0,
            sent: 0,
            tail: Vec::new(),
        }))
    }
}

struct UbiReader<'a, V: UbiVolume> {
    vol: &'a V,
    at: u64,
}

impl<V: UbiVolume> Read for UbiReader<'_, V> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.vol.read(self.at, buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

struct UbiSink<'a, V: UbiVolume> {
    dev: &'a UbiSlot<V>,
    size: u64,
    /// Bytes handed to the volume.
    sent: u64,
    /// The end of the image, withheld until `finish`.
    tail: Vec<u8>,
}

impl<V: UbiVolume> SlotSink for UbiSink<'_, V> {
    fn sequential(&self) -> bool {
        true
    }

    fn invalidate(&mut self, _head_len: usize, size: u64) -> Result<(), FlashError> {
        self.size = size;
        self.dev
            .vol
            .start_update(size)
            .map_err(|e| self.dev.err("start volume update (UBI_IOCVOLUP)", e))
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), FlashError> {
        let at = self.sent + self.tail.len() as u64;
        if offset != at || at + bytes.len() as u64 > self.size {
            return Err(self.dev.err(
                "write",
                io::Error::other(format!(
                    "{} bytes at {offset}: a volume update takes the {} announced bytes in order (next {at})",
                    bytes.len(),
                    self.size
                )),
            ));
        }
        let hold_from = self.size.saturating_sub(TAIL);
        let end = at + bytes.len() as u64;
        let now = (hold_from.saturating_sub(at) as usize).min(bytes.len());
        if now > 0 {
            self.dev
                .vol
                .write(&bytes[..now])
                .map_err(|e| self.dev.err("write", e))?;
            self.sent += now as u64;
        }
        self.tail.extend_from_slice(&bytes[now..]);
        debug_assert_eq!(self.sent + self.tail.len() as u64, end);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        // Every write to the volume is synchronous in UBI.
        Ok(())
    }

    fn finish(&mut self, head: &[u8]) -> Result<(), FlashError> {
        debug_assert!(head.is_empty(), "a sequential sink holds nothing back");
        let tail = std::mem::take(&mut self.tail);
        self.dev
            .vol
            .write(&tail)
            .map_err(|e| self.dev.err("finish volume update", e))?;
        self.sent += tail.len() as u64;
        Ok(())
    }
}
