//! `fwguard-fleet`: the vendor's fleet service (feature `fleet`; never in a router build).
//! Devices POST their signed reports (`[report] url`, docs/status-schema.md); the service
//! stores them (SQLite, `store.rs`), counts each release's waves (`rule.rs`: installs begun,
//! trials armed, committed, rolled back, given up by the bootloader, presumed failed), and
//! when a wave's failures reach the rule it halts the release: the next version of
//! `halt.toml` in the published index directory, signed with the halt key (`halt.rs`), which
//! the devices of the later waves fetch with the index and honour.

mod http;
pub mod limit;
mod publish;
pub mod rule;
mod sql;
pub mod store;

use crate::index::halt::HALT_FILE;
use crate::index::sign::SecretKey;
use crate::state::Outcome;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
pub use http::serve;
use rule::{DeviceReports, Rule, Tally};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use store::{Added, Store};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("database: {0}")]
    Db(String),
    #[error("report refused: {0}")]
    BadReport(String),
    #[error("report refused: device {device} reported with another key before")]
    WrongKey { device: String },
    #[error("{0}")]
    Publish(String),
    #[error("too many reports: {0}")]
    TooMany(String),
}

/// How the service runs.
pub struct FleetConfig {
    /// The published index directory: index.toml is read for the waves, halt.toml written.
    pub index_dir: PathBuf,
    /// The halt key (the trust root's halt role).
    pub halt_key: SecretKey,
    pub rule: Rule,
    /// Seconds allowed for a reboot on top of a trial's `deadline_s`.
    pub grace: u64,
    /// How long a halt file is valid (it is signed again before that while halts stand).
    pub halt_valid: u64,
    /// Reports taken a minute from one source address, and for one device.
    pub per_source_minute: u32,
    pub per_device_minute: u32,
    /// Count a device in a wave only if it was heard of before that wave began (made-up
    /// devices, new ids with new keys, then cannot tip a wave that is under way).
    pub known_before_wave: bool,
}

/// One release as the service sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleaseView {
    pub release: String,
    pub waves: Vec<Tally>,
    /// The health checks failing in its rollbacks, most devices first.
    pub failing_checks: Vec<(String, u32)>,
    /// The halt published for it: the rule that fired, and when.
    pub halted: Option<(String, u64)>,
    /// Devices that reported on it but are not counted: first heard of after their wave began
    /// (with `known_before_wave`).
    pub uncounted: u32,
}

pub struct Fleet {
    cfg: FleetConfig,
    store: Mutex<Store>,
    /// The index as last read, with its file's time.
    #[allow(clippy::type_complexity)]
    index: Mutex<Option<(std::time::SystemTime, Arc<crate::index::IndexDoc>)>>,
    sources: limit::Limiter,
    devices: limit::Limiter,
}

impl Fleet {
    pub fn new(cfg: FleetConfig, store: Store) -> Fleet {
        Fleet {
            sources: limit::Limiter::new(cfg.per_source_minute),
            devices: limit::Limiter::new(cfg.per_device_minute),
            cfg,
            store: Mutex::new(store),
            index: Mutex::new(None),
        }
    }

    /// Whether one more report from address `source` is taken now.
    pub fn from_source(&self, source: &str, now: u64) -> Result<(), FleetError> {
        match self.sources.allow(source, now) {
            true => Ok(()),
            false => Err(FleetError::TooMany(format!("from {source} this minute"))),
        }
    }

    /// Take a report: its signature (by `key`, base64 Ed25519, over exactly `body`), then
    /// the report, stored once; then judge its release. Returns whether it was new.
    pub fn ingest(&self, body: &[u8], key: &str, sig: &str, now: u64) -> Result<Added, FleetError> {
        let bad = |what: &str| FleetError::BadReport(what.to_string());
        let k: [u8; 32] = B64
            .decode(key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad("X-Fwguard-Key is not a base64 Ed25519 public key"))?;
        let s: [u8; 64] = B64
            .decode(sig)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("X-Fwguard-Signature is not a base64 Ed25519 signature"))?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&k)
            .map_err(|_| bad("the key is not a point"))?;
        vk.verify_strict(body, &ed25519_dalek::Signature::from_bytes(&s))
            .map_err(|_| bad("the signature does not match the body"))?;
        let r: Outcome =
            serde_json::from_slice(body).map_err(|e| bad(&format!("not a report: {e}")))?;
        if r.id.is_empty() {
            return Err(bad("the report has no id"));
        }
        // Per device and key: reports forged for a device under another key (refused below)
        // do not use up the budget of the device that holds its key.
        if !self.devices.allow(&format!("{} {key}", r.device), now) {
            return Err(FleetError::TooMany(format!(
                "for device {} this minute",
                r.device
            )));
        }
        let added = self.store.lock().expect("store").add(&r, key, now)?;
        if added == Added::New {
            self.judge(r.release.as_str(), now)?;
        }
        Ok(added)
    }

    /// The wave device `device` is in for `release`, by the index's rollout (1: the first; a
    /// release without waves has one), and when that wave began (None: not known).
    fn wave_of(
        &self,
        index: Option<&crate::index::IndexDoc>,
        device: &str,
        release: &str,
    ) -> (u32, Option<u64>) {
        let Ok(v) = release.parse::<crate::version::Version>() else {
            return (1, None);
        };
        let rollout = index
            .and_then(|i| i.releases.iter().find(|r| r.version == v))
            .and_then(|r| r.rollout.as_ref());
        let Some(ro) = rollout else { return (1, None) };
        let b = crate::index::rollout::bucket(device, &v);
        let Some(i) = ro.waves.iter().position(|w| b < w.percent) else {
            return (ro.waves.len() as u32 + 1, None);
        };
        let start = crate::time::parse_time(&ro.start).ok();
        let after = humantime::parse_duration(&ro.waves[i].after).ok();
        let began = start.zip(after).map(|(s, a)| s + a.as_secs());
        (i as u32 + 1, began)
    }

    /// The published index, read again only when its file changed.
    fn index(&self) -> Option<Arc<crate::index::IndexDoc>> {
        let path = self.cfg.index_dir.join("index.toml");
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        let mut cache = self.index.lock().expect("index cache");
        if let Some((at, doc)) = cache.as_ref() {
            if *at == mtime {
                return Some(doc.clone());
            }
        }
        let text = std::fs::read_to_string(&path).ok()?;
        let doc = Arc::new(toml::from_str(&text).ok()?);
        *cache = Some((mtime, Arc::clone(&doc)));
        Some(doc)
    }

    /// Every release, with its waves' tallies at `now`.
    pub fn view(&self, now: u64) -> Result<Vec<ReleaseView>, FleetError> {
        let releases = self.store.lock().expect("store").releases()?;
        releases
            .into_iter()
            .map(|r| self.view_of(&r, now))
            .collect()
    }

    /// One release, with its waves' tallies at `now`.
    pub fn view_of(&self, release: &str, now: u64) -> Result<ReleaseView, FleetError> {
        let index = self.index();
        let mut store = self.store.lock().expect("store");
        let halted = store
            .halts()?
            .into_iter()
            .find(|(r, ..)| r == release)
            .map(|(_, why, at)| (why, at));
        let first_seen = match self.cfg.known_before_wave {
            true => store.first_seen()?,
            false => Default::default(),
        };
        let mut uncounted = 0;
        let mut devices = Vec::new();
        for (device, reports, failing) in store.reports_of(release)? {
            let (wave, began) = self.wave_of(index.as_deref(), &device, release);
            let seen = first_seen.get(&device).copied().unwrap_or(u64::MAX);
            if self.cfg.known_before_wave && began.is_none_or(|b| seen >= b) {
                uncounted += 1;
                continue;
            }
            devices.push(DeviceReports {
                wave,
                device,
                reports,
                failing,
            });
        }
        let (waves, failing_checks) = rule::tally(&devices, now, self.cfg.grace);
        Ok(ReleaseView {
            release: release.to_string(),
            waves,
            failing_checks,
            halted,
            uncounted,
        })
    }

    /// Halt `release` if its waves reach the rule at `now` (and it is not halted yet). The
    /// decision and the publishing are made by one instance at a time (`Store::decide`);
    /// another instance deciding now leaves it to the next report or tick.
    pub fn judge(&self, release: &str, now: u64) -> Result<(), FleetError> {
        let v = self.view_of(release, now)?;
        if v.halted.is_some() {
            return Ok(());
        }
        let Some(why) = self.cfg.rule.fires(&v.waves) else {
            return Ok(());
        };
        let mut store = self.store.lock().expect("store");
        let decided = store.decide(|s| {
            // Another instance may have halted it since the view was taken.
            if s.halts()?.iter().any(|(r, ..)| r == release) {
                return Ok(());
            }
            tracing::warn!("halting {release}: {why}");
            s.record_halt(release, &why, now)?;
            publish::write_halts(&self.cfg, &s.halts()?, now)
        })?;
        if decided.is_none() {
            tracing::info!("{release} reaches the rule; another instance is deciding now");
        }
        Ok(())
    }

    /// Judge every release again (presumed failures appear with time alone), and sign the
    /// halt file again when half its validity has passed (by one instance at a time).
    pub fn tick(&self, now: u64) -> Result<(), FleetError> {
        for v in self.view(now)? {
            self.judge(&v.release, now)?;
        }
        let mut store = self.store.lock().expect("store");
        store.decide(|s| publish::refresh(&self.cfg, &s.halts()?, now))?;
        Ok(())
    }

    /// The halt file the service keeps.
    pub fn halt_path(&self) -> PathBuf {
        self.cfg.index_dir.join(HALT_FILE)
    }
}
