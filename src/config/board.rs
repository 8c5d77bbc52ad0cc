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
        Ok(match raw {
            RawBoard::Sim { dir } => BoardSettings::Sim {
                dir: self.path_rel(dir),
            },
            RawBoard::Uboot {
                id,
                env_config,
                env_device,
                env_offset,
                env_size,
                sysfs,
                slot_a,
                slot_b,
                cmdline,
                reboot_command,
            } => {
                if id.is_empty() {
                    return Err(self.err("board.id", "must not be empty"));
                }
                let env = self.env(env_config, env_device, env_offset, env_size)?;
                if slot_a == slot_b {
                    return Err(self.err("board.slot_b", "must differ from board.slot_a"));
                }
                let reboot_command = self.reboot_command(reboot_command)?;
                BoardSettings::UBoot {
                    id,
                    env,
                    sysfs: sysfs.map_or_else(|| "/sys".into(), |p| self.path_rel(p)),
                    slot_a,
                    slot_b,
                    cmdline: cmdline.unwrap_or_else(|| "/proc/cmdline".into()),
                    reboot_command,
                }
            }
            RawBoard::Grub {
                id,
                grubenv,
                slot_a,
                slot_b,
                proc,
                sysfs,
                reboot_command,
            } => BoardSettings::Grub(self.other_boot(
                id,
                vec![self.path_rel(grubenv).display().to_string()],
                [slot_a, slot_b],
                [proc, sysfs],
                reboot_command,
            )?),
            RawBoard::Script {
                id,
                command,
                slot_a,
                slot_b,
                proc,
                sysfs,
                reboot_command,
            } => {
                if command.is_empty() {
                    return Err(self.err("board.command", "must name a program"));
                }
                BoardSettings::Script(self.other_boot(
                    id,
                    command,
                    [slot_a, slot_b],
                    [proc, sysfs],
                    reboot_command,
                )?)
            }
            RawBoard::Linksys {
                id,
                env_config,
                proc,
                dev,
                sysfs,
                reboot_command,
            } => {
                if id.is_empty() {
                    return Err(self.err("board.id", "must not be empty"));
                }
                let env_config = env_config.unwrap_or_else(|| "/etc/fw_env.config".into());
                let dir = |p: Option<PathBuf>, default: &str| {
                    p.map_or_else(|| default.into(), |p| self.path_rel(p))
                };
                BoardSettings::Linksys(LinksysSettings {
                    id,
                    env: self.env(Some(env_config), None, 0, None)?,
                    proc: dir(proc, "/proc"),
                    dev: dir(dev, "/dev"),
                    sysfs: dir(sysfs, "/sys"),
                    reboot_command: self.reboot_command(reboot_command)?,
                })
            }
        })
    }

    fn other_boot(
        &self,
        id: String,
        bootloader: Vec<String>,
        [slot_a, slot_b]: [PathBuf; 2],
        [proc, sysfs]: [Option<PathBuf>; 2],
        reboot_command: Option<Vec<String>>,
    ) -> Result<OtherBoot, ConfigError> {
        if id.is_empty() {
            return Err(self.err("board.id", "must not be empty"));
        }
        if slot_a == slot_b {
            return Err(self.err("board.slot_b", "must differ from board.slot_a"));
        }
        let dir = |p: Option<PathBuf>, default: &str| {
            p.map_or_else(|| default.into(), |p| self.path_rel(p))
        };
        Ok(OtherBoot {
            id,
            bootloader,
            slot_a: self.path_rel(slot_a),
            slot_b: self.path_rel(slot_b),
            proc: dir(proc, "/proc"),
            sysfs: dir(sysfs, "/sys"),
            reboot_command: self.reboot_command(reboot_command)?,
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
