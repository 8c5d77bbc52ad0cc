//! Confirming a committed boot, on bootloaders that count every boot (Linksys dual firmware):
//! the count is reset only once the health checks pass on this boot, so a firmware that
//! boots but breaks the router keeps its count and the bootloader's fallback stays armed.
//! A confirmation writes the boot counter and nothing else (no state, no history).

use super::Agent;
use crate::error::Result;
use std::future::Future;

/// How a confirmation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// The checks passed and the count was reset.
    Reset,
    /// The count was already 0: nothing to do.
    NothingCounted,
    /// The checks kept failing until the deadline; the count stays.
    Failing,
    /// The shutdown signal arrived first.
    Stopped,
}

impl Agent {
    /// Whether this committed boot needs confirming: the bootloader counts every boot and
    /// has counted this one.
    pub(super) fn needs_confirmation(&self) -> Result<bool> {
        if !self.board.bootloader.counts_every_boot() {
            return Ok(false);
        }
        let boot = self.board.bootloader.read_state()?;
        Ok(!boot.trial && boot.bootcount > 0)
    }

    /// Run the health checks on this committed boot until they pass (reset the bootloader's
    /// count) or the trial deadline passes (leave it).
    pub async fn confirm_boot(
        &self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<Confirmed> {
        if !self.needs_confirmation()? {
            return Ok(Confirmed::NothingCounted);
        }
        let baseline = self.load()?.baseline;
        let trial = &self.settings.trial;
        let deadline = self.board.platform.uptime_ms() + trial.deadline.as_millis() as u64;
        loop {
            let (_, verdict) = self.health_round("confirm", baseline.as_deref()).await;
            let now = self.board.platform.uptime_ms();
            if verdict.passed() {
                let _held = self.lock_wait()?;
                self.preflight()?;
                let booted = self.board.platform.booted_slot()?;
                let boot = self.board.bootloader.read_state()?;
                if boot.trial || boot.primary != booted {
                    tracing::warn!(
                        "not confirming: the bootloader's next boot is slot {}{}, not this one ({booted})",
                        boot.primary,
                        if boot.trial { " on trial" } else { "" }
                    );
                    return Ok(Confirmed::Failing);
                }
                self.board.bootloader.commit(booted)?;
                tracing::info!(
                    "boot of slot {booted} confirmed healthy: boot counter reset (was {})",
                    boot.bootcount
                );
                return Ok(Confirmed::Reset);
            }
            if now >= deadline {
                let boot = self.board.bootloader.read_state()?;
                tracing::warn!(
                    "this boot is not confirmed: health checks failing ({}); the bootloader's count stays at {} (it boots the other firmware after {})",
                    verdict.failing.join("; "),
                    boot.bootcount,
                    boot.bootlimit
                );
                return Ok(Confirmed::Failing);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.retry_pause(deadline, now)) => {}
                _ = &mut *shutdown => return Ok(Confirmed::Stopped),
            }
        }
    }
}
