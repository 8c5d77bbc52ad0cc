//! Configuration: the TOML file (`raw`) validated into typed [`Settings`].
//!
//! Defaults live here and nowhere else. Every error names the file, the key and the problem.

mod raw;

use crate::fetch::MinRate;
use crate::health::{CheckKind, CheckSpec, Family, Group, Plan, Proto};
use crate::index::root::TrustRoot;
use crate::index::sign::PublicKey;
use crate::index::{TrustPolicy, DEFAULT_MAX_INDEX_BYTES};
use raw::{RawBoard, RawCheckKind, RawConfig};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/fwguard/config.toml";
pub const ENV_VAR: &str = "FWGUARD_CONFIG";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/fwguard";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: key `{key}`: {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// What the agent may do on its own when an update is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Download, install and reboot into the trial.
    Auto,
    /// Write and verify the inactive slot, then wait for the owner (`fwguard update`).
    DownloadOnly,
    /// Never act without the owner.
    Off,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::DownloadOnly => "download-only",
            Policy::Off => "off",
        }
    }
}

#[derive(Debug, Clone)]
pub struct IndexSettings {
    pub url: String,
    pub channel: String,
    /// The root installed with the device (a rotated one in the state takes over).
    pub trust: TrustRoot,
    pub max_index_bytes: u64,
    pub fetch_timeout: Duration,
    pub min_rate: MinRate,
}

#[derive(Debug, Clone)]
pub enum BoardSettings {
    Sim {
        dir: PathBuf,
    },
    UBoot {
        id: String,
        env_device: PathBuf,
        env_offset: u64,
        env_size: usize,
        slot_a: PathBuf,
        slot_b: PathBuf,
        cmdline: PathBuf,
        reboot_command: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct TrialSettings {
    /// How long a trial boot may take to pass its health checks before rolling back.
    pub deadline: Duration,
    /// Pause between health check rounds during a trial.
    pub retry_interval: Duration,
    /// After the checks first pass, how long they must keep passing before the commit.
    pub soak: Duration,
    /// Failed rounds in a row during the soak that roll back.
    pub soak_failures: u32,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub policy: Policy,
    pub check_interval: Duration,
    /// Stable id for rollout buckets; None: a random id kept in the state.
    pub device_id: Option<String>,
    pub index: IndexSettings,
    pub board: BoardSettings,
    pub trial: TrialSettings,
    pub health: Plan,
    /// Where fwguard keeps files that must not wear the flash (the last health report).
    pub runtime_dir: PathBuf,
    /// Automatic rollbacks in a row after which automatic installs stop until the owner acts.
    pub max_rollbacks: u32,
}

/// The config path: the flag, else `$FWGUARD_CONFIG`, else the default.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ENV_VAR).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

impl Settings {
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Settings::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Validator { path }.settings(raw)
    }
}

struct Validator<'a> {
    path: &'a Path,
}

impl Validator<'_> {
    fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    fn duration(
        &self,
        key: &str,
        v: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => {
                let d = humantime::parse_duration(s).map_err(|e| {
                    self.err(
                        key,
                        format!("{s:?} is not a duration such as \"30s\" or \"5m\" ({e})"),
                    )
                })?;
                if d.is_zero() {
                    return Err(self.err(key, "must be greater than zero"));
                }
                Ok(d)
            }
        }
    }

    /// Relative paths in the config are relative to the config file's directory.
    fn path_rel(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            return p;
        }
        self.path.parent().map(|d| d.join(&p)).unwrap_or(p)
    }

    fn settings(&self, raw: RawConfig) -> Result<Settings, ConfigError> {
        let policy = match raw.agent.policy.as_deref().unwrap_or("auto") {
            "auto" => Policy::Auto,
            "download-only" => Policy::DownloadOnly,
            "off" => Policy::Off,
            other => {
                return Err(self.err(
                    "agent.policy",
                    format!("{other:?} is not one of \"auto\", \"download-only\", \"off\""),
                ))
            }
        };
        let check_interval = self.duration(
            "agent.check_interval",
            raw.agent.check_interval.as_deref(),
            Duration::from_secs(6 * 3600),
        )?;
        let state_dir = self.path_rel(
            raw.agent
                .state_dir
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        );
        Ok(Settings {
            path: self.path.to_path_buf(),
            state_dir,
            policy,
            check_interval,
            device_id: match raw.agent.device_id {
                Some(id) if id.trim().is_empty() => {
                    return Err(self.err("agent.device_id", "must not be empty"))
                }
                other => other,
            },
            index: self.index(raw.index)?,
            board: self.board(raw.board)?,
            trial: TrialSettings {
                deadline: self.duration(
                    "trial.deadline",
                    raw.trial.deadline.as_deref(),
                    Duration::from_secs(300),
                )?,
                retry_interval: self.duration(
                    "trial.retry_interval",
                    raw.trial.retry_interval.as_deref(),
                    Duration::from_secs(10),
                )?,
                soak: match raw.trial.soak.as_deref() {
                    Some("0s") | Some("0") => Duration::ZERO,
                    other => self.duration("trial.soak", other, Duration::from_secs(600))?,
                },
                soak_failures: match raw.trial.soak_failures.unwrap_or(3) {
                    0 => return Err(self.err("trial.soak_failures", "must be at least 1")),
                    n => n,
                },
            },
            health: self.plan(raw.health)?,
            runtime_dir: self.path_rel(
                raw.agent
                    .runtime_dir
                    .unwrap_or_else(|| "/run/fwguard".into()),
            ),
            max_rollbacks: match raw.agent.max_rollbacks.unwrap_or(2) {
                0 => return Err(self.err("agent.max_rollbacks", "must be at least 1")),
                n => n,
            },
        })
    }

    fn index(&self, raw: raw::RawIndex) -> Result<IndexSettings, ConfigError> {
        reqwest::Url::parse(&raw.url)
            .map_err(|e| self.err("index.url", format!("{:?} is not a URL: {e}", raw.url)))
            .and_then(|u| match u.scheme() {
                "http" | "https" | "file" => Ok(()),
                s => Err(self.err(
                    "index.url",
                    format!("scheme {s:?} is not http, https or file"),
                )),
            })?;
        let trust = match raw.root {
            Some(root) => {
                if !raw.trusted_keys.is_empty()
                    || !raw.trusted_key_files.is_empty()
                    || raw.threshold.is_some()
                {
                    return Err(self.err(
                        "index.root",
                        "give either a trust root file or trusted_keys/trusted_key_files/threshold, not both",
                    ));
                }
                let p = self.path_rel(root);
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| self.err("index.root", format!("{}: {e}", p.display())))?;
                TrustRoot::parse(&text)
                    .map_err(|e| self.err("index.root", format!("{}: {e}", p.display())))?
            }
            None => TrustRoot::fixed(self.fixed_keys(&raw)?),
        };
        let min_rate = MinRate {
            min_bytes_per_sec: raw.min_rate.unwrap_or(MinRate::default().min_bytes_per_sec),
            window: self.duration(
                "index.rate_window",
                raw.rate_window.as_deref(),
                MinRate::default().window,
            )?,
        };
        Ok(IndexSettings {
            url: raw.url,
            channel: raw.channel.unwrap_or_else(|| "stable".into()),
            trust,
            min_rate,
            max_index_bytes: raw.max_index_bytes.unwrap_or(DEFAULT_MAX_INDEX_BYTES),
            fetch_timeout: self.duration(
                "index.fetch_timeout",
                raw.fetch_timeout.as_deref(),
                Duration::from_secs(600),
            )?,
        })
    }

    fn fixed_keys(&self, raw: &raw::RawIndex) -> Result<TrustPolicy, ConfigError> {
        let mut keys = Vec::new();
        for (i, k) in raw.trusted_keys.iter().enumerate() {
            keys.push(
                PublicKey::parse(k)
                    .map_err(|e| self.err(&format!("index.trusted_keys[{i}]"), e.to_string()))?,
            );
        }
        for (i, p) in raw.trusted_key_files.iter().enumerate() {
            let key = format!("index.trusted_key_files[{i}]");
            let p = self.path_rel(p.clone());
            let text = std::fs::read_to_string(&p)
                .map_err(|e| self.err(&key, format!("{}: {e}", p.display())))?;
            keys.push(
                PublicKey::parse(&text)
                    .map_err(|e| self.err(&key, format!("{}: {e}", p.display())))?,
            );
        }
        if keys.is_empty() {
            return Err(self.err(
                "index.trusted_keys",
                "no trusted key is configured (nor an index.root); fwguard refuses every index that no trusted key signed",
            ));
        }
        let threshold = raw.threshold.unwrap_or(1);
        if threshold == 0 || threshold > keys.len() {
            return Err(self.err(
                "index.threshold",
                format!(
                    "{threshold} must be between 1 and the number of trusted keys ({})",
                    keys.len()
                ),
            ));
        }
        Ok(TrustPolicy { keys, threshold })
    }

    fn board(&self, raw: RawBoard) -> Result<BoardSettings, ConfigError> {
        Ok(match raw {
            RawBoard::Sim { dir } => BoardSettings::Sim {
                dir: self.path_rel(dir),
            },
            RawBoard::Uboot {
                id,
                env_device,
                env_offset,
                env_size,
                slot_a,
                slot_b,
                cmdline,
                reboot_command,
            } => {
                if id.is_empty() {
                    return Err(self.err("board.id", "must not be empty"));
                }
                if env_size < 16 {
                    return Err(
                        self.err("board.env_size", format!("{env_size} bytes is too small"))
                    );
                }
                if slot_a == slot_b {
                    return Err(self.err("board.slot_b", "must differ from board.slot_a"));
                }
                let reboot_command = reboot_command.unwrap_or_else(|| vec!["/sbin/reboot".into()]);
                if reboot_command.is_empty() {
                    return Err(self.err("board.reboot_command", "must name a program"));
                }
                BoardSettings::UBoot {
                    id,
                    env_device,
                    env_offset,
                    env_size,
                    slot_a,
                    slot_b,
                    cmdline: cmdline.unwrap_or_else(|| "/proc/cmdline".into()),
                    reboot_command,
                }
            }
        })
    }

    fn family(&self, key: &str, v: Option<&str>) -> Result<Family, ConfigError> {
        match v.unwrap_or("any") {
            "ipv4" => Ok(Family::V4),
            "ipv6" => Ok(Family::V6),
            "any" => Ok(Family::Any),
            other => Err(self.err(
                key,
                format!("{other:?} is not \"ipv4\", \"ipv6\" or \"any\""),
            )),
        }
    }

    fn check(
        &self,
        i: usize,
        mut table: toml::Table,
    ) -> Result<(CheckSpec, Option<String>, bool), ConfigError> {
        let key = |f: &str| format!("health.check[{i}].{f}");
        let mut take_str = |f: &str| -> Result<Option<String>, ConfigError> {
            match table.remove(f) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s)),
                Some(v) => Err(self.err(
                    &key(f),
                    format!("expected a string, found {}", v.type_str()),
                )),
            }
        };
        let name = take_str("name")?.ok_or_else(|| self.err(&key("name"), "is missing"))?;
        if name.is_empty() {
            return Err(self.err(&key("name"), "must not be empty"));
        }
        let timeout = take_str("timeout")?;
        let group = take_str("group")?;
        let advisory = match table.remove("advisory") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            Some(v) => {
                return Err(self.err(
                    &key("advisory"),
                    format!("expected true or false, found {}", v.type_str()),
                ))
            }
        };
        let raw: RawCheckKind = toml::Value::Table(table).try_into().map_err(|e| {
            self.err(
                &format!("health.check[{i}] ({name})"),
                e.to_string().trim_end().to_string(),
            )
        })?;
        let kind = match raw {
            RawCheckKind::Link { interface } => CheckKind::Link { interface },
            RawCheckKind::Address { interface, family } => CheckKind::Address {
                interface,
                family: self.family(&key("family"), family.as_deref())?,
            },
            RawCheckKind::Route { family } => CheckKind::Route {
                family: self.family(&key("family"), family.as_deref())?,
            },
            RawCheckKind::Dns { query, server } => {
                let server = match server {
                    None => None,
                    Some(s) => Some(
                        s.parse::<SocketAddr>()
                            .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                            .map_err(|_| {
                                self.err(
                                    &key("server"),
                                    format!("{s:?} is not an IP address (optionally with :port)"),
                                )
                            })?,
                    ),
                };
                CheckKind::Dns {
                    name: query,
                    server,
                }
            }
            RawCheckKind::Http { url, expect_status } => {
                let u = reqwest::Url::parse(&url)
                    .map_err(|e| self.err(&key("url"), format!("{url:?}: {e}")))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(self.err(&key("url"), "must be an http or https URL"));
                }
                CheckKind::Http {
                    url,
                    expect_status: expect_status.unwrap_or(200),
                }
            }
            RawCheckKind::Tcp { address } => {
                if !address.contains(':') {
                    return Err(self.err(&key("address"), format!("{address:?} is not host:port")));
                }
                CheckKind::Tcp { address }
            }
            RawCheckKind::Ping { host } => CheckKind::Ping {
                host: host.parse().map_err(|_| {
                    self.err(&key("host"), format!("{host:?} is not an IP address"))
                })?,
            },
            RawCheckKind::Process { process } => CheckKind::Process { name: process },
            RawCheckKind::Listen { port, protocol } => CheckKind::Listen {
                port,
                proto: match protocol.as_deref().unwrap_or("tcp") {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    other => {
                        return Err(self.err(
                            &key("protocol"),
                            format!("{other:?} is not \"tcp\" or \"udp\""),
                        ))
                    }
                },
            },
            RawCheckKind::Command { argv } => {
                if argv.is_empty() {
                    return Err(self.err(&key("argv"), "must name a program"));
                }
                CheckKind::Command { argv }
            }
            RawCheckKind::Clock {} => CheckKind::Clock,
        };
        let spec = CheckSpec {
            name,
            timeout: self.duration(&key("timeout"), timeout.as_deref(), Duration::from_secs(10))?,
            kind,
        };
        Ok((spec, group, advisory))
    }

    /// Checks and groups into a plan: a check with no group is a group of its own.
    fn plan(&self, raw: raw::RawHealth) -> Result<Plan, ConfigError> {
        let mut plan = Plan::default();
        let mut named: Vec<(raw::RawGroup, Vec<usize>)> = Vec::new();
        for (i, g) in raw.groups.into_iter().enumerate() {
            if g.name.is_empty() || named.iter().any(|(n, _)| n.name == g.name) {
                return Err(self.err(
                    &format!("health.group[{i}].name"),
                    format!("{:?} is empty or used twice", g.name),
                ));
            }
            named.push((g, Vec::new()));
        }
        for (i, table) in raw.checks.into_iter().enumerate() {
            let (spec, group, advisory) = self.check(i, table)?;
            if plan.checks.iter().any(|c| c.name == spec.name)
                || named.iter().any(|(g, _)| g.name == spec.name)
            {
                return Err(self.err(
                    &format!("health.check[{i}].name"),
                    format!("{:?} is used twice", spec.name),
                ));
            }
            let idx = plan.checks.len();
            match group {
                Some(gname) => {
                    let (_, members) =
                        named
                            .iter_mut()
                            .find(|(g, _)| g.name == gname)
                            .ok_or_else(|| {
                                self.err(
                                    &format!("health.check[{i}].group"),
                                    format!("no [[health.group]] is named {gname:?}"),
                                )
                            })?;
                    if advisory {
                        return Err(self.err(
                            &format!("health.check[{i}].advisory"),
                            "set advisory on the group, not on a member",
                        ));
                    }
                    members.push(idx);
                }
                None => plan.groups.push(Group {
                    name: spec.name.clone(),
                    members: vec![idx],
                    need: 1,
                    advisory,
                }),
            }
            plan.checks.push(spec);
        }
        for (i, (g, members)) in named.into_iter().enumerate() {
            let need = g.need.unwrap_or(members.len());
            if members.is_empty() || need == 0 || need > members.len() {
                return Err(self.err(
                    &format!("health.group[{i}].need"),
                    format!(
                        "group {:?} has {} check(s); need must be between 1 and that",
                        g.name,
                        members.len()
                    ),
                ));
            }
            plan.groups.push(Group {
                name: g.name,
                members,
                need,
                advisory: g.advisory,
            });
        }
        Ok(plan)
    }
}
