//! Policy approve: the daemon stages an update and waits for the owner; `fwguard approve`
//! (of the exact bytes) or `approve_after` (with a controllable clock) lets it boot, inside
//! the reboot window; `fwguard deny` keeps the daemon away from a version under any policy,
//! but not the owner's own `fwguard update`.

use super::common;

use common::{history_has, run_daemon_for, world, FAST_TRIAL};
use fwguard::agent::{Action, DaemonExit, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::state::{PersistedState, UpdateState};
use fwguard::Slot;
use std::sync::Arc;

fn staged(s: &PersistedState) -> bool {
    matches!(s.update, UpdateState::Staged { .. })
}

fn state_bytes(t: &common::TestWorld) -> Vec<u8> {
    std::fs::read(t.settings().state_dir.join("state.json")).unwrap()
}

const REBOOT: &str = "trial boot of 1.1 in slot B";

#[tokio::test]
async fn a_staged_update_waits_for_the_owner_and_boots_once_approved() {
    let mut t = world("approve").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert_eq!(
        t.run_daemon_past(t.agent(), staged).await,
        DaemonExit::Stopped
    );
    let st = t.state();
    let waiting = st.awaiting.as_ref().expect("waiting for the owner");
    assert_eq!(waiting.key.version.as_str(), "1.1");
    assert!(history_has(&st, "awaiting-approval", "1.1"));
    assert!(!t.world.router.reboot_requested());
    let status = t.agent().status().unwrap();
    let s = status.staged.as_ref().unwrap();
    assert_eq!((s.gate, s.automatic_at), ("waiting", None));
    assert!(
        s.text.contains("`fwguard approve 1.1` boots it")
            && s.text.contains("never approved automatically"),
        "{}",
        s.text
    );
    assert!(status
        .to_string()
        .contains("staged:       1.1 is staged since"));
    let round = t.agent().last_round().unwrap();
    assert!(round.outcome.contains("waits for the owner"), "{round:?}");

    // Rounds that find it still waiting write nothing.
    let before = state_bytes(&t);
    assert_eq!(
        t.run_daemon_past(t.agent(), |_| true).await,
        DaemonExit::Stopped
    );
    assert_eq!(state_bytes(&t), before);

    // The owner approves: the next round boots it on trial, and it commits.
    let a = t.agent().approve("1.1".parse().unwrap()).await.unwrap();
    assert!(
        matches!(&a, Action::Done(m) if m.starts_with("approved 1.1; the daemon boots it")),
        "{a:?}"
    );
    let d = &t.state().decisions[0];
    assert_eq!(d.key.sha256, waiting.key.sha256);
    assert_eq!(
        run_daemon_for(t.agent(), 20_000).await,
        DaemonExit::Reboot(REBOOT.into())
    );
    assert_eq!(t.power_cycle().await.version.as_str(), "1.1");
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    assert_eq!(t.state().known_good, Some(Slot::B));
}

#[tokio::test]
async fn approve_after_lets_the_timer_approve_inside_the_reboot_window() {
    let mut t = world("approve").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let now = fwguard::time::unix_now();
    // A daily reboot window from 3 h to 4 h from now (UTC).
    let hm = |secs: u64| format!("{:02}:{:02}", secs % 86_400 / 3600, secs % 3600 / 60);
    let extra = format!(
        "policy = \"approve\"\napprove_after = \"3h30m\"\ntimezone = \"UTC\"\n\n[[reboot_window]]\nfrom = \"{}\"\nto = \"{}\"\n",
        hm(now + 3 * 3600),
        hm(now + 4 * 3600)
    );
    t.world.write_config(&extra, FAST_TRIAL).unwrap();
    let at = |unix: u64| t.agent().with_clock(Arc::new(move || unix));

    // Staged on a clock ten days behind the signed time (no RTC, before NTP): the owner is
    // asked, and the timer waits for a trusted clock.
    let behind = now - 10 * 86_400;
    assert_eq!(
        t.run_daemon_past(at(behind), staged).await,
        DaemonExit::Stopped
    );
    assert_eq!(t.state().awaiting.unwrap().since, None);
    let s = at(behind).status().unwrap().staged.unwrap();
    assert!(
        s.text
            .contains("counts from the first round with a trusted clock"),
        "{}",
        s.text
    );
    assert_eq!(
        t.run_daemon_past(at(now), |_| true).await,
        DaemonExit::Stopped
    );
    let since = t
        .state()
        .awaiting
        .unwrap()
        .since
        .expect("the clock is trusted");
    assert_eq!(since, now);
    let s = t.agent().status().unwrap().staged.unwrap();
    assert_eq!((s.gate, s.automatic_at), ("waiting", Some(since + 12_600)));
    // Inside the reboot window, but before approve_after has passed: still waiting.
    assert_eq!(
        t.run_daemon_past(at(now + 3 * 3600 + 300), |_| true).await,
        DaemonExit::Stopped
    );
    assert!(staged(&t.state()) && !t.world.router.reboot_requested());
    // Past approve_after, but outside the reboot window: approved, and the reboot waits.
    let approved = now + 4 * 3600 + 600;
    assert_eq!(
        t.run_daemon_past(at(approved), |_| true).await,
        DaemonExit::Stopped
    );
    assert!(staged(&t.state()) && !t.world.router.reboot_requested());
    let s = at(approved).status().unwrap().staged.unwrap();
    assert_eq!(s.gate, "approved");
    assert!(s.text.contains("waits for the reboot window"), "{}", s.text);
    // A clock behind the trusted time never lets the timer pass.
    let behind = at(approved).with_clock(Arc::new(move || since - 10));
    assert_eq!(behind.status().unwrap().staged.unwrap().gate, "waiting");
    // Inside the window, approved: it boots.
    assert_eq!(
        run_daemon_for(at(now + 3 * 3600 + 2400), 20_000).await,
        DaemonExit::Reboot(REBOOT.into())
    );
    assert_eq!(t.power_cycle().await.version.as_str(), "1.1");
}

#[tokio::test]
async fn deny_keeps_the_daemon_away_but_not_the_owners_update() {
    let mut t = world("auto").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let a = t.agent().deny("1.1".parse().unwrap()).unwrap();
    assert!(matches!(a, Action::Done(_)), "{a:?}");
    let slot_b = std::fs::read(t.world.router.slot_path(Slot::B)).unwrap();
    assert_eq!(
        t.run_daemon_past(t.agent(), |_| true).await,
        DaemonExit::Stopped
    );
    let round = t.agent().last_round().unwrap();
    assert!(
        round.outcome.contains("1.1 was denied by the owner"),
        "{round:?}"
    );
    // Nothing downloaded, nothing written.
    let server = t.world.server.as_ref().unwrap();
    assert!(server.ranges("/images/fw-1.1.img").is_empty());
    assert_eq!(
        std::fs::read(t.world.router.slot_path(Slot::B)).unwrap(),
        slot_b
    );
    let status = t.agent().status().unwrap();
    assert!(
        status.to_string().contains("denied:       1.1 since"),
        "{status}"
    );
    // Denied again: nothing to do.
    assert!(matches!(
        t.agent().deny("1.1".parse().unwrap()).unwrap(),
        Action::UpToDate(_)
    ));
    // The owner's own update installs it.
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot(REBOOT.into()));
}

#[tokio::test]
async fn other_bytes_under_an_approved_version_need_a_new_approval() {
    let mut t = world("approve").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    // Approved before it is staged: bound to the bytes the signed index lists now.
    let a = t.agent().approve("1.1".parse().unwrap()).await.unwrap();
    assert!(matches!(a, Action::Done(_)), "{a:?}");
    let first = t.state().decisions[0].key.sha256.clone();
    // The vendor re-signs the index with other bytes for 1.1.
    t.world
        .add_image(
            "1.1",
            Behaviour {
                wan_up: false,
                ..Behaviour::GOOD
            },
        )
        .unwrap();
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert_eq!(
        t.run_daemon_past(t.agent(), staged).await,
        DaemonExit::Stopped
    );
    assert!(!t.world.router.reboot_requested());
    let st = t.state();
    let UpdateState::Staged { release, .. } = &st.update else {
        panic!("{:?}", st.update)
    };
    assert_ne!(release.sha256, first);
    let s = t.agent().status().unwrap().staged.unwrap();
    assert_eq!(s.gate, "waiting");
    assert!(s.text.contains("needs a new approval"), "{}", s.text);
    // Approving again binds the new bytes, and the daemon boots them.
    t.agent().approve("1.1".parse().unwrap()).await.unwrap();
    assert_eq!(t.state().decisions[0].key.sha256, release.sha256);
    assert_eq!(
        run_daemon_for(t.agent(), 20_000).await,
        DaemonExit::Reboot(REBOOT.into())
    );
}

#[tokio::test]
async fn approve_refuses_what_it_cannot_bind_and_changes_nothing() {
    let mut t = world("approve").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().check().await.unwrap();
    let before = state_bytes(&t);
    for (v, want) in [
        ("9.9", "the signed index lists no 9.9 for board sim"),
        ("1.0", "1.0 is running already"),
    ] {
        let e = t.agent().approve(v.parse().unwrap()).await.unwrap_err();
        assert!(e.to_string().contains(want), "{v}: {e}");
    }
    assert_eq!(state_bytes(&t), before);
}

#[tokio::test]
async fn the_owner_sets_approve_and_leaves_it() {
    use fwguard::config::Policy;
    let t = world("auto").await;
    let a = t.agent();
    assert!(matches!(
        a.set_policy(Policy::Approve).unwrap(),
        Action::Done(_)
    ));
    let before = state_bytes(&t);
    assert_eq!(
        a.set_policy(Policy::Approve).unwrap(),
        Action::UpToDate("policy is already approve".into())
    );
    assert_eq!(state_bytes(&t), before, "nothing to do, nothing written");
    assert_eq!(a.status().unwrap().policy, Policy::Approve);
    // Kept as download-only plus a flag; the owner can still choose download-only itself.
    assert!(matches!(
        a.set_policy(Policy::DownloadOnly).unwrap(),
        Action::Done(_)
    ));
    let st = t.state();
    assert_eq!((st.policy, st.approve), (Some(Policy::DownloadOnly), false));
    assert_eq!(a.status().unwrap().policy, Policy::DownloadOnly);
}
