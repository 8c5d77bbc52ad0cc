//! The optional reports to the vendor's `[report] url`: an install begun (`installing`), a
//! trial armed (`armed`, sent before the reboot into it), and the outcome after a commit or a
//! rollback. Each is queued in the same state write that records it (`state/apply.rs`); the
//! first two are sent at once by the install (a receiver learns of a trial even if the new
//! firmware never runs), the rest by the daemon; whatever was not accepted is retried every
//! round, and dropped from the state once delivered.
//!
//! Every report is signed by the device's own Ed25519 key (made on its first run, kept in the
//! state, carried with a trial to the other slot): the headers `X-Fwguard-Key` (the public
//! key, base64) and `X-Fwguard-Signature` (base64, over the exact body bytes), so a receiver
//! can count a device once, by a key it keeps. Signed with ring's Ed25519 (in the binary for
//! TLS already).

use super::Agent;
use crate::config::ReportSettings;
use crate::state::{Note, Outcome, PersistedState};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// The header with the device's public key.
pub const KEY_HEADER: &str = "x-fwguard-key";
/// The header with the signature over the body.
pub const SIGNATURE_HEADER: &str = "x-fwguard-signature";

/// The device's report key from its seed (hex, as the state keeps it).
fn key_pair(seed_hex: &str) -> Option<ring::signature::Ed25519KeyPair> {
    let seed = hex::decode(seed_hex).ok()?;
    ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).ok()
}

impl Agent {
    /// POST `outcomes` in order, signed with `st`'s report key, until one is refused; returns
    /// those delivered.
    async fn deliver(
        &self,
        cfg: &ReportSettings,
        st: &PersistedState,
        outcomes: &[Outcome],
    ) -> Vec<Outcome> {
        use ring::signature::KeyPair as _;
        let Some(key) = key_pair(&st.report_key) else {
            tracing::warn!("the report key in the state is not an Ed25519 seed; not reporting");
            return Vec::new();
        };
        let public = B64.encode(key.public_key().as_ref());
        let mut sent = Vec::new();
        for o in outcomes {
            let body = serde_json::to_vec(o).expect("outcome serialises");
            let headers = [
                ("content-type", "application/json".to_string()),
                (KEY_HEADER, public.clone()),
                (SIGNATURE_HEADER, B64.encode(key.sign(&body).as_ref())),
            ];
            match self
                .fetcher
                .post(&cfg.url, body, &headers, cfg.timeout)
                .await
            {
                Ok(()) => {
                    tracing::info!("reported {} {} to {}", o.result, o.release, cfg.url);
                    sent.push(o.clone());
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot report {} {} (retried later): {e}",
                        o.result,
                        o.release
                    );
                    break;
                }
            }
        }
        sent
    }

    /// Send the queued reports; those delivered leave the state. Failures are logged and
    /// retried on the next call. The state lock is only held to drop what was delivered.
    pub async fn send_outcomes(&self) {
        let Some(cfg) = &self.settings.report else {
            return;
        };
        let Ok(st) = self.load() else { return };
        if st.outcomes.is_empty() {
            return;
        }
        let sent = self.deliver(cfg, &st, &st.outcomes).await;
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

    /// Send the queued reports now, from within a change that holds the lock and `st` (an
    /// install begun, a trial armed); those delivered leave it, persisted. Never fails the
    /// change: what is not delivered stays queued.
    pub(super) async fn report_now(&self, st: &mut PersistedState) {
        let Some(cfg) = &self.settings.report else {
            return;
        };
        if st.outcomes.is_empty() {
            return;
        }
        let sent = self.deliver(cfg, st, &st.outcomes).await;
        if sent.is_empty() {
            return;
        }
        let facts = self.facts(st);
        st.note(Note::Delivered { outcomes: sent }, &facts);
        if let Err(e) = self.save(st) {
            tracing::warn!("cannot record the reports as sent: {e}");
        }
    }
}
