//! `[settings]`: how the owner's settings reach the firmware being installed. Read by hand
//! ([`Keys`]); every error names the key.

use super::keys::Keys;
use super::{BoardSettings, ConfigError, Validator};
use crate::carry::plan::{
    CarryPlan, Target, BACKUP_PLACEHOLDER, OPENWRT_BACKUP, OPENWRT_DATA_VOLUME, TARGET_PLACEHOLDER,
};
use std::path::{Path, PathBuf};

const MODES: &str = "\"openwrt\", \"keep\", \"command\" or \"none\"";

impl BoardSettings {
    /// The names of the board's targets, where a release's parts (and the settings) go.
    pub fn target_names(&self) -> Vec<String> {
        match self {
            #[cfg(feature = "demo")]
            BoardSettings::Sim { .. } => vec![crate::sim::ROOTFS_TARGET.into()],
            BoardSettings::Linksys(_) => vec![crate::board::linksys::ROOT_TARGET.into()],
            BoardSettings::UBoot { targets, .. } => {
                targets.iter().map(|t| t.name.clone()).collect()
            }
            BoardSettings::Grub(o) | BoardSettings::Script(o) => {
                o.targets.iter().map(|t| t.name.clone()).collect()
            }
        }
    }

    /// Where the device nodes are (`ubi_ctrl`, the `ubiN` of an attached UBI).
    pub fn dev_dir(&self) -> &Path {
        match self {
            BoardSettings::Linksys(l) => &l.dev,
            _ => Path::new("/dev"),
        }
    }
}

impl Validator<'_> {
    /// The carry plan; without a `[settings]` section, the Linksys profile (OpenWrt's dual
    /// firmware) carries OpenWrt's backup, every other profile nothing.
    pub(super) fn carry(
        &self,
        raw: Option<toml::Table>,
        board: &BoardSettings,
    ) -> Result<CarryPlan, ConfigError> {
        let linksys = matches!(board, BoardSettings::Linksys(_));
        let Some(table) = raw else {
            return Ok(if linksys {
                openwrt(
                    OPENWRT_BACKUP.map(String::from).to_vec(),
                    OPENWRT_DATA_VOLUME.into(),
                    default_target(board),
                )
            } else {
                CarryPlan::Nothing
            });
        };
        let mut k = Keys::new(table);
        let e = |e| self.key_error("settings", e);
        let mode = k.string("mode").map_err(e)?;
        let backup_command = k.strings("backup_command").map_err(e)?;
        let volume = k.string("volume").map_err(e)?;
        let keep = k.strings("keep").map_err(e)?;
        let carry = k.strings("carry").map_err(e)?;
        let target = k.string("target").map_err(e)?;
        let fstype = k.string("fstype").map_err(e)?;
        k.done().map_err(e)?;

        let mode = mode.unwrap_or_else(|| if linksys { "openwrt" } else { "none" }.into());
        // Keys that the mode does not use are refused: a keep list that does nothing is a
        // mistake the owner should hear of.
        let unused = |key: &str, given: bool, modes: &str| -> Result<(), ConfigError> {
            if given {
                return Err(self.err(
                    &format!("settings.{key}"),
                    format!("is used only with mode = {modes}, not {mode:?}"),
                ));
            }
            Ok(())
        };
        unused(
            "backup_command",
            backup_command.is_some() && mode != "openwrt",
            "\"openwrt\"",
        )?;
        unused(
            "volume",
            volume.is_some() && mode != "openwrt",
            "\"openwrt\"",
        )?;
        unused("keep", keep.is_some() && mode != "keep", "\"keep\"")?;
        unused("carry", carry.is_some() && mode != "command", "\"command\"")?;
        unused(
            "fstype",
            fstype.is_some() && !matches!(mode.as_str(), "keep" | "command"),
            "\"keep\" or \"command\"",
        )?;
        unused(
            "target",
            target.is_some() && mode == "none",
            "\"openwrt\", \"keep\" or \"command\"",
        )?;

        let names = board.target_names();
        let target = match target {
            Some(t) if !names.contains(&t) => {
                return Err(self.err(
                    "settings.target",
                    format!(
                        "{t:?} is not a target of the board ({}); the settings go to one of [board.targets]",
                        if names.is_empty() { "it has none".to_string() } else { format!("it has {}", names.join(", ")) }
                    ),
                ))
            }
            Some(t) => Some(t),
            None if linksys => Some(default_target(board)),
            None => None,
        };
        let need_target = || {
            target.clone().ok_or_else(|| {
                self.err("settings.target", format!("mode = {mode:?} needs the board target whose file system takes the settings ([board.targets.NAME])"))
            })
        };
        let command =
            |key: &str, c: Option<Vec<String>>, placeholder: &str, default: Option<Vec<String>>| {
                let c = c.or(default).ok_or_else(|| {
                    self.err(
                        &format!("settings.{key}"),
                        format!("mode = {mode:?} needs it"),
                    )
                })?;
                if c.first().is_none_or(|p| p.is_empty()) {
                    return Err(self.err(&format!("settings.{key}"), "must name a program"));
                }
                if !c[1..].iter().any(|a| a.contains(placeholder)) {
                    return Err(self.err(
                        &format!("settings.{key}"),
                        format!("must pass {placeholder} to the program"),
                    ));
                }
                Ok(c)
            };
        match mode.as_str() {
            "none" => Ok(CarryPlan::Nothing),
            "openwrt" => {
                let volume = volume.unwrap_or_else(|| OPENWRT_DATA_VOLUME.into());
                crate::index::part::check_name("the volume", &volume)
                    .map_err(|p| self.err("settings.volume", p))?;
                let backup = command(
                    "backup_command",
                    backup_command,
                    BACKUP_PLACEHOLDER,
                    Some(OPENWRT_BACKUP.map(String::from).to_vec()),
                )?;
                Ok(openwrt(backup, volume, need_target()?))
            }
            "keep" => {
                let paths: Vec<PathBuf> = keep
                    .unwrap_or_default()
                    .into_iter()
                    .map(PathBuf::from)
                    .collect();
                if paths.is_empty() {
                    return Err(
                        self.err("settings.keep", "mode = \"keep\" needs the paths to carry")
                    );
                }
                if let Some(p) = paths.iter().find(|p| {
                    !p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir)
                }) {
                    return Err(self.err(
                        "settings.keep",
                        format!("{} is not an absolute path without \"..\"", p.display()),
                    ));
                }
                Ok(CarryPlan::Keep {
                    paths,
                    on: self.mounted(need_target()?, fstype)?,
                })
            }
            "command" => Ok(CarryPlan::Command {
                command: command("carry", carry, TARGET_PLACEHOLDER, None)?,
                on: self.mounted(need_target()?, fstype)?,
            }),
            m => Err(self.err("settings.mode", format!("{m:?} is not one of {MODES}"))),
        }
    }

    fn mounted(&self, name: String, fstype: Option<String>) -> Result<Target, ConfigError> {
        let fstype = fstype.ok_or_else(|| {
            self.err(
                "settings.fstype",
                "needed to mount the target's file system (such as \"ext4\")",
            )
        })?;
        if fstype.is_empty()
            || !fstype
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        {
            return Err(self.err(
                "settings.fstype",
                format!("{fstype:?} is not a file system type"),
            ));
        }
        Ok(Target { name, fstype })
    }
}

fn default_target(board: &BoardSettings) -> String {
    board.target_names().into_iter().next().unwrap_or_default()
}

fn openwrt(backup_command: Vec<String>, volume: String, name: String) -> CarryPlan {
    CarryPlan::OpenWrt {
        backup_command,
        volume,
        on: Target {
            name,
            fstype: "ubifs".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::carry::plan::{CarryPlan, Target};
    use crate::config::Settings;
    use std::path::{Path, PathBuf};

    const UBOOT: &str = "profile = \"uboot\"\nid = \"u\"\nenv_device = \"e\"\nenv_size = 4096\nslot_a = \"/dev/mmcblk0p2\"\nslot_b = \"/dev/mmcblk0p3\"\n[board.targets.data]\nslot_a = \"/dev/mmcblk0p5\"\nslot_b = \"/dev/mmcblk0p6\"\n[board.targets.rootfs]\nslot_a = \"/dev/mmcblk0p7\"\nslot_b = \"/dev/mmcblk0p8\"\n";

    /// The shipped example config with a uboot board that has a `data` target, and `settings`.
    fn parse(settings: &str) -> Result<CarryPlan, String> {
        let example = include_str!("../../packaging/config.toml");
        let start = example.find("[board]").unwrap();
        let end = start + example[start..].find("\n[trial]").unwrap();
        let text = format!(
            "{}[board]\n{UBOOT}\n{}\n{settings}\n",
            &example[..start],
            &example[end..]
        );
        Settings::parse(Path::new("/etc/fwguard/config.toml"), &text)
            .map(|s| s.carry)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_mode_reads_its_keys_and_refuses_what_it_does_not_use() {
        assert_eq!(
            parse(""),
            Ok(CarryPlan::Nothing),
            "nothing carried by default but on Linksys"
        );
        let data = Target {
            name: "data".into(),
            fstype: "ext4".into(),
        };
        assert_eq!(
            parse("[settings]\nmode = \"keep\"\ntarget = \"data\"\nfstype = \"ext4\"\nkeep = [\"/etc/ssh\", \"/etc/wireguard/wg0.conf\"]"),
            Ok(CarryPlan::Keep {
                paths: vec![PathBuf::from("/etc/ssh"), PathBuf::from("/etc/wireguard/wg0.conf")],
                on: data.clone()
            })
        );
        assert_eq!(
            parse("[settings]\nmode = \"command\"\ntarget = \"data\"\nfstype = \"ext4\"\ncarry = [\"/usr/libexec/carry\", \"{target}\"]"),
            Ok(CarryPlan::Command {
                command: vec!["/usr/libexec/carry".into(), "{target}".into()],
                on: data
            })
        );
        let CarryPlan::OpenWrt {
            backup_command,
            volume,
            on,
        } = parse("[settings]\nmode = \"openwrt\"\ntarget = \"data\"").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (
                backup_command.join(" "),
                volume.as_str(),
                on.fstype.as_str()
            ),
            ("sysupgrade -b {backup}".into(), "rootfs_data", "ubifs")
        );

        for (text, key, problem) in [
            ("mode = \"copy\"", "settings.mode", "is not one of"),
            ("mode = \"keep\"\nfstype = \"ext4\"\nkeep = [\"/etc\"]", "settings.target", "needs the board target"),
            ("mode = \"keep\"\ntarget = \"root\"\nfstype = \"ext4\"\nkeep = [\"/etc\"]", "settings.target", "it has data, rootfs"),
            ("mode = \"keep\"\ntarget = \"data\"\nkeep = [\"/etc\"]", "settings.fstype", "needed to mount"),
            ("mode = \"keep\"\ntarget = \"data\"\nfstype = \"ext4\"", "settings.keep", "needs the paths"),
            ("mode = \"keep\"\ntarget = \"data\"\nfstype = \"ext4\"\nkeep = [\"etc\"]", "settings.keep", "not an absolute path"),
            ("mode = \"keep\"\ntarget = \"data\"\nfstype = \"ext4\"\nkeep = [\"/etc/../root\"]", "settings.keep", "not an absolute path"),
            ("mode = \"keep\"\ntarget = \"data\"\nfstype = \"ext4; rm\"\nkeep = [\"/etc\"]", "settings.fstype", "not a file system type"),
            ("mode = \"command\"\ntarget = \"data\"\nfstype = \"ext4\"", "settings.carry", "needs it"),
            ("mode = \"command\"\ntarget = \"data\"\nfstype = \"ext4\"\ncarry = [\"/bin/carry\"]", "settings.carry", "must pass {target}"),
            ("mode = \"command\"\ntarget = \"data\"\nfstype = \"ext4\"\ncarry = []", "settings.carry", "must name a program"),
            ("mode = \"openwrt\"\ntarget = \"data\"\nbackup_command = [\"sysupgrade\", \"-b\"]", "settings.backup_command", "must pass {backup}"),
            ("mode = \"openwrt\"\ntarget = \"data\"\nvolume = \"Data Vol\"", "settings.volume", "must be"),
            ("mode = \"none\"\nkeep = [\"/etc\"]", "settings.keep", "used only with mode = \"keep\""),
            ("mode = \"none\"\ntarget = \"data\"", "settings.target", "used only with mode"),
            ("mode = \"keep\"\ntarget = \"data\"\nfstype = \"ext4\"\nkeep = [\"/etc\"]\ncarry = [\"x\", \"{target}\"]", "settings.carry", "used only with mode = \"command\""),
            ("mode = \"keep\"\nkepp = [\"/etc\"]", "settings", "unknown field `kepp`"),
            ("mode = 3", "settings", "mode"),
        ] {
            let e = parse(&format!("[settings]\n{text}")).unwrap_err();
            assert!(e.contains(key) && e.contains(problem), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_examples_in_the_shipped_config_load_as_written() {
        let example = include_str!("../../packaging/config.toml");
        let mut blocks: Vec<String> = Vec::new();
        let mut within = false;
        for line in example.lines() {
            match line.strip_prefix("# ") {
                Some("[settings]") => {
                    blocks.push("[settings]\n".into());
                    within = true;
                }
                Some(l) if within && !l.starts_with(' ') && l.contains(" = ") => {
                    *blocks.last_mut().unwrap() += &format!("{l}\n");
                }
                _ => within = false,
            }
        }
        assert_eq!(blocks.len(), 3, "{blocks:?}");
        let plans: Vec<CarryPlan> = blocks.iter().map(|b| parse(b).unwrap()).collect();
        assert!(matches!(&plans[0], CarryPlan::OpenWrt { volume, .. } if volume == "rootfs_data"));
        assert!(matches!(&plans[1], CarryPlan::Keep { paths, .. } if paths.len() == 3));
        assert!(matches!(&plans[2], CarryPlan::Command { on, .. } if on.name == "rootfs"));
    }
}
