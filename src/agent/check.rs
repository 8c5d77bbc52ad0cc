//! Fetching and verifying the trust root and the index, and choosing a release.

use super::Agent;
use crate::carry::CompatVersion;
use crate::error::{Error, Result};
use crate::fetch::{resolve, signature_url, FetchError};
use crate::index::root::TrustRoot;
use crate::index::select::{select, Choice, Wanted};
use crate::index::{UntrustedIndex, VerifiedIndex};
use crate::state::{Note, PersistedState};
use crate::time::format_time;
use crate::version::Version;

/// Cap for a detached signature file.
pub(super) const MAX_SIG_BYTES: u64 = 64 * 1024;
/// Cap for a root file.
const MAX_ROOT_BYTES: u64 = 64 * 1024;
/// Most root rotations followed in one check.
const MAX_ROTATIONS: usize = 16;

#[derive(Debug, Clone)]
pub struct CheckReport {
    pub index_version: u64,
    /// The running release; None while the running firmware is unidentified.
    pub running: Option<Version>,
    pub choice: Choice,
}

impl CheckReport {
    /// The running release for people: its version, or "unidentified firmware".
    pub fn running_text(&self) -> String {
        self.running
            .as_ref()
            .map_or("unidentified firmware".to_string(), |v| v.to_string())
    }
}

impl Agent {
    /// The root in force: a rotated one from the state when newer than the installed one.
    pub(super) fn trust_root(&self, st: &PersistedState) -> Result<TrustRoot> {
        let installed = &self.settings.index.trust;
        match &st.root {
            Some(text) => {
                let rotated = TrustRoot::parse(text)?;
                Ok(if rotated.version > installed.version {
                    rotated
                } else {
                    installed.clone()
                })
            }
            None => Ok(installed.clone()),
        }
    }

    /// Follow root rotations published next to the index (`root/<version>.root.toml`). A
    /// rotated root with a `time_floor` resets the device's time floor to it, never below
    /// `build_time` (the running firmware's).
    async fn rotate_root(
        &self,
        st: &mut PersistedState,
        mut root: TrustRoot,
        base: &str,
        build_time: u64,
    ) -> Result<(TrustRoot, bool)> {
        let mut changed = false;
        for _ in 0..MAX_ROTATIONS {
            if root.root.keys.is_empty() {
                break;
            }
            let next = root.version + 1;
            let url = resolve(base, &format!("root/{next}.root.toml"))?;
            let Some((bytes, sigs)) = self.fetch_signed(&url, MAX_ROOT_BYTES).await? else {
                break;
            };
            let new = root.rotate(&bytes, &sigs)?;
            tracing::info!("trust root rotated from version {} to {next}", root.version);
            // A new root starts a new epoch of index versions (recovery from a fast-forward
            // attack); the time floor still refuses anything issued before what was seen,
            // unless the root resets it (recovery from a fast-forwarded time).
            let facts = self.facts(st);
            let text = new.text().map(str::to_string);
            st.note(
                Note::RootRotated {
                    version: next,
                    text,
                },
                &facts,
            );
            if let Some(reset) = new.time_floor {
                self.reset_time_floor(st, next, reset, build_time);
            }
            changed = true;
            root = new;
        }
        Ok((root, changed))
    }

    /// A file that may not be published, and its detached signatures (at most `max` and
    /// [`MAX_SIG_BYTES`] bytes): None when there is no such file (404, or no such local file).
    pub(super) async fn fetch_signed(
        &self,
        url: &reqwest::Url,
        max: u64,
    ) -> std::result::Result<Option<(Vec<u8>, Vec<u8>)>, FetchError> {
        let bytes = match self.fetcher.fetch_bytes(url, max).await {
            Ok(b) => b,
            Err(FetchError::Status { status: 404, .. }) => return Ok(None),
            Err(FetchError::File { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let sigs = self
            .fetcher
            .fetch_bytes(&signature_url(url), MAX_SIG_BYTES)
            .await?;
        Ok(Some((bytes, sigs)))
    }

    /// Set the time floor to what root version `root` says, or to `build_time` if that is
    /// later (a floor below the running firmware's build time would believe a clock at 1970).
    fn reset_time_floor(&self, st: &mut PersistedState, root: u64, reset: u64, build_time: u64) {
        let floor = reset.max(build_time);
        let clamped = if floor > reset {
            format!(
                " (the running firmware's build time; the root says {})",
                format_time(reset)
            )
        } else {
            String::new()
        };
        let detail = format!(
            "trust root version {root} reset the time floor from {} to {}{clamped}",
            format_time(st.time_floor),
            format_time(floor)
        );
        tracing::warn!("{detail}");
        let facts = self.facts(st);
        st.note(Note::TimeFloorReset { floor, detail }, &facts);
    }

    /// Fetch and verify the index at `index_url` (the configured one, or an offline copy:
    /// the same signature, freshness, replay and board checks apply). Returns whether `st`
    /// changed (a newer root or index was accepted) so the caller can persist.
    pub(super) async fn fetch_index_from(
        &self,
        st: &mut PersistedState,
        build_time: u64,
        index_url: &str,
    ) -> Result<(VerifiedIndex, bool)> {
        let cfg = &self.settings.index;
        let root = self.trust_root(st)?;
        let (root, rotated) = self.rotate_root(st, root, index_url, build_time).await?;
        let url = resolve(index_url, index_url)?;
        let sig_url = signature_url(&url);
        let bytes = self.fetcher.fetch_bytes(&url, cfg.max_index_bytes).await?;
        let signatures = self.fetcher.fetch_bytes(&sig_url, MAX_SIG_BYTES).await?;
        let floor = st.time_floor.max(build_time);
        let index = UntrustedIndex { bytes, signatures }.verify(
            &root.index,
            st.last_index.as_ref(),
            self.now(),
            floor,
        )?;
        let last = index.as_last(&self.board.id);
        let changed = st.last_index.as_ref() != Some(&last);
        if changed {
            tracing::info!("accepted index version {}", index.version());
            let facts = self.facts(st);
            st.note(Note::IndexAccepted { last }, &facts);
        }
        let halted = self
            .take_halt(st, &root, index_url, index.trusted_now())
            .await;
        Ok((index, changed || rotated || halted))
    }

    pub(super) fn device_id<'a>(&'a self, st: &'a PersistedState) -> &'a str {
        self.settings.device_id.as_deref().unwrap_or(&st.device_id)
    }

    pub(super) fn choose(
        &self,
        index: &VerifiedIndex,
        st: &PersistedState,
        running: Option<&Version>,
    ) -> Result<Choice> {
        if st.hold && st.pin.is_none() {
            let at = running.map(|v| format!(" at {v}")).unwrap_or_default();
            return Ok(Choice::UpToDate {
                reason: format!("held{at} by the owner (`fwguard release` to follow the channel)"),
            });
        }
        let deny = st.denylisted_versions();
        let pinned_defaults = st.pin.is_some() && st.pin_no_settings;
        let halts = st.halts();
        let want = Wanted {
            board: &self.board.id,
            channel: self.channel(st),
            running,
            pinned: st.pin.as_ref(),
            force_insecure: st.pin_insecure,
            denylist: &deny,
            device_id: self.device_id(st),
            compat: self.device_compat(index, running)?,
            no_settings: self.owner_defaults || pinned_defaults,
            halts: halts.as_ref(),
        };
        Ok(select(index, &want)?)
    }

    /// The running firmware's configuration format: what it declares (`compat_file`), else
    /// what the signed index says of the running release, else 1.0 (OpenWrt's default).
    pub(super) fn device_compat(
        &self,
        index: &VerifiedIndex,
        running: Option<&Version>,
    ) -> Result<CompatVersion> {
        let declared = crate::carry::compat::read_declared(&self.settings.compat_file)
            .map_err(|e| Error::Refused(format!("the running firmware's compat_version: {e}")))?;
        let listed = || {
            let board = &self.board.id;
            index
                .releases()
                .iter()
                .find(|r| Some(&r.version) == running && r.boards.contains(board))
                .and_then(|r| r.compat_version)
        };
        Ok(declared.or_else(listed).unwrap_or(CompatVersion::DEFAULT))
    }

    /// `fwguard check`: what would be installed. Writes only when a newer root or index was
    /// accepted, or the running firmware was identified by it.
    pub async fn check(&self) -> Result<CheckReport> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        let booted = self.booted()?;
        let index = self
            .fetch_verified(&mut st, booted, &self.settings.index.url)
            .await?;
        let running = Agent::version_in(&st, booted);
        let choice = self.choose(&index, &st, running.as_ref())?;
        Ok(CheckReport {
            index_version: index.version(),
            running,
            choice,
        })
    }
}
