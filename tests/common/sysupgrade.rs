//! OpenWrt sysupgrade images for the tests: a tar made by the real `tar` holding
//! `sysupgrade-BOARD/CONTROL`, `.../kernel` and `.../root`, then the metadata trailer that
//! OpenWrt's `fwtool -I` appends (written here byte by byte, its CRC computed bit by bit,
//! independently of fwguard's code; fwtool itself is not packaged outside OpenWrt).

use super::tools::tool;
use std::path::Path;

/// fwtool's CRC-32: reflected, from 0xffffffff, not inverted at the end.
fn crc(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    c
}

/// The metadata OpenWrt's image build appends for `device` and `version`.
pub fn metadata(device: &str, version: &str, compat: &str) -> String {
    format!(
        r#"{{ "metadata_version": "1.1", "compat_version": "{compat}", "supported_devices":["{device}"], "version": {{ "dist": "OpenWrt", "version": "{version}", "revision": "r1", "target": "mvebu/cortexa9", "board": "{device}" }} }}"#
    )
}

/// A sysupgrade image for `board` of `kernel` and `root`, with `metadata` appended as
/// `fwtool -I` does when it is given.
pub fn sysupgrade_image(
    dir: &Path,
    board: &str,
    kernel: &[u8],
    root: &[u8],
    metadata: Option<&str>,
) -> Vec<u8> {
    let top = format!("sysupgrade-{board}");
    let d = dir.join(&top);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("CONTROL"), format!("BOARD={board}\n")).unwrap();
    std::fs::write(d.join("kernel"), kernel).unwrap();
    std::fs::write(d.join("root"), root).unwrap();
    let out = dir.join("sysupgrade.tar");
    tool(
        "tar",
        &[
            "-c",
            "-f",
            out.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            &format!("{top}/CONTROL"),
            &format!("{top}/kernel"),
            &format!("{top}/root"),
        ],
    );
    let mut img = std::fs::read(out).unwrap();
    if let Some(json) = metadata {
        img.extend_from_slice(&[0u8; 8]); // fwimage_header: version 0, flags 0
        img.extend_from_slice(json.as_bytes());
        let c = crc(&img);
        img.extend_from_slice(&0x4657_7830u32.to_be_bytes()); // "FWx0"
        img.extend_from_slice(&c.to_be_bytes());
        img.extend_from_slice(&[1, 0, 0, 0]); // FWIMAGE_INFO
        img.extend_from_slice(&((8 + json.len() + 16) as u32).to_be_bytes());
    }
    img
}
