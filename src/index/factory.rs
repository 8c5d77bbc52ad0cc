//! Vendor side: the extents a Linksys factory image is checked by once it has run (see
//! `index::extent`). A factory image is a kernel padded to the board's kernel size, then a
//! UBI image (the root file system in volume `rootfs`, an `autoresize` volume for the
//! overlay), written raw to `kernelN`; stock Linksys images end with a 256-byte footer:
//! `.LINKSYS.`, a version (8 bytes), the model (15, space-padded), the POSIX `cksum` CRC of
//! the image before the footer (8 hex digits), padding and a signature nobody checks.

use super::extent::{Extent, UbiVolume};
use crate::flash::ubi_image::UbiArea;
use crate::flash::FileSlot;
use sha2::{Digest, Sha256};
use std::path::Path;

pub const FOOTER_LEN: usize = 256;
const FOOTER_MAGIC: &[u8] = b".LINKSYS.";

/// A `.LINKSYS.` footer: the model it names and whether its CRC matches the image before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    pub model: String,
    pub crc_ok: bool,
}

/// The footer at the end of `image`, if it has one.
pub fn footer(image: &[u8]) -> Option<Footer> {
    let at = image.len().checked_sub(FOOTER_LEN)?;
    let f = &image[at..];
    if !f.starts_with(FOOTER_MAGIC) {
        return None;
    }
    let model = String::from_utf8_lossy(&f[17..32]).trim_end().to_string();
    let crc = std::str::from_utf8(&f[32..40])
        .ok()
        .and_then(|c| u32::from_str_radix(c, 16).ok());
    Some(Footer {
        model,
        crc_ok: crc == Some(posix_cksum(&image[..at])),
    })
}

/// The CRC that POSIX `cksum` prints: CRC-32/CKSUM over the data, then its length.
pub fn posix_cksum(data: &[u8]) -> u32 {
    fn feed(crc: u32, b: u8) -> u32 {
        let mut c = crc ^ (u32::from(b) << 24);
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
        }
        c
    }
    let mut crc = data.iter().fold(0u32, |c, &b| feed(c, b));
    let mut len = data.len() as u64;
    while len > 0 {
        crc = feed(crc, len as u8);
        len >>= 8;
    }
    !crc
}

/// The extents of the factory image at `path`: its kernel (the first `kernel_size` bytes,
/// raw) and the content of UBI volume `rootfs` in the UBI image after it. With `model`, the
/// image must end with a `.LINKSYS.` footer naming that model, with a matching CRC.
pub fn linksys_factory_extents(
    path: &Path,
    model: Option<&str>,
    kernel_size: u64,
    peb_size: u64,
) -> Result<Vec<Extent>, String> {
    let image = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(model) = model {
        match footer(&image) {
            None => {
                return Err(format!(
                    "{}: no .LINKSYS. footer at its end (the stock upgrader refuses it)",
                    path.display()
                ))
            }
            Some(f) if f.model != model => {
                return Err(format!(
                    "{}: its .LINKSYS. footer is for model {:?}, not {model:?}",
                    path.display(),
                    f.model
                ))
            }
            Some(f) if !f.crc_ok => {
                return Err(format!(
                    "{}: the CRC in its .LINKSYS. footer does not match the image",
                    path.display()
                ))
            }
            Some(_) => {}
        }
    }
    if !peb_size.is_power_of_two() || !(4096..=16 << 20).contains(&peb_size) {
        return Err(format!(
            "an erase block size of {peb_size} bytes is not a power of two from 4 KiB to 16 MiB"
        ));
    }
    if kernel_size == 0 || kernel_size >= image.len() as u64 || kernel_size % peb_size != 0 {
        return Err(format!(
            "kernel size {kernel_size:#x} must be a multiple of the erase block size {peb_size:#x} inside the {}-byte image",
            image.len()
        ));
    }
    let dev = FileSlot::new(crate::slot::Slot::A, path);
    let area = UbiArea {
        dev: &dev,
        offset: kernel_size,
        peb_size,
    };
    let root_len = area.volume_len("rootfs").map_err(|e| e.to_string())?;
    if root_len == 0 {
        return Err("UBI volume rootfs is empty".into());
    }
    let root_sha = area
        .hash_volume("rootfs", root_len)
        .map_err(|e| e.to_string())?;
    Ok(vec![
        Extent {
            name: "kernel".into(),
            offset: 0,
            size: kernel_size,
            sha256: Sha256::digest(&image[..kernel_size as usize]).into(),
            ubi: None,
        },
        Extent {
            name: "root".into(),
            offset: kernel_size,
            size: root_len,
            sha256: root_sha,
            ubi: Some(UbiVolume {
                volume: "rootfs".into(),
                peb_size,
            }),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cksum_is_posix_cksum() {
        // `printf '123456789' | cksum` prints 930766865.
        assert_eq!(posix_cksum(b"123456789"), 930_766_865);
        assert_eq!(posix_cksum(b""), 4_294_967_295);
    }
}
