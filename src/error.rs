//! The library's top-level error, grouped into classes with stable exit codes.
//!
//! Exit codes are part of fwguard's interface for scripts; they never change meaning:
//!
//! | code | class | meaning |
//! |-----:|-------|---------|
//! | 0 | - | success |
//! | 1 | internal | unexpected failure (a bug, or the host misbehaving) |
//! | 2 | usage | command-line usage error (wrong flag or argument) |
//! | 3 | config | the configuration file is missing, unreadable or invalid, the board's env location does not fit its flash (`doctor`, preflight), or `agent.runtime_dir` is not in RAM |
//! | 4 | in use | another fwguard process holds the state lock |
//! | 5 | disallowed | the command is not allowed in the current update state (or by this device's rules: a denylisted or below-the-floor version, a trial fwguard cannot account for) |
//! | 6 | verification | a signature, hash, size, board or version check refused the input, or the signed index does not offer what was asked for |
//! | 7 | network | the index or image could not be fetched |
//! | 8 | device | reading or writing a slot, the bootloader env, the state or an offline install's medium failed |
//! | 9 | unhealthy | health checks failed (`fwguard health`, or the running firmware's before an install) |
//! | 10 | nothing to do | `check` found no update (only with `check --exit-code`) |

use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_INTERNAL: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_CONFIG: i32 = 3;
pub const EXIT_IN_USE: i32 = 4;
pub const EXIT_DISALLOWED: i32 = 5;
pub const EXIT_VERIFICATION: i32 = 6;
pub const EXIT_NETWORK: i32 = 7;
pub const EXIT_DEVICE: i32 = 8;
pub const EXIT_UNHEALTHY: i32 = 9;
pub const EXIT_NO_UPDATE: i32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A board check that must pass before anything is written failed.
    #[error("preflight: {}", .0.message())]
    Preflight(Box<crate::board::preflight::Finding>),
    /// The signed index does not offer what was asked for (a pin, an image file).
    #[error(transparent)]
    Selection(#[from] crate::index::select::SelectError),
    /// An image file the signed index does not vouch for (offline install).
    #[error("{0}")]
    NotInIndex(String),
    /// Reading the offline install's medium (a USB stick, a directory) failed.
    #[error("{path}: {source}")]
    Medium {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The running firmware fails required health checks, so nothing is installed.
    #[error("not installing {version}: the running firmware fails required health checks ({failing}); fix that first, or `fwguard update --force`")]
    Baseline {
        version: crate::version::Version,
        failing: String,
    },
    #[error(
        "another fwguard process is busy (lock {path} is held); try again when it has finished"
    )]
    InUse { path: PathBuf },
    #[error("another fwguard daemon is running (pid {pid}; it holds {path})")]
    DaemonRunning { pid: String, path: PathBuf },
    #[error(transparent)]
    Disallowed(#[from] crate::state::Disallowed),
    #[error("{0}")]
    Refused(String),
    /// The owner's settings could not be carried into the slot being installed: its trial
    /// is not armed, and the running firmware and its settings are as they were.
    #[error("the settings were not carried into slot {slot}, so its trial is not armed: {source}")]
    Carry {
        slot: crate::slot::Slot,
        #[source]
        source: crate::carry::CarryError,
    },
    #[error("the bootloader has a trial of slot {slot} armed that fwguard's state does not explain (its state was lost, or the environment was changed by hand); refusing to write a slot or commit while the bootloader may still fall back to slot {fallback}: let the boot counter decide, or set the environment back by hand (`fwguard status` shows it)")]
    UnexplainedTrial {
        slot: crate::Slot,
        fallback: crate::Slot,
    },
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error(transparent)]
    Boot(#[from] crate::boot::BootError),
    #[error(transparent)]
    Flash(#[from] crate::flash::FlashError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Board(#[from] crate::board::BoardError),
    #[error(transparent)]
    Archive(#[from] crate::archive_dir::ArchiveError),
    #[cfg(feature = "demo")]
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    RuntimeDir(#[from] crate::runtime_dir::RuntimeDirError),
    #[error("health checks failed: {0}")]
    Unhealthy(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The stable exit code for this class of failure.
    pub fn exit_code(&self) -> i32 {
        use crate::flash::FlashError;
        match self {
            Error::Config(_) | Error::Preflight(_) => EXIT_CONFIG,
            Error::Selection(e) => e.exit_code(),
            Error::NotInIndex(_) => EXIT_VERIFICATION,
            Error::Medium { .. } => EXIT_DEVICE,
            Error::Baseline { .. } => EXIT_UNHEALTHY,
            Error::RuntimeDir(e) if e.is_refusal() => EXIT_CONFIG,
            Error::InUse { .. } | Error::DaemonRunning { .. } => EXIT_IN_USE,
            Error::Disallowed(_) | Error::Refused(_) | Error::UnexplainedTrial { .. } => {
                EXIT_DISALLOWED
            }
            Error::Index(_) => EXIT_VERIFICATION,
            Error::Archive(e) if e.is_verification() => EXIT_VERIFICATION,
            Error::Archive(crate::archive_dir::ArchiveError::Missing { .. }) => EXIT_DISALLOWED,
            Error::Fetch(e) if e.is_verification() => EXIT_VERIFICATION,
            Error::Fetch(e) if e.is_config() => EXIT_CONFIG,
            Error::Fetch(_) => EXIT_NETWORK,
            Error::Flash(FlashError::Verify { .. }) | Error::Flash(FlashError::Header { .. }) => {
                EXIT_VERIFICATION
            }
            Error::Boot(_)
            | Error::Carry { .. }
            | Error::Flash(_)
            | Error::State(_)
            | Error::Board(_)
            | Error::Archive(_)
            | Error::RuntimeDir(_) => EXIT_DEVICE,
            #[cfg(feature = "demo")]
            Error::Sim(_) => EXIT_DEVICE,
            Error::Unhealthy(_) => EXIT_UNHEALTHY,
            Error::Other(_) => EXIT_INTERNAL,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
