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

/// A range of bytes as the index writes it: a part (`[[release.part]]`), a container's boot
/// range (`boot = { ... }`) or a verify extent (`[[release.verify]]`). One document type for
/// the three (each a deserializer of its own in the router build); which fields each may have
/// is checked by [`RangeDoc::only`]. Read from the TOML table by hand ([`RangeDoc::read`]),
/// not by serde: a deserializer less in the router build.
#[derive(Debug, Clone, Default)]
pub(crate) struct RangeDoc {
    pub name: Option<String>,
    pub target: Option<String>,
    pub urls: Vec<String>,
    pub offset: Option<u64>,
    pub size: u64,
    pub sha256: String,
    pub ubi_volume: Option<String>,
    pub peb_size: Option<u64>,
}

impl RangeDoc {
    /// The range a TOML table writes; an unknown key, a missing one or a value of another
    /// type is an error naming it.
    pub(crate) fn read(t: toml::Table) -> Result<RangeDoc, String> {
        let mut d = RangeDoc::default();
        let (mut size, mut sha256) = (None, None);
        for (k, v) in t {
            let ty = v.type_str();
            let wrong = |want: &str| format!("{k}: expected {want}, found {ty}");
            let string = |v: toml::Value| match v {
                toml::Value::String(s) => Ok(s),
                _ => Err(wrong("a string")),
            };
            let number = |v: &toml::Value| match v {
                toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
                _ => Err(wrong("a non-negative integer")),
            };
            match k.as_str() {
                "name" => d.name = Some(string(v)?),
                "target" => d.target = Some(string(v)?),
                "ubi_volume" => d.ubi_volume = Some(string(v)?),
                "sha256" => sha256 = Some(string(v)?),
                "offset" => d.offset = Some(number(&v)?),
                "size" => size = Some(number(&v)?),
                "peb_size" => d.peb_size = Some(number(&v)?),
                "urls" => match v {
                    toml::Value::Array(a) => {
                        d.urls = a.into_iter().map(string).collect::<Result<_, _>>()?
                    }
                    _ => return Err(wrong("an array of strings")),
                },
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        d.size = size.ok_or("missing field `size`")?;
        d.sha256 = sha256.ok_or("missing field `sha256`")?;
        Ok(d)
    }

    /// The TOML table that writes this range (the fields it has).
    pub(crate) fn table(&self) -> toml::Table {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: toml::Value| {
            t.insert(k.into(), v);
        };
        if let Some(n) = &self.name {
            put("name", n.clone().into());
        }
        if let Some(n) = &self.target {
            put("target", n.clone().into());
        }
        if !self.urls.is_empty() {
            put("urls", self.urls.clone().into());
        }
        if let Some(o) = self.offset {
            put("offset", (o as i64).into());
        }
        put("size", (self.size as i64).into());
        put("sha256", self.sha256.clone().into());
        if let Some(v) = &self.ubi_volume {
            put("ubi_volume", v.clone().into());
        }
        if let Some(p) = self.peb_size {
            put("peb_size", (p as i64).into());
        }
        t
    }

    /// Refuse the fields that `what` does not have (`allowed` names the ones it has).
    pub(crate) fn only(&self, what: &str, allowed: &[&str]) -> Result<(), String> {
        let given = [
            ("name", self.name.is_some()),
            ("target", self.target.is_some()),
            ("urls", !self.urls.is_empty()),
            ("offset", self.offset.is_some()),
            ("ubi_volume", self.ubi_volume.is_some()),
            ("peb_size", self.peb_size.is_some()),
        ];
        match given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            Some((f, _)) => Err(format!(
                "{f} is not a field of {what} (it has {})",
                allowed.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// A field that must be given.
    pub(crate) fn needs<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str, String> {
        v.as_deref().ok_or_else(|| format!("missing {field}"))
    }
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
pub(crate) fn check_boot(b: RangeDoc, file_size: u64) -> Result<BootRange, String> {
    let at = |e: String| format!("boot: {e}");
    b.only("boot", &["offset", "size", "sha256"]).map_err(at)?;
    let offset = b.offset.ok_or_else(|| at("missing offset".into()))?;
    if b.size == 0 || offset.checked_add(b.size).is_none_or(|end| end > file_size) {
        return Err(at(format!(
            "bytes {offset}..{} are not a range inside the {file_size}-byte file",
            offset.saturating_add(b.size)
        )));
    }
    Ok(BootRange {
        offset,
        size: b.size,
        sha256: sha(&b.sha256).map_err(at)?,
    })
}

/// The checks of a release's parts: names and targets each used once, sources, sizes and
/// hashes well-formed; in a container release (`boot` given) every part is a range of the
/// file, and no two ranges overlap.
pub(crate) fn check_parts(
    parts: Vec<RangeDoc>,
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
            let shown = p.name.clone().unwrap_or_default();
            let at = |e: String| format!("part #{} ({shown:?}): {e}", i + 1);
            p.only("a part", &["name", "target", "urls", "offset", "size", "sha256"])
                .map_err(at)?;
            let name = RangeDoc::needs(&p.name, "name").map_err(at)?.to_string();
            let target = RangeDoc::needs(&p.target, "target").map_err(at)?.to_string();
            check_name("name", &name).map_err(at)?;
            check_name("target", &target).map_err(at)?;
            if !names.insert(name.clone()) {
                return Err(at("another part has this name".into()));
            }
            if !targets.insert(target.clone()) {
                return Err(at(format!("another part goes to target {target:?} too")));
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
                name,
                target,
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

impl From<&Part> for RangeDoc {
    fn from(p: &Part) -> RangeDoc {
        RangeDoc {
            name: Some(p.name.clone()),
            target: Some(p.target.clone()),
            urls: p.urls.clone(),
            offset: p.offset,
            size: p.size,
            sha256: hex::encode(p.sha256),
            ..RangeDoc::default()
        }
    }
}

impl From<&BootRange> for RangeDoc {
    fn from(b: &BootRange) -> RangeDoc {
        RangeDoc {
            offset: Some(b.offset),
            size: b.size,
            sha256: hex::encode(b.sha256),
            ..RangeDoc::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, target: &str) -> RangeDoc {
        RangeDoc {
            name: Some(name.into()),
            target: Some(target.into()),
            urls: vec!["images/root.squashfs".into()],
            size: 4096,
            sha256: "ab".repeat(32),
            ..RangeDoc::default()
        }
    }

    fn inside(name: &str, target: &str, offset: u64) -> RangeDoc {
        RangeDoc {
            urls: vec![],
            offset: Some(offset),
            ..doc(name, target)
        }
    }

    #[test]
    fn a_container_s_parts_are_ranges_of_its_file_that_do_not_overlap() {
        let boot = check_boot(
            RangeDoc {
                offset: Some(512),
                size: 1000,
                sha256: "01".repeat(32),
                ..RangeDoc::default()
            },
            1 << 20,
        )
        .unwrap();
        let ok = check_parts(vec![inside("root", "rootfs", 2048)], 1 << 20, Some(&boot)).unwrap();
        assert_eq!(ok[0].offset, Some(2048));
        let bad = |p: Vec<RangeDoc>| check_parts(p, 1 << 20, Some(&boot)).unwrap_err();
        assert!(bad(vec![inside("root", "rootfs", 1000)]).contains("overlap"));
        assert!(bad(vec![inside("root", "rootfs", (1 << 20) - 10)]).contains("not a range inside"));
        assert!(bad(vec![doc("root", "rootfs")]).contains("give offset, not urls"));
        let e = check_parts(vec![inside("root", "rootfs", 0)], 1 << 20, None).unwrap_err();
        assert!(e.contains("needs the release's boot range"), "{e}");
        let e = check_boot(
            RangeDoc {
                offset: Some(10),
                size: 1 << 20,
                sha256: "01".repeat(32),
                ..RangeDoc::default()
            },
            1 << 20,
        )
        .unwrap_err();
        assert!(e.contains("boot: bytes 10.."), "{e}");
        let e = check_boot(
            RangeDoc {
                name: Some("k".into()),
                offset: Some(10),
                size: 10,
                sha256: "01".repeat(32),
                ..RangeDoc::default()
            },
            1 << 20,
        )
        .unwrap_err();
        assert!(e.contains("name is not a field of boot"), "{e}");
        let mut ubi = doc("r", "a");
        ubi.ubi_volume = Some("rootfs".into());
        assert!(check_parts(vec![ubi], 10, None)
            .unwrap_err()
            .contains("ubi_volume is not a field of a part"));
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
        let bad = |parts: Vec<RangeDoc>| check_parts(parts, 10, None).unwrap_err();
        assert!(
            bad(vec![doc("root", "a"), doc("root", "b")]).contains("another part has this name")
        );
        assert!(bad(vec![doc("x", "a"), doc("y", "a")]).contains("goes to target \"a\" too"));
        assert!(bad(vec![doc("Root", "a")]).contains("name \"Root\" must be"));
        assert!(bad(vec![doc("r", "../a")]).contains("target \"../a\" must be"));
        assert!(bad(vec![doc("r", "")]).contains("target \"\""));
        assert!(bad(vec![RangeDoc {
            size: 0,
            ..doc("r", "a")
        }])
        .contains("size must be greater than 0"));
        assert!(bad(vec![RangeDoc {
            urls: vec![],
            ..doc("r", "a")
        }])
        .contains("urls must list"));
        assert!(bad(vec![RangeDoc {
            sha256: "xyz".into(),
            ..doc("r", "a")
        }])
        .contains("not 64 hex digits"));
        let many: Vec<RangeDoc> = (0..9)
            .map(|i| doc(&format!("p{i}"), &format!("t{i}")))
            .collect();
        assert!(bad(many).contains("at most 8"));
    }

    #[test]
    fn each_kind_of_range_has_only_its_own_fields() {
        let mut ubi = doc("r", "a");
        ubi.ubi_volume = Some("rootfs".into());
        let e = check_parts(vec![ubi], 1 << 20, None).unwrap_err();
        assert!(e.contains("ubi_volume is not a field of a part"), "{e}");
        let e = check_parts(
            vec![RangeDoc {
                target: None,
                ..doc("r", "a")
            }],
            1 << 20,
            None,
        )
        .unwrap_err();
        assert!(e.contains("missing target"), "{e}");
        let boot = RangeDoc {
            name: Some("k".into()),
            offset: Some(10),
            size: 10,
            sha256: "01".repeat(32),
            ..RangeDoc::default()
        };
        let e = check_boot(boot, 1 << 20).unwrap_err();
        assert!(e.contains("boot: name is not a field of boot"), "{e}");
        let e = check_boot(
            RangeDoc {
                offset: None,
                size: 10,
                sha256: "01".repeat(32),
                ..RangeDoc::default()
            },
            100,
        )
        .unwrap_err();
        assert!(e.contains("boot: missing offset"), "{e}");
    }

    #[test]
    fn a_range_is_read_from_its_table_by_hand_and_written_back_the_same() {
        let t: toml::Table = "name = \"root\"\ntarget = \"rootfs\"\nurls = [\"a\", \"b\"]\nsize = 10\nsha256 = \"ab\"".parse().unwrap();
        let d = RangeDoc::read(t.clone()).unwrap();
        assert_eq!(
            (d.name.as_deref(), d.urls.len(), d.size),
            (Some("root"), 2, 10)
        );
        assert_eq!(d.table(), t);
        for (text, words) in [
            (
                "size = 1\nsha256 = \"ab\"\nbogus = 1",
                "unknown field `bogus`",
            ),
            (
                "size = -1\nsha256 = \"ab\"",
                "size: expected a non-negative integer, found integer",
            ),
            (
                "size = 1\nsha256 = 3",
                "sha256: expected a string, found integer",
            ),
            (
                "size = 1\nsha256 = \"ab\"\nurls = \"x\"",
                "urls: expected an array of strings",
            ),
            ("sha256 = \"ab\"", "missing field `size`"),
            ("size = 1", "missing field `sha256`"),
        ] {
            let e = RangeDoc::read(text.parse().unwrap()).unwrap_err();
            assert!(e.contains(words), "{text}: {e}");
        }
    }
}
