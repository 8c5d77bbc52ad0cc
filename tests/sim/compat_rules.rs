//! A release whose configuration format (`compat_version`) breaks with the running
//! firmware's: the daemon leaves it for the owner (round, status, status --json), the
//! owner's update and pin explain why and change nothing, and `--no-settings` takes a minor
//! break, never a major one.

use super::common;

use common::{release, world, TestWorld};
use fwguard::agent::{Action, RoundResult, UpdateMode};
use fwguard::carry::CompatVersion;
use fwguard::error::EXIT_DISALLOWED;
use fwguard::index::build::IndexDraft;
use fwguard::state::UpdateState;
use fwguard::time::unix_now;

/// Declare the running firmware's format in a file of the world, as `agent.compat_file`.
fn declare(t: &TestWorld, compat: &str) {
    let file = t.cfg.parent().unwrap().join("compat_version");
    std::fs::write(&file, format!("{compat}\n")).unwrap();
    let text = std::fs::read_to_string(&t.cfg).unwrap();
    if !text.contains("compat_file") {
        let line = format!("[agent]\ncompat_file = \"{}\"\n", file.display());
        std::fs::write(&t.cfg, text.replacen("[agent]\n", &line, 1)).unwrap();
    }
}

/// Publish 1.1 (format 1.1, with the vendor's message) and 1.2 (format 2.0).
fn publish(t: &TestWorld) {
    let now = unix_now();
    let mut d = IndexDraft::new(1, now - 60, now + 3600);
    let mut minor = release(t, "1.1");
    minor.compat_version = Some(CompatVersion::parse("1.1").unwrap());
    minor.compat_message = Some("the switch moved to DSA".into());
    let mut major = release(t, "1.2");
    major.compat_version = Some(CompatVersion::parse("2.0").unwrap());
    major.compat_message = Some("flash the factory image".into());
    d.add_release(minor).unwrap();
    d.add_release(major).unwrap();
    t.world
        .write_index(d.to_toml().as_bytes(), &t.world.key)
        .unwrap();
}

#[tokio::test]
async fn a_config_break_waits_for_the_owner_and_no_settings_takes_only_a_minor_one() {
    let t = world("auto").await;
    declare(&t, "1.0");
    publish(&t);
    let before = t.snapshot();

    // The daemon's round installs nothing and says why, in the round and in status.
    let (round, reboot) = t.agent().round().await;
    assert_eq!(round.result, RoundResult::NeedsOwner, "{}", round.outcome);
    assert!(reboot.is_none());
    for words in [
        "available, needs owner action",
        "1.1",
        "DSA",
        "--no-settings",
    ] {
        assert!(
            round.outcome.contains(words),
            "{words:?} in {}",
            round.outcome
        );
    }
    assert_eq!(
        t.snapshot(),
        before,
        "a round that leaves it to the owner writes nothing"
    );
    let status = t.agent().status().unwrap();
    let a = status.available.as_ref().expect("status shows the release");
    assert!(a.needs_owner && a.version.as_str() == "1.1", "{a:?}");
    assert!(
        status.to_string().contains("needs owner action"),
        "{status}"
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["available"]["needs_owner"], true, "{json}");
    assert_eq!(json["available"]["version"], "1.1", "{json}");

    // The owner's update and pin explain the break and change nothing.
    let e = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert_eq!(e.exit_code(), EXIT_DISALLOWED, "{e}");
    assert!(e.to_string().contains("--no-settings"), "{e}");
    let e = t
        .agent()
        .pin("1.1".parse().unwrap(), false)
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), EXIT_DISALLOWED, "{e}");
    // A major break is refused even on defaults, with the vendor's message.
    let e = t
        .agent()
        .on_defaults()
        .pin("1.2".parse().unwrap(), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("flash the factory image"), "{e}");
    assert_eq!(t.snapshot(), before);
    assert_eq!(t.state().pin, None);
    assert_eq!(t.state().update, UpdateState::Idle);

    // On its own defaults the minor break is pinned, recorded as such, and installed.
    let done = t
        .agent()
        .on_defaults()
        .pin("1.1".parse().unwrap(), false)
        .await
        .unwrap();
    assert!(
        matches!(&done, Action::Done(s) if s.contains("own defaults")),
        "{done:?}"
    );
    let st = t.state();
    assert!(st.pin_no_settings);
    assert!(
        st.history
            .iter()
            .any(|h| h.detail.contains("--no-settings")),
        "the pin's history says it is on defaults"
    );
    let staged = t.agent().update(UpdateMode::StageOnly).await.unwrap();
    assert!(
        matches!(&staged, Action::Staged(v) if v.as_str() == "1.1"),
        "{staged:?}"
    );
}

#[tokio::test]
async fn the_same_format_installs_as_before() {
    let t = world("auto").await;
    declare(&t, "1.1");
    publish(&t);
    // 1.1 is of the running firmware's format; 1.2 (2.0) is not offered.
    let staged = t.agent().update(UpdateMode::StageOnly).await.unwrap();
    assert!(
        matches!(&staged, Action::Staged(v) if v.as_str() == "1.1"),
        "{staged:?}"
    );
    // A malformed declaration is named, and nothing is chosen.
    declare(&t, "one.one");
    let e = t.agent().check().await.unwrap_err();
    assert!(
        e.to_string().contains("compat_version") && e.to_string().contains("one.one"),
        "{e}"
    );
}
