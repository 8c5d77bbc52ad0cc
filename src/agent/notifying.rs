//! The daemon's side of `[[notify]]`: what the state's history gained since the owner was
//! last told, and what a round found, handed to the [`Outbox`]. What was told is kept in
//! the runtime directory (RAM): no flash write for any of it.

use super::{Agent, RoundRecord, RoundResult};
use crate::config::Policy;
use crate::notify::send::Outbox;
use crate::notify::{Facts, Notice, Told};
use crate::state::PersistedState;

const TOLD: &str = "notified";

impl Agent {
    /// Where notices go (nowhere without `[[notify]]`).
    pub(super) fn outbox(&self) -> Outbox {
        Outbox::new(self.settings.notify.clone(), self.fetcher.clone())
    }

    /// What the owner was told, as the runtime directory has it; at the first look in this
    /// boot (before its recovery), the history so far counts as told, so that only what
    /// happens from now on is.
    pub(super) fn told(&self) -> Told {
        if self.settings.notify.is_empty() {
            return Told::default();
        }
        if let Some(t) = crate::runtime_dir::read(&self.settings.runtime_dir, TOLD)
            .and_then(|b| Told::from_text(std::str::from_utf8(&b).ok()?))
        {
            return t;
        }
        match self.load() {
            Ok(st) => {
                let told = Told::at(&st.history);
                self.keep_told(&told);
                told
            }
            // Unread, nothing in the history is news until it is (`Told::news` finds no
            // last entry told, and tells nothing of what is there then).
            Err(_) => Told {
                last: Some(String::new()),
                ..Told::default()
            },
        }
    }

    fn keep_told(&self, told: &Told) {
        let text = told.to_text();
        if let Err(e) = crate::runtime_dir::write(&self.settings.runtime_dir, TOLD, text.as_bytes())
        {
            tracing::debug!("what was notified is kept in memory only: {e}");
        }
    }

    /// Tell the owner what the history gained since `told`, and what `round` found.
    pub(super) fn tell(&self, outbox: &Outbox, told: &mut Told, round: Option<&RoundRecord>) {
        if outbox.is_empty() {
            return;
        }
        let Ok(st) = self.load() else { return };
        let Ok(booted) = self.booted() else { return };
        let running = Agent::version_in(&st, booted);
        let facts = Facts {
            device: self.device_id(&st),
            board: &self.board.id,
            booted,
            running: running.as_ref(),
            at: self.now(),
            history: &st.history,
            rollbacks_in_a_row: st.rollbacks_in_a_row,
            max_rollbacks: self.settings.max_rollbacks,
        };
        let mut notices = facts.from_history(told.news(&st.history));
        if let Some(n) = round.and_then(|r| self.available(&facts, &st, r)) {
            if told.announce(
                n.version
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ) {
                notices.push(n);
            }
        }
        if let Some(floor) = self.held_below_floor(&st, running.as_ref()) {
            if told.floor.as_deref() != Some(floor.as_str()) {
                told.floor = Some(floor.to_string());
                notices.push(facts.below_floor(&floor));
            }
        }
        self.keep_told(told);
        for n in notices {
            outbox.send(n);
        }
    }

    /// The update a round found and left for later, if it did.
    fn available(&self, facts: &Facts, st: &PersistedState, r: &RoundRecord) -> Option<Notice> {
        let v = r.release.as_ref()?;
        let next = match (r.result, self.policy(st)) {
            (RoundResult::NeedsOwner, _) => {
                let why = r.outcome.strip_prefix(super::needs_owner("").as_str());
                return Some(facts.for_owner(v, why.unwrap_or(&r.outcome)));
            }
            (RoundResult::Available, _) => {
                "Policy notify: nothing is downloaded; `fwguard update` installs it."
            }
            (RoundResult::Staged, Policy::Auto) => {
                "It is downloaded and verified; the router reboots into it in the maintenance window."
            }
            // Policy approve tells with the approval it waits for.
            (RoundResult::Staged, Policy::Approve) => return None,
            (RoundResult::Staged, _) => {
                "It is downloaded and verified in the inactive slot; `fwguard update` boots it."
            }
            _ => return None,
        };
        Some(facts.available(v, next))
    }

    /// The security floor the running version is held or pinned below, if it is.
    fn held_below_floor(
        &self,
        st: &PersistedState,
        running: Option<&crate::version::Version>,
    ) -> Option<crate::version::Version> {
        if !st.hold && st.pin.is_none() {
            return None;
        }
        let floor = st.last_index.as_ref()?.security_floor.clone()?;
        (running? < &floor).then_some(floor)
    }
}
