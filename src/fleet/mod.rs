//! `fwguard-fleet`: the vendor's fleet service (feature `fleet`; never in a router build).
//! Devices POST their signed reports and their daemons' hellos (`[report] url`,
//! docs/status-schema.md); the service stores them (SQLite or PostgreSQL, `store.rs`) and
//! counts each release's waves (`rule.rs`: installs begun, trials armed, committed, rolled
//! back, given up by the bootloader, presumed failed), by default only with the devices it
//! knew before their wave began. When a wave's failures reach the rule it halts the release:
//! the next version of `halt.toml` in the published index directory, signed with the halt key
//! (`halt.rs`), which the devices of the later waves fetch with the index and honour.

mod http;
pub mod limit;
mod publish;
pub mod rule;
mod sql;
pub mod store;

use crate::agent::report::{Hello, HELLO};
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
    /// Count a device in a wave only if it was heard of (its hello, or a report) before that
    /// wave began: made-up devices, new ids with new keys, cannot tip a wave under way. On by
    /// default; off counts every device that reports.
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
    /// Devices that reported on it but are not counted: first heard of after their wave began,
    /// or in no wave that began (with `known_before_wave`).
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
        crate::index::ed25519::check(&k, body, &s).map_err(|e| bad(e.as_str()))?;
        #[derive(serde::Deserialize)]
        struct Kind {
            result: String,
        }
        let kind: Kind =
            serde_json::from_slice(body).map_err(|e| bad(&format!("not a report: {e}")))?;
        if kind.result == HELLO {
            let h: Hello =
                serde_json::from_slice(body).map_err(|e| bad(&format!("not a hello: {e}")))?;
            if h.device.is_empty() {
                return Err(bad("the hello names no device"));
            }
            self.per_device(&h.device, key, now)?;
            return self.store.lock().expect("store").hello(&h, key, now);
        }
        let r: Outcome =
            serde_json::from_slice(body).map_err(|e| bad(&format!("not a report: {e}")))?;
        if r.id.is_empty() {
            return Err(bad("the report has no id"));
        }
        self.per_device(&r.device, key, now)?;
        let added = self.store.lock().expect("store").add(&r, key, now)?;
        // An install begun changes no wave's failures or armed trials: nothing to judge.
        if added == Added::New && r.result != "installing" {
            self.judge(r.release.as_str(), now)?;
        }
        Ok(added)
    }

    /// Whether one more report (or hello) is taken now for `device` under `key`. Per device
    /// and key: reports forged for a device under another key (refused by the store) do not
    /// use up the budget of the device that holds its key.
    fn per_device(&self, device: &str, key: &str, now: u64) -> Result<(), FleetError> {
        match self.devices.allow(&format!("{device} {key}"), now) {
            true => Ok(()),
            false => Err(FleetError::TooMany(format!(
                "for device {device} this minute"
            ))),
        }
    }

    /// The wave device `device` is in for `release`, by the index's rollout (1: the first; a
    /// release without waves has one), and when that wave began: when the rollout says, but
    /// never before the release was first seen listed (`listed`; a wave cannot begin before
    /// its release is published). None: not known (not listed, or past the last wave).
    fn wave_of(
        index: Option<&crate::index::IndexDoc>,
        listed: Option<u64>,
        device: &str,
        release: &str,
    ) -> (u32, Option<u64>) {
        let Ok(v) = release.parse::<crate::version::Version>() else {
            return (1, None);
        };
        let rollout = index
            .and_then(|i| i.releases.iter().find(|r| r.version == v))
            .and_then(|r| r.rollout.as_ref());
        let Some(ro) = rollout else {
            return (1, listed);
        };
        let b = crate::index::rollout::bucket(device, &v);
        let Some(i) = ro.waves.iter().position(|w| b < w.percent) else {
            return (ro.waves.len() as u32 + 1, None);
        };
        let start = crate::time::parse_time(&ro.start).ok();
        let after = humantime::parse_duration(&ro.waves[i].after).ok();
        let began = start.zip(after).map(|(s, a)| s + a.as_secs());
        (i as u32 + 1, began.zip(listed).map(|(b, l)| b.max(l)))
    }

    /// The published index, read again only when its file changed; each release it lists is
    /// recorded as listed as of the file's time (when it was published), the first time it
    /// is seen.
    fn index(&self, store: &mut Store) -> Result<Option<Arc<crate::index::IndexDoc>>, FleetError> {
        let path = self.cfg.index_dir.join("index.toml");
        let Ok(mtime) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
            return Ok(None);
        };
        let mut cache = self.index.lock().expect("index cache");
        if let Some((at, doc)) = cache.as_ref() {
            if *at == mtime {
                return Ok(Some(doc.clone()));
            }
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let Ok(doc) = toml::from_str::<crate::index::IndexDoc>(&text) else {
            tracing::warn!("{}: not an index; its waves are not known", path.display());
            return Ok(None);
        };
        let published = mtime
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for r in &doc.releases {
            store.list(&r.version.to_string(), published)?;
        }
        let doc = Arc::new(doc);
        *cache = Some((mtime, Arc::clone(&doc)));
        Ok(Some(doc))
    }

    /// When device `device` was first heard of (None: never).
    pub fn known(&self, device: &str) -> Result<Option<u64>, FleetError> {
        self.store.lock().expect("store").first_seen(device)
    }

    /// The devices known, by the release they said they run (None: not said), most first.
    pub fn running(&self) -> Result<Vec<(Option<String>, u32)>, FleetError> {
        self.store.lock().expect("store").running()
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
        let mut store = self.store.lock().expect("store");
        let index = self.index(&mut store)?;
        let listed = store.listed_at(release)?;
        let halted = store
            .halts()?
            .into_iter()
            .find(|(r, ..)| r == release)
            .map(|(_, why, at)| (why, at));
        let mut uncounted = 0;
        let mut devices = Vec::new();
        for d in store.reports_of(release)? {
            let (wave, began) = Fleet::wave_of(index.as_deref(), listed, &d.device, release);
            if self.cfg.known_before_wave && began.is_none_or(|b| d.first_seen >= b) {
                uncounted += 1;
                continue;
            }
            devices.push(DeviceReports {
                wave,
                device: d.device,
                reports: d.reports,
                failing: d.failing,
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
        // A halted release stays halted: its waves need not be counted again.
        let halts = self.store.lock().expect("store").halts()?;
        if halts.iter().any(|(r, ..)| r == release) {
            return Ok(());
        }
        let v = self.view_of(release, now)?;
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
        // The index is read each tick, so that a release is seen listed soon after it is
        // published even while nobody reports.
        self.index(&mut self.store.lock().expect("store"))?;
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
