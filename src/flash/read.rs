//! Reading a slot's first bytes back: to hash them, copy them (the archive), or resume a
//! download after them.

use super::{FlashError, SlotDevice};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// A slot's first `len` bytes, read in order a piece at a time.
struct Pieces<'a> {
    dev: &'a dyn SlotDevice,
    reader: std::io::Take<Box<dyn Read + Send + 'a>>,
    buf: Vec<u8>,
    op: &'static str,
    done: u64,
}

impl<'a> Pieces<'a> {
    fn new(dev: &'a dyn SlotDevice, len: u64, op: &'static str) -> Result<Self, FlashError> {
        Ok(Pieces {
            dev,
            reader: dev.reader()?.take(len),
            buf: vec![0u8; 64 * 1024],
            op,
            done: 0,
        })
    }

    /// The next piece, or `None` where the prefix (or the slot) ends.
    fn next(&mut self) -> Result<Option<&[u8]>, FlashError> {
        let n = self
            .reader
            .read(&mut self.buf)
            .map_err(|source| FlashError::Io {
                slot: self.dev.slot(),
                device: self.dev.describe(),
                op: self.op,
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.done += n as u64;
        Ok(Some(&self.buf[..n]))
    }
}

/// Hash the first `len` bytes of a slot.
pub fn hash_prefix(dev: &dyn SlotDevice, len: u64) -> Result<[u8; 32], FlashError> {
    copy_prefix(dev, len, &mut std::io::sink())
}

/// Copy the first `len` bytes of a slot to `out`, returning their SHA-256.
pub fn copy_prefix(
    dev: &dyn SlotDevice,
    len: u64,
    out: &mut dyn Write,
) -> Result<[u8; 32], FlashError> {
    let mut copy = PrefixCopy::new(dev, len)?;
    while let Some(piece) = copy.next_piece()? {
        out.write_all(piece).map_err(|source| FlashError::Io {
            slot: dev.slot(),
            device: dev.describe(),
            op: "write the copy",
            source,
        })?;
    }
    copy.finish()
}

/// A slot's first `len` bytes read piece by piece and hashed, for a caller that does
/// something between pieces (the daemon's archive copy lets its other tasks run).
pub struct PrefixCopy<'a> {
    pieces: Pieces<'a>,
    hasher: Sha256,
    len: u64,
}

impl<'a> PrefixCopy<'a> {
    pub fn new(dev: &'a dyn SlotDevice, len: u64) -> Result<PrefixCopy<'a>, FlashError> {
        Ok(PrefixCopy {
            pieces: Pieces::new(dev, len, "read back")?,
            hasher: Sha256::new(),
            len,
        })
    }

    /// The next piece (hashed already), or `None` at the end.
    pub fn next_piece(&mut self) -> Result<Option<&[u8]>, FlashError> {
        let piece = self.pieces.next()?;
        if let Some(bytes) = piece {
            self.hasher.update(bytes);
        }
        Ok(piece)
    }

    /// Bytes read so far.
    pub fn done(&self) -> u64 {
        self.pieces.done
    }

    /// The SHA-256 of all `len` bytes; an error if the slot ended before them.
    pub fn finish(self) -> Result<[u8; 32], FlashError> {
        let done = self.pieces.done;
        if done != self.len {
            return Err(FlashError::Verify {
                slot: self.pieces.dev.slot(),
                what: format!("slot ends after {done} bytes, expected {}", self.len),
            });
        }
        Ok(self.hasher.finalize().into())
    }
}

/// Read the first `len` bytes of a slot in order, handing each piece (with its offset) to
/// `f`; returns how many bytes there were (less than `len` when the slot ends first).
pub(super) fn read_back(
    dev: &dyn SlotDevice,
    len: u64,
    op: &'static str,
    mut f: impl FnMut(u64, &[u8]),
) -> Result<u64, FlashError> {
    let mut pieces = Pieces::new(dev, len, op)?;
    let mut at = 0;
    while let Some(bytes) = pieces.next()? {
        f(at, bytes);
        at += bytes.len() as u64;
    }
    Ok(at)
}

/// Read the first `len` bytes of a slot back and compare each MiB's CRC-32 with `crcs`
/// (what was streamed into it); the first MiB that differs is the error.
pub(super) fn compare_chunks(
    dev: &dyn SlotDevice,
    len: u64,
    crcs: &[u32],
) -> Result<(), FlashError> {
    use super::digest::{chunk_crcs, CHUNK};
    let mut crc = crc32fast::Hasher::new();
    let (mut in_chunk, mut index, mut first_bad) = (0, 0usize, None);
    let mut check = |c: u32| {
        if first_bad.is_none() && crcs.get(index) != Some(&c) {
            first_bad = Some(index);
        }
        index += 1;
    };
    let at = read_back(dev, len, "read back", |_, bytes| {
        chunk_crcs(&mut crc, &mut in_chunk, bytes, &mut check)
    })?;
    if in_chunk > 0 {
        check(crc.finalize());
    }
    // A slot that ends early differs from the first MiB it lacks.
    match first_bad.or((at != len || index != crcs.len()).then_some(index)) {
        None => Ok(()),
        Some(i) => {
            let start = i as u64 * CHUNK;
            Err(FlashError::Verify {
                slot: dev.slot(),
                what: format!(
                    "read back from the medium: bytes {start}..{} differ from what was written",
                    (start + CHUNK).min(len)
                ),
            })
        }
    }
}

/// Read the first `len` bytes of a slot (for headers).
pub fn read_head(dev: &dyn SlotDevice, len: usize) -> Result<Vec<u8>, FlashError> {
    let mut buf = Vec::with_capacity(len);
    dev.reader()?
        .take(len as u64)
        .read_to_end(&mut buf)
        .map_err(|source| FlashError::Io {
            slot: dev.slot(),
            device: dev.describe(),
            op: "read header",
            source,
        })?;
    Ok(buf)
}
