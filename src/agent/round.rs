//! One round of the daemon (check, then download or install as the policy and the
//! maintenance windows allow), the record of the latest round, and `fwguard check --now`,
//! which wakes a running daemon for a round at once, or runs one itself when none runs.

use super::{Action, Agent, By, UpdateMode};
use crate::config::Policy;
use crate::error::{Error, Result};
use crate::index::select::Choice;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// What the latest round did, as written to `<runtime_dir>/round.json` (tmpfs: no flash wear).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// When it started and ended (Unix milliseconds).
    pub started_ms: u64,
    pub finished_ms: u64,
    pub result: RoundResult,
    /// What happened, in a sentence.
    pub outcome: String,
    /// The stable exit code of the failure (0: none).
    pub exit_code: i32,
    /// The release it found and left for later (available, or staged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<crate::version::Version>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundResult {
    /// Policy off: nothing checked.
    Off,
    UpToDate,
    /// Newer firmware is available; the policy (notify) downloads nothing.
    Available,
    /// Newer firmware is available, but only the owner can install it (its configuration
    /// format breaks with the running firmware's); nothing was written.
    NeedsOwner,
    /// Written and verified in the inactive slot; waiting for the owner or the window.
    Staged,
    /// Rebooting into a trial boot.
    Rebooting,
    /// Anything else that needed no reboot (a commit).
    Done,
    Failed,
}

/// The daemon's claim on `<runtime_dir>/daemon.pid`: an exclusive lock held while it runs,
/// with its process id inside for `fwguard check --now`. None: the runtime directory is not
/// in RAM, so the daemon runs without its pid file.
pub struct DaemonLock {
    _flock: Option<Flock<File>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Agent {
    fn pid_path(&self) -> PathBuf {
        self.settings.runtime_dir.join("daemon.pid")
    }

    /// Open the pid file and try to lock it: `Ok(Err(file))` when a daemon holds it.
    fn try_pid_lock(&self) -> Result<std::result::Result<Flock<File>, File>> {
        let path = self.pid_path();
        let io = |e: std::io::Error| Error::Other(format!("{}: {e}", path.display()));
        let f = crate::runtime_dir::open(&self.settings.runtime_dir)?
            .open_or_create("daemon.pid")
            .map_err(io)?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Ok(lock)),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => Ok(Err(f)),
            Err((_, e)) => Err(io(e.into())),
        }
    }

    /// Claim the daemon's pid file (one daemon per device). A runtime directory that is not in
    /// RAM is logged and the daemon runs without it: refusing to run would leave a trial boot
    /// unjudged (the bootloader would then roll back a good update) and install nothing.
    pub(super) fn claim_daemon(&self) -> Result<DaemonLock> {
        let claim = match self.try_pid_lock() {
            Err(Error::RuntimeDir(e)) if e.is_refusal() => {
                tracing::error!(
                    "{e}; the daemon runs without its pid file, so `fwguard check --now` cannot wake it"
                );
                return Ok(DaemonLock { _flock: None });
            }
            other => other?,
        };
        match claim {
            Ok(mut lock) => {
                let path = self.pid_path();
                lock.set_len(0)
                    .and_then(|_| writeln!(&mut *lock, "{}", std::process::id()))
                    .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
                Ok(DaemonLock { _flock: Some(lock) })
            }
            Err(f) => Err(Error::DaemonRunning {
                pid: read_pid(f).map_or("unknown".into(), |p| p.to_string()),
                path: self.pid_path(),
            }),
        }
    }

    /// The latest round's record, if a round ran since the runtime directory was cleared.
    pub fn last_round(&self) -> Option<RoundRecord> {
        let bytes = crate::runtime_dir::read(&self.settings.runtime_dir, "round.json")?;
        serde_json::from_slice(&bytes).ok()
    }

    /// One round: what the policy in force allows, now. Failures are part of the record (the
    /// daemon carries on); the record is written before a reboot is returned, with its reason.
    pub async fn round(&self) -> (RoundRecord, Option<String>) {
        let started_ms = now_ms();
        // The owner may change the policy at any time (`fwguard policy`): read it each round.
        let policy = self
            .load()
            .map(|st| self.policy(&st))
            .unwrap_or(self.settings.policy);
        let mode = match policy {
            Policy::Off => None,
            Policy::Notify => None,
            Policy::DownloadOnly => Some(UpdateMode::StageOnly),
            // Outside the maintenance window the image is written and verified already; the
            // reboot into it waits for the window.
            Policy::Auto if self.in_maintenance_window() => Some(UpdateMode::Install),
            Policy::Auto => Some(UpdateMode::StageOnly),
            // Approved updates reboot inside the reboot window; the gate in the install
            // path stages the rest and waits for the owner.
            Policy::Approve if self.in_reboot_window() => Some(UpdateMode::Install),
            Policy::Approve => Some(UpdateMode::StageOnly),
        };
        use RoundResult as R;
        let mut reboot = None;
        let mut release = None;
        let (result, outcome, exit_code) = match (policy, mode) {
            (Policy::Off, _) => (
                R::Off,
                "policy is off: no check (`fwguard check` looks without installing)".into(),
                0,
            ),
            (_, None) => match self.check().await {
                Ok(r) => match &r.choice {
                    Choice::Install(rel) => (
                        {
                            release = Some(rel.version.clone());
                            R::Available
                        },
                        format!(
                            "update available: {} (running {}); policy is notify, so nothing is downloaded: `fwguard update` installs it",
                            rel.version, r.running_text()
                        ),
                        0,
                    ),
                    Choice::UpToDate { reason } => {
                        (R::UpToDate, format!("up to date: {reason}"), 0)
                    }
                    Choice::NeedsOwner { version, reason } => {
                        release = Some(version.clone());
                        (R::NeedsOwner, needs_owner(reason), 0)
                    }
                },
                Err(e) => (R::Failed, format!("update check failed: {e}"), e.exit_code()),
            },
            (_, Some(mode)) => match self.update_by(mode, By::Daemon).await {
                Ok(Action::Reboot(why)) => {
                    let sentence = format!("rebooting: {why}");
                    reboot = Some(why);
                    (R::Rebooting, sentence, 0)
                }
                Ok(Action::UpToDate(why)) => (R::UpToDate, format!("up to date: {why}"), 0),
                Ok(Action::Staged(v)) => {
                    let sentence = match policy {
                        Policy::Approve => self
                            .load()
                            .ok()
                            .and_then(|st| self.staged_text(&st))
                            .unwrap_or_else(|| "staged; waiting for the owner".into()),
                        Policy::Auto => format!("{v} is written and verified; the reboot into it waits for the maintenance window"),
                        _ => format!("{v} is written and verified in the inactive slot; `fwguard update` boots it"),
                    };
                    release = Some(v);
                    (R::Staged, sentence, 0)
                }
                Ok(Action::Committed(v)) => (R::Done, format!("committed {v}"), 0),
                Ok(Action::Done(what)) => (R::Done, what, 0),
                Ok(Action::NeedsOwner { version, reason }) => {
                    release = Some(version);
                    (R::NeedsOwner, needs_owner(&reason), 0)
                }
                Err(e) => (R::Failed, format!("update check failed: {e}"), e.exit_code()),
            },
        };
        match result {
            R::Failed => tracing::warn!("{outcome}"),
            R::Off | R::UpToDate => tracing::debug!("{outcome}"),
            _ => tracing::info!("{outcome}"),
        }
        let record = RoundRecord {
            started_ms,
            finished_ms: now_ms(),
            result,
            outcome: crate::redact::text(&outcome),
            exit_code,
            release,
        };
        if let Err(e) = self.write_runtime("round.json", &record) {
            tracing::error!("cannot record the round in the runtime directory: {e}");
        }
        (record, reboot)
    }

    /// `fwguard check --now`: wake the running daemon for a round at once and wait for its
    /// record; with no daemon running, run the round here.
    pub async fn check_now(&self) -> Result<RoundRecord> {
        let asked = now_ms();
        let Some(pid) = self.wake_daemon()? else {
            // No daemon: the round runs here (the state lock serialises it with anything a
            // daemon starting meanwhile does).
            return Ok(self.round().await.0);
        };
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(r) = self.last_round().filter(|r| r.started_ms >= asked) {
                return Ok(r);
            }
            if self.try_pid_lock()?.is_ok() {
                return Err(Error::Other(format!(
                    "the daemon (pid {pid}) stopped before it checked; `fwguard status` shows where things are"
                )));
            }
        }
    }
}

impl Agent {
    /// Ask the running daemon for a round now (SIGUSR1): its process id, or None when no
    /// daemon runs.
    pub(super) fn wake_daemon(&self) -> Result<Option<i32>> {
        let f = match self.try_pid_lock()? {
            Ok(_lock) => return Ok(None),
            Err(f) => f,
        };
        let pid = read_pid(f).ok_or_else(|| {
            Error::Other(format!(
                "a daemon holds {} but its process id is not in it",
                self.pid_path().display()
            ))
        })?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .map_err(|e| Error::Other(format!("cannot wake the daemon (pid {pid}): {e}")))?;
        tracing::info!("asked the daemon (pid {pid}) to check now");
        Ok(Some(pid))
    }
}

/// A round's sentence for a release only the owner can install.
pub fn needs_owner(reason: &str) -> String {
    format!("available, needs owner action: {reason}")
}

fn read_pid(mut f: File) -> Option<i32> {
    use std::io::Read;
    let mut s = String::new();
    f.read_to_string(&mut s).ok()?;
    s.trim().parse().ok().filter(|p| *p > 0)
}
