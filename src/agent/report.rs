//! The optional outcome report: after a commit or a rollback (never at install time), a small
//! JSON record is POSTed to the vendor's `[report] url`. It is queued in the same state write
//! that records the outcome, sent by the daemon, retried every round until the vendor answers,
//! and dropped from the state once delivered (the only extra write reporting costs).

use super::Agent;
use crate::state::{HistoryEntry, Outcome, PersistedState};

/// Most outcomes kept waiting for delivery (the oldest go first).
const MAX_PENDING: usize = 16;

fn failing(e: &HistoryEntry) -> Vec<String> {
    e.checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.clone())
        .collect()
}

impl Agent {
    /// Queue the outcome just recorded as the last history entry, when reporting is on.
    pub(super) fn queue_outcome(&self, st: &mut PersistedState) {
        if self.settings.report.is_none() {
            return;
        }
        let Some(e) = st.history.last() else { return };
        let Some(release) = e.version.clone() else {
            return;
        };
        let failing = match e.event.as_str() {
            "committed" | "trial-failed" => failing(e),
            // The checks that decided it are on the `rollback` entry written before the reboot.
            "rolled-back" => st
                .history
                .iter()
                .rev()
                .find(|h| h.event == "rollback")
                .map(failing)
                .unwrap_or_default(),
            _ => return,
        };
        let outcome = Outcome {
            schema: 1,
            device: self
                .settings
                .device_id
                .clone()
                .unwrap_or_else(|| st.device_id.clone()),
            board: self.running().map(|(_, h)| h.board).unwrap_or_default(),
            release,
            result: e.event.clone(),
            failing,
            detail: e.detail.clone(),
            at: e.at,
        };
        st.outcomes.push(outcome);
        if st.outcomes.len() > MAX_PENDING {
            st.outcomes.remove(0);
        }
    }

    /// Send the queued outcomes; those delivered leave the state. Failures are logged and
    /// retried on the next call. The state lock is only held to drop what was delivered.
    pub async fn send_outcomes(&self) {
        let Some(cfg) = &self.settings.report else {
            return;
        };
        let Ok(st) = self.load() else { return };
        if st.outcomes.is_empty() {
            return;
        }
        let mut sent = Vec::new();
        for o in &st.outcomes {
            let body = serde_json::to_vec(o).expect("outcome serialises");
            match self.fetcher.post_json(&cfg.url, body, cfg.timeout).await {
                Ok(()) => {
                    tracing::info!("reported {} {} to {}", o.result, o.release, cfg.url);
                    sent.push(o.clone());
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot report the outcome of {} (retried later): {e}",
                        o.release
                    );
                    break;
                }
            }
        }
        if sent.is_empty() {
            return;
        }
        let Ok(_lock) = self.lock() else { return };
        let Ok(mut st) = self.load() else { return };
        st.outcomes.retain(|o| !sent.contains(o));
        if let Err(e) = self.save(&st) {
            tracing::warn!("cannot record the reports as sent: {e}");
        }
    }
}
