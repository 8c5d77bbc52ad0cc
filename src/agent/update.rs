//! The one install path. The daemon's and the owner's updates, offline installs and archive
//! installs differ only in their [`Source`]; each goes through the same steps here:
//! preflight, lock, the installable check, the source resolved, the running firmware
//! adopted, the baseline health check, the install, and the trial armed.

use super::approval::Admit;
use super::source::{Candidate, Resolved, Source};
use super::{Action, Agent};
use crate::error::{Error, Result};
use crate::flash::Expected;
use crate::index::Release;
use crate::slot::Slot;
use crate::state::{Disallowed, Lock, PersistedState, UpdateState};

/// Who asked for an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The daemon, on its own (stops after too many rollbacks in a row).
    Daemon,
    /// The owner; `force` installs even while a required health check fails.
    Owner { force: bool },
}

/// How far `update` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Install, arm the trial and reboot.
    Install,
    /// Write and verify the inactive slot, then stop.
    StageOnly,
}

/// An owner's or the daemon's change under way: the lock held, the state loaded, the
/// running slot known.
pub(super) struct Change {
    pub _lock: Lock,
    pub st: PersistedState,
    pub booted: Slot,
}

/// What the slot's boot device holds once `r` is installed.
pub(super) fn expected(r: &Release) -> Expected {
    r.boot_image()
}

impl Agent {
    /// Start a change that may lead to a write: the board checks, the lock, the state, and
    /// a refusal while the bootloader has a trial armed that the state does not explain.
    pub(super) fn begin_change(&self) -> Result<Change> {
        self.preflight_install()?;
        let lock = self.lock()?;
        let st = self.load()?;
        self.ensure_trial_explained(&st)?;
        let booted = self.booted()?;
        Ok(Change {
            _lock: lock,
            st,
            booted,
        })
    }

    /// Refuse to start an install unless idle (or staged), on the committed slot.
    fn ensure_installable(&self, st: &PersistedState, booted: Slot) -> Result<()> {
        if !matches!(st.update, UpdateState::Idle | UpdateState::Staged { .. }) {
            return Err(Disallowed {
                event: "begin an install",
                state: st.update.name(),
            }
            .into());
        }
        if let Some(good) = st.known_good {
            if good != booted {
                return Err(Error::Refused(format!(
                    "running slot {booted} is not the committed slot {good}; run the daemon (or `fwguard mark-good`) to settle the boot first"
                )));
            }
        }
        Ok(())
    }

    /// `fwguard update`: the owner's update, refused while a required health check fails.
    pub async fn update(&self, mode: UpdateMode) -> Result<Action> {
        self.update_by(mode, By::Owner { force: false }).await
    }

    /// Check, then install the chosen release, as the daemon or the owner asks.
    pub async fn update_by(&self, mode: UpdateMode, by: By) -> Result<Action> {
        let source = Source::Index {
            url: self.settings.index.url.clone(),
        };
        self.update_from(mode, by, &source).await
    }

    /// The install path every source goes through.
    pub(super) async fn update_from(
        &self,
        mode: UpdateMode,
        by: By,
        source: &Source,
    ) -> Result<Action> {
        let Change {
            _lock,
            mut st,
            booted,
        } = self.begin_change()?;
        self.ensure_installable(&st, booted)?;
        // The slot we run from must be on record as known-good before the other is touched:
        // recorded here, persisted once the source resolved (a refused source changes
        // nothing; an index accepted on the way is persisted with it).
        let adopted = st.update == UpdateState::Idle && self.adopt(&mut st, booted)?;
        if by == By::Daemon && st.rollbacks_in_a_row >= self.settings.max_rollbacks {
            if adopted {
                self.save(&st)?;
            }
            return Ok(Action::UpToDate(format!(
                "automatic installs are stopped after {} rollbacks in a row; the owner decides (`fwguard update`, `pin`, `unpin`)",
                st.rollbacks_in_a_row
            )));
        }
        let resolved = self.resolve(&mut st, booted, source).await?;
        if adopted {
            self.save(&st)?;
        }
        let Candidate {
            release,
            base_url,
            keep_index,
            pin,
        } = match resolved {
            Resolved::UpToDate(reason) => return Ok(Action::UpToDate(reason)),
            // The daemon records it for the owner; the owner is told why nothing happens.
            Resolved::NeedsOwner { version, reason } => {
                return match by {
                    By::Daemon => Ok(Action::NeedsOwner { version, reason }),
                    By::Owner { .. } => Err(Error::Refused(reason)),
                }
            }
            Resolved::Install(c) => *c,
        };
        // The owner's word: a denied release is not written; one waiting for approval is
        // staged at most.
        let admit = match by {
            By::Daemon => self.admit(&st, &release),
            By::Owner { .. } => Admit::Go,
        };
        let (mode, waiting) = match admit {
            Admit::Refuse(why) => return Ok(Action::UpToDate(why)),
            Admit::Wait => (UpdateMode::StageOnly, true),
            Admit::Go => (mode, false),
        };
        // Every part must have a place in the slot, large enough, before anything is written.
        for p in &release.parts {
            let dev = self
                .target_of(!booted, &p.into())
                .map_err(|e| Error::Refused(format!("not installing {}: {e}", release.version)))?;
            let capacity = dev.capacity()?;
            if p.size > capacity {
                return Err(Error::Refused(format!(
                    "not installing {}: its part {:?} is {} bytes, and target {} ({}) holds {capacity}",
                    release.version,
                    p.name,
                    p.size,
                    p.target,
                    dev.describe()
                )));
            }
            if let Some(why) = dev.write_refused() {
                return Err(Error::Refused(format!(
                    "not installing {}: its part {:?} goes to {}: {why}",
                    release.version,
                    p.name,
                    dev.describe()
                )));
            }
            let boot = release.boot.as_ref().map_or(release.size, |b| b.size);
            if let Some(room) = dev.boot_room().filter(|room| boot > *room) {
                return Err(Error::Refused(format!(
                    "not installing {}: its boot image is {boot} bytes, and the slot's boot device holds {room} before target {} ({}) begins",
                    release.version,
                    p.target,
                    dev.describe()
                )));
            }
        }
        // The firmware left must be one fwguard can check again before it returns to it.
        if let Err(Error::Refused(why)) = self.expected_in(&st, booted) {
            let why = format!("not installing {}: {why}", release.version);
            match by {
                By::Daemon => return Ok(Action::UpToDate(why)),
                By::Owner { force: false } => {
                    return Err(Error::Refused(format!(
                        "{why}; `--force` installs anyway, and then only the bootloader's own fallback can return to it"
                    )))
                }
                By::Owner { force: true } => tracing::warn!("{why}; installing as forced"),
            }
        }
        // The same image (version, size, hash) is staged already: an edit of the release's
        // other metadata in the index (its rollout, say) is no reason to write it again.
        let staged = match &st.update {
            UpdateState::Staged {
                release: r, target, ..
            } if r.is_image_of(&release) => self.verify_written(*target, r).ok(),
            _ => None,
        };
        let verified = match staged {
            Some(v) => v,
            None => {
                self.take_baseline(&mut st, &release, by).await?;
                if let Some(index) = &keep_index {
                    self.archive_keep_index(index, &release);
                }
                self.install(&mut st, &release, booted, base_url).await?
            }
        };
        let pinned = pin.is_some();
        if let Some(pin) = pin {
            // Recorded in the same state write that arms the trial (or stages it).
            let facts = self.facts(&st);
            st.note(pin, &facts);
        }
        match mode {
            UpdateMode::StageOnly => {
                let noted = waiting && self.note_waiting(&mut st, &release);
                if pinned || noted {
                    self.save(&st)?;
                }
                Ok(Action::Staged(release.version))
            }
            UpdateMode::Install => self.arm_and_reboot(&mut st, &verified, booted).await,
        }
    }
}
