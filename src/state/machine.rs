//! The update state machine. Every state change goes through [`transition`], which refuses
//! any `(event, state)` pair not in the graph below (also in `docs/state-machine.md`).
//!
//! ```text
//!  Idle --Begin--> Installing --Verified--> Staged --Arm--> Armed --BootedTrial--> Trial
//!   ^                 |                       |               |  \                 |  |
//!   |               Failed                 Failed/Begin     Rearm  Abandoned       |  Commit
//!   +-----------------+-----------------------+            (Staged)   |            |  |
//!   +<---------------------------------------------------------------+             |  v
//!   +<-------------------------------------------------------------------------- Idle
//!  Idle/Trial --Rollback--> RollingBack --RolledBack--> Idle
//! ```

use super::carried::{CarriedOutcome, CarriedTrial};
use super::schema::{CheckRecord, ReleaseRef};
use crate::slot::Slot;
use crate::version::Version;
use serde::{Deserialize, Serialize};

/// Where the device is in an update. Data a state needs lives in its variant. Written as
/// one object with its name in `state`; read through [`Wire`], one pass and in any order
/// (serde's internally tagged reader buffers the whole object first, which is several KB of
/// the router build).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", try_from = "Wire")]
pub enum UpdateState {
    /// Running a committed firmware; nothing in progress.
    Idle,
    /// The target slot was invalidated and the image is being written into it.
    Installing { release: ReleaseRef, target: Slot },
    /// The image is in the target slot and verified; the boot switch has not happened.
    Staged {
        release: ReleaseRef,
        target: Slot,
        /// How many times arming was attempted without the switch taking effect.
        arm_attempts: u8,
    },
    /// Persisted just before the bootloader is told to try `target`, and the reboot.
    Armed {
        release: ReleaseRef,
        target: Slot,
        previous: Slot,
        arm_attempts: u8,
    },
    /// Booted `slot` on trial; health checks decide.
    Trial {
        release: ReleaseRef,
        slot: Slot,
        previous: Slot,
        /// The boot this trial's deadline is measured in.
        boot_id: String,
        /// When the trial started in this boot, in ms of boot time (CLOCK_BOOTTIME).
        started_ms: u64,
        /// Boots of the trial slot so far.
        boots: u32,
    },
    /// Persisted just before switching back to `to` and rebooting.
    RollingBack {
        /// The version being left.
        version: Version,
        from: Slot,
        to: Slot,
        reason: String,
        /// Reboots so far that did not land in `to` (the bootloader did not act on the
        /// switch); bounded, so an env the bootloader does not read cannot loop forever.
        #[serde(default)]
        attempts: u8,
    },
}

/// The fields of every update state, as read: [`UpdateState`] is made of the ones its
/// `state` needs (unknown fields are ignored, as everywhere in the state file).
#[derive(Deserialize)]
struct Wire {
    state: String,
    release: Option<ReleaseRef>,
    target: Option<Slot>,
    previous: Option<Slot>,
    arm_attempts: Option<u8>,
    slot: Option<Slot>,
    boot_id: Option<String>,
    started_ms: Option<u64>,
    boots: Option<u32>,
    version: Option<Version>,
    from: Option<Slot>,
    to: Option<Slot>,
    reason: Option<String>,
    #[serde(default)]
    attempts: u8,
}

impl TryFrom<Wire> for UpdateState {
    type Error = String;

    fn try_from(w: Wire) -> Result<UpdateState, String> {
        let state = w.state;
        fn need<T>(state: &str, field: &str, v: Option<T>) -> Result<T, String> {
            v.ok_or_else(|| format!("update state {state:?} lacks `{field}`"))
        }
        macro_rules! n {
            ($field:ident) => {
                need(&state, stringify!($field), w.$field)?
            };
        }
        Ok(match state.as_str() {
            "idle" => UpdateState::Idle,
            "installing" => UpdateState::Installing {
                release: n!(release),
                target: n!(target),
            },
            "staged" => UpdateState::Staged {
                release: n!(release),
                target: n!(target),
                arm_attempts: n!(arm_attempts),
            },
            "armed" => UpdateState::Armed {
                release: n!(release),
                target: n!(target),
                previous: n!(previous),
                arm_attempts: n!(arm_attempts),
            },
            "trial" => UpdateState::Trial {
                release: n!(release),
                slot: n!(slot),
                previous: n!(previous),
                boot_id: n!(boot_id),
                started_ms: n!(started_ms),
                boots: n!(boots),
            },
            "rolling_back" => UpdateState::RollingBack {
                version: n!(version),
                from: n!(from),
                to: n!(to),
                reason: n!(reason),
                attempts: w.attempts,
            },
            other => {
                return Err(format!(
                    "unknown update state {other:?} (idle, installing, staged, armed, trial, rolling_back)"
                ))
            }
        })
    }
}

impl UpdateState {
    pub fn name(&self) -> &'static str {
        match self {
            UpdateState::Idle => "idle",
            UpdateState::Installing { .. } => "installing",
            UpdateState::Staged { .. } => "staged",
            UpdateState::Armed { .. } => "armed",
            UpdateState::Trial { .. } => "trial",
            UpdateState::RollingBack { .. } => "rolling-back",
        }
    }
}

/// What happened, with the facts its bookkeeping needs (see `state/apply.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start writing `release` into `target`.
    Begin {
        release: Box<ReleaseRef>,
        target: Slot,
    },
    /// The written image read back correctly.
    Verified,
    /// Installing failed, or a staged image was given up: the target slot holds nothing
    /// bootable.
    Failed { why: String },
    /// An install was cut off (a power cut), found at the next start.
    Interrupted { detail: String },
    /// About to arm the trial of the staged slot, leaving `previous`.
    Arm { previous: Slot },
    /// Arming failed; the image stays staged.
    ArmFailed { why: String },
    /// The armed switch never took effect (power cut before the env write): back to staged.
    Rearm,
    /// Running the trial slot in boot `boot_id` (the bootloader has counted `bootcount`).
    BootedTrial {
        boot_id: String,
        started_ms: u64,
        bootcount: u32,
    },
    /// Health checks passed, or the owner said so.
    Commit {
        checks: Vec<CheckRecord>,
        detail: String,
    },
    /// The trial is over without a commit: the bootloader gave the slot up
    /// (`by_bootloader`), or its boot switch never took effect.
    Abandoned { why: String, by_bootloader: bool },
    /// Leave `version` for slot `to` because of `reason` (the checks that decided it).
    Rollback {
        to: Slot,
        version: Version,
        reason: String,
        checks: Vec<CheckRecord>,
        by_owner: bool,
    },
    /// Running the slot rolled back to.
    RolledBack,
    /// The armed trial or the rollback did not take effect at this boot: reboot once more,
    /// counted.
    RetryBoot,
    /// The rollback never took effect within its attempts: stop rebooting.
    RollbackFailed,
    /// The other slot's fwguard armed a trial of this slot and carried it in the bootloader
    /// environment (boards whose slots share nothing else): this state takes it over.
    TakeTrial { trial: Box<CarriedTrial> },
    /// The trial this firmware armed ended in the other slot, as its fwguard carried it back.
    Returned { outcome: CarriedOutcome },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Begin { .. } => "begin an install",
            Event::Verified => "mark verified",
            Event::Failed { .. } => "abandon the install",
            Event::Interrupted { .. } => "clean up an interrupted install",
            Event::Arm { .. } => "arm a trial boot",
            Event::ArmFailed { .. } => "record a failed arm",
            Event::Rearm => "re-arm",
            Event::BootedTrial { .. } => "start a trial",
            Event::Commit { .. } => "commit",
            Event::Abandoned { .. } => "abandon the trial",
            Event::Rollback { .. } => "roll back",
            Event::RolledBack => "finish a rollback",
            Event::RetryBoot => "retry the boot",
            Event::RollbackFailed => "give up the rollback",
            Event::TakeTrial { .. } => "take over a carried trial",
            Event::Returned { .. } => "record how a carried trial ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} while the update state is {state}")]
pub struct Disallowed {
    pub event: &'static str,
    pub state: &'static str,
}

/// The only way states change: the next state, or a refusal of a pair not in the graph.
/// The bookkeeping of each change is [`PersistedState::apply`](super::PersistedState::apply).
pub fn transition(state: &UpdateState, event: &Event) -> Result<UpdateState, Disallowed> {
    use Event as E;
    use UpdateState as S;
    let next = match (state, event) {
        (S::Idle | S::Staged { .. }, E::Begin { release, target }) => S::Installing {
            release: (**release).clone(),
            target: *target,
        },
        (S::Installing { release, target }, E::Verified) => S::Staged {
            release: release.clone(),
            target: *target,
            arm_attempts: 0,
        },
        (S::Installing { .. } | S::Staged { .. }, E::Failed { .. }) => S::Idle,
        (S::Installing { .. }, E::Interrupted { .. }) => S::Idle,
        (
            S::Staged {
                release,
                target,
                arm_attempts,
            },
            E::Arm { previous },
        ) if previous != target => S::Armed {
            release: release.clone(),
            target: *target,
            previous: *previous,
            arm_attempts: arm_attempts.saturating_add(1),
        },
        (
            S::Armed {
                release,
                target,
                arm_attempts,
                ..
            },
            E::Rearm | E::ArmFailed { .. },
        ) => S::Staged {
            release: release.clone(),
            target: *target,
            arm_attempts: *arm_attempts,
        },
        (
            S::Armed {
                release,
                target,
                previous,
                ..
            },
            E::BootedTrial {
                boot_id,
                started_ms,
                ..
            },
        ) => S::Trial {
            release: release.clone(),
            slot: *target,
            previous: *previous,
            boot_id: boot_id.clone(),
            started_ms: *started_ms,
            boots: 1,
        },
        (
            S::Trial {
                release,
                slot,
                previous,
                boot_id: old,
                started_ms: old_start,
                boots,
            },
            E::BootedTrial {
                boot_id,
                started_ms,
                ..
            },
        ) => {
            let same_boot = old == boot_id;
            S::Trial {
                release: release.clone(),
                slot: *slot,
                previous: *previous,
                started_ms: if same_boot { *old_start } else { *started_ms },
                boots: if same_boot { *boots } else { boots + 1 },
                boot_id: boot_id.clone(),
            }
        }
        (S::Trial { .. }, E::Commit { .. }) => S::Idle,
        (S::Armed { .. } | S::Trial { .. }, E::Abandoned { .. }) => S::Idle,
        (
            S::Trial { slot, .. },
            E::Rollback {
                to,
                version,
                reason,
                ..
            },
        ) if to != slot => S::RollingBack {
            version: version.clone(),
            from: *slot,
            to: *to,
            reason: reason.clone(),
            attempts: 0,
        },
        (
            S::Idle,
            E::Rollback {
                to,
                version,
                reason,
                ..
            },
        ) => S::RollingBack {
            version: version.clone(),
            from: !*to,
            to: *to,
            reason: reason.clone(),
            attempts: 0,
        },
        (S::RollingBack { .. }, E::RolledBack | E::RollbackFailed) => S::Idle,
        (_, E::TakeTrial { trial }) if trial.slot != trial.previous => S::Armed {
            release: trial.release.clone(),
            target: trial.slot,
            previous: trial.previous,
            arm_attempts: 0,
        },
        (
            S::Armed {
                release, target, ..
            },
            E::Returned { outcome },
        ) if outcome.slot == *target && outcome.version == release.version => S::Idle,
        (
            S::Armed {
                release,
                target,
                previous,
                arm_attempts,
            },
            E::RetryBoot,
        ) => S::Armed {
            release: release.clone(),
            target: *target,
            previous: *previous,
            arm_attempts: arm_attempts.saturating_add(1),
        },
        (
            S::RollingBack {
                version,
                from,
                to,
                reason,
                attempts,
            },
            E::RetryBoot,
        ) => S::RollingBack {
            version: version.clone(),
            from: *from,
            to: *to,
            reason: reason.clone(),
            attempts: attempts.saturating_add(1),
        },
        (s, e) => {
            return Err(Disallowed {
                event: e.name(),
                state: s.name(),
            })
        }
    };
    Ok(next)
}
