use super::ToolError;
use crate::firmware::{Header, HEADER_LEN};
use crate::version::Version;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The firmware payload: what the bootloader loads from the slot after the header
    /// (a FIT, a kernel + rootfs blob, ...)
    payload: PathBuf,
    /// Image file to write (header + payload)
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Board id the firmware is for
    #[arg(long)]
    board: String,
    /// Firmware version
    #[arg(long)]
    version: Version,
    /// Build time in seconds since the Unix epoch. Default: $SOURCE_DATE_EPOCH, else now
    #[arg(long)]
    build_time: Option<u64>,
}

/// Wrap a payload in a fwguard firmware header: `HEADER_LEN` bytes that say board, version,
/// build time, payload size and sha256, followed by the payload unchanged.
pub fn run(a: Args) -> Result<(), ToolError> {
    let build_time = match a.build_time {
        Some(t) => t,
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(s) => s.trim().parse().map_err(|_| {
                ToolError(format!(
                    "SOURCE_DATE_EPOCH={s:?} is not a number of seconds"
                ))
            })?,
            Err(_) => crate::time::unix_now(),
        },
    };
    // One pass: the payload is copied and hashed together behind a placeholder header, which
    // is then overwritten with the real one (it holds the hash).
    let mut input = BufReader::new(
        File::open(&a.payload).map_err(|e| ToolError(format!("{}: {e}", a.payload.display())))?,
    );
    let mut header = Header {
        board: a.board,
        version: a.version,
        build_time,
        payload_size: u64::MAX,
        payload_sha256: [0xff; 32],
        extra: BTreeMap::new(),
    };
    // A header that cannot fit is refused before anything is written.
    header
        .encode()
        .map_err(|e| ToolError(format!("header: {e}")))?;
    let mut write = |header: &mut Header| -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(&a.output)?);
        out.write_all(&[0u8; HEADER_LEN])?;
        let mut hashing = HashingWriter {
            inner: out,
            hasher: Sha256::new(),
        };
        header.payload_size = std::io::copy(&mut input, &mut hashing)?;
        header.payload_sha256 = hashing.hasher.finalize().into();
        let mut file = hashing.inner.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header.encode().map_err(std::io::Error::other)?)?;
        file.sync_all()
    };
    if let Err(e) = write(&mut header) {
        let _ = std::fs::remove_file(&a.output);
        return Err(ToolError(format!("{}: {e}", a.output.display())));
    }
    let payload_size = header.payload_size;
    println!(
        "{}: {} bytes ({HEADER_LEN}-byte header + {payload_size}-byte payload)",
        a.output.display(),
        HEADER_LEN as u64 + payload_size
    );
    Ok(())
}

/// Writes through to `inner` and hashes what passes.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
