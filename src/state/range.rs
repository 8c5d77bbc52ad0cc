//! A range of a slot as the state records it: a part of a release in its target
//! ([`PartRecord`]: name, target, size, hash), an extent the slot is checked by once its
//! firmware has run ([`ExtentRecord`]: name, offset, size, hash, and a UBI volume's name and
//! erase block size), or a container's boot range ([`BootRecord`]: offset, size, hash). One
//! record type for the three, each field left out where it does not apply: the state file is
//! read in the router build, where every record type is a deserializer of its own.

use super::schema::sha256_hex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRecord {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A part's target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// An extent's or a boot range's start (in the slot; in a container's file).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    pub size: u64,
    #[serde(deserialize_with = "sha256_hex")]
    pub sha256: String,
    /// An extent that is a UBI volume's content: its name, in the UBI area at `offset` with
    /// erase blocks of `peb_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ubi_volume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peb_size: Option<u64>,
}

pub type PartRecord = RangeRecord;
pub type ExtentRecord = RangeRecord;
pub type BootRecord = RangeRecord;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl RangeRecord {
    /// A part's extent and hash, as a slot check needs them.
    pub fn expected(&self) -> Option<crate::flash::Expected> {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut sha256).ok()?;
        Some(crate::flash::Expected {
            size: self.size,
            sha256,
        })
    }

    /// An extent as a check takes it; None when the record is malformed.
    pub fn check(&self) -> Option<crate::flash::extent::CheckExtent> {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut sha256).ok()?;
        self.offset.checked_add(self.size)?;
        let ubi = match (&self.ubi_volume, self.peb_size) {
            (Some(v), Some(p)) if p.is_power_of_two() && p >= 4096 => Some((v.clone(), p)),
            (None, None) => None,
            _ => return None,
        };
        Some(crate::flash::extent::CheckExtent {
            name: self.name.clone(),
            offset: self.offset,
            size: self.size,
            sha256,
            ubi,
        })
    }
}

impl From<&crate::index::part::Part> for RangeRecord {
    fn from(p: &crate::index::part::Part) -> RangeRecord {
        RangeRecord {
            name: p.name.clone(),
            target: p.target.clone(),
            size: p.size,
            sha256: hex::encode(p.sha256),
            ..RangeRecord::default()
        }
    }
}

impl From<&crate::index::extent::Extent> for RangeRecord {
    fn from(e: &crate::index::extent::Extent) -> RangeRecord {
        RangeRecord {
            name: e.name.clone(),
            offset: e.offset,
            size: e.size,
            sha256: hex::encode(e.sha256),
            ubi_volume: e.ubi.as_ref().map(|u| u.volume.clone()),
            peb_size: e.ubi.as_ref().map(|u| u.peb_size),
            ..RangeRecord::default()
        }
    }
}

impl From<&crate::index::part::BootRange> for RangeRecord {
    fn from(b: &crate::index::part::BootRange) -> RangeRecord {
        RangeRecord {
            offset: b.offset,
            size: b.size,
            sha256: hex::encode(b.sha256),
            ..RangeRecord::default()
        }
    }
}
