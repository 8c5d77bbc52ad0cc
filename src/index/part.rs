//! The further parts of a release: besides its boot image (which the slot holds from its
//! first byte), a release may list parts that go to other targets of the same slot (a root
//! file system, a second kernel, a UBI volume), each with its own sources, size and hash.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How many parts a release may list besides its boot image.
pub const MAX_PARTS: usize = 8;

/// One part as the verified index describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// What the part is, for people and the records (`root`).
    pub name: String,
    /// Where it goes: a target the board's configuration names (`[board.targets.NAME]`).
    pub target: String,
    /// As written in the index: absolute, or relative to the index URL (none when the part
    /// is inside the release's file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Where the part is in the release's file (a container such as OpenWrt's sysupgrade
    /// image), instead of a file of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub size: u64,
    #[serde(with = "super::hex_sha")]
    pub sha256: [u8; 32],
}

/// Where a container release's boot image is in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootRange {
    pub offset: u64,
    pub size: u64,
    #[serde(with = "super::hex_sha")]
    pub sha256: [u8; 32],
}

/// A boot range as written (`boot = { offset, size, sha256 }`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BootRangeDoc {
    pub offset: u64,
    pub size: u64,
    pub sha256: String,
}

/// A part as written (`[[release.part]]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartDoc {
    pub name: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub size: u64,
    pub sha256: String,
}

/// A name or a target: 1 to 32 of `a-z 0-9 _ -`, starting with a letter or digit.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?} must be 1 to 32 of a-z, 0-9, '_' and '-', starting with a letter or digit"
        ))
    }
}

fn sha(s: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| format!("sha256 {s:?} is not 64 hex digits"))?;
    Ok(out)
}

/// A container release's boot range, inside its file of `file_size` bytes.
pub(crate) fn check_boot(b: BootRangeDoc, file_size: u64) -> Result<BootRange, String> {
    let at = |e: String| format!("boot: {e}");
    if b.size == 0
        || b.offset
            .checked_add(b.size)
            .is_none_or(|end| end > file_size)
    {
        return Err(at(format!(
            "bytes {}..{} are not a range inside the {file_size}-byte file",
            b.offset,
            b.offset.saturating_add(b.size)
        )));
    }
    Ok(BootRange {
        offset: b.offset,
        size: b.size,
        sha256: sha(&b.sha256).map_err(at)?,
    })
}

/// The checks of a release's parts: names and targets each used once, sources, sizes and
/// hashes well-formed; in a container release (`boot` given) every part is a range of the
/// file, and no two ranges overlap.
pub(crate) fn check_parts(
    parts: Vec<PartDoc>,
    file_size: u64,
    boot: Option<&BootRange>,
) -> Result<Vec<Part>, String> {
    if parts.len() > MAX_PARTS {
        return Err(format!(
            "lists {} parts; at most {MAX_PARTS} besides the boot image",
            parts.len()
        ));
    }
    let (mut names, mut targets) = (BTreeSet::new(), BTreeSet::new());
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let at = |e: String| format!("part #{} ({:?}): {e}", i + 1, p.name);
            check_name("name", &p.name).map_err(at)?;
            check_name("target", &p.target).map_err(at)?;
            if !names.insert(p.name.clone()) {
                return Err(at("another part has this name".into()));
            }
            if !targets.insert(p.target.clone()) {
                return Err(at(format!(
                    "another part goes to target {:?} too",
                    p.target
                )));
            }
            if p.size == 0 {
                return Err(at("size must be greater than 0".into()));
            }
            match (boot.is_some(), p.offset, p.urls.is_empty()) {
                (false, None, false) => {}
                (false, None, true) => return Err(at("urls must list at least one URL".into())),
                (false, Some(_), _) => {
                    return Err(at(
                        "offset (a part inside the release's file) needs the release's boot range"
                            .into(),
                    ))
                }
                (true, Some(o), true) => {
                    if o.checked_add(p.size).is_none_or(|end| end > file_size) {
                        return Err(at(format!(
                            "bytes {o}..{} are not a range inside the {file_size}-byte file",
                            o.saturating_add(p.size)
                        )));
                    }
                }
                (true, _, _) => {
                    return Err(at(
                        "in a release with a boot range every part is a range of its file: give offset, not urls"
                            .into(),
                    ))
                }
            }
            let sha256 = sha(&p.sha256).map_err(at)?;
            Ok(Part {
                name: p.name,
                target: p.target,
                urls: p.urls,
                offset: p.offset,
                size: p.size,
                sha256,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .and_then(|parts| {
            let Some(b) = boot else { return Ok(parts) };
            let mut ranges: Vec<(u64, u64, &str)> = parts
                .iter()
                .map(|p| (p.offset.unwrap_or(0), p.size, p.name.as_str()))
                .chain([(b.offset, b.size, "the boot image")])
                .collect();
            ranges.sort();
            for w in ranges.windows(2) {
                if w[0].0 + w[0].1 > w[1].0 {
                    return Err(format!("{} and {} overlap in the file", w[0].2, w[1].2));
                }
            }
            Ok(parts)
        })
}

impl From<&Part> for PartDoc {
    fn from(p: &Part) -> PartDoc {
        PartDoc {
            name: p.name.clone(),
            target: p.target.clone(),
            urls: p.urls.clone(),
            offset: p.offset,
            size: p.size,
            sha256: hex::encode(p.sha256),
        }
    }
}

impl From<&BootRange> for BootRangeDoc {
    fn from(b: &BootRange) -> BootRangeDoc {
        BootRangeDoc {
            offset: b.offset,
            size: b.size,
            sha256: hex::encode(b.sha256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, target: &str) -> PartDoc {
        PartDoc {
            name: name.into(),
            target: target.into(),
            urls: vec!["images/root.squashfs".into()],
            offset: None,
            size: 4096,
            sha256: "ab".repeat(32),
        }
    }

    fn inside(name: &str, target: &str, offset: u64) -> PartDoc {
        PartDoc {
            urls: vec![],
            offset: Some(offset),
            ..doc(name, target)
        }
    }

    #[test]
    fn a_container_s_parts_are_ranges_of_its_file_that_do_not_overlap() {
        let boot = check_boot(
            BootRangeDoc {
                offset: 512,
                size: 1000,
                sha256: "01".repeat(32),
            },
            1 << 20,
        )
        .unwrap();
        let ok = check_parts(vec![inside("root", "rootfs", 2048)], 1 << 20, Some(&boot)).unwrap();
        assert_eq!(ok[0].offset, Some(2048));
        let bad = |p: Vec<PartDoc>| check_parts(p, 1 << 20, Some(&boot)).unwrap_err();
        assert!(bad(vec![inside("root", "rootfs", 1000)]).contains("overlap"));
        assert!(bad(vec![inside("root", "rootfs", (1 << 20) - 10)]).contains("not a range inside"));
        assert!(bad(vec![doc("root", "rootfs")]).contains("give offset, not urls"));
        let e = check_parts(vec![inside("root", "rootfs", 0)], 1 << 20, None).unwrap_err();
        assert!(e.contains("needs the release's boot range"), "{e}");
        let e = check_boot(
            BootRangeDoc {
                offset: 10,
                size: 1 << 20,
                sha256: "01".repeat(32),
            },
            1 << 20,
        )
        .unwrap_err();
        assert!(e.contains("boot: bytes 10.."), "{e}");
    }

    #[test]
    fn parts_are_checked() {
        let ok = check_parts(
            vec![doc("root", "rootfs"), doc("dtb", "dtb-part")],
            10,
            None,
        )
        .unwrap();
        assert_eq!((ok[0].name.as_str(), ok[0].sha256[0]), ("root", 0xab));
        let bad = |parts: Vec<PartDoc>| check_parts(parts, 10, None).unwrap_err();
        assert!(
            bad(vec![doc("root", "a"), doc("root", "b")]).contains("another part has this name")
        );
        assert!(bad(vec![doc("x", "a"), doc("y", "a")]).contains("goes to target \"a\" too"));
        assert!(bad(vec![doc("Root", "a")]).contains("name \"Root\" must be"));
        assert!(bad(vec![doc("r", "../a")]).contains("target \"../a\" must be"));
        assert!(bad(vec![doc("r", "")]).contains("target \"\""));
        assert!(bad(vec![PartDoc {
            size: 0,
            ..doc("r", "a")
        }])
        .contains("size must be greater than 0"));
        assert!(bad(vec![PartDoc {
            urls: vec![],
            ..doc("r", "a")
        }])
        .contains("urls must list"));
        assert!(bad(vec![PartDoc {
            sha256: "xyz".into(),
            ..doc("r", "a")
        }])
        .contains("not 64 hex digits"));
        let many: Vec<PartDoc> = (0..9)
            .map(|i| doc(&format!("p{i}"), &format!("t{i}")))
            .collect();
        assert!(bad(many).contains("at most 8"));
    }
}
