//! The configuration file as written: serde structs that refuse unknown keys.

use super::keys::{KeyError, Keys};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Read into [`RawAgent`] by the validator.
    #[serde(default)]
    pub agent: toml::Table,
    /// Read into [`RawIndex`] by the validator.
    pub index: toml::Table,
    /// Deserialized into [`RawBoard`] by the validator, which names the key serde refuses.
    pub board: toml::Table,
    /// Read into [`RawTrial`] by the validator.
    #[serde(default)]
    pub trial: toml::Table,
    #[serde(default)]
    pub health: RawHealth,
    /// When the daemon may reboot into an update (none: any time). Each read as a
    /// [`RawWindow`](super::window::RawWindow) by the validator (one reader for both kinds).
    #[serde(default)]
    pub maintenance: Vec<toml::Table>,
    /// When the daemon may reboot into an approved update (policy approve; none: the
    /// maintenance windows).
    #[serde(default)]
    pub reboot_window: Vec<toml::Table>,
    /// Where the owner is told what happened; each read by the validator.
    #[serde(default)]
    pub notify: Vec<toml::Table>,
    /// Where to POST the outcome of each update (committed or rolled back).
    /// Read into [`RawReport`] by the validator.
    pub report: Option<toml::Table>,
    /// Where to keep copies of committed images with their signed index; read into
    /// [`RawArchive`] by the validator.
    pub archive: Option<toml::Table>,
    /// How the owner's settings reach the new firmware; read by the validator.
    pub settings: Option<toml::Table>,
}

/// The `[archive]` section, read by hand.
#[derive(Debug)]
pub struct RawArchive {
    pub dir: PathBuf,
    pub keep: Option<u64>,
}

impl RawArchive {
    pub fn read(table: toml::Table) -> Result<RawArchive, KeyError> {
        let mut k = Keys::new(table);
        let a = RawArchive {
            dir: k.need_path("dir")?,
            keep: k.number("keep")?,
        };
        k.done()?;
        Ok(a)
    }
}

/// The `[report]` section, read by hand.
#[derive(Debug)]
pub struct RawReport {
    pub url: String,
    pub timeout: Option<String>,
}

impl RawReport {
    pub fn read(table: toml::Table) -> Result<RawReport, KeyError> {
        let mut k = Keys::new(table);
        let r = RawReport {
            url: k.need_string("url")?,
            timeout: k.string("timeout")?,
        };
        k.done()?;
        Ok(r)
    }
}

/// The `[agent]` section, read by hand ([`Keys`]) like `[board]`.
#[derive(Debug, Default)]
pub struct RawAgent {
    pub state_dir: Option<PathBuf>,
    pub policy: Option<String>,
    pub check_interval: Option<String>,
    pub device_id: Option<String>,
    pub runtime_dir: Option<PathBuf>,
    pub max_rollbacks: Option<u64>,
    /// Policy approve: how long after staging a release is approved without the owner.
    pub approve_after: Option<String>,
    /// POSIX TZ string or zoneinfo name for the maintenance windows.
    pub timezone: Option<String>,
    /// Random extra wait added to each check interval.
    pub check_jitter: Option<String>,
    /// PEM bundle of the certificate authorities trusted for https.
    pub ca_bundle: Option<PathBuf>,
    /// Where the running firmware declares its configuration format (`compat_version`).
    pub compat_file: Option<PathBuf>,
}

impl RawAgent {
    pub fn read(table: toml::Table) -> Result<RawAgent, KeyError> {
        let mut k = Keys::new(table);
        let a = RawAgent {
            state_dir: k.path("state_dir")?,
            policy: k.string("policy")?,
            check_interval: k.string("check_interval")?,
            device_id: k.string("device_id")?,
            runtime_dir: k.path("runtime_dir")?,
            max_rollbacks: k.number("max_rollbacks")?,
            approve_after: k.string("approve_after")?,
            timezone: k.string("timezone")?,
            check_jitter: k.string("check_jitter")?,
            ca_bundle: k.path("ca_bundle")?,
            compat_file: k.path("compat_file")?,
        };
        k.done()?;
        Ok(a)
    }
}

/// The `[index]` section, read by hand.
#[derive(Debug)]
pub struct RawIndex {
    pub url: String,
    pub channel: Option<String>,
    pub trusted_keys: Vec<String>,
    pub trusted_key_files: Vec<PathBuf>,
    pub threshold: Option<usize>,
    pub root: Option<PathBuf>,
    pub max_index_bytes: Option<u64>,
    pub fetch_timeout: Option<String>,
    pub min_rate: Option<u64>,
    pub rate_window: Option<String>,
}

impl RawIndex {
    pub fn read(table: toml::Table) -> Result<RawIndex, KeyError> {
        let mut k = Keys::new(table);
        let i = RawIndex {
            url: k.need_string("url")?,
            channel: k.string("channel")?,
            trusted_keys: k.strings("trusted_keys")?.unwrap_or_default(),
            trusted_key_files: k
                .strings("trusted_key_files")?
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            threshold: k.size("threshold")?,
            root: k.path("root")?,
            max_index_bytes: k.number("max_index_bytes")?,
            fetch_timeout: k.string("fetch_timeout")?,
            min_rate: k.number("min_rate")?,
            rate_window: k.string("rate_window")?,
        };
        k.done()?;
        Ok(i)
    }
}

/// The `[board]` section: `profile` says which keys it has, and a key of another profile
/// (or of none) is refused, named (`config/board.rs` adds the section's path). Read by hand
/// ([`Keys`]), not by serde: one deserializer less in the router build.
#[derive(Debug)]
pub enum RawBoard {
    Sim(RawSimBoard),
    Uboot(RawUBootBoard),
    Linksys(RawLinksysBoard),
    Grub(RawGrubBoard),
    Script(RawScriptBoard),
}

impl RawBoard {
    /// The section's keys of `profile` (the key `profile` itself is dropped); `None` for a
    /// profile there is not.
    pub fn read(profile: &str, mut table: toml::Table) -> Option<Result<RawBoard, KeyError>> {
        table.remove("profile");
        let mut k = Keys::new(table);
        let read = |k: &mut Keys| -> Result<RawBoard, KeyError> {
            Ok(match profile {
                "sim" => RawBoard::Sim(RawSimBoard {
                    dir: k.need_path("dir")?,
                }),
                "uboot" => RawBoard::Uboot(RawUBootBoard {
                    id: k.need_string("id")?,
                    env_config: k.path("env_config")?,
                    env_device: k.path("env_device")?,
                    env_offset: k.number("env_offset")?,
                    env_size: k.size("env_size")?,
                    slot_a: k.need_path("slot_a")?,
                    slot_b: k.need_path("slot_b")?,
                    cmdline: k.path("cmdline")?,
                    proc: k.path("proc")?,
                    sysfs: k.path("sysfs")?,
                    reboot_command: k.strings("reboot_command")?,
                    shared_state: k.boolean("shared_state")?,
                }),
                "linksys" => RawBoard::Linksys(RawLinksysBoard {
                    id: k.need_string("id")?,
                    env_config: k.path("env_config")?,
                    proc: k.path("proc")?,
                    dev: k.path("dev")?,
                    sysfs: k.path("sysfs")?,
                    reboot_command: k.strings("reboot_command")?,
                }),
                "grub" => RawBoard::Grub(RawGrubBoard {
                    id: k.need_string("id")?,
                    grubenv: k.need_path("grubenv")?,
                    slot_a: k.need_path("slot_a")?,
                    slot_b: k.need_path("slot_b")?,
                    proc: k.path("proc")?,
                    sysfs: k.path("sysfs")?,
                    reboot_command: k.strings("reboot_command")?,
                }),
                _ => RawBoard::Script(RawScriptBoard {
                    id: k.need_string("id")?,
                    command: k.need_strings("command")?,
                    slot_a: k.need_path("slot_a")?,
                    slot_b: k.need_path("slot_b")?,
                    proc: k.path("proc")?,
                    sysfs: k.path("sysfs")?,
                    reboot_command: k.strings("reboot_command")?,
                }),
            })
        };
        if !matches!(profile, "sim" | "uboot" | "linksys" | "grub" | "script") {
            return None;
        }
        // Every key is looked at first: an unknown one is named before one that is missing.
        Some(read(&mut k).and_then(|b| k.done().map(|()| b)))
    }
}

/// The simulated router (only in builds with the `demo` feature).
#[derive(Debug)]
pub struct RawSimBoard {
    /// The simulated router's directory.
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    pub dir: PathBuf,
}

#[derive(Debug)]
pub struct RawUBootBoard {
    pub id: String,
    /// The board's fw_env.config (one line: single env, two: redundant) ...
    pub env_config: Option<PathBuf>,
    /// ... or one copy given here.
    pub env_device: Option<PathBuf>,
    pub env_offset: Option<u64>,
    pub env_size: Option<usize>,
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
    /// Where the running slot is read (`ab.slot=`).
    pub cmdline: Option<PathBuf>,
    /// Where procfs is (`self/mountinfo`, for where the state directory lives).
    pub proc: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
    pub reboot_command: Option<Vec<String>>,
    /// false: no partition both slots mount; the trial's facts travel in the env.
    pub shared_state: Option<bool>,
}

#[derive(Debug)]
pub struct RawLinksysBoard {
    pub id: String,
    /// The board's fw_env.config (the `u_env` partition).
    pub env_config: Option<PathBuf>,
    /// Where procfs, device nodes and sysfs are.
    pub proc: Option<PathBuf>,
    pub dev: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
    pub reboot_command: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct RawGrubBoard {
    pub id: String,
    /// The environment block.
    pub grubenv: PathBuf,
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
    pub proc: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
    pub reboot_command: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct RawScriptBoard {
    pub id: String,
    /// The vendor command.
    pub command: Vec<String>,
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
    pub proc: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
    pub reboot_command: Option<Vec<String>>,
}

/// The `[trial]` section, read by hand.
#[derive(Debug, Default)]
pub struct RawTrial {
    pub deadline: Option<String>,
    pub retry_interval: Option<String>,
    pub soak: Option<String>,
    pub soak_failures: Option<u64>,
}

impl RawTrial {
    pub fn read(table: toml::Table) -> Result<RawTrial, KeyError> {
        let mut k = Keys::new(table);
        let t = RawTrial {
            deadline: k.string("deadline")?,
            retry_interval: k.string("retry_interval")?,
            soak: k.string("soak")?,
            soak_failures: k.number("soak_failures")?,
        };
        k.done()?;
        Ok(t)
    }
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

/// A check's kind and its keys, read by hand ([`Keys`]) like [`RawBoard`]: `kind` names
/// the variant, and only that kind's keys are taken.
#[derive(Debug)]
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

/// The kinds of check, as `kind` names them.
const CHECK_KINDS: [&str; 11] = [
    "link", "address", "route", "dns", "http", "tcp", "ping", "process", "listen", "command",
    "clock",
];

impl RawCheckKind {
    /// A check's keys besides the common ones, `kind` among them; the error says what is
    /// wrong in serde's words (the key is the caller's to name).
    pub fn read(mut table: toml::Table) -> Result<RawCheckKind, String> {
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(v) => {
                return Err(format!(
                    "invalid type: {}, expected a string",
                    super::keys::found(&v)
                ))
            }
            None => return Err("missing field `kind`".into()),
        };
        let mut k = Keys::new(table);
        let port = |k: &mut Keys, key: &'static str| -> Result<Option<u16>, KeyError> {
            match k.number(key)? {
                Some(n) if n > u16::MAX as u64 => Err(KeyError::Type(
                    key,
                    "a number from 0 to 65535",
                    format!("integer `{n}`"),
                )),
                n => Ok(n.map(|n| n as u16)),
            }
        };
        let read = |k: &mut Keys| -> Result<RawCheckKind, KeyError> {
            Ok(match kind.as_str() {
                "link" => RawCheckKind::Link {
                    interface: k.need_string("interface")?,
                },
                "address" => RawCheckKind::Address {
                    interface: k.need_string("interface")?,
                    family: k.string("family")?,
                },
                "route" => RawCheckKind::Route {
                    family: k.string("family")?,
                },
                "dns" => RawCheckKind::Dns {
                    query: k.need_string("query")?,
                    server: k.string("server")?,
                },
                "http" => RawCheckKind::Http {
                    url: k.need_string("url")?,
                    expect_status: port(k, "expect_status")?,
                },
                "tcp" => RawCheckKind::Tcp {
                    address: k.need_string("address")?,
                },
                "ping" => RawCheckKind::Ping {
                    host: k.need_string("host")?,
                },
                "process" => RawCheckKind::Process {
                    process: k.need_string("process")?,
                },
                "listen" => RawCheckKind::Listen {
                    port: {
                        let p = port(k, "port")?;
                        k.need("port", p)
                    },
                    protocol: k.string("protocol")?,
                },
                "command" => RawCheckKind::Command {
                    argv: k.need_strings("argv")?,
                },
                _ => RawCheckKind::Clock {},
            })
        };
        if !CHECK_KINDS.contains(&kind.as_str()) {
            let all: Vec<String> = CHECK_KINDS.iter().map(|k| format!("`{k}`")).collect();
            return Err(format!(
                "unknown variant `{kind}`, expected one of {}",
                all.join(", ")
            ));
        }
        read(&mut k)
            .and_then(|c| k.done().map(|()| c))
            .map_err(|e| match e {
                KeyError::Missing(key) => format!("missing field `{key}`"),
                KeyError::Type(_, what, found) => format!("invalid type: {found}, expected {what}"),
                KeyError::Unknown(key, expected) => format!("unknown field `{key}`, {expected}"),
            })
    }
}
