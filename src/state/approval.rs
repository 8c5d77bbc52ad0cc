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

/// What identifies a release's bytes: its version, the signed hash of its file, and of
/// the rest of what the index says of its image (the boot range of a container, each part's
/// target, size and hash, the extents it is checked by) a digest. An approval holds only
/// for these exact bytes, written where they were to go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseKey {
    pub version: Version,
    /// Empty in a denial (of the version, whatever its bytes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// SHA-256 (hex) of the boot range, parts and extents as recorded; empty for a release
    /// of one plain image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub layout: String,
}

impl From<&ReleaseRef> for ReleaseKey {
    fn from(r: &ReleaseRef) -> ReleaseKey {
        let layout = if r.boot.is_none() && r.parts.is_empty() && r.verify.is_empty() {
            String::new()
        } else {
            use sha2::Digest;
            let json =
                serde_json::to_vec(&(&r.boot, &r.parts, &r.verify)).expect("the records serialise");
            hex::encode(sha2::Sha256::digest(json))
        };
        ReleaseKey {
            version: r.version.clone(),
            sha256: r.sha256.clone(),
            layout,
        }
    }
}

impl From<&Release> for ReleaseKey {
    fn from(r: &Release) -> ReleaseKey {
        ReleaseKey::from(&ReleaseRef::from(r))
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

/// A release staged by the daemon and waiting for the owner, since `since` (Unix seconds):
/// the first round that found it staged on a clock at or above the trusted time floor
/// (None: none yet; `approve_after` counts from there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awaiting {
    pub key: ReleaseKey,
    #[serde(default)]
    pub since: Option<u64>,
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
            .and_then(|a| a.since);
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
            // An approval is forgotten first: a denial forgotten would let the daemon
            // install what the owner refused.
            let i = self
                .decisions
                .iter()
                .position(|d| d.verdict == Verdict::Approved)
                .unwrap_or(0);
            self.decisions.remove(i);
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
            own_defaults: false,
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
                since: Some(2_000),
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
    fn the_timer_starts_on_the_first_trusted_clock() {
        let mut st = staged('a');
        let key = ReleaseKey::from(&release('a'));
        let untrusted = Note::AwaitingApproval {
            key: key.clone(),
            since: None,
        };
        st.note(untrusted, &facts(5));
        assert_eq!(
            st.gate(&key, Some(100), 9_999_999),
            Gate::Waiting {
                since: None,
                automatic_at: None,
                other_bytes: None
            }
        );
        let trusted = Note::AwaitingApproval {
            key: key.clone(),
            since: Some(3_000),
        };
        st.note(trusted, &facts(3_000));
        assert!(matches!(
            st.gate(&key, Some(100), 3_100),
            Gate::Approved { .. }
        ));
        assert!(matches!(
            st.gate(&key, Some(100), 3_099),
            Gate::Waiting { .. }
        ));
        assert_eq!(st.history.len(), 1, "one entry: the owner is asked once");
    }

    #[test]
    fn the_key_covers_where_the_bytes_go() {
        let plain = release('a');
        let mut boot = plain.clone();
        boot.boot = Some(crate::state::RangeRecord {
            offset: 512,
            size: 4,
            sha256: "c".repeat(64),
            ..Default::default()
        });
        let mut moved = boot.clone();
        moved.boot.as_mut().unwrap().offset = 1024;
        let mut part = plain.clone();
        part.parts = vec![crate::state::RangeRecord {
            name: "root".into(),
            target: "rootfs".into(),
            size: 4,
            sha256: "d".repeat(64),
            ..Default::default()
        }];
        let mut retargeted = part.clone();
        retargeted.parts[0].target = "data".into();
        let keys: Vec<ReleaseKey> = [&plain, &boot, &moved, &part, &retargeted]
            .into_iter()
            .map(ReleaseKey::from)
            .collect();
        assert!(keys[0].layout.is_empty());
        for (i, a) in keys.iter().enumerate() {
            assert_eq!(a.sha256, "a".repeat(64));
            for b in &keys[i + 1..] {
                assert_ne!(a, b, "the same file, laid out otherwise, is other bytes");
            }
        }
        assert_eq!(ReleaseKey::from(&boot.clone()), keys[1]);
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
                since: Some(2_000),
            },
            &facts(2_000),
        );
        assert!(st.awaiting_staged().is_some());
        // Noted again (the timer started already): nothing changes, no second entry.
        st.note(
            Note::AwaitingApproval {
                key: key.clone(),
                since: Some(9_000),
            },
            &facts(9_000),
        );
        assert_eq!(st.awaiting_staged().unwrap().since, Some(2_000));
        assert_eq!(st.history.len(), 1);
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
        // Approvals go before denials.
        let mut st = staged('a');
        let denied: Version = "1.9".parse().unwrap();
        st.note(
            Note::Denied {
                version: denied.clone(),
            },
            &facts(1),
        );
        for i in 0..40 {
            let key = ReleaseKey {
                version: format!("3.{i}").parse().unwrap(),
                sha256: "e".repeat(64),
                layout: String::new(),
            };
            let detail = String::new();
            st.note(Note::Approved { key, detail }, &facts(i));
        }
        assert_eq!(st.decisions.len(), DECISIONS_MAX);
        assert_eq!(st.decision(&denied).unwrap().verdict, Verdict::Denied);
        assert_eq!(st.decisions.last().unwrap().key.version.as_str(), "3.39");
    }
}
