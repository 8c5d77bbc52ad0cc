//! The long-running agent: settle this boot, judge a trial, then check for updates on an
//! interval as the policy allows.

use super::{Action, Agent, By, Situation, UpdateMode};
use crate::config::Policy;
use crate::error::Result;
use std::future::Future;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonExit {
    /// The shutdown signal arrived.
    Stopped,
    /// A reboot was requested; the process should exit.
    Reboot(String),
}

impl Agent {
    /// Run until shutdown or a reboot. `shutdown` resolves when the daemon must stop.
    pub async fn run_daemon(&self, shutdown: impl Future<Output = ()>) -> Result<DaemonExit> {
        let mut shutdown = std::pin::pin!(shutdown);
        let situation = self.reconcile()?;
        // Under systemd (Type=notify): ready once this boot is known, then keep the watchdog
        // fed; the feeding stops if the daemon's thread hangs.
        let notifier = super::notify::Notifier::from_env();
        notifier.notify("READY=1");
        if let Some(every) = super::notify::Notifier::watchdog_interval() {
            tokio::spawn(async move {
                loop {
                    notifier.notify("WATCHDOG=1");
                    tokio::time::sleep(every).await;
                }
            });
        }
        match situation {
            Situation::NeedsReboot(why) => {
                self.reboot(why.clone())?;
                return Ok(DaemonExit::Reboot(why));
            }
            Situation::Trial => {
                tracing::info!("trial boot: running health checks");
                match self.run_trial(&mut shutdown).await? {
                    None => return Ok(DaemonExit::Stopped),
                    Some(Action::Reboot(why)) => return Ok(DaemonExit::Reboot(why)),
                    Some(_) => {}
                }
            }
            Situation::Idle => {
                if self.confirm_boot(&mut shutdown).await? == super::Confirmed::Stopped {
                    return Ok(DaemonExit::Stopped);
                }
            }
        }
        loop {
            // The owner may change the policy at any time (`fwguard policy`): read it each round.
            let policy = self
                .load()
                .map(|st| self.policy(&st))
                .unwrap_or(self.settings.policy);
            let mode = match policy {
                Policy::Off => {
                    tracing::debug!("policy is off: not checking for updates");
                    None
                }
                Policy::Notify => {
                    match self.check().await {
                        Ok(r) => match r.choice {
                            crate::index::select::Choice::Install(rel) => tracing::info!(
                                "update available: {} (running {}); policy is notify, so nothing is downloaded: `fwguard update` installs it",
                                rel.version,
                                r.running
                            ),
                            crate::index::select::Choice::UpToDate { reason } => {
                                tracing::debug!("up to date: {reason}")
                            }
                        },
                        Err(e) => tracing::warn!("update check failed: {e}"),
                    }
                    None
                }
                Policy::DownloadOnly => Some(UpdateMode::StageOnly),
                // Outside the maintenance window the image is written and verified already;
                // the reboot into it waits for the window.
                Policy::Auto if self.in_maintenance_window() => Some(UpdateMode::Install),
                Policy::Auto => {
                    tracing::debug!("outside the maintenance window: staging only");
                    Some(UpdateMode::StageOnly)
                }
            };
            if let Some(mode) = mode {
                match self.update_by(mode, By::Daemon).await {
                    Ok(Action::Reboot(why)) => return Ok(DaemonExit::Reboot(why)),
                    Ok(Action::UpToDate(why)) => tracing::debug!("up to date: {why}"),
                    Ok(other) => tracing::info!("{other:?}"),
                    Err(e) => tracing::warn!("update check failed: {e}"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.next_check()) => {}
                _ = &mut shutdown => return Ok(DaemonExit::Stopped),
            }
        }
    }
}

impl Agent {
    /// Whether the daemon may reboot into an update now: always without windows; never while
    /// the clock is behind the newest trusted time (a router without an RTC before NTP).
    pub fn in_maintenance_window(&self) -> bool {
        if self.settings.windows.is_empty() {
            return true;
        }
        let now = self.now();
        if self.load().is_ok_and(|st| now < st.time_floor) {
            return false;
        }
        let t = crate::config::window::LocalTime::at(now, self.settings.timezone.as_ref());
        self.settings.windows.iter().any(|w| w.contains(t))
    }

    /// The check interval plus a random part of the jitter.
    fn next_check(&self) -> std::time::Duration {
        let jitter = self.settings.check_jitter.as_millis() as u64;
        let mut r = [0u8; 8];
        let extra = match getrandom::getrandom(&mut r) {
            Ok(()) if jitter > 0 => u64::from_le_bytes(r) % (jitter + 1),
            _ => 0,
        };
        self.settings.check_interval + std::time::Duration::from_millis(extra)
    }

    /// `fwguard assess`: settle this boot and, on a trial boot, run the health checks to the
    /// end (commit, or roll back and reboot). For a boot-assessment unit ordered before
    /// `boot-complete.target`; the daemon does the rest.
    pub async fn assess(&self) -> Result<Action> {
        match self.reconcile()? {
            Situation::NeedsReboot(why) => self.reboot(why),
            Situation::Idle => {
                let mut never = std::pin::pin!(std::future::pending::<()>());
                Ok(match self.confirm_boot(&mut never).await? {
                    super::Confirmed::Reset => {
                        Action::Done("this committed boot is healthy: boot counter reset".into())
                    }
                    super::Confirmed::Failing => Action::UpToDate(
                        "this committed boot is not healthy; the boot counter stays".into(),
                    ),
                    _ => Action::UpToDate("this boot is committed; nothing to judge".into()),
                })
            }
            Situation::Trial => {
                let mut never = std::pin::pin!(std::future::pending::<()>());
                Ok(self
                    .run_trial(&mut never)
                    .await?
                    .expect("a trial without shutdown ends in a commit or a rollback"))
            }
        }
    }
}
