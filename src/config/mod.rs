//! Configuration: the TOML file (`raw`) validated into typed [`Settings`].
//!
//! Defaults live here and nowhere else. Every error names the file, the key and the problem.

mod board;
mod carry;
mod health;
pub(crate) mod keys;
mod notify;
mod raw;
pub mod targets;
pub mod window;

pub use board::{BoardSettings, LinksysSettings, OtherBoot};
pub use notify::{NotifySettings, Sink};

use crate::fetch::MinRate;
use crate::health::Plan;
use crate::index::root::TrustRoot;
use crate::index::sign::PublicKey;
use crate::index::{TrustPolicy, DEFAULT_MAX_INDEX_BYTES};
use raw::RawConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/fwguard/config.toml";
pub const ENV_VAR: &str = "FWGUARD_CONFIG";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/fwguard";
/// Where OpenWrt's `ca-bundle` and Debian's `ca-certificates` put the system's CA bundle.
/// OpenWrt's UCI file that holds `system.@system[0].compat_version`.
pub const DEFAULT_COMPAT_FILE: &str = "/etc/config/system";
pub const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Download, install and reboot into the trial.
    Auto,
    /// Write and verify the inactive slot, then wait for the owner (`fwguard update`).
    DownloadOnly,
    /// Check and report what is available; download nothing.
    Notify,
    /// Write and verify the inactive slot, tell the owner, and boot it once the owner
    /// approves it (or `approve_after` has passed).
    Approve,
    /// Never act without the owner.
    Off,
}

impl Policy {
    pub const ALL: [Policy; 5] = [
        Policy::Auto,
        Policy::Approve,
        Policy::DownloadOnly,
        Policy::Notify,
        Policy::Off,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::Approve => "approve",
            Policy::DownloadOnly => "download-only",
            Policy::Notify => "notify",
            Policy::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
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
    /// Where fwguard keeps files that must not wear the flash (the last health report): only
    /// ever written when it is on tmpfs or ramfs (`crate::runtime_dir`).
    pub runtime_dir: PathBuf,
    /// Automatic rollbacks in a row after which automatic installs stop until the owner acts.
    pub max_rollbacks: u32,
    /// At most this much random extra wait after each check interval (spreads the fleet).
    pub check_jitter: Duration,
    /// When the daemon may reboot into an update (empty: any time), in `timezone`.
    pub windows: Vec<window::Window>,
    /// Policy approve: when the daemon may reboot into an approved update (empty: the
    /// maintenance windows), in `timezone`.
    pub reboot_windows: Vec<window::Window>,
    /// Policy approve: a staged release is approved without the owner once this long has
    /// passed since it was staged (None: only the owner approves).
    pub approve_after: Option<Duration>,
    pub timezone: Option<tz::TimeZone>,
    /// The certificate authorities trusted for https (index, images, health checks).
    pub ca_bundle: PathBuf,
    /// Where the running firmware declares its configuration format: OpenWrt's UCI
    /// `system` file, or a file holding `MAJOR.MINOR` (absent: 1.0).
    pub compat_file: PathBuf,
    /// Where the outcome of each update is reported (None: nowhere).
    pub report: Option<ReportSettings>,
    /// Where the owner is told what happened (`[[notify]]`).
    pub notify: Vec<NotifySettings>,
    /// Where copies of committed images are kept with their signed index (None: nowhere).
    pub archive: Option<ArchiveSettings>,
    /// How the owner's settings reach the firmware being installed (`[settings]`).
    pub carry: crate::carry::CarryPlan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// A directory on USB storage or a spare partition (mounted by the system).
    pub dir: PathBuf,
    /// How many images to keep (the running one always among them).
    pub keep: usize,
}

#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub url: reqwest::Url,
    pub timeout: Duration,
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

pub(crate) struct Validator<'a> {
    path: &'a Path,
}

impl Validator<'_> {
    pub(crate) fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn duration(
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
        let agent = raw::RawAgent::read(raw.agent).map_err(|e| self.key_error("agent", e))?;
        let p = agent.policy.as_deref().unwrap_or("auto");
        let policy = Policy::parse(p).ok_or_else(|| {
            self.err(
                "agent.policy",
                format!("{p:?} is not one of \"auto\", \"approve\", \"download-only\", \"notify\", \"off\""),
            )
        })?;
        let check_interval = self.duration(
            "agent.check_interval",
            agent.check_interval.as_deref(),
            Duration::from_secs(6 * 3600),
        )?;
        let state_dir = self.path_rel(agent.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()));
        let board = self.board(raw.board)?;
        let trial = raw::RawTrial::read(raw.trial).map_err(|e| self.key_error("trial", e))?;
        Ok(Settings {
            carry: self.carry(raw.settings, &board)?,
            path: self.path.to_path_buf(),
            state_dir,
            policy,
            check_interval,
            device_id: match agent.device_id {
                Some(id) if id.trim().is_empty() => {
                    return Err(self.err("agent.device_id", "must not be empty"))
                }
                other => other,
            },
            index: self
                .index(raw::RawIndex::read(raw.index).map_err(|e| self.key_error("index", e))?)?,
            board,
            trial: TrialSettings {
                deadline: self.duration(
                    "trial.deadline",
                    trial.deadline.as_deref(),
                    Duration::from_secs(300),
                )?,
                retry_interval: self.duration(
                    "trial.retry_interval",
                    trial.retry_interval.as_deref(),
                    Duration::from_secs(10),
                )?,
                soak: match trial.soak.as_deref() {
                    Some("0s") | Some("0") => Duration::ZERO,
                    other => self.duration("trial.soak", other, Duration::from_secs(600))?,
                },
                soak_failures: match trial.soak_failures.unwrap_or(3) {
                    0 => return Err(self.err("trial.soak_failures", "must be at least 1")),
                    n => u32::try_from(n).map_err(|_| {
                        self.err("trial.soak_failures", "must be at most 4294967295")
                    })?,
                },
            },
            health: self.plan(raw.health)?,
            runtime_dir: self.path_rel(agent.runtime_dir.unwrap_or_else(|| "/run/fwguard".into())),
            ca_bundle: self.path_rel(agent.ca_bundle.unwrap_or_else(|| DEFAULT_CA_BUNDLE.into())),
            compat_file: self.path_rel(
                agent
                    .compat_file
                    .unwrap_or_else(|| DEFAULT_COMPAT_FILE.into()),
            ),
            max_rollbacks: match agent.max_rollbacks.unwrap_or(2) {
                0 => return Err(self.err("agent.max_rollbacks", "must be at least 1")),
                n => u32::try_from(n)
                    .map_err(|_| self.err("agent.max_rollbacks", "must be at most 4294967295"))?,
            },
            check_jitter: match agent.check_jitter.as_deref() {
                Some("0s") | Some("0") => Duration::ZERO,
                other => self.duration("agent.check_jitter", other, check_interval / 10)?,
            },
            timezone: if raw.maintenance.is_empty()
                && raw.reboot_window.is_empty()
                && agent.timezone.is_none()
            {
                None
            } else {
                self.timezone(agent.timezone)?
            },
            windows: self.windows("maintenance", raw.maintenance)?,
            reboot_windows: self.windows("reboot_window", raw.reboot_window)?,
            approve_after: match agent.approve_after.as_deref() {
                None => None,
                s => Some(self.duration("agent.approve_after", s, Duration::ZERO)?),
            },
            notify: self.notify(raw.notify)?,
            report: match raw.report.map(raw::RawReport::read).transpose() {
                Err(e) => return Err(self.key_error("report", e)),
                Ok(None) => None,
                Ok(Some(r)) => Some(ReportSettings {
                    url: self.http_url("report.url", r.url)?,
                    timeout: self.duration(
                        "report.timeout",
                        r.timeout.as_deref(),
                        Duration::from_secs(10),
                    )?,
                }),
            },
            archive: match raw.archive.map(raw::RawArchive::read).transpose() {
                Err(e) => return Err(self.key_error("archive", e)),
                Ok(None) => None,
                Ok(Some(a)) if a.dir.as_os_str().is_empty() => {
                    return Err(self.err("archive.dir", "must not be empty"))
                }
                Ok(Some(a)) => Some(ArchiveSettings {
                    dir: self.path_rel(a.dir),
                    keep: match a.keep.unwrap_or(2) {
                        0 => return Err(self.err("archive.keep", "must be at least 1")),
                        n if n > u32::MAX as u64 => {
                            return Err(self.err("archive.keep", "must be at most 4294967295"))
                        }
                        n => n as usize,
                    },
                }),
            },
        })
    }

    /// An http or https URL.
    fn http_url(&self, key: &str, url: String) -> Result<reqwest::Url, ConfigError> {
        let u = reqwest::Url::parse(&url)
            .map_err(|e| self.err(key, format!("{url:?} is not a URL: {e}")))?;
        match u.scheme() {
            "http" | "https" => Ok(u),
            s => Err(self.err(key, format!("scheme {s:?} is not http or https"))),
        }
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
}
