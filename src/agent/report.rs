//! The optional reports to the vendor's `[report] url`: an install begun (`installing`), a
//! trial armed (`armed`, sent before the reboot into it), and the outcome after a commit or a
//! rollback. Each is queued in the same state write that records it (`state/apply.rs`); the
//! first two are sent at once by the install (a receiver learns of a trial even if the new
//! firmware never runs), the rest by the daemon; whatever was not accepted is retried every
//! round, and dropped from the state once delivered.
//!
//! The daemon also says `hello` when it starts (retried each round until taken): the device,
//! its board and the release it runs, so that the vendor's service knows of it before a
//! release's waves begin (`fwguard-fleet` counts in a wave only devices it knew before the
//! wave began). Nothing is written for it; only a device whose identity (id and report key)
//! is not in its state file yet saves it, once, first.
//!
//! Every report is signed by the device's own Ed25519 key (made on its first run, kept in the
//! state, carried with a trial to the other slot): the headers `X-Fwguard-Key` (the public
//! key, base64) and `X-Fwguard-Signature` (base64, over the exact body bytes), so a receiver
//! can count a device once, by a key it keeps. Signed with ring's Ed25519 (in the binary for
//! TLS already).

use super::Agent;
use crate::config::ReportSettings;
use crate::state::{Note, Outcome, PersistedState};
use crate::version::Version;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The header with the device's public key.
pub const KEY_HEADER: &str = "x-fwguard-key";
/// The header with the signature over the body.
pub const SIGNATURE_HEADER: &str = "x-fwguard-signature";

/// The `result` of a hello.
pub const HELLO: &str = "hello";

/// The daemon's check-in (docs/status-schema.md): who the device is and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub schema: u32,
    pub device: String,
    pub board: String,
    /// Always [`HELLO`].
    pub result: String,
    /// The release running (none while the running firmware is unidentified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Version>,
    /// Unix seconds (the device's clock).
    pub at: u64,
    /// Random, one per hello.
    pub id: String,
}

/// The device's report key from its seed (hex, as the state keeps it).
fn key_pair(seed_hex: &str) -> Option<ring::signature::Ed25519KeyPair> {
    let seed = hex::decode(seed_hex).ok()?;
    ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).ok()
}

impl Agent {
    /// POST `body` to the report url, signed with `key`.
    async fn post_signed(
        &self,
        cfg: &ReportSettings,
        key: &ring::signature::Ed25519KeyPair,
        body: Vec<u8>,
    ) -> Result<(), crate::fetch::FetchError> {
        use ring::signature::KeyPair as _;
        let headers = [
            ("content-type", "application/json".to_string()),
            (KEY_HEADER, B64.encode(key.public_key().as_ref())),
            (SIGNATURE_HEADER, B64.encode(key.sign(&body).as_ref())),
        ];
        self.fetcher
            .post(&cfg.url, body, &headers, cfg.timeout)
            .await
    }

    /// POST `outcomes` in order, signed with `st`'s report key, until one is refused; returns
    /// those delivered.
    async fn deliver(
        &self,
        cfg: &ReportSettings,
        st: &PersistedState,
        outcomes: &[Outcome],
    ) -> Vec<Outcome> {
        let Some(key) = key_pair(&st.report_key) else {
            tracing::warn!("the report key in the state is not an Ed25519 seed; not reporting");
            return Vec::new();
        };
        let mut sent = Vec::new();
        for o in outcomes {
            let body = serde_json::to_vec(o).expect("outcome serialises");
            match self.post_signed(cfg, &key, body).await {
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

    /// Say hello to the report url (when one is set): true once it was taken, or when there
    /// is no url; false to try again next round. Writes nothing, but for a device whose
    /// identity is not in its state file yet, which saves it first (once).
    pub async fn say_hello(&self) -> bool {
        let Some(cfg) = &self.settings.report else {
            return true;
        };
        let st = match self.identity() {
            Ok(st) => st,
            Err(e) => {
                tracing::warn!("cannot say hello to {} (tried next round): {e}", cfg.url);
                return false;
            }
        };
        let Some(key) = key_pair(&st.report_key) else {
            tracing::warn!("the report key in the state is not an Ed25519 seed; not reporting");
            return true;
        };
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id).expect("the kernel provides randomness");
        let hello = Hello {
            schema: 1,
            device: self.device_id(&st).to_string(),
            board: self.board.id.clone(),
            result: HELLO.to_string(),
            release: self.booted().ok().and_then(|b| Agent::version_in(&st, b)),
            at: self.now(),
            id: hex::encode(id),
        };
        let body = serde_json::to_vec(&hello).expect("hello serialises");
        match self.post_signed(cfg, &key, body).await {
            Ok(()) => {
                tracing::info!("said hello to {}", cfg.url);
                true
            }
            Err(e) => {
                tracing::warn!("cannot say hello to {} (tried next round): {e}", cfg.url);
                false
            }
        }
    }

    /// The state, with the device's id and report key in its file: a device without them
    /// there (its first run with reports, or a state of an fwguard before report keys) saves
    /// them now, so that what it signs with is what it keeps.
    fn identity(&self) -> crate::error::Result<PersistedState> {
        if self.store.identity_saved()? {
            return self.load();
        }
        let _lock = self.lock()?;
        let st = self.load()?;
        if !self.store.identity_saved()? {
            tracing::info!("saving this device's id and report key (its first run with reports)");
            self.save(&st)?;
        }
        Ok(st)
    }
}
