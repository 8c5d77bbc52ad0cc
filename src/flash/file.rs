//! A slot backed by a regular file or a block device.

use super::{FlashError, SlotDevice, SlotSink};
use crate::slot::Slot;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

pub struct FileSlot {
    slot: Slot,
    path: PathBuf,
    /// Fixed capacity for regular files (their length); block devices report their own.
    capacity: Option<u64>,
}

impl FileSlot {
    pub fn new(slot: Slot, path: impl Into<PathBuf>) -> Self {
        FileSlot {
            slot,
            path: path.into(),
            capacity: None,
        }
    }

    pub fn with_capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    fn err(&self, op: &'static str, source: std::io::Error) -> FlashError {
        FlashError::Io {
            slot: self.slot,
            device: self.describe(),
            op,
            source,
        }
    }

    fn open_rw(&self) -> Result<File, FlashError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| self.err("open for writing", e))
    }
}

impl SlotDevice for FileSlot {
    fn slot(&self) -> Slot {
        self.slot
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn device_path(&self) -> &std::path::Path {
        &self.path
    }

    fn capacity(&self) -> Result<u64, FlashError> {
        if let Some(c) = self.capacity {
            return Ok(c);
        }
        let mut f = File::open(&self.path).map_err(|e| self.err("open", e))?;
        // Works for regular files and block devices alike.
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::End(0)).map_err(|e| self.err("size", e))
    }

    fn reader(&self) -> Result<Box<dyn Read + Send>, FlashError> {
        let f = File::open(&self.path).map_err(|e| self.err("open for reading", e))?;
        Ok(Box::new(std::io::BufReader::with_capacity(64 * 1024, f)))
    }

    fn drop_cache(&self, len: u64) -> Result<(), FlashError> {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        use std::os::fd::AsRawFd;
        let f = File::open(&self.path).map_err(|e| self.err("open for reading", e))?;
        let len = nix::libc::off_t::try_from(len).unwrap_or(nix::libc::off_t::MAX);
        // Clean pages of the range leave the cache (for a block device its own cache, for
        // a file the file's): the read-back then comes from the disk or eMMC.
        posix_fadvise(
            f.as_raw_fd(),
            0,
            len,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .map_err(|e| self.err("drop the read-back range from the page cache", e.into()))
    }

    fn open_sink(&self) -> Result<Box<dyn SlotSink + '_>, FlashError> {
        let capacity = self.capacity()?;
        let file = self.open_rw()?;
        Ok(Box::new(FileSink {
            slot: self,
            file,
            capacity,
            written_back: 0,
        }))
    }
}

/// Written bytes after which their writeback to the disk is started, so that the disk
/// works while the stream goes on and the sync at the end waits for little.
const WRITEBACK_STEP: u64 = 8 << 20;

struct FileSink<'a> {
    slot: &'a FileSlot,
    file: File,
    capacity: u64,
    /// Where the writeback started so far ends.
    written_back: u64,
}

impl FileSink<'_> {
    /// Start writing `from..to` back to the disk without waiting for it (`sync` waits).
    fn start_writeback(&mut self, from: u64, to: u64) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain system call on a descriptor this sink owns. A failure only
            // leaves the writeback to the final sync.
            unsafe {
                nix::libc::sync_file_range(
                    self.file.as_raw_fd(),
                    from as _,
                    (to - from) as _,
                    nix::libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.written_back = to;
    }
}

impl SlotSink for FileSink<'_> {
    fn resumable(&self) -> bool {
        true
    }

    fn invalidate(&mut self, head_len: usize, _size: u64) -> Result<(), FlashError> {
        self.write_at(0, &vec![0u8; head_len])?;
        self.sync()
    }

    fn finish(&mut self, head: &[u8]) -> Result<(), FlashError> {
        self.write_at(0, head)?;
        self.sync()
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), FlashError> {
        let end = offset + bytes.len() as u64;
        if end > self.capacity {
            return Err(FlashError::TooSmall {
                slot: self.slot.slot,
                device: self.slot.describe(),
                capacity: self.capacity,
                needed: end,
            });
        }
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| self.slot.err("write", e))?;
        if end >= self.written_back + WRITEBACK_STEP {
            self.start_writeback(self.written_back, end);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        self.file.sync_data().map_err(|e| self.slot.err("sync", e))
    }
}
