//! The state files under `tests/fixtures/state/`: files as earlier versions wrote them, and
//! as a newer version of the same schema would. Every later version must load them (see
//! the rules in `schema.rs`); the ones under `refused/` must be refused by name, unchanged.

use super::*;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state")
}

/// Load `name` the way the agent does: from a state directory holding it as `state.json`.
fn load(
    name: &str,
) -> (
    tempfile::TempDir,
    StateStore,
    Result<PersistedState, StateError>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join(name), dir.path().join("state.json")).unwrap();
    let store = StateStore::new(dir.path());
    let st = store.load();
    (dir, store, st)
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

/// What each fixture must load as (beyond loading at all).
fn expect(name: &str, st: &PersistedState) {
    let idle = |st: &PersistedState| assert_eq!(st.update, UpdateState::Idle, "{name}");
    if name != "idle-adopted.json" && name != "staged-with-parts-and-extents.json" {
        // Records without an origin (written before it existed) read as installed.
        for r in st.slot_a.iter().chain(&st.slot_b) {
            assert_eq!(r.origin, Origin::Installed, "{name}");
        }
    }
    match name {
        "idle-first-format.json" => {
            idle(st);
            assert_eq!(st.known_good, Some(Slot::A));
            // Fields added since take their defaults.
            assert!(!st.pin_insecure && !st.hold && st.policy.is_none() && st.channel.is_none());
            assert_eq!(st.rollbacks_in_a_row, 0);
            assert_eq!(st.device_id.len(), 32, "a device id is made up");
            assert!(st.partial.is_none() && st.bad_sources.is_empty() && st.outcomes.is_empty());
        }
        "staged-download-only.json" => {
            let UpdateState::Staged {
                release,
                target,
                arm_attempts,
            } = &st.update
            else {
                panic!("{name}: {:?}", st.update)
            };
            assert_eq!(
                (release.version.clone(), *target, *arm_attempts),
                (v("1.3"), Slot::B, 1)
            );
            // Written in upper case by hand: read in the case the agent compares in.
            assert_eq!(release.sha256, "b".repeat(64));
            assert_eq!(release.urls.len(), 2);
            assert_eq!(st.policy, Some(crate::config::Policy::DownloadOnly));
            assert_eq!(st.channel.as_deref(), Some("beta"));
            assert_eq!((st.pin.clone(), st.pin_insecure), (Some(v("1.3")), true));
            assert!(st.is_denylisted(&v("1.2.9")));
            let last = st.last_index.as_ref().unwrap();
            assert_eq!(last.security_floor, Some(v("1.3")));
            assert!(last.pulled.contains_key("1.2.8"));
            assert_eq!(st.bad_sources[0].failures, 2);
            assert_eq!(st.history[1].event, HistoryEvent::Pin);
        }
        "staged-awaiting-approval.json" => {
            // Policy approve, as an older fwguard reads it too: download-only.
            assert!(st.approve);
            assert_eq!(st.policy, Some(crate::config::Policy::DownloadOnly));
            let key = ReleaseKey {
                version: v("1.4"),
                sha256: "d".repeat(64),
                layout: String::new(),
            };
            assert_eq!(
                st.awaiting_staged().and_then(|a| a.since),
                Some(1_790_000_100)
            );
            // The approval is of other bytes; 1.5 is denied whatever its bytes.
            assert_eq!(
                st.gate(&key, Some(3600), 1_790_003_700),
                Gate::Approved {
                    detail: "approved automatically at 2026-09-21T15:15:00Z: staged at 2026-09-21T14:15:00Z, and not denied within approve_after".into()
                }
            );
            assert!(matches!(
                st.gate(&key, None, 1_790_003_700),
                Gate::Waiting {
                    other_bytes: Some(_),
                    ..
                }
            ));
            let denied = ReleaseKey {
                version: v("1.5"),
                ..key
            };
            assert_eq!(
                st.gate(&denied, None, 0),
                Gate::Denied { at: 1_790_000_050 }
            );
            assert_eq!(st.history[0].event, HistoryEvent::AwaitingApproval);
        }
        "installing-with-checkpoint.json" => {
            assert!(matches!(
                st.update,
                UpdateState::Installing {
                    target: Slot::B,
                    ..
                }
            ));
            let p = st.partial.as_ref().unwrap();
            assert_eq!((p.written, p.target), (2048, Slot::B));
        }
        "armed.json" => {
            assert!(matches!(
                st.update,
                UpdateState::Armed {
                    target: Slot::B,
                    previous: Slot::A,
                    arm_attempts: 0,
                    ..
                }
            ));
        }
        "trial-with-baseline.json" | "newer-writer.json" => {
            let UpdateState::Trial { boots, slot, .. } = &st.update else {
                panic!("{name}: {:?}", st.update)
            };
            assert_eq!((*boots, *slot), (2, Slot::B));
            assert_eq!(
                st.baseline.as_deref(),
                Some(&["wan".into(), "internet".into()][..])
            );
            assert_eq!(st.outcomes[0].result, "trial-failed");
            let baseline = &st.history[1];
            assert_eq!(baseline.event, HistoryEvent::Baseline);
            assert_eq!(baseline.checks.len(), 2);
            assert!(baseline.checks.iter().all(|c| c.passed));
            if name == "newer-writer.json" {
                let last = st.history.last().unwrap();
                assert_eq!(last.event, HistoryEvent::Other("settings-carried".into()));
            }
        }
        "rolling-back.json" => {
            assert!(matches!(
                st.update,
                UpdateState::RollingBack {
                    from: Slot::B,
                    to: Slot::A,
                    attempts: 0,
                    ..
                }
            ));
            assert!(st.root.is_some() && st.last_index.is_none());
        }
        "idle-after-rollback.json" => {
            idle(st);
            assert_eq!(st.known_good, Some(Slot::B));
            assert!(st.is_denylisted(&v("1.2")));
            assert!(st
                .history
                .iter()
                .any(|h| h.event == HistoryEvent::RolledBack));
        }
        "idle-unidentified-previous.json" => {
            idle(st);
            assert_eq!(st.known_good, Some(Slot::B));
            assert_eq!(st.slot_b.as_ref().unwrap().origin, Origin::Installed);
            let u = st.unidentified_in(Slot::A).expect("slot A unidentified");
            assert_eq!(u.index_version, Some(3));
            assert_eq!(u.boot_image.as_ref().unwrap().size, 2_621_440);
            assert_eq!(st.history[0].event, HistoryEvent::Unidentified);
        }
        "idle-adopted.json" => {
            idle(st);
            let a = st.slot_a.as_ref().unwrap();
            assert_eq!((a.origin, a.good), (Origin::Adopted, true));
            assert!(st.unidentified.is_none());
        }
        "staged-with-parts-and-extents.json" => {
            let UpdateState::Staged { release, .. } = &st.update else {
                panic!("{name}: {:?}", st.update)
            };
            assert_eq!(release.sha256, "cd".repeat(32));
            assert_eq!(
                (release.parts[0].name.as_str(), release.parts[0].size),
                ("root", 4096)
            );
            let a = st.slot_a.as_ref().unwrap();
            assert_eq!(
                (a.origin, a.parts.len(), a.verify.len()),
                (Origin::Adopted, 0, 2)
            );
            let root = a.verify[1].check().expect("a well-formed extent");
            assert_eq!(root.ubi, Some(("rootfs".into(), 131072)));
            assert_eq!((root.offset, root.size), (1048576, 126976));
        }
        other => panic!("fixture {other} has no expectations here: add them"),
    }
}

#[test]
fn every_state_file_an_earlier_or_newer_version_wrote_loads() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let (_dir, store, st) = load(&name);
        let st = st.unwrap_or_else(|e| panic!("{name}: {e}"));
        expect(&name, &st);
        // Written again by this version, it loads as the same state.
        store.save(&st).unwrap();
        assert_eq!(store.load().unwrap(), st, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 12, "fixtures loaded");
}

#[test]
fn what_this_version_writes_an_older_one_of_the_schema_can_read() {
    // An older fwguard (the firmware a rollback returns to) needs these fields of a release
    // in the update state, and the slot records as they were.
    let (_dir, store, st) = load("staged-download-only.json");
    store.save(&st.unwrap()).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.path()).unwrap()).unwrap();
    let release = &written["update"]["release"];
    for key in ["version", "boards", "channels", "urls", "size", "sha256"] {
        assert!(!release[key].is_null(), "release.{key} missing: {release}");
    }
    assert_eq!(written["policy"], "download-only");
    assert_eq!(written["schema"], SCHEMA);
    for key in ["version", "size", "sha256", "good"] {
        assert!(!written["slot_a"][key].is_null(), "slot_a.{key} missing");
    }
}

#[test]
fn a_state_file_this_version_cannot_read_is_refused_by_name_and_left_alone() {
    for (name, says) in [
        (
            "refused/schema-2.json",
            "has schema 2; this fwguard reads schema 1",
        ),
        ("refused/unknown-policy.json", "unknown variant `yolo`"),
        (
            "refused/unknown-state.json",
            "unknown update state \"carrying_settings\"",
        ),
        ("refused/malformed-hash.json", "sha256 \"not-a-hash\""),
    ] {
        let (dir, _store, st) = load(name);
        let e = st.unwrap_err().to_string();
        assert!(e.contains(says) && e.contains("state.json"), "{name}: {e}");
        let before = std::fs::read(fixtures().join(name)).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("state.json")).unwrap(),
            before
        );
    }
}

#[test]
fn an_update_state_reads_in_any_order_and_names_what_it_lacks() {
    let read = |j: &str| serde_json::from_str::<UpdateState>(j).map_err(|e| e.to_string());
    let rolling = r#"{"to": "A", "reason": "checks failed", "from": "B", "version": "1.2", "state": "rolling_back"}"#;
    assert_eq!(
        read(rolling).unwrap(),
        UpdateState::RollingBack {
            version: v("1.2"),
            from: Slot::B,
            to: Slot::A,
            reason: "checks failed".into(),
            attempts: 0,
        }
    );
    let e = read(r#"{"target": "B", "state": "armed", "previous": "A"}"#).unwrap_err();
    assert!(e.contains("update state \"armed\" lacks `release`"), "{e}");
    let e = read(r#"{"target": "C", "state": "idle"}"#).unwrap_err();
    assert!(e.contains("unknown variant `C`"), "{e}");
    assert_eq!(
        read(r#"{"state": "idle", "extra": [1]}"#).unwrap(),
        UpdateState::Idle
    );
    // Written as before: the name first, in `state`.
    let st = UpdateState::RollingBack {
        version: v("1.2"),
        from: Slot::B,
        to: Slot::A,
        reason: "r".into(),
        attempts: 1,
    };
    let text = serde_json::to_string(&st).unwrap();
    assert!(text.starts_with(r#"{"state":"rolling_back","#), "{text}");
    assert_eq!(read(&text).unwrap(), st);
}
