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
        env_device: PathBuf,
        #[serde(default)]
        env_offset: u64,
        env_size: usize,
        slot_a: PathBuf,
        slot_b: PathBuf,
        cmdline: Option<PathBuf>,
        reboot_command: Option<Vec<String>>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrial {
    pub deadline: Option<String>,
    pub retry_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    #[serde(default, rename = "check")]
    pub checks: Vec<RawCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawCheck {
    Http {
        name: String,
        url: String,
        expect_status: Option<u16>,
        timeout: Option<String>,
    },
    Tcp {
        name: String,
        address: String,
        timeout: Option<String>,
    },
    Command {
        name: String,
        argv: Vec<String>,
        timeout: Option<String>,
    },
}
