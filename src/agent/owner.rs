//! What the owner does by hand: unpin, hold, release, the policy and the channel, roll
//! back, mark good (pinning is in `source.rs`, with the rules of a pin). The owner's
//! choices are kept in the state and win over the shipped configuration.

use super::{Action, Agent};
use crate::config::Policy;
use crate::error::{Error, Result};
use crate::health::Report;
use crate::state::{Note, UpdateState};

impl Agent {
    /// `fwguard unpin` / `fwguard release`: drop a pin or a hold and follow the channel.
    pub fn unpin(&self) -> Result<Action> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        if st.pin.is_none() && !st.hold {
            return Ok(Action::UpToDate("no version is pinned or held".into()));
        }
        let facts = self.facts(&st);
        st.note(Note::Unpinned, &facts);
        self.save(&st)?;
        Ok(Action::Done(format!(
            "following channel {} again",
            self.channel(&st)
        )))
    }

    /// `fwguard hold`: stay on the running version; nothing is installed until `release`.
    pub fn hold(&self) -> Result<Action> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        let booted = self.booted()?;
        let version = Agent::version_in(&st, booted);
        let what = match &version {
            Some(v) => v.to_string(),
            None => format!("the firmware in slot {booted}"),
        };
        if st.hold {
            return Ok(Action::UpToDate(format!("already held at {what}")));
        }
        let facts = self.facts(&st);
        st.note(
            Note::Held {
                version: version.clone(),
            },
            &facts,
        );
        self.save(&st)?;
        Ok(Action::Done(format!("holding at {what}")))
    }

    /// `fwguard policy MODE`: what the daemon may do on its own, overriding the configuration.
    pub fn set_policy(&self, policy: Policy) -> Result<Action> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        // The owner's choice as kept (approve is kept as download-only plus a flag).
        let chosen = if st.approve {
            Some(Policy::Approve)
        } else {
            st.policy
        };
        if chosen == Some(policy) {
            return Ok(Action::UpToDate(format!(
                "policy is already {}",
                policy.as_str()
            )));
        }
        let facts = self.facts(&st);
        st.note(Note::PolicySet { policy }, &facts);
        self.save(&st)?;
        Ok(Action::Done(format!("policy is now {}", policy.as_str())))
    }

    /// `fwguard channel NAME`: follow another channel of the index (e.g. beta).
    pub fn set_channel(&self, channel: &str) -> Result<Action> {
        let valid = !channel.is_empty()
            && channel.len() <= 64
            && channel
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !valid {
            return Err(Error::Refused(format!(
                "{channel:?} is not a channel name (letters, digits, - _ .)"
            )));
        }
        let _lock = self.lock()?;
        let mut st = self.load()?;
        if self.channel(&st) == channel {
            return Ok(Action::UpToDate(format!(
                "already following channel {channel}"
            )));
        }
        let facts = self.facts(&st);
        st.note(
            Note::ChannelSet {
                channel: channel.to_string(),
            },
            &facts,
        );
        self.save(&st)?;
        Ok(Action::Done(format!("following channel {channel}")))
    }

    /// `fwguard rollback`: go back to the other slot's known-good firmware, no download
    /// needed. The version left is denylisted so it is not installed again automatically.
    pub fn rollback(&self) -> Result<Action> {
        // Also checked before the env write itself; here so that a refusal touches nothing.
        self.preflight()?;
        let held = self.lock()?;
        self.roll_back(&held, "rollback requested by the owner".into(), None, true)
    }

    /// `fwguard mark-good`: commit the running trial now. Only the trial that is running: the
    /// trial slot must be the booted one, and the bootloader must still have it armed (it has
    /// not given it up); otherwise nothing is written.
    pub fn mark_good(&self) -> Result<Action> {
        let held = self.lock()?;
        let st = self.load()?;
        self.ensure_trial_explained(&st)?;
        match st.update {
            UpdateState::Trial { slot, release, .. } => {
                let booted = self.board.platform.booted_slot()?;
                let boot = self.board.bootloader.read_state()?;
                let problem = if booted != slot {
                    Some(format!(
                        "slot {booted} is running, not the trial slot {slot}"
                    ))
                } else if boot.fell_back_from == Some(slot) || !boot.trial || boot.primary != slot {
                    Some(format!(
                        "the bootloader no longer has slot {slot} armed on trial (next boot: slot {}{})",
                        boot.primary,
                        if boot.fell_back_from == Some(slot) {
                            format!("; it gave slot {slot} up")
                        } else {
                            String::new()
                        }
                    ))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(Error::Refused(format!(
                        "not marking {} good: {problem}; `fwguard daemon` (or a reboot) settles the trial",
                        release.version
                    )));
                }
                self.commit(
                    &held,
                    Report {
                        results: Vec::new(),
                    },
                    "marked good by the owner",
                )
            }
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
