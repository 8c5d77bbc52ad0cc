//! The configuration file as written: serde structs that refuse unknown keys.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub agent: RawAgent,
    pub index: RawIndex,
    pub board: RawBoard,
    #[serde(default)]
    pub trial: RawTrial,
    #[serde(default)]
    pub health: RawHealth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub state_dir: Option<PathBuf>,
    pub policy: Option<String>,
    pub check_interval: Option<String>,
    pub device_id: Option<String>,
    pub runtime_dir: Option<PathBuf>,
    pub max_rollbacks: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndex {
    pub url: String,
    pub channel: Option<String>,
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    #[serde(default)]
    pub trusted_key_files: Vec<PathBuf>,
    pub threshold: Option<usize>,
    pub root: Option<PathBuf>,
    pub max_index_bytes: Option<u64>,
    pub fetch_timeout: Option<String>,
    pub min_rate: Option<u64>,
    pub rate_window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "profile", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawBoard {
    /// The simulated router: everything lives in one directory.
    Sim { dir: PathBuf },
    /// A board with a U-Boot environment and two slot devices or files.
    Uboot {
        id: String,
        /// The board's `fw_env.config` (one line: single env, two lines: redundant) ...
        env_config: Option<PathBuf>,
        /// ... or one copy given here.
        env_device: Option<PathBuf>,
        #[serde(default)]
        env_offset: u64,
        env_size: Option<usize>,
        /// Where sysfs is mounted (MTD erase sizes are read from it). Default "/sys".
        sysfs: Option<PathBuf>,
        slot_a: PathBuf,
        slot_b: PathBuf,
        cmdline: Option<PathBuf>,
        reboot_command: Option<Vec<String>>,
    },
    /// A/B variables in a GRUB environment block; the running slot from `ab.slot=` on the
    /// kernel command line.
    Grub {
        id: String,
        grubenv: PathBuf,
        slot_a: PathBuf,
        slot_b: PathBuf,
        proc: Option<PathBuf>,
        sysfs: Option<PathBuf>,
        reboot_command: Option<Vec<String>>,
    },
    /// A vendor command answering get-active / set-next / commit in JSON.
    Script {
        id: String,
        command: Vec<String>,
        slot_a: PathBuf,
        slot_b: PathBuf,
        proc: Option<PathBuf>,
        sysfs: Option<PathBuf>,
        reboot_command: Option<Vec<String>>,
    },
    /// A Linksys WRT dual-firmware board (stock U-Boot, partitions found by name).
    Linksys {
        id: String,
        /// The board's fw_env.config (the `u_env` partition). Default "/etc/fw_env.config".
        env_config: Option<PathBuf>,
        /// Where procfs, devices and sysfs are. Defaults "/proc", "/dev", "/sys".
        proc: Option<PathBuf>,
        dev: Option<PathBuf>,
        sysfs: Option<PathBuf>,
        reboot_command: Option<Vec<String>>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrial {
    pub deadline: Option<String>,
    pub retry_interval: Option<String>,
    pub soak: Option<String>,
    pub soak_failures: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// Each check: common keys (name, timeout, group, advisory) plus its kind's keys; split
    /// and checked in two steps so that unknown keys are refused in both.
    #[serde(default, rename = "check")]
    pub checks: Vec<toml::Table>,
    #[serde(default, rename = "group")]
    pub groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: String,
    pub need: Option<usize>,
    #[serde(default)]
    pub advisory: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawCheckKind {
    Link {
        interface: String,
    },
    Address {
        interface: String,
        family: Option<String>,
    },
    Route {
        family: Option<String>,
    },
    Dns {
        query: String,
        server: Option<String>,
    },
    Http {
        url: String,
        expect_status: Option<u16>,
    },
    Tcp {
        address: String,
    },
    Ping {
        host: String,
    },
    Process {
        process: String,
    },
    Listen {
        port: u16,
        protocol: Option<String>,
    },
    Command {
        argv: Vec<String>,
    },
    Clock {},
}
