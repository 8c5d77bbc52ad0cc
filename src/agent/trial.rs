//! A trial boot: judge it with the health checks, and commit it or roll it back.

use super::{Action, Agent};
use crate::error::{Error, Result};
use crate::health::Report;
use crate::state::{check_records, Event, Lock, PersistedState, UpdateState};
use std::future::Future;
use std::time::Duration;

impl Agent {
    /// Commit the running trial: bootloader first, then the state.
    fn finish_commit(
        &self,
        st: &mut PersistedState,
        report: Report,
        detail: &str,
    ) -> Result<crate::version::Version> {
        let UpdateState::Trial { release, slot, .. } = st.update.clone() else {
            return Err(crate::state::Disallowed {
                event: "commit",
                state: st.update.name(),
            }
            .into());
        };
        match self.carry_commit(st) {
            Some(c) => self.board.bootloader.commit_carrying(slot, &c)?,
            None => self.board.bootloader.commit(slot)?,
        }
        crate::failpoint::hit("commit-env-written");
        let facts = self.facts(st);
        st.apply(
            Event::Commit {
                checks: check_records(&report.results),
                detail: detail.to_string(),
            },
            &facts,
        )?;
        Ok(release.version)
    }

    /// Commit now (health passed, or the owner said so). The caller holds the lock.
    pub(super) fn commit(&self, _held: &Lock, report: Report, detail: &str) -> Result<Action> {
        self.preflight()?;
        let mut st = self.load()?;
        let v = self.finish_commit(&mut st, report, detail)?;
        self.save(&st)?;
        tracing::info!("committed {v}");
        Ok(Action::Committed(v))
    }

    /// Roll the running trial (or, when idle, the committed firmware) back to the other slot;
    /// `by_owner` tells an owner's rollback from the agent's own.
    pub(super) fn roll_back(
        &self,
        _held: &Lock,
        reason: String,
        report: Option<Report>,
        by_owner: bool,
    ) -> Result<Action> {
        self.preflight()?;
        let mut st = self.load()?;
        let booted = self.board.platform.booted_slot()?;
        let to = match &st.update {
            UpdateState::Trial { previous, .. } => *previous,
            _ => !booted,
        };
        let good = st.slot(to).is_some_and(|r| r.good) || st.unidentified_in(to).is_some();
        if !good {
            return Err(Error::Refused(format!(
                "slot {to} holds no known-good firmware to go back to"
            )));
        }
        // Prove the old firmware is intact before switching to it.
        let verified = self.verify_recorded(&st, to)?;
        let version = match &st.update {
            UpdateState::Trial { release, .. } => release.version.clone(),
            _ => Agent::version_in(&st, booted).ok_or_else(|| {
                Error::Refused(format!(
                    "the firmware in slot {booted} is not identified; nothing to roll back from"
                ))
            })?,
        };
        let facts = self.facts(&st);
        st.apply(
            Event::Rollback {
                to,
                version: version.clone(),
                reason,
                checks: report
                    .map(|r| check_records(&r.results))
                    .unwrap_or_default(),
                by_owner,
            },
            &facts,
        )?;
        self.save(&st)?;
        crate::failpoint::hit("rollback-persisted");
        match self.carry_rollback(&st) {
            Some(c) => self.board.bootloader.switch_to_carrying(&verified, &c)?,
            None => self.board.bootloader.switch_to(&verified)?,
        }
        crate::failpoint::hit("rollback-env-written");
        self.reboot(format!("rollback from {version} to slot {to}"))
    }

    /// How long to wait before the next round of health checks: the retry interval, or less
    /// when `until` (ms of boot time) comes first.
    pub(super) fn retry_pause(&self, until: u64, now: u64) -> Duration {
        let every = self.settings.trial.retry_interval.as_millis() as u64;
        Duration::from_millis(until.saturating_sub(now).clamp(1, every))
    }

    /// Run the health checks until they pass, then through the soak period (commit), or
    /// roll back when the trial deadline passes first or the soak sees a regression.
    pub async fn run_trial(
        &self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<Option<Action>> {
        let st = self.load()?;
        let started_ms = match &st.update {
            UpdateState::Trial { started_ms, .. } => *started_ms,
            other => {
                return Err(crate::state::Disallowed {
                    event: "run a trial",
                    state: other.name(),
                }
                .into())
            }
        };
        let baseline = st.baseline.clone();
        let trial = &self.settings.trial;
        let deadline_ms = started_ms + trial.deadline.as_millis() as u64;
        let soak_ms = trial.soak.as_millis() as u64;
        if self.settings.health.is_empty() {
            tracing::warn!(
                "no health checks are configured: the trial passes as soon as fwguard runs"
            );
        }
        let mut soak_until: Option<u64> = None;
        let mut soak_fails = 0u32;
        loop {
            let phase = if soak_until.is_some() {
                "soak"
            } else {
                "trial"
            };
            let (report, verdict) = self.health_round(phase, baseline.as_deref()).await;
            crate::failpoint::hit("trial-health-round");
            let now = self.board.platform.uptime_ms();
            let excused = if verdict.excused.is_empty() {
                String::new()
            } else {
                format!(
                    " (not blocking, as they failed before the update too: {})",
                    verdict.excused.join("; ")
                )
            };
            let until = match (verdict.passed(), soak_until) {
                (true, None) if soak_ms == 0 => {
                    let held = self.lock_wait()?;
                    return self
                        .commit(&held, report, &format!("health checks passed{excused}"))
                        .map(Some);
                }
                (true, Some(end)) if now >= end => {
                    let held = self.lock_wait()?;
                    let what = format!(
                        "health checks passed and held through the {} soak{excused}",
                        humantime::format_duration(trial.soak)
                    );
                    return self.commit(&held, report, &what).map(Some);
                }
                (true, None) => {
                    tracing::info!(
                        "trial health checks pass; soaking for {}",
                        humantime::format_duration(trial.soak)
                    );
                    soak_until = Some(now + soak_ms);
                    now + soak_ms
                }
                (true, Some(end)) => {
                    soak_fails = 0;
                    end
                }
                (false, Some(end)) => {
                    soak_fails += 1;
                    tracing::warn!(
                        "regression during the soak ({soak_fails} of {}): {}",
                        trial.soak_failures,
                        verdict.failing.join("; ")
                    );
                    if soak_fails >= trial.soak_failures {
                        let held = self.lock_wait()?;
                        let reason = format!(
                            "health checks regressed during the soak period: {}",
                            verdict.failing.join("; ")
                        );
                        return self.roll_back(&held, reason, Some(report), false).map(Some);
                    }
                    end
                }
                (false, None) if now >= deadline_ms => {
                    let held = self.lock_wait()?;
                    let reason = format!(
                        "health checks failed until the trial deadline: {}",
                        verdict.failing.join("; ")
                    );
                    return self.roll_back(&held, reason, Some(report), false).map(Some);
                }
                (false, None) => {
                    tracing::warn!(
                        "trial health checks failing: {}",
                        verdict.failing.join("; ")
                    );
                    deadline_ms
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(self.retry_pause(until, now)) => {}
                _ = &mut *shutdown => return Ok(None),
            }
        }
    }
}
