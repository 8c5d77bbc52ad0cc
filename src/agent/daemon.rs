//! The long-running agent: settle this boot, judge a trial, then check for updates on an
//! interval as the policy allows.

use super::{Action, Agent, Situation};
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
        // `fwguard check --now` sends SIGUSR1: handled before the pid file says where to send
        // it (its default action would end the process).
        let mut wake =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .map_err(|e| crate::error::Error::Other(format!("cannot handle SIGUSR1: {e}")))?;
        let _claim = self.claim_daemon()?;
        // What the owner is told (`[[notify]]`) starts from the history before this boot's
        // recovery, so that what the recovery records (a trial started, a rollback
        // finished) is told.
        let outbox = self.outbox();
        let mut told = self.told();
        let mut situation = self.reconcile()?;
        self.tell(&outbox, &mut told, None);
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
        // A trial armed that the state does not explain: write nothing, let the bootloader's
        // counter decide, and look again each interval (the owner may set the env right).
        while let Situation::Unexplained(_) = situation {
            tokio::select! {
                _ = tokio::time::sleep(self.next_check()) => {}
                _ = wake.recv() => {}
                _ = &mut shutdown => return Ok(DaemonExit::Stopped),
            }
            situation = self.reconcile()?;
            self.tell(&outbox, &mut told, None);
        }
        match situation {
            Situation::Unexplained(_) => unreachable!("waited out above"),
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
        // The check-in of this start (`[report]`), tried each round until taken.
        let mut said_hello = false;
        loop {
            // Outcomes of a commit or rollback to report (queued with them), sent first.
            self.send_outcomes().await;
            if !said_hello {
                said_hello = self.say_hello().await;
            }
            // A known-good image not archived yet is copied before anything else is
            // installed, and again after a round that noted one (the factory firmware).
            self.archive_known_good().await;
            self.tell(&outbox, &mut told, None);
            // The round may install and reboot: what is being told (a commit, say) gets a
            // few seconds first, and no more.
            tokio::select! {
                _ = outbox.settle(std::time::Duration::from_secs(5)) => {}
                _ = &mut shutdown => return Ok(DaemonExit::Stopped),
            }
            let (record, reboot) = self.round().await;
            if let Some(why) = reboot {
                return Ok(DaemonExit::Reboot(why));
            }
            self.tell(&outbox, &mut told, Some(&record));
            self.archive_known_good().await;
            // Hours until the next check: the code that ran for this one is handed back.
            crate::memory::page_out_code();
            tokio::select! {
                _ = tokio::time::sleep(self.next_check()) => {}
                _ = wake.recv() => tracing::info!("checking now, as asked (`fwguard check --now`)"),
                _ = &mut shutdown => return Ok(DaemonExit::Stopped),
            }
        }
    }
}

impl Agent {
    /// Whether the daemon may reboot into an update now: always without windows; never while
    /// the clock is behind the newest trusted time (a router without an RTC before NTP).
    pub fn in_maintenance_window(&self) -> bool {
        self.inside(&self.settings.windows)
    }

    /// Policy approve: whether an approved update may reboot now (inside a reboot window, or
    /// with none configured, a maintenance window).
    pub fn in_reboot_window(&self) -> bool {
        match self.settings.reboot_windows.as_slice() {
            [] => self.in_maintenance_window(),
            w => self.inside(w),
        }
    }

    /// Whether now is inside one of `windows` (none: always); never on a clock behind the
    /// trusted time.
    fn inside(&self, windows: &[crate::config::window::Window]) -> bool {
        if windows.is_empty() {
            return true;
        }
        let now = self.now();
        if self.load().is_ok_and(|st| now < st.time_floor) {
            return false;
        }
        let t = crate::config::window::LocalTime::at(now, self.settings.timezone.as_ref());
        windows.iter().any(|w| w.contains(t))
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
        // The daemon that follows tells the owner what this recovery records.
        self.told();
        match self.reconcile()? {
            Situation::Unexplained(why) => Ok(Action::UpToDate(why)),
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
