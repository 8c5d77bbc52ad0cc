//! The history: what happened and why, one typed entry per change. Kept in the state file
//! (the last [`HISTORY_MAX`] entries) and shown by `fwguard history`. The events are written
//! as their kebab-case names; a name this build does not know (written by a newer fwguard)
//! is kept as it was.

use super::schema::CheckRecord;
use crate::slot::Slot;
use crate::version::Version;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const HISTORY_MAX: usize = 200;

macro_rules! history_events {
    ($($variant:ident => $name:literal,)*) => {
        /// What a history entry records.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum HistoryEvent {
            $($variant,)*
            /// An event of another fwguard version, kept as written.
            Other(String),
        }

        impl HistoryEvent {
            pub fn as_str(&self) -> &str {
                match self {
                    $(HistoryEvent::$variant => $name,)*
                    HistoryEvent::Other(s) => s,
                }
            }
        }

        impl From<String> for HistoryEvent {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($name => HistoryEvent::$variant,)*
                    _ => HistoryEvent::Other(s),
                }
            }
        }
    };
}

history_events! {
    Adopted => "adopted",
    Unidentified => "unidentified",
    Baseline => "baseline",
    Install => "install",
    InstallInterrupted => "install-interrupted",
    InstallFailed => "install-failed",
    Verified => "verified",
    Armed => "armed",
    ArmFailed => "arm-failed",
    ArmInterrupted => "arm-interrupted",
    TrialStarted => "trial-started",
    TrialCarried => "trial-carried",
    TrialReboot => "trial-reboot",
    Committed => "committed",
    TrialFailed => "trial-failed",
    Rollback => "rollback",
    RolledBack => "rolled-back",
    RollbackFailed => "rollback-failed",
    RootRotated => "root-rotated",
    TimeFloorReset => "time-floor-reset",
    Halt => "halt",
    Pin => "pin",
    Unpin => "unpin",
    Hold => "hold",
    Policy => "policy",
    Channel => "channel",
    ArchiveInstall => "archive-install",
    AwaitingApproval => "awaiting-approval",
    Approve => "approve",
    Deny => "deny",
}

impl From<HistoryEvent> for String {
    fn from(e: HistoryEvent) -> String {
        e.as_str().to_string()
    }
}

impl fmt::Display for HistoryEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for HistoryEvent {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for HistoryEvent {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix seconds (the device clock; may be wrong before NTP).
    pub at: u64,
    pub event: HistoryEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
}

impl HistoryEntry {
    /// An entry at `at`; its detail loses any credentials or query strings of URLs in it
    /// (the history leaves the device in support bundles and reports).
    pub fn new(
        at: u64,
        event: HistoryEvent,
        version: Option<&Version>,
        slot: Option<Slot>,
        detail: impl Into<String>,
    ) -> HistoryEntry {
        HistoryEntry {
            at,
            event,
            version: version.cloned(),
            slot,
            detail: crate::redact::text(&detail.into()),
            checks: Vec::new(),
        }
    }

    pub fn with_checks(mut self, checks: Vec<CheckRecord>) -> HistoryEntry {
        self.checks = checks;
        self
    }

    /// The names of the checks that failed.
    pub fn failing(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_names_and_unknown_ones_survive() {
        let json = r#"{"at":1,"event":"trial-failed","detail":"x"}"#;
        let e: HistoryEntry = serde_json::from_str(json).unwrap();
        assert_eq!(e.event, HistoryEvent::TrialFailed);
        assert!(e.event == "trial-failed");
        assert_eq!(serde_json::to_string(&e).unwrap(), json);
        let newer = r#"{"at":1,"event":"settings-carried","detail":"x"}"#;
        let e: HistoryEntry = serde_json::from_str(newer).unwrap();
        assert_eq!(e.event, HistoryEvent::Other("settings-carried".into()));
        assert_eq!(serde_json::to_string(&e).unwrap(), newer);
    }
}
