//! The owner's word on releases (policy `approve`): a release staged and waiting since a
//! time, approvals bound to the exact signed hashes of a release, and denials by version.
//! The gate the daemon passes before it boots a staged release is [`PersistedState::gate`].

use super::schema::ReleaseRef;
use super::PersistedState;
use crate::index::Release;
use crate::version::Version;
use serde::{Deserialize, Serialize};

/// Most decisions kept (the oldest are forgotten first).
const DECISIONS_MAX: usize = 16;

/// What identifies a release's bytes: its version and the signed hashes of its file and of
/// each of its parts. An approval holds only for these exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseKey {
    pub version: Version,
    /// Empty in a denial (of the version, whatever its bytes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
}

impl From<&ReleaseRef> for ReleaseKey {
    fn from(r: &ReleaseRef) -> ReleaseKey {
        ReleaseKey {
            version: r.version.clone(),
            sha256: r.sha256.clone(),
            parts: r.parts.iter().map(|p| p.sha256.clone()).collect(),
        }
    }
}

impl From<&Release> for ReleaseKey {
    fn from(r: &Release) -> ReleaseKey {
        ReleaseKey {
            version: r.version.clone(),
            sha256: hex::encode(r.sha256),
            parts: r.parts.iter().map(|p| hex::encode(p.sha256)).collect(),
        }
    }
}

/// The owner approved or denied a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Approved,
    Denied,
}

/// One decision of the owner. An approval is of `key`'s exact bytes; a denial is of the
/// version, whatever bytes an index lists for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub key: ReleaseKey,
    /// Unix seconds.
    pub at: u64,
}

/// A release staged by the daemon and waiting for the owner, since `since` (Unix seconds,
/// never below the trusted time floor of the moment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awaiting {
    pub key: ReleaseKey,
    pub since: u64,
}

/// Whether the daemon may boot a release (policy `approve`; a denial holds under any policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The owner denied this version: never automatically.
    Denied { at: u64 },
    /// The owner approved these bytes, or `approve_after` has passed since they were staged.
    Approved { detail: String },
    /// Waiting for the owner: since when it was staged (None: not staged yet), when it is
    /// approved by itself (None: never), and an approval of other bytes of the same version.
    Waiting {
        since: Option<u64>,
        automatic_at: Option<u64>,
        other_bytes: Option<String>,
    },
}

impl PersistedState {
    /// The owner's decision on `version`, if any.
    pub fn decision(&self, version: &Version) -> Option<&Decision> {
        self.decisions
            .iter()
            .rev()
            .find(|d| &d.key.version == version)
    }

    /// The release waiting for the owner: only while it is the staged one.
    pub fn awaiting_staged(&self) -> Option<&Awaiting> {
        match (&self.awaiting, &self.update) {
            (Some(a), super::UpdateState::Staged { release, .. })
                if a.key == ReleaseKey::from(release) =>
            {
                Some(a)
            }
            _ => None,
        }
    }

    /// The gate for the release `key` at `now` (Unix seconds), with `approve_after` in
    /// seconds (None: only the owner approves). The timer counts only on a clock at or above
    /// the trusted time floor.
    pub fn gate(&self, key: &ReleaseKey, approve_after: Option<u64>, now: u64) -> Gate {
        let mut other_bytes = None;
        match self.decision(&key.version) {
            Some(d) if d.verdict == Verdict::Denied => return Gate::Denied { at: d.at },
            Some(d) if d.key == *key => {
                return Gate::Approved {
                    detail: format!(
                        "approved by the owner at {}",
                        crate::time::format_time(d.at)
                    ),
                }
            }
            Some(d) => other_bytes = Some(d.key.sha256.clone()),
            None => {}
        }
        let since = self
            .awaiting_staged()
            .filter(|a| a.key == *key)
            .map(|a| a.since);
        let automatic_at = since.zip(approve_after).map(|(s, a)| s.saturating_add(a));
        match automatic_at {
            Some(at) if now >= self.time_floor && now >= at => Gate::Approved {
                detail: format!(
                    "approved automatically at {}: staged at {}, and not denied within approve_after",
                    crate::time::format_time(at),
                    crate::time::format_time(since.unwrap_or(at)),
                ),
            },
            _ => Gate::Waiting {
                since,
                automatic_at,
                other_bytes,
            },
        }
    }

    /// Record the owner's decision (one per version: the newest replaces the older).
    pub(super) fn decide(&mut self, d: Decision) {
        self.decisions.retain(|o| o.key.version != d.key.version);
        self.decisions.push(d);
        if self.decisions.len() > DECISIONS_MAX {
            self.decisions.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::Slot;
    use crate::state::{Facts, Note, UpdateState};

    fn release(sha: char) -> ReleaseRef {
        ReleaseRef {
            version: "1.2".parse().unwrap(),
            boards: vec!["b".into()],
            channels: vec!["stable".into()],
            urls: vec!["u".into()],
            size: 10,
            sha256: sha.to_string().repeat(64),
            boot: None,
            parts: Vec::new(),
            verify: Vec::new(),
        }
    }

    fn staged(sha: char) -> PersistedState {
        PersistedState {
            update: UpdateState::Staged {
                release: release(sha),
                target: Slot::B,
                arm_attempts: 0,
            },
            time_floor: 1_000,
            ..PersistedState::default()
        }
    }

    fn facts(at: u64) -> Facts {
        Facts { at, reporter: None }
    }

    #[test]
    fn waits_then_the_timer_or_the_owner_approves_exact_bytes() {
        let mut st = staged('a');
        let key = ReleaseKey::from(&release('a'));
        let waiting = |since, automatic_at| Gate::Waiting {
            since,
            automatic_at,
            other_bytes: None,
        };
        assert_eq!(st.gate(&key, Some(100), 2_000), waiting(None, None));
        st.note(
            Note::AwaitingApproval {
                key: key.clone(),
                since: 2_000,
            },
            &facts(2_000),
        );
        assert_eq!(st.gate(&key, None, 9_999), waiting(Some(2_000), None));
        assert_eq!(
            st.gate(&key, Some(100), 2_099),
            waiting(Some(2_000), Some(2_100))
        );
        assert!(matches!(
            st.gate(&key, Some(100), 2_100),
            Gate::Approved { .. }
        ));
        // A clock behind the trusted time never lets the timer pass.
        st.time_floor = 5_000;
        assert!(matches!(
            st.gate(&key, Some(100), 4_999),
            Gate::Waiting { .. }
        ));
        // Other bytes under the same version are not what was staged or approved.
        st.note(
            Note::Approved {
                key: key.clone(),
                detail: String::new(),
            },
            &facts(3_000),
        );
        assert!(matches!(st.gate(&key, None, 0), Gate::Approved { .. }));
        let other = ReleaseKey::from(&release('b'));
        assert_eq!(
            st.gate(&other, Some(1), 9_999_999),
            Gate::Waiting {
                since: None,
                automatic_at: None,
                other_bytes: Some("a".repeat(64)),
            }
        );
        // A denial is of the version, whatever its bytes; an approval undoes it.
        st.note(
            Note::Denied {
                version: key.version.clone(),
            },
            &facts(4_000),
        );
        assert_eq!(
            st.gate(&key, Some(1), 9_999_999),
            Gate::Denied { at: 4_000 }
        );
        assert_eq!(st.gate(&other, None, 0), Gate::Denied { at: 4_000 });
        assert_eq!(st.decisions.len(), 1);
        st.note(
            Note::Approved {
                key: key.clone(),
                detail: String::new(),
            },
            &facts(5_000),
        );
        assert!(matches!(st.gate(&key, None, 0), Gate::Approved { .. }));
        let events: Vec<_> = st.history.iter().map(|h| h.event.to_string()).collect();
        assert_eq!(
            events,
            ["awaiting-approval", "approve", "deny", "approve"],
            "{:?}",
            st.history
        );
    }

    #[test]
    fn policy_approve_is_written_as_download_only_for_older_readers() {
        use crate::config::Policy;
        let mut st = PersistedState::default();
        st.note(
            Note::PolicySet {
                policy: Policy::Approve,
            },
            &facts(1),
        );
        let json: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert_eq!(
            (&json["policy"], &json["approve"]),
            (
                &serde_json::json!("download-only"),
                &serde_json::json!(true)
            )
        );
        st.note(
            Note::PolicySet {
                policy: Policy::Auto,
            },
            &facts(2),
        );
        let json: serde_json::Value = serde_json::to_value(&st).unwrap();
        assert_eq!(json["policy"], "auto");
        assert!(json.get("approve").is_none(), "{json}");
    }

    #[test]
    fn the_waiting_record_holds_only_for_the_staged_release() {
        let mut st = staged('a');
        let key = ReleaseKey::from(&release('a'));
        st.note(
            Note::AwaitingApproval {
                key: key.clone(),
                since: 2_000,
            },
            &facts(2_000),
        );
        assert!(st.awaiting_staged().is_some());
        st.update = UpdateState::Idle;
        assert!(st.awaiting_staged().is_none());
        assert_eq!(
            st.gate(&key, Some(1), 9_999),
            Gate::Waiting {
                since: None,
                automatic_at: None,
                other_bytes: None
            }
        );
        // Kept to DECISIONS_MAX, newest last.
        for i in 0..20 {
            st.note(
                Note::Denied {
                    version: format!("2.{i}").parse().unwrap(),
                },
                &facts(i),
            );
        }
        assert_eq!(st.decisions.len(), DECISIONS_MAX);
        assert_eq!(st.decisions.last().unwrap().key.version.as_str(), "2.19");
    }
}
