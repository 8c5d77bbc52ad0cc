//! Slot devices and the ordered install pipeline.
//!
//! The order is enforced by types: [`begin`] invalidates the target slot and returns a
//! [`SlotWriter`]; the writer hashes every byte it writes and [`SlotWriter::finish`] gives a
//! [`Written`]; only [`Written::verify`] (which reads the slot back) or [`verify_existing`]
//! produces the [`VerifiedSlot`] that a bootloader needs to arm a slot.

pub mod digest;
pub mod extent;
pub mod file;
pub mod mtd;
pub mod mtd_char;
pub mod mtd_image;
pub mod mtd_slot;
pub mod mtd_window;
mod read;
pub mod ubi;
pub mod ubi_image;
pub mod ubi_root;
pub mod ubi_write;

use crate::slot::Slot;
use digest::StreamDigest;
use std::io::Read;

pub use file::FileSlot;
pub use mtd::{Mtd, MtdInfo};
pub use mtd_char::MtdChar;
pub use mtd_slot::MtdSlot;
use read::compare_chunks;
use read::read_back;
pub use read::{copy_prefix, hash_prefix, read_head, PrefixCopy};

/// Bytes at the start of a slot that are invalidated first (zeroed in a file, erased on raw
/// flash) and written last, so a slot never looks like a complete image until every byte is
/// in place (a UBI volume update needs none: the kernel keeps it invalid until its end).
pub const HEAD_LEN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("slot {slot} ({device}): {op}: {source}")]
    Io {
        slot: Slot,
        device: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("slot {slot} ({device}) holds {capacity} bytes; the image needs {needed}")]
    TooSmall {
        slot: Slot,
        device: String,
        capacity: u64,
        needed: u64,
    },
    #[error("image is larger than the {limit} bytes the index states")]
    Oversize { limit: u64 },
    #[error("slot {slot}: {what}")]
    Verify { slot: Slot, what: String },
    #[error("slot {slot}: firmware header: {problem}")]
    Header { slot: Slot, problem: String },
    #[error("refusing to write slot {slot}: it is {why}")]
    Protected { slot: Slot, why: &'static str },
}

/// A device node opened read-write on first use and kept open (one descriptor serves every
/// operation: a UBI volume update is tied to the descriptor that started it).
pub(crate) struct LazyFile {
    path: std::path::PathBuf,
    file: std::sync::Mutex<Option<std::fs::File>>,
}

impl LazyFile {
    pub(crate) fn new(path: impl Into<std::path::PathBuf>) -> Self {
        LazyFile {
            path: path.into(),
            file: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&std::fs::File) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path)?,
            );
        }
        f(guard.as_ref().expect("opened above"))
    }
}

/// One slot's storage: a file, block device or flash partition.
pub trait SlotDevice: Send + Sync {
    fn slot(&self) -> Slot;
    /// For people: the device and what it is ("… (NAND image)").
    fn describe(&self) -> String;
    /// What the slot is: its device node or image file, for telling whether two slots are
    /// the same storage (`board::identity`); never the display string.
    fn device_path(&self) -> &std::path::Path;
    fn capacity(&self) -> Result<u64, FlashError>;
    /// Reader positioned at the start of the slot.
    fn reader(&self) -> Result<Box<dyn Read + Send + '_>, FlashError>;
    /// Open the slot for writing; the sink never writes past the slot's capacity.
    fn open_sink(&self) -> Result<Box<dyn SlotSink + '_>, FlashError>;
    /// Make the next reads of the first `len` bytes come from the medium, not from a cache
    /// of what was written (a file or block device's page cache; the data must be synced).
    /// Reads of raw flash and UBI volumes go to the flash already.
    fn drop_cache(&self, _len: u64) -> Result<(), FlashError> {
        Ok(())
    }
    /// Whether every install writes it again, even when it reads back to the part's hash
    /// already (a fresh UBI: its data volume must start empty).
    fn always_written(&self) -> bool {
        false
    }
    /// When the target is the tail of the slot's boot device (a Linksys `rootfsN` inside
    /// `kernelN`): the bytes of the boot device before it, which a boot image must fit in.
    fn boot_room(&self) -> Option<u64> {
        None
    }
    /// Why nothing may be written into it now, if so (asked before an install writes
    /// anything, and again when it opens the target).
    fn write_refused(&self) -> Option<String> {
        None
    }
}

/// An open slot being written: invalidated first, then the image after its first
/// `head_len` bytes in order, then (only once all of it matched the index) the head.
pub trait SlotSink {
    /// Durably make the slot hold no valid image (its first `head_len` bytes no header);
    /// `size` bytes of image follow.
    fn invalidate(&mut self, head_len: usize, size: u64) -> Result<(), FlashError>;
    /// Whether the image must arrive strictly in order from offset 0 (a UBI volume update,
    /// which the kernel itself keeps invalid until its last byte): then nothing is held back
    /// (`head_len` 0) and the sink withholds the end of the image until `finish`.
    fn sequential(&self) -> bool {
        false
    }
    /// Whether an interrupted write can continue where a checkpoint left it (bytes written
    /// and synced stay in place, nothing else needs redoing). Raw flash and UBI updates start
    /// over.
    fn resumable(&self) -> bool {
        false
    }
    /// Write `bytes` at `offset` (at or after `head_len`, in order).
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), FlashError>;
    /// Make everything written so far durable.
    fn sync(&mut self) -> Result<(), FlashError>;
    /// Write the held-back head at offset 0 and make it durable: the slot is complete.
    fn finish(&mut self, head: &[u8]) -> Result<(), FlashError>;
}

/// What the signed index promises about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Invalidate `dev` and start writing an image of `expected.size` bytes into it.
pub fn begin<'a>(
    dev: &'a dyn SlotDevice,
    expected: &Expected,
) -> Result<SlotWriter<'a>, FlashError> {
    let capacity = dev.capacity()?;
    if expected.size > capacity {
        return Err(FlashError::TooSmall {
            slot: dev.slot(),
            device: dev.describe(),
            capacity,
            needed: expected.size,
        });
    }
    let mut sink = dev.open_sink()?;
    let head_len = if sink.sequential() {
        0
    } else {
        (HEAD_LEN as u64).min(capacity) as usize
    };
    sink.invalidate(head_len, expected.size)?;
    Ok(SlotWriter {
        slot: dev.slot(),
        sink,
        limit: expected.size,
        written: 0,
        head_len,
        head: Vec::with_capacity(head_len),
        digest: StreamDigest::new(),
    })
}

/// How far an interrupted write got: `written` bytes of the image, of which all after the
/// held-back `head` are durably in the slot. Persisted with the state, so a download cut off
/// by a reboot continues from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub written: u64,
    pub head: Vec<u8>,
}

/// Continue an interrupted write from `cp`: the slot's bytes after the head, up to
/// `cp.written`, are read back and hashed (with the head) as if they had just streamed. `None`
/// when the slot cannot resume (raw flash, UBI) or the checkpoint does not fit the slot: the
/// caller starts over.
pub fn resume<'a>(
    dev: &'a dyn SlotDevice,
    expected: &Expected,
    cp: &Checkpoint,
) -> Result<Option<SlotWriter<'a>>, FlashError> {
    let capacity = dev.capacity()?;
    let head_len = (HEAD_LEN as u64).min(capacity) as usize;
    let mut sink = dev.open_sink()?;
    if !sink.resumable()
        || cp.head.len() != head_len
        || cp.written < head_len as u64
        || cp.written > expected.size
        || expected.size > capacity
    {
        return Ok(None);
    }
    // The head was never written; make sure the slot still does not start with an image.
    sink.invalidate(head_len, expected.size)?;
    let mut digest = StreamDigest::new();
    digest.update(&cp.head);
    let at = read_back(
        dev,
        cp.written,
        "read back for resuming",
        |offset, bytes| {
            let skip = (head_len as u64)
                .saturating_sub(offset)
                .min(bytes.len() as u64) as usize;
            digest.update(&bytes[skip..]);
        },
    )?;
    if at != cp.written {
        return Ok(None);
    }
    Ok(Some(SlotWriter {
        slot: dev.slot(),
        sink,
        limit: expected.size,
        written: cp.written,
        head_len,
        head: cp.head.clone(),
        digest,
    }))
}

/// Writes an image into an invalidated slot, hashing as it goes (on a second core).
pub struct SlotWriter<'a> {
    slot: Slot,
    sink: Box<dyn SlotSink + 'a>,
    limit: u64,
    written: u64,
    /// Bytes held back from the start of the image until it verified.
    head_len: usize,
    head: Vec<u8>,
    digest: StreamDigest,
}

impl SlotWriter<'_> {
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Make everything written so far durable and say how far that is, for resuming; `None`
    /// while the head is incomplete or the slot cannot resume.
    pub fn checkpoint(&mut self) -> Result<Option<Checkpoint>, FlashError> {
        if !self.sink.resumable() || self.head.len() < self.head_len {
            return Ok(None);
        }
        self.sink.sync()?;
        Ok(Some(Checkpoint {
            written: self.written,
            head: self.head.clone(),
        }))
    }

    pub fn write(&mut self, mut chunk: &[u8]) -> Result<(), FlashError> {
        if self.written + chunk.len() as u64 > self.limit {
            return Err(FlashError::Oversize { limit: self.limit });
        }
        self.digest.update(chunk);
        if self.head.len() < self.head_len {
            let take = (self.head_len - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            self.written += take as u64;
            chunk = &chunk[take..];
        }
        if !chunk.is_empty() {
            self.sink.write_at(self.written, chunk)?;
            self.written += chunk.len() as u64;
        }
        Ok(())
    }

    /// Check what was streamed against `expected`; only if it matches, write the held-back
    /// head and make everything durable. On a mismatch the slot stays invalid.
    pub fn finish(mut self, expected: &Expected) -> Result<Written, FlashError> {
        self.sink.sync()?;
        let digests = self.digest.finish();
        let sha256 = digests.sha256;
        if self.written != expected.size {
            return Err(FlashError::Verify {
                slot: self.slot,
                what: format!(
                    "received {} bytes, the index states {}",
                    self.written, expected.size
                ),
            });
        }
        if sha256 != expected.sha256 {
            return Err(FlashError::Verify {
                slot: self.slot,
                what: format!(
                    "sha256 of the downloaded image is {}, the index states {}",
                    hex::encode(sha256),
                    hex::encode(expected.sha256)
                ),
            });
        }
        self.sink.finish(&self.head)?;
        Ok(Written {
            slot: self.slot,
            size: self.written,
            sha256,
            crcs: digests.crcs,
        })
    }
}

/// An image fully written to a slot whose stream matched the index, not yet read back.
#[derive(Debug)]
pub struct Written {
    slot: Slot,
    size: u64,
    sha256: [u8; 32],
    /// CRC-32 of each MiB of the stream (`digest::CHUNK`).
    crcs: Vec<u32>,
}

impl Written {
    /// Read the slot back from the medium and compare it, MiB by MiB, with what streamed
    /// (whose SHA-256 matched the signed index): a CRC-32 per MiB proves the medium holds
    /// those bytes without a second SHA-256 of the whole image.
    pub fn verify(
        self,
        dev: &dyn SlotDevice,
        expected: &Expected,
    ) -> Result<VerifiedSlot, FlashError> {
        debug_assert_eq!(dev.slot(), self.slot);
        debug_assert_eq!((self.size, self.sha256), (expected.size, expected.sha256));
        dev.drop_cache(self.size)?;
        compare_chunks(dev, self.size, &self.crcs)?;
        Ok(VerifiedSlot {
            slot: self.slot,
            size: self.size,
            sha256: self.sha256,
        })
    }
}

/// Read `expected.size` bytes back from the slot's medium and check their hash.
pub fn verify_existing(
    dev: &dyn SlotDevice,
    expected: &Expected,
) -> Result<VerifiedSlot, FlashError> {
    let slot = dev.slot();
    dev.drop_cache(expected.size)?;
    let sha256 = hash_prefix(dev, expected.size)?;
    if sha256 != expected.sha256 {
        return Err(FlashError::Verify {
            slot,
            what: format!(
                "read back sha256 {} does not match the expected {}",
                hex::encode(sha256),
                hex::encode(expected.sha256)
            ),
        });
    }
    Ok(VerifiedSlot {
        slot,
        size: expected.size,
        sha256,
    })
}

/// Proof that a slot holds exactly the expected image, read back from the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSlot {
    slot: Slot,
    size: u64,
    sha256: [u8; 32],
}

impl VerifiedSlot {
    pub fn slot(&self) -> Slot {
        self.slot
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }
}
