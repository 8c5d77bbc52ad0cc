//! The digests of an image as it streams into a slot, computed on a second core while the
//! first receives and writes it: its SHA-256 (compared with the signed index) and a CRC-32
//! of each MiB (what the read-back from the medium is compared with, so the slot is not
//! hashed a second time with SHA-256: the stream's SHA-256 proves the bytes are the signed
//! image, the read-back only has to prove the medium holds the bytes that streamed).
//!
//! The bytes are copied into batches handed to one hashing thread through a small queue
//! (at most [`DEPTH`] batches waiting, so a slow hash holds the stream back instead of
//! buffering it). Where no thread can be started, the hashing happens inline.

use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The bytes each CRC covers: the image's first MiB, its second, and so on (the last one
/// shorter).
pub const CHUNK: u64 = 1 << 20;
/// Bytes handed to the hashing thread at a time.
const BATCH: usize = 256 * 1024;
/// Batches waiting for the hashing thread at most.
const DEPTH: usize = 2;

/// What the stream hashed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: [u8; 32],
    /// CRC-32 of each [`CHUNK`] of the stream, in order.
    pub crcs: Vec<u32>,
}

/// The hash state itself: SHA-256 of everything, CRC-32 per chunk.
struct Hashing {
    sha: Sha256,
    crc: crc32fast::Hasher,
    in_chunk: u64,
    crcs: Vec<u32>,
}

impl Hashing {
    fn new() -> Self {
        Hashing {
            sha: Sha256::new(),
            crc: crc32fast::Hasher::new(),
            in_chunk: 0,
            crcs: Vec::new(),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        chunk_crcs(&mut self.crc, &mut self.in_chunk, bytes, |c| {
            self.crcs.push(c)
        });
    }

    fn finish(mut self) -> Digests {
        if self.in_chunk > 0 {
            self.crcs.push(self.crc.finalize());
        }
        Digests {
            sha256: self.sha.finalize().into(),
            crcs: self.crcs,
        }
    }
}

/// Feed `bytes` to a running per-chunk CRC (`in_chunk` bytes of the current chunk taken
/// already), calling `done` with each chunk's CRC as it completes.
pub(super) fn chunk_crcs(
    crc: &mut crc32fast::Hasher,
    in_chunk: &mut u64,
    mut bytes: &[u8],
    mut done: impl FnMut(u32),
) {
    while !bytes.is_empty() {
        let take = (CHUNK - *in_chunk).min(bytes.len() as u64) as usize;
        crc.update(&bytes[..take]);
        *in_chunk += take as u64;
        bytes = &bytes[take..];
        if *in_chunk == CHUNK {
            done(std::mem::take(crc).finalize());
            *in_chunk = 0;
        }
    }
}

#[derive(Default)]
struct Queue {
    full: VecDeque<Vec<u8>>,
    free: Vec<Vec<u8>>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(guard).unwrap_or_else(|p| p.into_inner())
    }
}

enum Mode {
    Thread {
        shared: Arc<Shared>,
        batch: Vec<u8>,
        worker: Option<JoinHandle<Digests>>,
    },
    Inline(Hashing),
}

/// SHA-256 and per-chunk CRCs of a stream, fed in order.
pub struct StreamDigest {
    mode: Mode,
}

impl StreamDigest {
    pub fn new() -> Self {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let worker = std::thread::Builder::new().spawn(move || hash_batches(&theirs));
        let mode = match worker {
            Ok(worker) => Mode::Thread {
                shared,
                batch: Vec::with_capacity(BATCH),
                worker: Some(worker),
            },
            // No second thread (a limit on threads): the same hashing, inline.
            Err(_) => Mode::Inline(Hashing::new()),
        };
        StreamDigest { mode }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        match &mut self.mode {
            Mode::Inline(h) => h.update(bytes),
            Mode::Thread { shared, batch, .. } => {
                while !bytes.is_empty() {
                    let take = (BATCH - batch.len()).min(bytes.len());
                    batch.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if batch.len() == BATCH {
                        hand_over(shared, batch);
                    }
                }
            }
        }
    }

    /// Wait for the hashing to complete.
    pub fn finish(mut self) -> Digests {
        match &mut self.mode {
            Mode::Inline(h) => std::mem::replace(h, Hashing::new()).finish(),
            Mode::Thread {
                shared,
                batch,
                worker,
            } => {
                if !batch.is_empty() {
                    hand_over(shared, batch);
                }
                close(shared);
                let worker = worker.take().expect("joined only here or on drop");
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
        }
    }
}

impl Default for StreamDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StreamDigest {
    /// A stream abandoned midway (a failed transfer): the thread stops and is joined.
    fn drop(&mut self) {
        if let Mode::Thread { shared, worker, .. } = &mut self.mode {
            if let Some(worker) = worker.take() {
                close(shared);
                let _ = worker.join();
            }
        }
    }
}

/// Queue `batch` for the hashing thread (waiting while it is [`DEPTH`] batches behind) and
/// leave an empty buffer in its place.
fn hand_over(shared: &Shared, batch: &mut Vec<u8>) {
    let mut q = shared.lock();
    while q.full.len() >= DEPTH {
        q = shared.wait(q);
    }
    let empty = q.free.pop().unwrap_or_else(|| Vec::with_capacity(BATCH));
    q.full.push_back(std::mem::replace(batch, empty));
    drop(q);
    shared.changed.notify_all();
}

fn close(shared: &Shared) {
    shared.lock().closed = true;
    shared.changed.notify_all();
}

/// The hashing thread: every batch in order until the stream is closed.
fn hash_batches(shared: &Shared) -> Digests {
    let mut h = Hashing::new();
    loop {
        let mut q = shared.lock();
        let batch = loop {
            if let Some(b) = q.full.pop_front() {
                break Some(b);
            }
            if q.closed {
                break None;
            }
            q = shared.wait(q);
        };
        drop(q);
        let Some(mut batch) = batch else {
            return h.finish();
        };
        h.update(&batch);
        batch.clear();
        shared.lock().free.push(batch);
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(bytes: &[u8]) -> Digests {
        Digests {
            sha256: Sha256::digest(bytes).into(),
            crcs: bytes.chunks(CHUNK as usize).map(crc32fast::hash).collect(),
        }
    }

    #[test]
    fn digests_match_a_direct_computation_whatever_the_pieces() {
        let data: Vec<u8> = (0..(3 * CHUNK as usize + 12345))
            .map(|i| (i * 7 + i / 4099) as u8)
            .collect();
        for piece in [1usize, 4096, 65_537, BATCH, BATCH + 1, 5 << 20] {
            let mut d = StreamDigest::new();
            for p in data.chunks(piece) {
                d.update(p);
            }
            assert_eq!(d.finish(), reference(&data), "pieces of {piece}");
        }
        let mut inline = StreamDigest {
            mode: Mode::Inline(Hashing::new()),
        };
        inline.update(&data);
        assert_eq!(inline.finish(), reference(&data));
    }

    #[test]
    fn an_image_of_whole_chunks_has_no_empty_last_crc() {
        let data = vec![5u8; 2 * CHUNK as usize];
        let mut d = StreamDigest::new();
        d.update(&data);
        let got = d.finish();
        assert_eq!(got.crcs.len(), 2);
        assert_eq!(got, reference(&data));
        assert_eq!(StreamDigest::new().finish(), reference(&[]));
    }

    #[test]
    fn a_digest_dropped_midway_stops_its_thread() {
        let mut d = StreamDigest::new();
        d.update(&vec![1u8; 3 * BATCH]);
        drop(d);
    }
}
