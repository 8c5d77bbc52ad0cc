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

use crate::index::Release;
use crate::slot::Slot;
use crate::version::Version;
use serde::{Deserialize, Serialize};

/// Where the device is in an update. Data a state needs lives in its variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UpdateState {
    /// Running a committed firmware; nothing in progress.
    Idle,
    /// The target slot was invalidated and the image is being written into it.
    Installing { release: Release, target: Slot },
    /// The image is in the target slot and verified; the boot switch has not happened.
    Staged {
        release: Release,
        target: Slot,
        /// How many times arming was attempted without the switch taking effect.
        arm_attempts: u8,
    },
    /// Persisted just before the bootloader is told to try `target`, and the reboot.
    Armed {
        release: Release,
        target: Slot,
        previous: Slot,
        arm_attempts: u8,
    },
    /// Booted `slot` on trial; health checks decide.
    Trial {
        release: Release,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start writing `release` into `target`.
    Begin { release: Release, target: Slot },
    /// The written image read back correctly.
    Verified,
    /// Installing or staging failed; the target slot holds nothing bootable.
    Failed,
    /// About to arm the trial of the staged slot, leaving `previous`.
    Arm { previous: Slot },
    /// The armed switch never took effect (power cut before the env write): back to staged.
    Rearm,
    /// Running the trial slot in boot `boot_id`.
    BootedTrial { boot_id: String, started_ms: u64 },
    /// Health checks passed.
    Commit,
    /// The bootloader gave the trial slot up and booted the previous slot.
    Abandoned,
    /// Leave `version` for slot `to` because of `reason`.
    Rollback {
        to: Slot,
        version: Version,
        reason: String,
    },
    /// Running the slot rolled back to.
    RolledBack,
    /// The armed trial or the rollback did not take effect at this boot: reboot once more,
    /// counted.
    RetryBoot,
    /// The rollback never took effect within its attempts: stop rebooting.
    RollbackFailed,
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Begin { .. } => "begin an install",
            Event::Verified => "mark verified",
            Event::Failed => "abandon the install",
            Event::Arm { .. } => "arm a trial boot",
            Event::Rearm => "re-arm",
            Event::BootedTrial { .. } => "start a trial",
            Event::Commit => "commit",
            Event::Abandoned => "abandon the trial",
            Event::Rollback { .. } => "roll back",
            Event::RolledBack => "finish a rollback",
            Event::RetryBoot => "retry the boot",
            Event::RollbackFailed => "give up the rollback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} while the update state is {state}")]
pub struct Disallowed {
    pub event: &'static str,
    pub state: &'static str,
}

/// The only way states change.
pub fn transition(state: &UpdateState, event: Event) -> Result<UpdateState, Disallowed> {
    use Event as E;
    use UpdateState as S;
    let next = match (state, event) {
        (S::Idle | S::Staged { .. }, E::Begin { release, target }) => {
            S::Installing { release, target }
        }
        (S::Installing { release, target }, E::Verified) => S::Staged {
            release: release.clone(),
            target: *target,
            arm_attempts: 0,
        },
        (S::Installing { .. } | S::Staged { .. }, E::Failed) => S::Idle,
        (
            S::Staged {
                release,
                target,
                arm_attempts,
            },
            E::Arm { previous },
        ) if previous != *target => S::Armed {
            release: release.clone(),
            target: *target,
            previous,
            arm_attempts: arm_attempts.saturating_add(1),
        },
        (
            S::Armed {
                release,
                target,
                arm_attempts,
                ..
            },
            E::Rearm,
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
            },
        ) => S::Trial {
            release: release.clone(),
            slot: *target,
            previous: *previous,
            boot_id,
            started_ms,
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
            },
        ) => {
            let same_boot = *old == boot_id;
            S::Trial {
                release: release.clone(),
                slot: *slot,
                previous: *previous,
                started_ms: if same_boot { *old_start } else { started_ms },
                boots: if same_boot { *boots } else { boots + 1 },
                boot_id,
            }
        }
        (S::Trial { .. }, E::Commit) => S::Idle,
        (S::Armed { .. } | S::Trial { .. }, E::Abandoned) => S::Idle,
        (
            S::Trial { slot, .. },
            E::Rollback {
                to,
                version,
                reason,
            },
        ) if to != *slot => S::RollingBack {
            version,
            from: *slot,
            to,
            reason,
            attempts: 0,
        },
        (
            S::Idle,
            E::Rollback {
                to,
                version,
                reason,
            },
        ) => S::RollingBack {
            version,
            from: !to,
            to,
            reason,
            attempts: 0,
        },
        (S::RollingBack { .. }, E::RolledBack | E::RollbackFailed) => S::Idle,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rel() -> Release {
        Release {
            version: "1.1".parse().unwrap(),
            boards: vec!["sim".into()],
            channels: vec!["stable".into()],
            urls: vec!["fw.img".into()],
            size: 1,
            sha256: [0; 32],
            min_from: None,
            pulled: None,
            rollout: None,
        }
    }

    fn staged() -> UpdateState {
        UpdateState::Staged {
            release: rel(),
            target: Slot::B,
            arm_attempts: 0,
        }
    }

    fn armed() -> UpdateState {
        transition(&staged(), Event::Arm { previous: Slot::A }).unwrap()
    }

    fn trial() -> UpdateState {
        transition(
            &armed(),
            Event::BootedTrial {
                boot_id: "b1".into(),
                started_ms: 5,
            },
        )
        .unwrap()
    }

    #[test]
    fn happy_path() {
        let s = transition(
            &UpdateState::Idle,
            Event::Begin {
                release: rel(),
                target: Slot::B,
            },
        )
        .unwrap();
        assert_eq!(s.name(), "installing");
        let s = transition(&s, Event::Verified).unwrap();
        assert_eq!(s, staged());
        assert!(matches!(
            armed(),
            UpdateState::Armed {
                arm_attempts: 1,
                previous: Slot::A,
                ..
            }
        ));
        assert!(matches!(
            trial(),
            UpdateState::Trial {
                slot: Slot::B,
                boots: 1,
                ..
            }
        ));
        assert_eq!(
            transition(&trial(), Event::Commit).unwrap(),
            UpdateState::Idle
        );
    }

    #[test]
    fn trial_reboot_counts_boots_and_restarts_the_clock() {
        let t = trial();
        let same = transition(
            &t,
            Event::BootedTrial {
                boot_id: "b1".into(),
                started_ms: 99,
            },
        )
        .unwrap();
        assert!(matches!(
            same,
            UpdateState::Trial {
                boots: 1,
                started_ms: 5,
                ..
            }
        ));
        let next = transition(
            &t,
            Event::BootedTrial {
                boot_id: "b2".into(),
                started_ms: 7,
            },
        )
        .unwrap();
        assert!(matches!(
            next,
            UpdateState::Trial {
                boots: 2,
                started_ms: 7,
                ..
            }
        ));
    }

    #[test]
    fn rollbacks() {
        let r = transition(
            &trial(),
            Event::Rollback {
                to: Slot::A,
                version: "1.1".parse().unwrap(),
                reason: "wan".into(),
            },
        )
        .unwrap();
        assert!(matches!(
            r,
            UpdateState::RollingBack {
                from: Slot::B,
                to: Slot::A,
                ..
            }
        ));
        assert_eq!(
            transition(&r, Event::RolledBack).unwrap(),
            UpdateState::Idle
        );
        let manual = transition(
            &UpdateState::Idle,
            Event::Rollback {
                to: Slot::B,
                version: "1.0".parse().unwrap(),
                reason: "owner".into(),
            },
        )
        .unwrap();
        assert!(matches!(
            manual,
            UpdateState::RollingBack {
                from: Slot::A,
                to: Slot::B,
                ..
            }
        ));
        // A trial cannot "roll back" onto itself.
        assert!(transition(
            &trial(),
            Event::Rollback {
                to: Slot::B,
                version: "1.1".parse().unwrap(),
                reason: "x".into()
            }
        )
        .is_err());
    }

    #[test]
    fn rearm_and_abandon() {
        let s = transition(&armed(), Event::Rearm).unwrap();
        assert!(matches!(
            s,
            UpdateState::Staged {
                arm_attempts: 1,
                ..
            }
        ));
        assert_eq!(
            transition(&armed(), Event::Abandoned).unwrap(),
            UpdateState::Idle
        );
        assert_eq!(
            transition(&trial(), Event::Abandoned).unwrap(),
            UpdateState::Idle
        );
    }

    #[test]
    fn retried_boots_are_counted_and_a_rollback_can_be_given_up() {
        let a = transition(&armed(), Event::RetryBoot).unwrap();
        assert!(matches!(
            a,
            UpdateState::Armed {
                arm_attempts: 2,
                ..
            }
        ));
        let r = transition(
            &trial(),
            Event::Rollback {
                to: Slot::A,
                version: "1.1".parse().unwrap(),
                reason: "wan".into(),
            },
        )
        .unwrap();
        let r = transition(&r, Event::RetryBoot).unwrap();
        assert!(matches!(r, UpdateState::RollingBack { attempts: 1, .. }));
        assert_eq!(
            transition(&r, Event::RollbackFailed).unwrap(),
            UpdateState::Idle
        );
        for s in [UpdateState::Idle, staged(), trial()] {
            assert!(transition(&s, Event::RetryBoot).is_err());
            assert!(transition(&s, Event::RollbackFailed).is_err());
        }
    }

    #[test]
    fn disallowed_pairs() {
        let begin = || Event::Begin {
            release: rel(),
            target: Slot::B,
        };
        // No second update while one is armed, on trial or rolling back.
        for s in [armed(), trial()] {
            let e = transition(&s, begin()).unwrap_err();
            assert_eq!(e.event, "begin an install");
        }
        assert!(transition(&UpdateState::Idle, Event::Commit).is_err());
        assert!(transition(&UpdateState::Idle, Event::Verified).is_err());
        assert!(transition(&staged(), Event::Arm { previous: Slot::B }).is_err());
        assert!(transition(&trial(), Event::Verified).is_err());
        let e = transition(&UpdateState::Idle, Event::RolledBack).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot finish a rollback while the update state is idle"
        );
    }
}
