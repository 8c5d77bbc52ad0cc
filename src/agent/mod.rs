//! The agent: update, trial boot, commit and rollback, driven through the board traits.
//!
//! Every operation that changes anything takes the state lock, reloads the persisted state,
//! and persists each state change before the action it announces.

mod approval;
mod archiving;
mod check;
mod confirm;
mod container;
mod daemon;
mod diag;
mod halt;
mod health;
mod install;
mod inventory;
mod notify;
mod notifying;
mod offline;
mod owner;
mod parts;
pub mod plan;
mod recover;
pub mod report;
mod round;
mod settings;
mod source;
mod status;
mod trial;
mod update;

pub use archiving::ArchivedImage;
pub use check::CheckReport;
pub use confirm::Confirmed;
pub use daemon::DaemonExit;
pub use diag::PARTS as DIAG_PARTS;
pub use health::HealthRecord;
pub use plan::Situation;
pub use round::{needs_owner, RoundRecord, RoundResult};
pub use status::Status;
pub use update::{By, UpdateMode};

use crate::board::Board;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::fetch::Fetcher;
use crate::health::Checker;

use crate::state::{Facts, Lock, PersistedState, Reporter, StateStore};
use crate::time::unix_now;
use crate::version::Version;

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing needed doing.
    UpToDate(String),
    /// The image is written and verified in the inactive slot; the owner decides when to boot it.
    Staged(Version),
    /// A reboot was requested; the caller must stop acting.
    Reboot(String),
    /// A trial boot was committed.
    Committed(Version),
    /// A state change that needs no reboot (pin, unpin, mark-good on a committed system).
    Done(String),
    /// The newest release waits for the owner's decision (its configuration format breaks
    /// with the running firmware's), for this reason; nothing was written.
    NeedsOwner { version: Version, reason: String },
}

pub struct Agent {
    pub settings: Settings,
    pub board: Board,
    store: StateStore,
    fetcher: Fetcher,
    checker: Checker,
    clock: Clock,
    progress: Option<Progress>,
    /// The owner takes the new firmware's defaults for this command (`--no-settings`).
    owner_defaults: bool,
    /// The target slot's file system the settings are carried into (None: nothing carried).
    settings_medium: Option<Box<dyn crate::carry::SettingsMedium>>,
}

/// The wall clock (seconds since the Unix epoch); replaceable for tests of a device whose
/// clock is wrong.
pub type Clock = std::sync::Arc<dyn Fn() -> u64 + Send + Sync>;

/// Told the bytes of an image written so far and its size, as the download goes (for the
/// progress display of a manual `update` or `install`).
pub type Progress = std::sync::Arc<dyn Fn(&Version, u64, u64) + Send + Sync>;

impl Agent {
    pub fn new(settings: Settings, board: Board) -> Result<Agent> {
        let roots = crate::fetch::Roots::load(&settings.ca_bundle)?;
        let fetcher = Fetcher::new(
            settings.index.fetch_timeout,
            settings.index.min_rate,
            roots.clone(),
        )?;
        let settings_medium = crate::carry::medium_for(
            &settings.carry,
            &board,
            &settings.runtime_dir,
            settings.board.dev_dir(),
            settings.board.sysfs(),
        )
        .map_err(|e| crate::config::ConfigError::Invalid {
            path: settings.path.clone(),
            key: "settings.target".into(),
            problem: e.to_string(),
        })?;
        Ok(Agent {
            settings_medium,
            store: StateStore::new(&settings.state_dir),
            settings,
            board,
            fetcher,
            checker: Checker::new(roots),
            clock: std::sync::Arc::new(unix_now),
            progress: None,
            owner_defaults: false,
        })
    }

    /// Report the progress of image writes to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Agent {
        self.progress = Some(progress);
        self
    }

    /// The owner's `--no-settings`: what this agent installs or pins boots on its own
    /// defaults, so a release whose configuration format breaks with the running firmware's
    /// in its minor version may be chosen.
    pub fn on_defaults(mut self) -> Agent {
        self.owner_defaults = true;
        self
    }

    /// Carry the settings through `medium` (a stand-in for the kernel's mounts, in tests).
    pub fn with_settings_medium(mut self, medium: Box<dyn crate::carry::SettingsMedium>) -> Agent {
        self.settings_medium = Some(medium);
        self
    }

    /// Use another wall clock (a router without an RTC boots in 1970).
    pub fn with_clock(mut self, clock: Clock) -> Agent {
        self.clock = clock;
        self
    }

    /// Build the agent for the board the settings describe.
    pub fn from_settings(settings: Settings) -> Result<Agent> {
        let board = Board::from_settings(&settings.board)?;
        #[cfg(all(feature = "failpoints", feature = "demo"))]
        if let Some(m) = crate::sim::settings_medium::from_env(&settings) {
            return Ok(Agent::new(settings, board)?.with_settings_medium(m));
        }
        Agent::new(settings, board)
    }

    /// The policy in force: the owner's choice, else the configuration's.
    pub fn policy(&self, st: &PersistedState) -> crate::config::Policy {
        if st.approve {
            return crate::config::Policy::Approve;
        }
        st.policy.unwrap_or(self.settings.policy)
    }

    /// The channel followed: the owner's choice, else the configuration's.
    pub fn channel<'a>(&'a self, st: &'a PersistedState) -> &'a str {
        st.channel
            .as_deref()
            .unwrap_or(&self.settings.index.channel)
    }

    /// The board checks that must pass before anything is written (e.g. the env's sector
    /// size against the flash's erase size, a state directory the other slot will see).
    pub(crate) fn preflight(&self) -> Result<()> {
        crate::board::preflight::before_write(&self.settings, &self.board)
            .map_err(|f| Error::Preflight(Box::new(f)))
    }

    /// [`Agent::preflight`], and that the state lives where the other slot sees it: before
    /// an install (or a pin) starts.
    pub(crate) fn preflight_install(&self) -> Result<()> {
        crate::board::preflight::before_install(&self.settings, &self.board)
            .map_err(|f| Error::Preflight(Box::new(f)))
    }

    pub fn now(&self) -> u64 {
        (self.clock)()
    }

    fn lock(&self) -> Result<Lock> {
        self.store.lock(false)?.ok_or_else(|| Error::InUse {
            path: self.store.dir().join("lock"),
        })
    }

    fn lock_wait(&self) -> Result<Lock> {
        Ok(self
            .store
            .lock(true)?
            .expect("blocking lock returns a lock"))
    }

    pub fn load(&self) -> Result<PersistedState> {
        Ok(self.store.load()?)
    }

    fn save(&self, st: &PersistedState) -> Result<()> {
        Ok(self.store.save(st)?)
    }

    /// The facts every change is recorded with: the clock, and who outcomes are reported as
    /// (when `[report]` is set).
    pub(crate) fn facts(&self, st: &PersistedState) -> Facts {
        Facts {
            at: self.now(),
            reporter: self.settings.report.as_ref().map(|_| Reporter {
                device: self.device_id(st).to_string(),
                board: self.board.id.clone(),
                trial_seconds: (self.settings.trial.deadline + self.settings.trial.soak).as_secs(),
            }),
        }
    }

    /// Ask the board to reboot and report it.
    fn reboot(&self, why: String) -> Result<Action> {
        tracing::info!("rebooting: {why}");
        self.board.platform.reboot()?;
        Ok(Action::Reboot(why))
    }
}
