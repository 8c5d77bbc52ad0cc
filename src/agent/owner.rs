//! What the owner does by hand: pin, unpin, roll back, mark good.

use super::{Action, Agent};
use crate::error::{Error, Result};
use crate::health::Report;
use crate::index::select::Choice;
use crate::state::UpdateState;
use crate::version::Version;

impl Agent {
    /// Pin `version`: install exactly it (downgrade included) and stay there. The index must
    /// list it for this board. Pinning a release that was rolled back clears it from the
    /// denylist, so it is tried once more.
    /// Below the security floor only with `force_insecure`, which is logged.
    pub async fn pin(&self, version: Version, force_insecure: bool) -> Result<Action> {
        self.preflight()?;
        let _lock = self.lock()?;
        let mut st = self.load()?;
        let (_, header) = self.running()?;
        let (index, _) = self.fetch_index(&mut st, header.build_time).await?;
        let mut probe = st.clone();
        probe.pin = Some(version.clone());
        probe.pin_insecure = force_insecure;
        probe.rollbacks_in_a_row = 0;
        probe.denylist.retain(|d| d.version != version);
        // Refuses a version the index does not list for this board, a pulled one, and one
        // below the security floor unless forced.
        let choice = self.choose(&index, &probe, &header.version)?;
        let below_floor = index
            .security_floor(&self.board.id)
            .filter(|f| &version < *f);
        let detail = match below_floor {
            Some(floor) => {
                tracing::warn!(
                    "pinning {version}, below the security floor {floor}, as the owner forced it"
                );
                format!("pinned by the owner BELOW THE SECURITY FLOOR {floor} (--force-insecure)")
            }
            None => {
                probe.pin_insecure = false;
                "pinned by the owner".to_string()
            }
        };
        probe.record(self.entry("pin", Some(&version), None, detail));
        self.save(&probe)?;
        Ok(Action::Done(match choice {
            Choice::UpToDate { .. } => format!("pinned {version}; it is already running"),
            Choice::Install(_) => {
                format!("pinned {version}; `fwguard update` (or the daemon) installs it")
            }
        }))
    }

    pub fn unpin(&self) -> Result<Action> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        st.rollbacks_in_a_row = 0;
        let Some(old) = st.pin.take() else {
            return Ok(Action::UpToDate("no version is pinned".into()));
        };
        st.pin_insecure = false;
        st.record(self.entry("unpin", Some(&old), None, "following the channel again"));
        self.save(&st)?;
        Ok(Action::Done(format!(
            "unpinned {old}; following channel {}",
            self.settings.index.channel
        )))
    }

    /// `fwguard rollback`: go back to the other slot's known-good firmware, no download
    /// needed. The version left is denylisted so it is not installed again automatically.
    pub fn rollback(&self) -> Result<Action> {
        // Also checked before the env write itself; here so that a refusal touches nothing.
        self.preflight()?;
        let held = self.lock()?;
        self.roll_back(&held, "rollback requested by the owner".into(), None, true)
    }

    /// `fwguard mark-good`: commit the running trial now.
    pub fn mark_good(&self) -> Result<Action> {
        let held = self.lock()?;
        match self.load()?.update {
            UpdateState::Trial { .. } => self.commit(
                &held,
                Report {
                    results: Vec::new(),
                },
                "marked good by the owner",
            ),
            UpdateState::Idle => Ok(Action::UpToDate(
                "the running firmware is already committed".into(),
            )),
            other => Err(Error::Disallowed(crate::state::Disallowed {
                event: "mark good",
                state: other.name(),
            })),
        }
    }
}
