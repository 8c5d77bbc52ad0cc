//! Fetching and verifying the index, and choosing a release.

use super::Agent;
use crate::error::Result;
use crate::fetch::resolve;
use crate::index::select::{select, Choice, Wanted};
use crate::index::{UntrustedIndex, VerifiedIndex};
use crate::state::PersistedState;
use crate::version::Version;

/// Cap for the detached signature file.
const MAX_SIG_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct CheckReport {
    pub index_version: u64,
    pub running: Version,
    pub choice: Choice,
}

impl Agent {
    /// Fetch the index and verify it against the trust settings and the persisted state.
    /// Returns whether `st` changed (a newer index was accepted) so the caller can persist.
    pub(super) async fn fetch_index(
        &self,
        st: &mut PersistedState,
        build_time: u64,
    ) -> Result<(VerifiedIndex, bool)> {
        let cfg = &self.settings.index;
        let url = resolve(&cfg.url, &cfg.url)?;
        let sig_url = resolve(&cfg.url, &format!("{}.sig", cfg.url))?;
        let bytes = self.fetcher.fetch_bytes(&url, cfg.max_index_bytes).await?;
        let signatures = self.fetcher.fetch_bytes(&sig_url, MAX_SIG_BYTES).await?;
        let floor = st.time_floor.max(build_time);
        let index = UntrustedIndex { bytes, signatures }.verify(
            &cfg.trust,
            st.last_index.as_ref(),
            self.now(),
            floor,
        )?;
        let last = index.as_last();
        let changed = st.last_index.as_ref() != Some(&last);
        if changed {
            tracing::info!("accepted index version {}", index.version());
            st.last_index = Some(last);
            st.time_floor = st.time_floor.max(index.issued_at());
        }
        Ok((index, changed))
    }

    pub(super) fn choose(
        &self,
        index: &VerifiedIndex,
        st: &PersistedState,
        running: &Version,
    ) -> Result<Choice> {
        let deny = st.denylisted_versions();
        let want = Wanted {
            board: &self.board.id,
            channel: &self.settings.index.channel,
            running,
            pinned: st.pin.as_ref(),
            denylist: &deny,
        };
        select(index, &want).map_err(|e| crate::error::Error::Refused(e.to_string()))
    }

    /// `fwguard check`: what would be installed. Writes only when a newer index was accepted.
    pub async fn check(&self) -> Result<CheckReport> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        let (_, header) = self.running()?;
        let (index, changed) = self.fetch_index(&mut st, header.build_time).await?;
        if changed {
            self.save(&st)?;
        }
        let choice = self.choose(&index, &st, &header.version)?;
        Ok(CheckReport {
            index_version: index.version(),
            running: header.version,
            choice,
        })
    }
}
