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
    /// As written in the index: absolute, or relative to the index URL.
    pub urls: Vec<String>,
    pub size: u64,
    #[serde(with = "super::hex_sha")]
    pub sha256: [u8; 32],
}

/// A part as written (`[[release.part]]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartDoc {
    pub name: String,
    pub target: String,
    pub urls: Vec<String>,
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

/// The checks of a release's parts: names and targets each used once, sources, sizes and
/// hashes well-formed.
pub(crate) fn check_parts(parts: Vec<PartDoc>) -> Result<Vec<Part>, String> {
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
            if p.urls.is_empty() {
                return Err(at("urls must list at least one URL".into()));
            }
            if p.size == 0 {
                return Err(at("size must be greater than 0".into()));
            }
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(&p.sha256, &mut sha256)
                .map_err(|_| at(format!("sha256 {:?} is not 64 hex digits", p.sha256)))?;
            Ok(Part {
                name: p.name,
                target: p.target,
                urls: p.urls,
                size: p.size,
                sha256,
            })
        })
        .collect()
}

impl From<&Part> for PartDoc {
    fn from(p: &Part) -> PartDoc {
        PartDoc {
            name: p.name.clone(),
            target: p.target.clone(),
            urls: p.urls.clone(),
            size: p.size,
            sha256: hex::encode(p.sha256),
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
            size: 4096,
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn parts_are_checked() {
        let ok = check_parts(vec![doc("root", "rootfs"), doc("dtb", "dtb-part")]).unwrap();
        assert_eq!((ok[0].name.as_str(), ok[0].sha256[0]), ("root", 0xab));
        let bad = |parts: Vec<PartDoc>| check_parts(parts).unwrap_err();
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
