//! The `[board]` section: which bootloader backend, where its state and the slots live.

use super::raw::RawBoard;
use super::{ConfigError, Validator};
use crate::boot::fw_env::{EnvDevice, FwEnvConfig};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum BoardSettings {
    Sim {
        dir: PathBuf,
    },
    UBoot {
        id: String,
        /// Where the environment lives: one copy or a redundant pair.
        env: FwEnvConfig,
        /// Where sysfs is mounted.
        sysfs: PathBuf,
        slot_a: PathBuf,
        slot_b: PathBuf,
        cmdline: PathBuf,
        reboot_command: Vec<String>,
    },
    Linksys(LinksysSettings),
    Grub(OtherBoot),
    Script(OtherBoot),
}

/// A board whose bootloader is a GRUB environment block or a vendor command.
#[derive(Debug, Clone)]
pub struct OtherBoot {
    pub id: String,
    /// The grubenv file, or the vendor command.
    pub bootloader: Vec<String>,
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
    /// procfs (`cmdline`, `sys/kernel/random/boot_id`) and sysfs.
    pub proc: PathBuf,
    pub sysfs: PathBuf,
    pub reboot_command: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LinksysSettings {
    pub id: String,
    /// The `u_env` partition, from the board's fw_env.config.
    pub env: FwEnvConfig,
    /// procfs (`mtd`, `sys/kernel/random/boot_id`), device nodes and sysfs.
    pub proc: PathBuf,
    pub dev: PathBuf,
    pub sysfs: PathBuf,
    pub reboot_command: Vec<String>,
}

impl Validator<'_> {
    /// The environment's location: the board's fw_env.config, or one copy given inline.
    fn env(
        &self,
        config: Option<PathBuf>,
        device: Option<PathBuf>,
        offset: u64,
        size: Option<usize>,
    ) -> Result<FwEnvConfig, ConfigError> {
        match (config, device, size) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(self.err(
                "board.env_config",
                "give either env_config or env_device and env_size, not both",
            )),
            (Some(path), None, None) => FwEnvConfig::load(&self.path_rel(path))
                .map_err(|e| self.err("board.env_config", e.to_string())),
            (None, Some(device), Some(size)) => {
                if size < 16 {
                    return Err(self.err("board.env_size", format!("{size} bytes is too small")));
                }
                Ok(FwEnvConfig {
                    source: self.path.to_path_buf(),
                    copies: vec![EnvDevice {
                        device,
                        offset,
                        size,
                        sector_size: None,
                        sectors: None,
                        line: 0,
                    }],
                })
            }
            (None, Some(_), None) => Err(self.err("board.env_size", "missing")),
            (None, None, _) => Err(self.err(
                "board.env_config",
                "missing: the board's fw_env.config, or env_device and env_size",
            )),
        }
    }

    pub(super) fn board(&self, raw: RawBoard) -> Result<BoardSettings, ConfigError> {
        let allowed: &[&str] = match raw.profile.as_str() {
            "sim" => &["dir"],
            "uboot" => &[
                "id",
                "env_config",
                "env_device",
                "env_offset",
                "env_size",
                "slot_a",
                "slot_b",
                "cmdline",
                "sysfs",
                "reboot_command",
            ],
            "linksys" => &["id", "env_config", "proc", "dev", "sysfs", "reboot_command"],
            "grub" => &[
                "id",
                "grubenv",
                "slot_a",
                "slot_b",
                "proc",
                "sysfs",
                "reboot_command",
            ],
            "script" => &[
                "id",
                "command",
                "slot_a",
                "slot_b",
                "proc",
                "sysfs",
                "reboot_command",
            ],
            other => {
                return Err(self.err(
                    "board.profile",
                    format!(
                        "unknown profile {other:?} (expected sim, uboot, linksys, grub or script)"
                    ),
                ))
            }
        };
        let present = [
            ("id", raw.id.is_some()),
            ("dir", raw.dir.is_some()),
            ("env_config", raw.env_config.is_some()),
            ("env_device", raw.env_device.is_some()),
            ("env_offset", raw.env_offset.is_some()),
            ("env_size", raw.env_size.is_some()),
            ("grubenv", raw.grubenv.is_some()),
            ("command", raw.command.is_some()),
            ("slot_a", raw.slot_a.is_some()),
            ("slot_b", raw.slot_b.is_some()),
            ("cmdline", raw.cmdline.is_some()),
            ("proc", raw.proc.is_some()),
            ("dev", raw.dev.is_some()),
            ("sysfs", raw.sysfs.is_some()),
            ("reboot_command", raw.reboot_command.is_some()),
        ];
        if let Some((key, _)) = present.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            return Err(self.err(
                &format!("board.{key}"),
                format!("not a key of profile {:?}", raw.profile),
            ));
        }
        let need = |v: Option<PathBuf>, key: &str| {
            v.ok_or_else(|| {
                self.err(
                    &format!("board.{key}"),
                    format!("missing (profile {:?})", raw.profile),
                )
            })
        };
        if raw.profile == "sim" {
            return Ok(BoardSettings::Sim {
                dir: self.path_rel(need(raw.dir.clone(), "dir")?),
            });
        }
        let id = match raw.id.clone() {
            Some(id) if !id.is_empty() => id,
            Some(_) => return Err(self.err("board.id", "must not be empty")),
            None => {
                return Err(self.err("board.id", format!("missing (profile {:?})", raw.profile)))
            }
        };
        let dir = |p: Option<PathBuf>, default: &str| {
            p.map_or_else(|| default.into(), |p| self.path_rel(p))
        };
        let reboot_command = self.reboot_command(raw.reboot_command.clone())?;
        if raw.profile == "linksys" {
            let env_config = raw
                .env_config
                .unwrap_or_else(|| "/etc/fw_env.config".into());
            return Ok(BoardSettings::Linksys(LinksysSettings {
                id,
                env: self.env(Some(env_config), None, 0, None)?,
                proc: dir(raw.proc, "/proc"),
                dev: dir(raw.dev, "/dev"),
                sysfs: dir(raw.sysfs, "/sys"),
                reboot_command,
            }));
        }
        let slot_a = self.path_rel(need(raw.slot_a.clone(), "slot_a")?);
        let slot_b = self.path_rel(need(raw.slot_b.clone(), "slot_b")?);
        let sysfs = dir(raw.sysfs.clone(), "/sys");
        if let Some(why) = crate::board::identity::overlap(&slot_a, &slot_b, &sysfs) {
            return Err(self.err(
                "board.slot_b",
                format!("must differ from board.slot_a: {why}, so an update would overwrite the running firmware"),
            ));
        }
        let other = |bootloader: Vec<String>| OtherBoot {
            id: id.clone(),
            bootloader,
            slot_a: self.path_rel(slot_a.clone()),
            slot_b: self.path_rel(slot_b.clone()),
            proc: dir(raw.proc.clone(), "/proc"),
            sysfs: dir(raw.sysfs.clone(), "/sys"),
            reboot_command: reboot_command.clone(),
        };
        Ok(match raw.profile.as_str() {
            "grub" => {
                let grubenv = self.path_rel(need(raw.grubenv.clone(), "grubenv")?);
                BoardSettings::Grub(other(vec![grubenv.display().to_string()]))
            }
            "script" => match raw.command.clone() {
                Some(c) if !c.is_empty() => BoardSettings::Script(other(c)),
                Some(_) => return Err(self.err("board.command", "must name a program")),
                None => return Err(self.err("board.command", "missing (profile \"script\")")),
            },
            _ => BoardSettings::UBoot {
                env: self.env(
                    raw.env_config.clone(),
                    raw.env_device.clone(),
                    raw.env_offset.unwrap_or(0),
                    raw.env_size,
                )?,
                id,
                sysfs: dir(raw.sysfs.clone(), "/sys"),
                slot_a,
                slot_b,
                cmdline: raw
                    .cmdline
                    .clone()
                    .unwrap_or_else(|| "/proc/cmdline".into()),
                reboot_command,
            },
        })
    }

    fn reboot_command(&self, argv: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
        let argv = argv.unwrap_or_else(|| vec!["/sbin/reboot".into()]);
        if argv.is_empty() {
            return Err(self.err("board.reboot_command", "must name a program"));
        }
        Ok(argv)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{BoardSettings, Settings};
    use std::path::Path;

    /// The shipped example config with its [board] section replaced.
    fn parse(board: &str) -> Result<BoardSettings, String> {
        let example = include_str!("../../packaging/config.toml");
        let start = example.find("[board]").unwrap();
        let end = start + example[start..].find("\n[trial]").unwrap();
        let text = format!("{}[board]\n{board}\n{}", &example[..start], &example[end..]);
        Settings::parse(Path::new("/etc/fwguard/config.toml"), &text)
            .map(|s| s.board)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn profiles_and_their_keys() {
        let grub = parse("profile = \"grub\"\nid = \"x\"\ngrubenv = \"grubenv\"\nslot_a = \"/dev/sda2\"\nslot_b = \"/dev/sda3\"").unwrap();
        let BoardSettings::Grub(g) = grub else {
            panic!("{grub:?}")
        };
        assert_eq!(g.bootloader, ["/etc/fwguard/grubenv"]);
        assert_eq!(g.proc, Path::new("/proc"));
        let linksys = parse("profile = \"linksys\"\nid = \"wrt\"\nenv_config = \"/nonexistent\"");
        assert!(linksys.unwrap_err().contains("board.env_config"));
        for (board, key, problem) in [
            ("profile = \"x\"", "board.profile", "unknown profile \"x\""),
            ("profile = \"sim\"\ndir = \"d\"\nslot_a = \"a\"", "board.slot_a", "not a key of profile \"sim\""),
            ("profile = \"linksys\"\nid = \"w\"\ngrubenv = \"g\"", "board.grubenv", "not a key of profile \"linksys\""),
            ("profile = \"grub\"\nid = \"x\"\ngrubenv = \"g\"\nslot_b = \"b\"", "board.slot_a", "missing (profile \"grub\")"),
            ("profile = \"script\"\nid = \"x\"\nslot_a = \"a\"\nslot_b = \"b\"", "board.command", "missing"),
            ("profile = \"script\"\nid = \"x\"\ncommand = []\nslot_a = \"a\"\nslot_b = \"b\"", "board.command", "must name a program"),
            ("profile = \"uboot\"\nid = \"\"\nenv_device = \"e\"\nenv_size = 4096\nslot_a = \"a\"\nslot_b = \"b\"", "board.id", "must not be empty"),
            ("profile = \"uboot\"\nid = \"u\"\nenv_device = \"e\"\nenv_size = 4096\nslot_a = \"a\"\nslot_b = \"a\"", "board.slot_b", "must differ"),
            ("profile = \"grub\"\ngrubenv = \"g\"\nslot_a = \"a\"\nslot_b = \"b\"", "board.id", "missing"),
            ("profile = \"uboot\"\nid = \"u\"\nbogus = 1", "bogus", "unknown field"),
        ] {
            let e = parse(board).unwrap_err();
            assert!(e.contains(key) && e.contains(problem), "{board:?}: {e}");
        }
    }
}
