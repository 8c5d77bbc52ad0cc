//! Telling the owner what fwguard did (`[[notify]]`): the events, each as one short
//! message that says what happened and what the owner can do ([`Notice`]), made from the
//! state's history as it grows and from what a round found; delivered by [`send`].
//!
//! Nothing here writes the flash: which history entries were told, and which updates were
//! announced, is kept in the runtime directory (RAM), so after a reboot only what happens
//! from then on is told (and an update still available is announced once more).

pub mod send;

use crate::slot::Slot;
use crate::state::{HistoryEntry, HistoryEvent as H};
use crate::version::Version;
use serde::Serialize;

/// The notification format's version: fields are only added within it.
pub const NOTICE_SCHEMA: u32 = 1;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The index has a newer release than the running one.
    UpdateAvailable,
    /// A new firmware is installed and runs on trial.
    Installed,
    Committed,
    /// The health checks failed (or the owner asked) and the router went back.
    RolledBack,
    /// The new firmware never booted far enough; the bootloader went back.
    GivenUp,
    /// Automatic installs stopped after repeated rollbacks.
    Paused,
    /// An update waits for the owner: an approval, or a held version below the security
    /// floor.
    NeedsOwner,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::UpdateAvailable,
        Kind::Installed,
        Kind::Committed,
        Kind::RolledBack,
        Kind::GivenUp,
        Kind::Paused,
        Kind::NeedsOwner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UpdateAvailable => "update-available",
            Kind::Installed => "installed",
            Kind::Committed => "committed",
            Kind::RolledBack => "rolled-back",
            Kind::GivenUp => "given-up",
            Kind::Paused => "paused",
            Kind::NeedsOwner => "needs-owner",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Something went wrong, or the owner must act.
    pub fn urgent(self) -> bool {
        matches!(
            self,
            Kind::RolledBack | Kind::GivenUp | Kind::Paused | Kind::NeedsOwner
        )
    }
}

/// One notification (JSON for webhooks and commands; docs/status-schema.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub schema: u32,
    pub event: Kind,
    pub device: String,
    pub board: String,
    /// The release it is about.
    pub version: Option<Version>,
    /// The firmware running when it was sent.
    pub running: Option<Version>,
    /// Unix seconds (the device's clock).
    pub at: u64,
    /// One line: `fwguard: 1.2 rolled back`.
    pub title: String,
    /// What happened and what the owner can do.
    pub message: String,
    /// The health checks that failed (a rollback).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
}

/// What the notices of one look at the state are made from.
pub struct Facts<'a> {
    pub device: &'a str,
    pub board: &'a str,
    pub booted: Slot,
    pub running: Option<&'a Version>,
    pub at: u64,
    /// The whole history (a rollback's failing checks are on the entry before the reboot).
    pub history: &'a [HistoryEntry],
    pub rollbacks_in_a_row: u32,
    pub max_rollbacks: u32,
}

impl Facts<'_> {
    fn notice(
        &self,
        event: Kind,
        version: Option<&Version>,
        title: String,
        message: String,
    ) -> Notice {
        Notice {
            schema: NOTICE_SCHEMA,
            event,
            device: self.device.to_string(),
            board: self.board.to_string(),
            version: version.cloned(),
            running: self.running.cloned(),
            at: self.at,
            title: crate::redact::text(&title),
            message: crate::redact::text(&message),
            failing: Vec::new(),
        }
    }

    fn running_text(&self) -> String {
        self.running
            .map(|v| v.to_string())
            .unwrap_or_else(|| "the previous firmware".into())
    }

    /// The notices of history entries `new` (the newest of [`Facts::history`]).
    pub fn from_history(&self, new: &[HistoryEntry]) -> Vec<Notice> {
        let mut out = Vec::new();
        for e in new {
            let Some(v) = e.version.as_ref() else {
                continue;
            };
            let slot = e.slot.map(|s| s.to_string()).unwrap_or_else(|| "?".into());
            let n = match &e.event {
                // A carried trial (boards whose slots share no state) is taken over and
                // started in the same recovery: told once, by its start.
                H::TrialStarted => self.notice(
                    Kind::Installed,
                    Some(v),
                    format!("fwguard: {v} installed, on trial"),
                    format!("{v} is installed in slot {slot} and running on trial: its health checks decide, and if they fail the router goes back to the previous firmware by itself. Nothing to do; `fwguard status` shows how it goes."),
                ),
                // A commit of the other slot learned later (boards whose slots share no
                // state) was told by that slot's fwguard.
                H::Committed if e.slot == Some(self.booted) => self.notice(
                    Kind::Committed,
                    Some(v),
                    format!("fwguard: {v} committed"),
                    format!("{v} passed its health checks and is now the firmware this router boots. The previous firmware stays in the other slot: `fwguard rollback` goes back to it."),
                ),
                H::RolledBack => {
                    let failing = self
                        .history
                        .iter()
                        .rev()
                        .find(|h| h.event == H::Rollback && h.version.as_ref() == Some(v))
                        .map(HistoryEntry::failing)
                        .unwrap_or_default();
                    let why = match failing.is_empty() {
                        true => e.detail.clone(),
                        false => format!("its health checks failed: {}", failing.join(", ")),
                    };
                    let mut n = self.notice(
                        Kind::RolledBack,
                        Some(v),
                        format!("fwguard: {v} rolled back"),
                        format!("The router went back from {v} to {} in slot {slot} ({why}). {v} is not installed again automatically: `fwguard history` says why, `fwguard pin {v}` tries it once more.", self.running_text()),
                    );
                    n.failing = failing;
                    n
                }
                H::TrialFailed => self.notice(
                    Kind::GivenUp,
                    Some(v),
                    format!("fwguard: {v} given up"),
                    format!("{v} did not come up ({}); the router runs {} again. {v} is not installed again automatically: `fwguard pin {v}` tries it once more.", e.detail, self.running_text()),
                ),
                H::AwaitingApproval => self.notice(
                    Kind::NeedsOwner,
                    Some(v),
                    format!("fwguard: {v} waits for your approval"),
                    format!("{v} is downloaded and verified in the inactive slot. `fwguard approve {v}` installs it (inside the reboot window); `fwguard deny {v}` keeps it out."),
                ),
                _ => continue,
            };
            let setback = matches!(n.event, Kind::RolledBack | Kind::GivenUp);
            out.push(n);
            if setback && self.rollbacks_in_a_row >= self.max_rollbacks {
                out.push(self.notice(
                    Kind::Paused,
                    None,
                    "fwguard: automatic updates paused".into(),
                    format!("After {} rollbacks in a row fwguard installs nothing on its own until you act: `fwguard update` installs the newest release, `fwguard pin VERSION` a chosen one, `fwguard unpin` resumes automatic updates.", self.rollbacks_in_a_row),
                ));
            }
        }
        out
    }

    /// A newer release `version` is available, and what the policy does with it.
    pub fn available(&self, version: &Version, next: &str) -> Notice {
        self.notice(
            Kind::UpdateAvailable,
            Some(version),
            format!("fwguard: update {version} available"),
            format!(
                "{version} is available (running {}). {next}",
                self.running_text()
            ),
        )
    }

    /// A newer release `version` that only the owner can install, for `reason`.
    pub fn for_owner(&self, version: &Version, reason: &str) -> Notice {
        self.notice(
            Kind::NeedsOwner,
            Some(version),
            format!("fwguard: {version} needs your decision"),
            format!(
                "{version} is available (running {}), and fwguard does not install it on its own: {reason}",
                self.running_text()
            ),
        )
    }

    /// The running version is held (or pinned) below the vendor's security floor.
    pub fn below_floor(&self, floor: &Version) -> Notice {
        let running = self.running_text();
        self.notice(
            Kind::NeedsOwner,
            self.running,
            format!("fwguard: {running} is below the security floor"),
            format!("The vendor marks versions below {floor} as insecure, and this router stays on {running} because it is held or pinned: `fwguard release` (or `fwguard unpin`) lets it update."),
        )
    }
}

/// What was told already, kept in the runtime directory (RAM) as a few lines of text
/// ([`Told::to_text`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Told {
    /// How many history entries there were, and the last of them (`at event version`), when
    /// the history was last looked at.
    pub seen: usize,
    pub last: Option<String>,
    /// Updates announced (by version).
    pub available: Vec<String>,
    /// The security floor the owner was told the held version is below.
    pub floor: Option<String>,
}

fn mark(e: &HistoryEntry) -> String {
    let v = e.version.as_ref().map(|v| v.as_str()).unwrap_or("-");
    format!("{} {} {v}", e.at, e.event)
}

/// Most updates remembered as announced.
const AVAILABLE_MAX: usize = 8;

impl Told {
    /// Everything in `history` counts as told.
    pub fn at(history: &[HistoryEntry]) -> Told {
        Told {
            seen: history.len(),
            last: history.last().map(mark),
            ..Told::default()
        }
    }

    /// The entries of `history` not told yet; they count as told from now on. When the last
    /// entry told is no longer where it was (the history is kept to its newest entries), it
    /// is looked for; not found, nothing is told rather than everything again.
    pub fn news<'h>(&mut self, history: &'h [HistoryEntry]) -> &'h [HistoryEntry] {
        let from = match &self.last {
            None => 0,
            Some(last) => {
                let at = self.seen.checked_sub(1).and_then(|i| history.get(i));
                if at.is_some_and(|e| &mark(e) == last) {
                    self.seen
                } else {
                    history
                        .iter()
                        .rposition(|e| &mark(e) == last)
                        .map_or(history.len(), |i| i + 1)
                }
            }
        };
        *self = Told {
            seen: history.len(),
            last: history.last().map(mark),
            ..std::mem::take(self)
        };
        &history[from.min(history.len())..]
    }

    /// `seen N`, then `last ...`, `floor ...` and `available ...` lines.
    pub fn to_text(&self) -> String {
        let mut t = format!("seen {}\n", self.seen);
        for (k, v) in [("last", &self.last), ("floor", &self.floor)] {
            if let Some(v) = v {
                t.push_str(&format!("{k} {v}\n"));
            }
        }
        for a in &self.available {
            t.push_str(&format!("available {a}\n"));
        }
        t
    }

    /// What [`Told::to_text`] wrote (None: something else).
    pub fn from_text(text: &str) -> Option<Told> {
        let mut told = Told::default();
        let mut seen = None;
        for line in text.lines() {
            let (k, v) = line.split_once(' ')?;
            match k {
                "seen" => seen = Some(v.parse().ok()?),
                "last" => told.last = Some(v.into()),
                "floor" => told.floor = Some(v.into()),
                "available" => told.available.push(v.into()),
                _ => return None,
            }
        }
        told.seen = seen?;
        Some(told)
    }

    /// Whether the update `key` is news (and from now on, told).
    pub fn announce(&mut self, key: String) -> bool {
        if self.available.contains(&key) {
            return false;
        }
        self.available.push(key);
        if self.available.len() > AVAILABLE_MAX {
            self.available.remove(0);
        }
        true
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
