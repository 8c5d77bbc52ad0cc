//! Vendor side: where the kernel and the root file system are in an OpenWrt sysupgrade
//! image (a tar holding `sysupgrade-BOARD/CONTROL`, `.../kernel` and `.../root`, followed by
//! the metadata trailer that OpenWrt's `fwtool -I` appends: a JSON document with
//! `supported_devices`, `version` and `compat_version`). The index then lists the kernel as
//! the release's boot range and the root as a part inside the file, so the device streams
//! the file and never parses it.

use std::io::Read;
use std::path::Path;

const FWIMAGE_MAGIC: u32 = 0x4657_7830; // "FWx0"
const TRAILER: usize = 16;
const TYPE_SIGNATURE: u8 = 0;
const TYPE_INFO: u8 = 1;

/// What a sysupgrade image holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysupgrade {
    /// The board name in its member paths (`sysupgrade-BOARD/`).
    pub board: String,
    /// (offset, size) of the kernel's and the root's bytes in the file.
    pub kernel: (u64, u64),
    pub root: (u64, u64),
    /// The fwtool metadata, if the image has it.
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub supported_devices: Vec<String>,
    #[serde(default)]
    pub compat_version: Option<String>,
    /// What owners are told when their firmware cannot take it (`compat_message`).
    #[serde(default)]
    pub compat_message: Option<String>,
    #[serde(default)]
    pub version: Option<MetadataVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct MetadataVersion {
    #[serde(default)]
    pub dist: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub board: Option<String>,
}

/// fwtool's CRC-32: from `~0`, without the final inversion.
fn fwtool_crc(b: &[u8]) -> u32 {
    !crc32fast::hash(b)
}

/// The fwtool metadata at the end of `file`: None when it has no trailer; an error when a
/// trailer is there but damaged.
pub fn metadata(file: &[u8]) -> Result<Option<Metadata>, String> {
    let mut end = file.len();
    loop {
        if end < TRAILER {
            return Ok(None);
        }
        let t = &file[end - TRAILER..end];
        let be = |at: usize| u32::from_be_bytes(t[at..at + 4].try_into().expect("4 bytes"));
        if be(0) != FWIMAGE_MAGIC {
            return Ok(None);
        }
        let size = be(12) as usize;
        if size < TRAILER || size > end {
            return Err(format!(
                "fwtool trailer: a size of {size} bytes does not fit the file"
            ));
        }
        if be(4) != fwtool_crc(&file[..end - TRAILER]) {
            return Err("fwtool trailer: its CRC does not match the image".into());
        }
        let data = &file[end - size..end - TRAILER];
        match t[8] {
            TYPE_SIGNATURE => end -= size,
            TYPE_INFO => {
                let json = data.get(8..).ok_or("fwtool metadata: no header")?;
                return serde_json::from_slice(json)
                    .map(Some)
                    .map_err(|e| format!("fwtool metadata: {e}"));
            }
            other => return Err(format!("fwtool trailer of unknown type {other}")),
        }
    }
}

/// Read the sysupgrade image at `path`.
pub fn read(path: &Path) -> Result<Sysupgrade, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let bytes = std::fs::read(path).map_err(err)?;
    let mut archive = tar::Archive::new(&bytes[..]);
    let (mut board, mut kernel, mut root) = (None, None, None);
    for entry in archive.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        let name = entry.path().map_err(err)?.to_string_lossy().into_owned();
        let Some((dir, member)) = name.split_once('/') else {
            continue;
        };
        let Some(b) = dir.strip_prefix("sysupgrade-") else {
            continue;
        };
        let range = (entry.raw_file_position(), entry.size());
        match member {
            "kernel" => kernel = Some(range),
            "root" => root = Some(range),
            _ => {
                std::io::copy(&mut entry.by_ref(), &mut std::io::sink()).map_err(err)?;
                continue;
            }
        }
        if board.as_ref().is_some_and(|x: &String| x != b) {
            return Err(format!(
                "{}: members for two boards ({} and {b})",
                path.display(),
                board.unwrap_or_default()
            ));
        }
        board = Some(b.to_string());
    }
    let missing = |m: &str| format!("{}: no sysupgrade-BOARD/{m} in the tar", path.display());
    let (kernel, root) = (
        kernel.ok_or_else(|| missing("kernel"))?,
        root.ok_or_else(|| missing("root"))?,
    );
    if kernel.1 == 0 || root.1 == 0 {
        return Err(format!("{}: an empty kernel or root", path.display()));
    }
    Ok(Sysupgrade {
        board: board.unwrap_or_default(),
        kernel,
        root,
        metadata: metadata(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
    })
}

/// Make `rel` the release of sysupgrade image `s` (whose bytes are `bytes`): its kernel the
/// boot range, its root a part for `root_target`, each with the hash of its bytes.
pub fn fill(rel: &mut super::build::NewRelease, s: &Sysupgrade, bytes: &[u8], root_target: &str) {
    use sha2::Digest;
    let range = |(at, len): (u64, u64)| -> [u8; 32] {
        sha2::Sha256::digest(&bytes[at as usize..(at + len) as usize]).into()
    };
    rel.boot = Some(super::part::BootRange {
        offset: s.kernel.0,
        size: s.kernel.1,
        sha256: range(s.kernel),
    });
    rel.parts = vec![super::part::Part {
        name: "root".into(),
        target: root_target.to_string(),
        urls: Vec::new(),
        offset: Some(s.root.0),
        size: s.root.1,
        sha256: range(s.root),
    }];
}
