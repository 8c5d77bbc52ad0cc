use super::ToolError;
use crate::firmware::{Header, HEADER_LEN};
use crate::version::Version;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
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
            Err(_) => crate::index::unix_now(),
        },
    };
    let open =
        || File::open(&a.payload).map_err(|e| ToolError(format!("{}: {e}", a.payload.display())));
    let mut hasher = Sha256::new();
    let payload_size = std::io::copy(&mut BufReader::new(open()?), &mut hasher)
        .map_err(|e| ToolError(format!("{}: {e}", a.payload.display())))?;
    let header = Header {
        board: a.board,
        version: a.version,
        build_time,
        payload_size,
        payload_sha256: hasher.finalize().into(),
        extra: BTreeMap::new(),
    }
    .encode()
    .map_err(|e| ToolError(format!("header: {e}")))?;
    debug_assert_eq!(header.len(), HEADER_LEN);
    let write = || -> std::io::Result<u64> {
        let mut out = BufWriter::new(File::create(&a.output)?);
        out.write_all(&header)?;
        let copied = std::io::copy(&mut BufReader::new(File::open(&a.payload)?), &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(copied)
    };
    let copied = write().map_err(|e| ToolError(format!("{}: {e}", a.output.display())))?;
    if copied != payload_size {
        let _ = std::fs::remove_file(&a.output);
        return Err(ToolError(format!(
            "{} changed while it was read ({payload_size} then {copied} bytes)",
            a.payload.display()
        )));
    }
    println!(
        "{}: {} bytes ({HEADER_LEN}-byte header + {payload_size}-byte payload)",
        a.output.display(),
        HEADER_LEN as u64 + payload_size
    );
    Ok(())
}
