//! The owner's approval (policy `approve`): `fwguard approve VERSION` and `fwguard deny
//! VERSION`, and the gate the daemon passes before it boots a staged release. An approval
//! is of a release's exact signed hashes; a denial is of the version and holds under any
//! policy, for the daemon only (the owner's own `fwguard update` is its own approval).

use super::{Action, Agent};
use crate::config::Policy;
use crate::error::{Error, Result};
use crate::index::Release;
use crate::state::{Gate, Note, PersistedState, ReleaseKey, UpdateState, Verdict};
use crate::time::format_time;
use crate::version::Version;

/// What the daemon does with the release it chose.
pub(super) enum Admit {
    /// Install and boot it, as the policy and the windows allow.
    Go,
    /// Stage it at most, and wait for the owner.
    Wait,
    /// Write nothing: the owner denied it.
    Refuse(String),
}

impl Agent {
    /// `approve_after` in seconds.
    fn approve_after(&self) -> Option<u64> {
        self.settings.approve_after.map(|d| d.as_secs())
    }

    /// The gate for `release` as the daemon meets it now.
    pub(super) fn gate_for(&self, st: &PersistedState, release: &ReleaseKey) -> Gate {
        st.gate(release, self.approve_after(), self.now())
    }

    /// Whether the daemon may go on with `release` under the policy in force.
    pub(super) fn admit(&self, st: &PersistedState, release: &Release) -> Admit {
        let key = ReleaseKey::from(release);
        match self.gate_for(st, &key) {
            Gate::Denied { at } => Admit::Refuse(format!(
                "{} was denied by the owner at {}: it is not installed automatically (`fwguard approve {}` undoes it; `fwguard update` installs it now)",
                key.version,
                format_time(at),
                key.version
            )),
            Gate::Approved { detail } => {
                tracing::info!("{}: {detail}", key.version);
                Admit::Go
            }
            Gate::Waiting { .. } if self.policy(st) == Policy::Approve => Admit::Wait,
            Gate::Waiting { .. } => Admit::Go,
        }
    }

    /// The daemon staged `release` and waits for the owner: record that once, and since when
    /// on the first trusted clock (a round that finds it waiting already, its timer started
    /// or the clock still untrusted, changes nothing). Whether the state changed.
    pub(super) fn note_waiting(&self, st: &mut PersistedState, release: &Release) -> bool {
        let key = ReleaseKey::from(release);
        let now = self.now();
        // The timer starts on a clock at or above the newest trusted time only: one that
        // boots in 1970, or a stale one set right later, cannot shorten the owner's time.
        let since = (now >= st.time_floor).then_some(now);
        match st.awaiting_staged() {
            Some(a) if a.key == key && (a.since.is_some() || since.is_none()) => return false,
            _ => {}
        }
        let facts = self.facts(st);
        st.note(Note::AwaitingApproval { key, since }, &facts);
        true
    }

    /// Where the staged release stands with the owner (policy approve), in a sentence.
    pub fn staged_text(&self, st: &PersistedState) -> Option<String> {
        let UpdateState::Staged { release, .. } = &st.update else {
            return None;
        };
        let v = &release.version;
        let defaults = match release.own_defaults {
            true => " (on its own defaults: staged with --no-settings, so the owner's settings are not carried into it)",
            false => "",
        };
        let gate = self.gate_for(st, &release.into());
        if self.policy(st) != Policy::Approve && !matches!(gate, Gate::Denied { .. }) {
            return Some(format!(
                "{v} is written and verified in the inactive slot{defaults}; `fwguard update` boots it"
            ));
        }
        let text = match gate {
            Gate::Approved { detail } => {
                format!(
                    "{v} is staged and {detail}; the reboot into it waits for the reboot window"
                )
            }
            Gate::Denied { at } => format!(
                "{v} is staged, but the owner denied it at {}: `fwguard approve {v}` undoes that",
                format_time(at)
            ),
            Gate::Waiting {
                since,
                automatic_at,
                other_bytes,
            } => {
                let since = since
                    .map(|s| format!(" since {}", format_time(s)))
                    .unwrap_or_default();
                let when = match (automatic_at, self.settings.approve_after) {
                    (Some(at), _) => format!("; approved automatically at {}", format_time(at)),
                    (None, None) => "; never approved automatically (no approve_after)".into(),
                    (None, Some(_)) => {
                        "; approve_after counts from the first round with a trusted clock".into()
                    }
                };
                let other = match other_bytes {
                    Some(sha) => format!("; the owner approved other bytes of {v} (sha256 {sha}): the signed index changed them, so it needs a new approval"),
                    None => String::new(),
                };
                format!("{v} is staged{since} and waits for the owner: `fwguard approve {v}` boots it, `fwguard deny {v}` keeps it out{when}{other}")
            }
        };
        Some(format!("{text}{defaults}"))
    }

    /// `fwguard approve VERSION`: approve the exact bytes of `version`: the staged release
    /// of that version, else what the signed index lists for this board now. Undoes a
    /// denial. The daemon boots it at its next round (inside the reboot window).
    pub async fn approve(&self, version: Version) -> Result<Action> {
        let lock = self.lock()?;
        let mut st = self.load()?;
        let booted = self.booted()?;
        if Agent::version_in(&st, booted).as_ref() == Some(&version) {
            return Err(Error::Refused(format!(
                "{version} is running already: there is nothing to approve"
            )));
        }
        let key = match &st.update {
            UpdateState::Staged { release, .. } if release.version == version => {
                ReleaseKey::from(release)
            }
            _ => {
                let url = self.settings.index.url.clone();
                let index = self.fetch_verified(&mut st, booted, &url).await?;
                let r = index
                    .releases()
                    .iter()
                    .find(|r| r.version == version && r.boards.contains(&self.board.id))
                    .ok_or_else(|| {
                        Error::Refused(format!(
                            "the signed index lists no {version} for board {}: nothing to approve",
                            self.board.id
                        ))
                    })?;
                if let Some(why) = &r.pulled {
                    return Err(Error::Refused(format!(
                        "{version} was pulled by the vendor ({why}): it is never installed"
                    )));
                }
                ReleaseKey::from(r)
            }
        };
        if st
            .decision(&version)
            .is_some_and(|d| d.verdict == Verdict::Approved && d.key == key)
        {
            return Ok(Action::UpToDate(format!(
                "{version} (sha256 {}) is approved already",
                key.sha256
            )));
        }
        let detail = format!("approved by the owner (sha256 {})", key.sha256);
        let facts = self.facts(&st);
        st.note(Note::Approved { key, detail }, &facts);
        self.save(&st)?;
        let next = match self.policy(&st) {
            // The daemon is woken for a round now (the state lock is released by then).
            Policy::Approve => {
                drop(lock);
                match self.wake_daemon() {
                    Ok(Some(pid)) => format!("the daemon (pid {pid}) boots it now, inside the reboot window"),
                    Ok(None) => "the daemon boots it at its next round, inside the reboot window".to_string(),
                    Err(e) => format!("the daemon boots it at its next round, inside the reboot window (it could not be woken: {e})"),
                }
            }
            p => format!(
                "policy is {}: approvals count under policy approve (`fwguard policy approve`)",
                p.as_str()
            ),
        };
        Ok(Action::Done(format!("approved {version}; {next}")))
    }

    /// `fwguard deny VERSION`: the daemon never installs `version` on its own (under any
    /// policy), until `fwguard approve VERSION`. The owner's `fwguard update` still does.
    pub fn deny(&self, version: Version) -> Result<Action> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        if st
            .decision(&version)
            .is_some_and(|d| d.verdict == Verdict::Denied)
        {
            return Ok(Action::UpToDate(format!("{version} is denied already")));
        }
        let facts = self.facts(&st);
        st.note(
            Note::Denied {
                version: version.clone(),
            },
            &facts,
        );
        self.save(&st)?;
        Ok(Action::Done(format!(
            "denied {version}: the daemon does not install it (`fwguard approve {version}` undoes this)"
        )))
    }
}
