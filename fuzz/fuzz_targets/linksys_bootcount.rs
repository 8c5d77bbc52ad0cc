//! The Linksys `s_env` boot-count log on an arbitrary partition, in memory.
//!
//! The first byte picks a flash geometry (erase block, number of blocks, write page; NOR-like
//! pages of 1 byte to NAND-like pages, scaled down) and whether the rest is the partition's raw
//! contents or a list of counts laid out as records (a count of 0xFFFFFFFF leaves a hole: an
//! erased record followed by more); the next four bytes are a count to append. The partition is
//! an in-memory MTD that behaves as flash does (erase to 0xFF by aligned block, program by
//! aligned page, clearing bits only).
//!
//! Never a panic; `read` agrees with a reading of the format written out here and does not
//! change the flash; nothing is written to a log with foreign data; `reset` writes nothing
//! when the count is 0, reads back 0 when it succeeds, and succeeds whenever the log is
//! readable and everything from the place of its next record on is erased (or the log is
//! full); `append`, under the same condition, succeeds and reads back the appended count; and
//! a reset after it again reads back 0 when it succeeds.
#![no_main]

use fwguard::boot::linksys_bootcount::{BootCountError, BootCountLog, Count, MAGIC};
use fwguard::flash::mtd::{Mtd, MtdInfo};
use libfuzzer_sys::fuzz_target;
use std::io;
use std::sync::{Arc, Mutex};

struct MemMtd {
    info: MtdInfo,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Mtd for MemMtd {
    fn describe(&self) -> String {
        "s_env (in memory)".into()
    }
    fn path(&self) -> &std::path::Path {
        std::path::Path::new("s_env")
    }
    fn info(&self) -> io::Result<MtdInfo> {
        Ok(self.info)
    }
    fn is_bad(&self, _offset: u64) -> io::Result<bool> {
        Ok(false)
    }
    fn erase(&self, offset: u64) -> io::Result<()> {
        let es = self.info.erase_size;
        if !offset.is_multiple_of(es) || offset + es > self.info.size {
            return Err(io::Error::other(format!("erase at {offset:#x}")));
        }
        self.bytes.lock().unwrap()[offset as usize..(offset + es) as usize].fill(0xff);
        Ok(())
    }
    fn program(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let ws = self.info.write_size;
        let end = offset + data.len() as u64;
        if !offset.is_multiple_of(ws)
            || !(data.len() as u64).is_multiple_of(ws)
            || end > self.info.size
        {
            return Err(io::Error::other(format!(
                "program {:#x} at {offset:#x}",
                data.len()
            )));
        }
        let mut bytes = self.bytes.lock().unwrap();
        let old = &mut bytes[offset as usize..end as usize];
        if old.iter().zip(data).any(|(o, n)| o & n != *n) {
            return Err(io::Error::other("page not erased"));
        }
        old.copy_from_slice(data);
        Ok(())
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.info.size {
            return Err(io::Error::other("read past the end"));
        }
        buf.copy_from_slice(&self.bytes.lock().unwrap()[offset as usize..end as usize]);
        Ok(())
    }
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The format, read independently: records every `stride` bytes, the first erased magic ends
/// the log, any magic but the log's is foreign (Err with its offset).
fn reference(image: &[u8], stride: usize) -> Result<Count, u64> {
    let slots = image.len() / stride;
    let mut count = 0;
    for i in 0..slots {
        match word(image, i * stride) {
            0xffff_ffff => {
                return Ok(Count {
                    count,
                    records: i as u64,
                    full: false,
                })
            }
            MAGIC => count = word(image, i * stride + 4),
            _ => return Err((i * stride) as u64),
        }
    }
    Ok(Count {
        count,
        records: slots as u64,
        full: true,
    })
}

/// Whether the next record can be written without an erase: the log is full (it erases), or
/// everything from the next record's place to the end is erased.
fn room(image: &[u8], stride: usize, c: &Count) -> bool {
    c.full
        || image[c.records as usize * stride..]
            .iter()
            .all(|&b| b == 0xff)
}

fn check_read(
    log: &BootCountLog<MemMtd>,
    bytes: &Arc<Mutex<Vec<u8>>>,
    stride: usize,
) -> Option<Count> {
    let before = bytes.lock().unwrap().clone();
    let got = log.read();
    assert_eq!(*bytes.lock().unwrap(), before, "read changed the flash");
    match (got, reference(&before, stride)) {
        (Ok(c), Ok(r)) => {
            assert_eq!(c, r);
            Some(c)
        }
        (Err(BootCountError::BadMagic { offset, magic, .. }), Err(at)) => {
            assert_eq!(offset, at);
            assert_ne!(magic, MAGIC);
            None
        }
        (got, want) => panic!("read {got:?}, the format says {want:?}"),
    }
}

fn check_reset(log: &BootCountLog<MemMtd>, bytes: &Arc<Mutex<Vec<u8>>>, stride: usize) {
    let before = bytes.lock().unwrap().clone();
    let now = reference(&before, stride);
    match log.reset() {
        Ok(false) => {
            assert_eq!(now.map(|c| c.count), Ok(0));
            assert_eq!(
                *bytes.lock().unwrap(),
                before,
                "a count of 0 needs no write"
            );
        }
        Ok(true) => {
            assert_ne!(now.map(|c| c.count), Ok(0));
            let back = check_read(log, bytes, stride).expect("a reset log reads");
            assert_eq!(back.count, 0, "reset, but reads back {back:?}");
        }
        Err(e) => {
            if let Ok(c) = now {
                assert!(!room(&before, stride, &c), "reset of {c:?} failed: {e}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&geometry, rest)) = data.split_first() else {
        return;
    };
    let erase_size = [256u64, 512, 1024, 2048][(geometry & 3) as usize];
    let blocks = 1 + ((geometry >> 2) & 3) as u64;
    let write_size =
        [1u64, 4, 16, 32, 64, 256, 512, 2048][((geometry >> 4) & 7) as usize].min(erase_size);
    let records_mode = geometry & 0x80 != 0;
    let info = MtdInfo {
        size: erase_size * blocks,
        erase_size,
        write_size,
    };
    let stride = write_size.max(16) as usize;
    let (append_count, rest) = match rest.split_first_chunk::<4>() {
        Some((n, rest)) => (u32::from_le_bytes(*n), rest),
        None => (1, rest),
    };

    let mut image = vec![0xffu8; info.size as usize];
    if records_mode {
        for (i, c) in rest.chunks_exact(4).take(image.len() / stride).enumerate() {
            let c = u32::from_le_bytes(c.try_into().unwrap());
            if c != u32::MAX {
                let r = &mut image[i * stride..i * stride + 12];
                r[0..4].copy_from_slice(&MAGIC.to_le_bytes());
                r[4..8].copy_from_slice(&c.to_le_bytes());
                r[8..12].copy_from_slice(&MAGIC.wrapping_add(c).to_le_bytes());
            }
        }
    } else {
        let n = rest.len().min(image.len());
        image[..n].copy_from_slice(&rest[..n]);
    }

    let bytes = Arc::new(Mutex::new(image));
    let log = BootCountLog::new(MemMtd {
        info,
        bytes: bytes.clone(),
    });
    let Some(_) = check_read(&log, &bytes, stride) else {
        // Foreign data: nothing may be written to it.
        let before = bytes.lock().unwrap().clone();
        assert!(log.reset().is_err());
        assert!(log.append(append_count).is_err());
        assert_eq!(*bytes.lock().unwrap(), before, "wrote over foreign data");
        return;
    };
    check_reset(&log, &bytes, stride);

    // Play the bootloader: count a boot, then reset again.
    let Some(now) = check_read(&log, &bytes, stride) else {
        return;
    };
    let fits = room(&bytes.lock().unwrap(), stride, &now);
    match log.append(append_count) {
        Ok(()) => {
            // Data past the first erased record is not looked at until a record is written
            // before it (as in OpenWrt's `mtd resetbc`): then the log may read as foreign.
            let c = check_read(&log, &bytes, stride);
            if fits {
                let c = c.expect("a log appended to reads");
                let records = if now.full { 1 } else { now.records + 1 };
                assert_eq!(
                    (c.count, c.records),
                    (append_count, records),
                    "after {now:?}"
                );
            }
        }
        Err(e) => assert!(!fits, "append to {now:?} failed: {e}"),
    }
    check_reset(&log, &bytes, stride);
});
