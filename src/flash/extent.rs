//! Checking a slot by extents instead of by its whole image (a release whose image holds a
//! UBI area, see `index::extent`): raw byte ranges of the slot, and UBI volumes' content.

use super::ubi_image::UbiArea;
use super::{Expected, FlashError, SlotDevice, VerifiedSlot};
use sha2::{Digest, Sha256};
use std::io::Read;

/// One extent to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckExtent {
    pub name: String,
    pub offset: u64,
    pub size: u64,
    pub sha256: [u8; 32],
    /// A UBI volume (its name and the area's erase block size) instead of raw bytes.
    pub ubi: Option<(String, u64)>,
}

/// The SHA-256 of `size` bytes of `dev` from `offset`.
pub fn hash_range(dev: &dyn SlotDevice, offset: u64, size: u64) -> Result<[u8; 32], FlashError> {
    let io = |source| FlashError::Io {
        slot: dev.slot(),
        device: dev.describe(),
        op: "read back",
        source,
    };
    let end = offset.checked_add(size).ok_or_else(|| FlashError::Verify {
        slot: dev.slot(),
        what: format!("an extent of {size} bytes at {offset:#x} runs past any device"),
    })?;
    let mut r = dev.reader()?.take(end);
    std::io::copy(&mut (&mut r).take(offset), &mut std::io::sink()).map_err(io)?;
    let mut h = Sha256::new();
    let got = std::io::copy(&mut r, &mut h).map_err(io)?;
    if got != size {
        return Err(FlashError::Verify {
            slot: dev.slot(),
            what: format!("only {got} of {size} bytes from {offset:#x} could be read"),
        });
    }
    Ok(h.finalize().into())
}

/// Check every extent of `dev`; then it holds the release whose whole image is `whole` as
/// far as anything the firmware does not change goes.
pub fn verify_extents(
    dev: &dyn SlotDevice,
    whole: &Expected,
    extents: &[CheckExtent],
) -> Result<VerifiedSlot, FlashError> {
    for e in extents {
        let got = match &e.ubi {
            None => hash_range(dev, e.offset, e.size)?,
            Some((volume, peb_size)) => UbiArea {
                dev,
                offset: e.offset,
                peb_size: *peb_size,
            }
            .hash_volume(volume, e.size)?,
        };
        if got != e.sha256 {
            let what = match &e.ubi {
                None => format!("bytes {:#x}..{:#x}", e.offset, e.offset + e.size),
                Some((volume, _)) => format!(
                    "the first {} bytes of UBI volume {volume:?} (UBI area at {:#x})",
                    e.size, e.offset
                ),
            };
            return Err(FlashError::Verify {
                slot: dev.slot(),
                what: format!(
                    "{} ({what}): sha256 {} does not match the expected {}",
                    e.name,
                    hex::encode(got),
                    hex::encode(e.sha256)
                ),
            });
        }
    }
    Ok(VerifiedSlot {
        slot: dev.slot(),
        size: whole.size,
        sha256: whole.sha256,
    })
}
