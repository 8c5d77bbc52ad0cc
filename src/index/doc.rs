//! The index document as written (serde, unknown fields refused) and its checks into
//! [`Release`] values. Only ever called on bytes whose signatures were verified.

use super::{Release, Rollout, Wave};
use crate::carry::CompatVersion;
use crate::time::parse_time;
use crate::version::Version;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexDoc {
    pub index: IndexMeta,
    #[serde(default, rename = "release", skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseDoc>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexMeta {
    pub format: u32,
    pub version: u64,
    pub issued_at: String,
    pub expires: String,
    /// Per board: the lowest version a device may run or be pinned to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub security_floor: BTreeMap<String, Version>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseDoc {
    pub version: Version,
    pub boards: Vec<String>,
    pub channels: Vec<String>,
    pub urls: Vec<String>,
    pub size: u64,
    pub sha256: HexSha,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_from: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutDoc>,
    /// The version of its configuration format (OpenWrt's `compat_version`; 1.0 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat_version: Option<CompatVersion>,
    /// What the vendor tells an owner whose firmware cannot take this release's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat_message: Option<String>,
    /// The file is a container (OpenWrt's sysupgrade image): its boot image is this range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<toml::Table>,
    /// Parts besides the boot image, each to its own target of the slot.
    #[serde(default, rename = "part", skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<toml::Table>,
    /// How a slot holding it is checked once it has run, when not by the whole image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<toml::Table>,
}

/// A release's sha256 as written, decoded where it lies in the text (an index holds
/// thousands); kept as text only when it is not 64 hex digits, for the error.
#[derive(Debug, Clone)]
pub(crate) enum HexSha {
    Digest([u8; 32]),
    Bad(String),
}

impl Serialize for HexSha {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HexSha::Digest(d) => s.serialize_str(&hex::encode(d)),
            HexSha::Bad(text) => s.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for HexSha {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = HexSha;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<HexSha, E> {
                let mut digest = [0u8; 32];
                Ok(match hex::decode_to_slice(s, &mut digest) {
                    Ok(()) => HexSha::Digest(digest),
                    Err(_) => HexSha::Bad(s.to_string()),
                })
            }
        }
        d.deserialize_str(Text)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolloutDoc {
    pub start: String,
    pub waves: Vec<WaveDoc>,
    #[serde(default)]
    pub halted: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaveDoc {
    pub after: String,
    pub percent: u8,
}

pub(crate) fn check_rollout(r: &RolloutDoc) -> Result<Rollout, String> {
    let start = parse_time(&r.start).map_err(|e| format!("rollout.start: {e}"))?;
    if r.waves.is_empty() {
        return Err("rollout.waves must list at least one wave".into());
    }
    let mut waves = Vec::new();
    for (i, w) in r.waves.iter().enumerate() {
        let after = humantime::parse_duration(&w.after)
            .map_err(|e| format!("rollout.waves[{i}].after {:?}: {e}", w.after))?
            .as_secs();
        if w.percent > 100 {
            return Err(format!(
                "rollout.waves[{i}].percent {} is over 100",
                w.percent
            ));
        }
        if let Some(prev) = waves.last() {
            let Wave {
                after: a,
                percent: p,
            } = *prev;
            if after < a || w.percent < p {
                return Err(format!("rollout.waves[{i}] must not come earlier or cover fewer devices than the wave before"));
            }
        }
        waves.push(Wave {
            after,
            percent: w.percent,
        });
    }
    Ok(Rollout {
        start,
        waves,
        halted: r.halted,
    })
}

pub(crate) fn check_release(r: ReleaseDoc) -> Result<Release, String> {
    let sha256 = match r.sha256 {
        HexSha::Digest(d) => d,
        HexSha::Bad(text) => return Err(format!("sha256 {text:?} is not 64 hex digits")),
    };
    if r.boards.is_empty() || r.boards.iter().any(String::is_empty) {
        return Err("boards must list at least one non-empty board id".into());
    }
    if r.channels.is_empty() {
        return Err("channels must list at least one channel".into());
    }
    if r.urls.is_empty() {
        return Err("urls must list at least one image URL".into());
    }
    if r.size == 0 {
        return Err("size must be greater than 0".into());
    }
    if r.pulled.as_deref() == Some("") {
        return Err("pulled must give a reason".into());
    }
    if let Some(m) = &r.compat_message {
        if m.trim().is_empty() || m.len() > MAX_COMPAT_MESSAGE {
            return Err(format!(
                "compat_message must be 1 to {MAX_COMPAT_MESSAGE} bytes of text"
            ));
        }
        if r.compat_version.is_none() {
            return Err("compat_message needs a compat_version".into());
        }
    }
    let rollout = r.rollout.as_ref().map(check_rollout).transpose()?;
    use super::part::RangeDoc;
    let read = |what: String, t: toml::Table| RangeDoc::read(t).map_err(|e| format!("{what}: {e}"));
    let boot = r
        .boot
        .map(|b| read("boot".into(), b).and_then(|b| super::part::check_boot(b, r.size)))
        .transpose()?;
    let parts = r
        .parts
        .into_iter()
        .enumerate()
        .map(|(i, t)| read(format!("part #{}", i + 1), t))
        .collect::<Result<Vec<_>, _>>()?;
    let verify = r
        .verify
        .into_iter()
        .enumerate()
        .map(|(i, t)| read(format!("verify #{}", i + 1), t))
        .collect::<Result<Vec<_>, _>>()?;
    let parts = super::part::check_parts(parts, r.size, boot.as_ref())?;
    let verify = super::extent::check_extents(verify, boot.as_ref().map_or(r.size, |b| b.size))?;
    Ok(Release {
        version: r.version,
        boards: r.boards,
        channels: r.channels,
        urls: r.urls,
        size: r.size,
        sha256,
        min_from: r.min_from,
        pulled: r.pulled,
        rollout,
        compat_version: r.compat_version,
        compat_message: r.compat_message,
        boot,
        parts,
        verify,
    })
}

/// Longest `compat_message` (it is shown to owners, and kept in the state's records).
const MAX_COMPAT_MESSAGE: usize = 1024;
