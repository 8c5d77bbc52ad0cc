//! Health rounds as the agent runs them: with the device's clock and time floor, recorded
//! in a runtime file (RAM, not flash: refused elsewhere) so `fwguard status` can show the
//! latest one.

use super::Agent;
use crate::error::{Error, Result};
use crate::health::{Report, Verdict};
use serde::{Deserialize, Serialize};

/// The latest health round, as written to `<runtime_dir>/health.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthRecord {
    pub at: u64,
    /// "baseline", "trial", "soak", "confirm" or "manual".
    pub phase: String,
    pub report: Report,
    pub verdict: Verdict,
}

impl HealthRecord {
    /// Ok when every required check passed; else the failing ones.
    pub fn passed(&self) -> Result<()> {
        if self.verdict.passed() {
            Ok(())
        } else {
            Err(Error::Unhealthy(self.verdict.failing.join("; ")))
        }
    }
}

impl Agent {
    fn time_floor(&self) -> u64 {
        let Ok(st) = self.load() else { return 0 };
        let running = self
            .board
            .platform
            .booted_slot()
            .map(|s| self.build_time(s))
            .unwrap_or(0);
        st.time_floor.max(running)
    }

    /// Run every check once and judge them against `baseline`.
    pub(super) async fn health_round(
        &self,
        phase: &str,
        baseline: Option<&[String]>,
    ) -> (Report, Verdict) {
        let record = self.health_record(phase, baseline).await;
        (record.report, record.verdict)
    }

    /// A health round, as recorded in `<runtime_dir>/health.json` (when that is in RAM).
    async fn health_record(&self, phase: &str, baseline: Option<&[String]>) -> HealthRecord {
        let plan = &self.settings.health;
        let report = self
            .checker
            .run_all(&plan.checks, self.now(), self.time_floor())
            .await;
        let verdict = plan.judge(&report, baseline);
        let record = HealthRecord {
            at: self.now(),
            phase: phase.to_string(),
            report: report.clone(),
            verdict: verdict.clone(),
        };
        if let Err(e) = self.write_runtime("health.json", &record) {
            tracing::error!("cannot record the health round: {e}");
        }
        record
    }

    /// Write `<runtime_dir>/name` by rename; refused unless the directory is in RAM (what
    /// is rewritten this often must not wear the flash).
    pub(super) fn write_runtime(
        &self,
        name: &str,
        record: &impl serde::Serialize,
    ) -> std::result::Result<(), crate::runtime_dir::RuntimeDirError> {
        crate::runtime_dir::write(
            &self.settings.runtime_dir,
            name,
            &serde_json::to_vec_pretty(record).expect("record serialises"),
        )
    }

    /// The latest health round, if one ran since the runtime directory was last cleared.
    pub fn last_health(&self) -> Option<HealthRecord> {
        let bytes = crate::runtime_dir::read(&self.settings.runtime_dir, "health.json")?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `fwguard health`: one round now, judged without a baseline. Changes no state.
    pub async fn health_now(&self) -> Result<(Report, Verdict)> {
        let record = self.manual_health_round().await;
        record.passed()?;
        Ok((record.report, record.verdict))
    }

    /// One round now, judged without a baseline, with its record (also when the runtime
    /// directory refused it). Changes no state.
    pub async fn manual_health_round(&self) -> HealthRecord {
        self.health_record("manual", None).await
    }
}
