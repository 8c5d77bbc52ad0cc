//! The optional outcome report: after a commit or a rollback (never at install time), a small
//! JSON record is POSTed to the vendor's `[report] url`. It is queued in the same state write
//! that records the outcome (`state/apply.rs`), sent by the daemon, retried every round until the vendor answers,
//! and dropped from the state once delivered (the only extra write reporting costs).

use super::Agent;
use crate::state::Note;

impl Agent {
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
        let facts = self.facts(&st);
        st.note(Note::Delivered { outcomes: sent }, &facts);
        if let Err(e) = self.save(&st) {
            tracing::warn!("cannot record the reports as sent: {e}");
        }
    }
}
