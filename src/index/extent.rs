//! How a slot holding a release is checked once its firmware has run. A release whose image
//! holds a UBI area (the Linksys factory image: a kernel, then a UBI image with the root file
//! system) changes on the flash as soon as it boots: UBI rewrites its headers and resizes
//! volumes. Its index entry then lists extents to check instead of the whole image: raw
//! bytes of the slot (the kernel), and the content of UBI volumes inside it (the root). The
//! whole image is still what is written and read back at install.

use super::part::RangeDoc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One extent as the verified index describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub name: String,
    /// Where it starts in the slot; for a UBI volume, where the UBI area starts.
    pub offset: u64,
    pub size: u64,
    #[serde(with = "super::hex_sha")]
    pub sha256: [u8; 32],
    /// The extent is this UBI volume's content, not raw bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ubi: Option<UbiVolume>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UbiVolume {
    pub volume: String,
    /// The erase block size the UBI image was made for (`ubinize -p`).
    pub peb_size: u64,
}

impl From<&Extent> for super::part::RangeDoc {
    fn from(e: &Extent) -> super::part::RangeDoc {
        super::part::RangeDoc {
            name: Some(e.name.clone()),
            offset: (e.offset != 0).then_some(e.offset),
            size: e.size,
            sha256: hex::encode(e.sha256),
            ubi_volume: e.ubi.as_ref().map(|u| u.volume.clone()),
            peb_size: e.ubi.as_ref().map(|u| u.peb_size),
            ..Default::default()
        }
    }
}

/// The checks of a release's extents against its image of `image_size` bytes: names used
/// once, raw extents inside the image, one of them its start (what the bootloader loads),
/// UBI areas inside the image and aligned to their erase blocks.
pub(crate) fn check_extents(docs: Vec<RangeDoc>, image_size: u64) -> Result<Vec<Extent>, String> {
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    if docs.len() > super::part::MAX_PARTS {
        return Err(format!(
            "verify lists {} extents; at most {}",
            docs.len(),
            super::part::MAX_PARTS
        ));
    }
    let mut names = BTreeSet::new();
    let out = docs
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let shown = d.name.clone().unwrap_or_default();
            let at = |e: String| format!("verify #{} ({shown:?}): {e}", i + 1);
            d.only("an extent", &["name", "offset", "size", "sha256", "ubi_volume", "peb_size"])
                .map_err(at)?;
            let name = RangeDoc::needs(&d.name, "name").map_err(at)?.to_string();
            let offset = d.offset.unwrap_or(0);
            super::part::check_name("name", &name).map_err(at)?;
            if !names.insert(name.clone()) {
                return Err(at("another extent has this name".into()));
            }
            if d.size == 0 {
                return Err(at("size must be greater than 0".into()));
            }
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(&d.sha256, &mut sha256)
                .map_err(|_| at(format!("sha256 {:?} is not 64 hex digits", d.sha256)))?;
            let ubi = match (d.ubi_volume, d.peb_size) {
                (None, None) => {
                    if offset.checked_add(d.size).is_none_or(|end| end > image_size) {
                        return Err(at(format!(
                            "bytes {offset}..{} are not inside the {image_size}-byte image",
                            offset.saturating_add(d.size)
                        )));
                    }
                    None
                }
                (Some(volume), Some(peb_size)) => {
                    if volume.is_empty() || volume.len() > 127 {
                        return Err(at("ubi_volume must be a UBI volume name (1 to 127 bytes)".into()));
                    }
                    if !peb_size.is_power_of_two() || !(4096..=16 << 20).contains(&peb_size) {
                        return Err(at(format!("peb_size {peb_size} is not a power of two from 4 KiB to 16 MiB")));
                    }
                    if offset % peb_size != 0 || offset >= image_size {
                        return Err(at(format!(
                            "the UBI area must start inside the image at a multiple of peb_size, not at {offset}"
                        )));
                    }
                    Some(UbiVolume { volume, peb_size })
                }
                _ => return Err(at("ubi_volume and peb_size go together".into())),
            };
            Ok(Extent {
                name,
                offset,
                size: d.size,
                sha256,
                ubi,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if !out.iter().any(|e| e.offset == 0 && e.ubi.is_none()) {
        return Err(
            "verify must list the raw bytes at the start of the image (what the bootloader loads)"
                .into(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, offset: u64, size: u64) -> RangeDoc {
        RangeDoc {
            name: Some(name.into()),
            offset: Some(offset),
            size,
            sha256: "cd".repeat(32),
            ..RangeDoc::default()
        }
    }

    fn ubi(offset: u64, peb: u64) -> RangeDoc {
        RangeDoc {
            ubi_volume: Some("rootfs".into()),
            peb_size: Some(peb),
            ..raw("root", offset, 4096)
        }
    }

    #[test]
    fn extents_are_checked_against_the_image() {
        let ok = check_extents(
            vec![raw("kernel", 0, 1 << 20), ubi(1 << 20, 1 << 17)],
            3 << 20,
        )
        .unwrap();
        assert_eq!(ok[1].ubi.as_ref().unwrap().volume, "rootfs");
        assert_eq!(check_extents(vec![], 10).unwrap(), vec![]);
        let bad = |d: Vec<RangeDoc>| check_extents(d, 3 << 20).unwrap_err();
        let mut t = raw("k", 0, 10);
        t.target = Some("x".into());
        assert!(bad(vec![t]).contains("target is not a field of an extent"));
        assert!(bad(vec![raw("k", 0, 4 << 20)]).contains("not inside the"));
        assert!(bad(vec![raw("k", u64::MAX, 2)]).contains("not inside the"));
        assert!(bad(vec![raw("k", 0, 10), raw("k", 10, 10)]).contains("another extent"));
        assert!(bad(vec![ubi(1 << 20, 1 << 17)]).contains("the start of the image"));
        assert!(bad(vec![raw("k", 0, 10), ubi(1000, 1 << 17)]).contains("multiple of peb_size"));
        assert!(bad(vec![raw("k", 0, 10), ubi(1 << 20, 3000)]).contains("not a power of two"));
        assert!(bad(vec![
            raw("k", 0, 10),
            RangeDoc {
                peb_size: None,
                ..ubi(1 << 20, 1 << 17)
            }
        ])
        .contains("go together"));
        assert!(bad(vec![raw("k", 0, 0)]).contains("greater than 0"));
    }
}
