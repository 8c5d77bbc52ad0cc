//! `[board.targets.NAME]`: the further places of each slot that a release's parts go to
//! (a root file system partition, a UBI volume, a second kernel), one path per slot, of the
//! same kinds as the slots themselves (a file or block device, an MTD partition, a UBI
//! volume). Every path must be storage of its own: not the other slot's, not a slot's boot
//! device, not another target's.
//!
//! `ubi_volume = "rootfs"` makes a target on raw flash (`/dev/mtdN`) the root volume of a UBI,
//! as on OpenWrt's NAND boards: a part for it is written as a fresh UBI, the part as that
//! volume beside an empty `rootfs_data`, and the slot is verified by the volume's content,
//! which survives the firmware's kernel attaching the UBI and its overlay being written.

use super::{ConfigError, Validator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A target as configured: its name and its storage in each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPaths {
    pub name: String,
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
    /// The part is this volume of a fresh UBI on the (raw flash) partition.
    pub ubi_volume: Option<String>,
}

impl Validator<'_> {
    /// The board's targets, each path checked against the slots' and every other target's.
    pub(super) fn targets(
        &self,
        raw: Option<toml::Value>,
        slots: (&Path, &Path),
        sysfs: Option<&Path>,
    ) -> Result<Vec<TargetPaths>, ConfigError> {
        let sysfs = sysfs.map_or_else(|| PathBuf::from("/sys"), |p| self.path_rel(p.into()));
        // Every path seen so far, with the key that named it.
        let mut seen: Vec<(String, PathBuf)> = vec![
            ("board.slot_a".into(), slots.0.to_path_buf()),
            ("board.slot_b".into(), slots.1.to_path_buf()),
        ];
        let raw = match raw {
            None => BTreeMap::new(),
            Some(toml::Value::Table(t)) => t.into_iter().collect(),
            Some(v) => {
                return Err(self.err(
                    "board.targets",
                    format!(
                        "expected a table of targets ([board.targets.NAME]), found {}",
                        v.type_str()
                    ),
                ))
            }
        };
        let mut out = Vec::new();
        for (name, t) in raw {
            let key = format!("board.targets.{name}");
            crate::index::part::check_name("the target's name", &name)
                .map_err(|e| self.err(&key, e))?;
            // Read by hand, not by serde: one deserializer less in the router build.
            let toml::Value::Table(t) = t else {
                return Err(self.err(
                    &key,
                    format!(
                        "expected a table with slot_a and slot_b, found {}",
                        t.type_str()
                    ),
                ));
            };
            const KEYS: [&str; 3] = ["slot_a", "slot_b", "ubi_volume"];
            if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(self.err(
                    &key,
                    format!("unknown field `{k}`, expected `slot_a`, `slot_b` or `ubi_volume`"),
                ));
            }
            let ubi_volume = match t.get("ubi_volume") {
                None => None,
                Some(toml::Value::String(v)) => Some(
                    ubi_volume_name(v).map_err(|e| self.err(&format!("{key}.ubi_volume"), e))?,
                ),
                Some(v) => {
                    return Err(self.err(
                        &format!("{key}.ubi_volume"),
                        format!(
                            "expected a UBI volume name (a string), found {}",
                            v.type_str()
                        ),
                    ))
                }
            };
            let path = |k: &str| match t.get(k) {
                Some(toml::Value::String(p)) => Ok(PathBuf::from(p)),
                Some(v) => Err(self.err(
                    &format!("{key}.{k}"),
                    format!("expected a path (a string), found {}", v.type_str()),
                )),
                None => Err(self.err(&key, format!("missing field `{k}`"))),
            };
            let (slot_a, slot_b) = (path("slot_a")?, path("slot_b")?);
            let (a, b) = (self.path_rel(slot_a), self.path_rel(slot_b));
            for (k, p) in [("slot_a", &a), ("slot_b", &b)] {
                let here = format!("{key}.{k}");
                for (other, q) in &seen {
                    if let Some(why) = crate::board::identity::overlap(p, q, &sysfs) {
                        return Err(self.err(
                            &here,
                            format!("must be storage of its own, not the same as {other}: {why}, so writing one would overwrite the other"),
                        ));
                    }
                }
                seen.push((here, p.clone()));
            }
            out.push(TargetPaths {
                name,
                slot_a: a,
                slot_b: b,
                ubi_volume,
            });
        }
        Ok(out)
    }
}

/// A name the root volume of a fresh UBI may have.
fn ubi_volume_name(v: &str) -> Result<String, String> {
    let data = crate::flash::ubi_write::DATA_VOLUME;
    if v.is_empty() || v.len() > 127 || v.bytes().any(|b| b.is_ascii_control() || b == b'/') {
        Err(format!(
            "{v:?} is not a UBI volume name (1 to 127 bytes, no control characters or /)"
        ))
    } else if v == data {
        Err(format!("{v:?} is the data volume made fresh beside the root; name the root volume (OpenWrt: \"rootfs\")"))
    } else {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{BoardSettings, Settings};
    use std::path::Path;

    const UBOOT: &str = "profile = \"uboot\"\nid = \"u\"\nenv_device = \"e\"\nenv_size = 4096\nslot_a = \"/dev/mmcblk0p2\"\nslot_b = \"/dev/mmcblk0p3\"\n";

    /// The shipped example config with a uboot [board] section and `targets` after it.
    fn parse(targets: &str) -> Result<BoardSettings, String> {
        let example = include_str!("../../packaging/config.toml");
        let start = example.find("[board]").unwrap();
        let end = start + example[start..].find("\n[trial]").unwrap();
        let text = format!(
            "{}[board]\n{UBOOT}{targets}\n{}",
            &example[..start],
            &example[end..]
        );
        Settings::parse(Path::new("/etc/fwguard/config.toml"), &text)
            .map(|s| s.board)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn targets_are_read_and_each_is_storage_of_its_own() {
        let b = parse("[board.targets.rootfs]\nslot_a = \"/dev/mmcblk0p5\"\nslot_b = \"/dev/mmcblk0p6\"\n[board.targets.dtb]\nslot_a = \"dtb-a\"\nslot_b = \"dtb-b\"").unwrap();
        let BoardSettings::UBoot { targets, .. } = b else {
            panic!("{b:?}")
        };
        let names: Vec<_> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["dtb", "rootfs"]);
        assert_eq!(targets[0].slot_b, Path::new("/etc/fwguard/dtb-b"));
        assert_eq!(targets[1].ubi_volume, None);
        let b = parse("[board.targets.rootfs]\nslot_a = \"/dev/mtd4\"\nslot_b = \"/dev/mtd6\"\nubi_volume = \"rootfs\"").unwrap();
        let BoardSettings::UBoot { targets, .. } = b else {
            panic!("{b:?}")
        };
        assert_eq!(targets[0].ubi_volume.as_deref(), Some("rootfs"));
        for (text, key, problem) in [
            ("[board.targets.rootfs]\nslot_a = \"/dev/mmcblk0p3\"\nslot_b = \"/dev/mmcblk0p6\"", "board.targets.rootfs.slot_a", "not the same as board.slot_b"),
            ("[board.targets.rootfs]\nslot_a = \"/dev/mmcblk0p5\"\nslot_b = \"/dev/mmcblk0p5\"", "board.targets.rootfs.slot_b", "not the same as board.targets.rootfs.slot_a"),
            ("[board.targets.a]\nslot_a = \"x\"\nslot_b = \"y\"\n[board.targets.b]\nslot_a = \"z\"\nslot_b = \"x\"", "board.targets.b.slot_b", "not the same as board.targets.a.slot_a"),
            ("[board.targets.Root]\nslot_a = \"x\"\nslot_b = \"y\"", "board.targets.Root", "must be 1 to 32 of a-z"),
            ("[board.targets.rootfs]\nslot_a = \"x\"", "board.targets.rootfs", "missing field `slot_b`"),
            ("[board.targets.rootfs]\nslot_a = \"x\"\nslot_b = \"y\"\nslot_c = \"z\"", "board.targets.rootfs", "unknown field `slot_c`"),
            ("[board.targets.rootfs]\nslot_a = \"x\"\nslot_b = \"y\"\nubi_volume = \"rootfs_data\"", "board.targets.rootfs.ubi_volume", "the data volume"),
            ("[board.targets.rootfs]\nslot_a = \"x\"\nslot_b = \"y\"\nubi_volume = \"\"", "board.targets.rootfs.ubi_volume", "not a UBI volume name"),
            ("[board.targets.rootfs]\nslot_a = \"x\"\nslot_b = \"y\"\nubi_volume = 1", "board.targets.rootfs.ubi_volume", "expected a UBI volume name"),
            ("targets = 3", "board.targets", "expected a table of targets"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key) && e.contains(problem), "{text:?}: {e}");
        }
    }
}
