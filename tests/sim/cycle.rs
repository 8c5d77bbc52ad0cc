//! The whole cycle on a sim router: update, trial boot, health checks, commit or rollback,
//! and the bootloader's boot counter for a firmware that never boots.

use super::common;

use common::{history_has, world, PANICS};
use fwguard::agent::{Action, DaemonExit, UpdateMode};
use fwguard::state::UpdateState;
use fwguard::Slot;

#[tokio::test]
async fn good_update_commits() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let action = t.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(action, Action::Reboot("trial boot of 1.1 in slot B".into()));
    assert!(t.world.router.reboot_requested());
    let boot = t.agent().board.bootloader.read_state().unwrap();
    assert_eq!(
        (boot.primary, boot.trial, boot.bootcount),
        (Slot::B, true, 0)
    );

    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "1.1"));
    assert_eq!(t.settle().await, DaemonExit::Stopped);

    let st = t.state();
    assert_eq!(st.update, UpdateState::Idle);
    assert_eq!(st.known_good, Some(Slot::B));
    assert!(st.slot_b.as_ref().unwrap().good);
    let committed = st.history.iter().find(|h| h.event == "committed").unwrap();
    assert!(committed.checks.len() == 2 && committed.checks.iter().all(|c| c.passed));
    let boot = t.agent().board.bootloader.read_state().unwrap();
    assert_eq!(
        (boot.primary, boot.trial, boot.bootcount),
        (Slot::B, false, 0)
    );
    // The committed slot keeps booting, with no counting.
    let r = t.power_cycle().await;
    assert_eq!(r.slot, Slot::B);
    assert_eq!(
        t.agent().board.bootloader.read_state().unwrap().bootcount,
        0
    );
}

#[tokio::test]
async fn unhealthy_update_rolls_back_by_itself_and_is_denylisted() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.2"]).unwrap();
    let (r, exit) = t.update_and_judge().await;
    assert_eq!((r.slot, r.wan_up), (Slot::B, false));
    assert_eq!(
        exit,
        DaemonExit::Reboot("rollback from 1.2 to slot A".into())
    );
    let boot = t.agent().board.bootloader.read_state().unwrap();
    assert_eq!((boot.primary, boot.trial), (Slot::A, false));

    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "1.0"));
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    let st = t.state();
    assert_eq!(st.update, UpdateState::Idle);
    assert_eq!(st.known_good, Some(Slot::A));
    let deny = st
        .denylist
        .iter()
        .find(|d| d.version.as_str() == "1.2")
        .expect("1.2 denylisted");
    assert!(deny.reason.contains("internet"), "{}", deny.reason);
    let rb = st.history.iter().find(|h| h.event == "rollback").unwrap();
    assert!(rb.checks.iter().any(|c| c.name == "internet" && !c.passed));
    assert!(history_has(&st, "rolled-back", "1.2"));

    // Never installed automatically again.
    let before = t.snapshot();
    let again = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(again, Action::UpToDate(_)), "{again:?}");
    assert_eq!(before, t.snapshot());
}

#[tokio::test]
async fn a_second_update_is_refused_while_a_trial_runs() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().update(UpdateMode::Install).await.unwrap();
    t.power_cycle().await;
    assert_eq!(
        t.agent().reconcile().unwrap(),
        fwguard::agent::Situation::Trial
    );
    t.world
        .add_image("1.3", fwguard::sim::Behaviour::GOOD)
        .unwrap();
    t.world.publish(&["1.0", "1.1", "1.3"]).unwrap();
    let before = t.snapshot();
    let err = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert_eq!(err.exit_code(), fwguard::error::EXIT_DISALLOWED);
    assert_eq!(
        err.to_string(),
        "cannot begin an install while the update state is trial"
    );
    assert_eq!(before, t.snapshot());
}

#[tokio::test]
async fn a_firmware_that_never_boots_is_abandoned_by_the_boot_counter() {
    let mut t = world("off").await;
    t.world.add_image("1.3", PANICS).unwrap();
    t.world.publish(&["1.0", "1.3"]).unwrap();
    t.agent().update(UpdateMode::Install).await.unwrap();
    let r = t.power_cycle().await;
    // bootlimit 3: three panicking tries, then the fourth boot gives slot B up.
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "1.0"));
    assert_eq!(
        r.log.iter().filter(|l| l.contains("panic")).count(),
        3,
        "{:#?}",
        r.log
    );
    assert!(r.log.iter().any(|l| l.contains("ROLLBACK from B")));
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    let st = t.state();
    assert_eq!(st.update, UpdateState::Idle);
    assert_eq!(st.known_good, Some(Slot::A));
    let deny = st
        .denylist
        .iter()
        .find(|d| d.version.as_str() == "1.3")
        .unwrap();
    assert!(
        deny.reason.contains("never reached userspace"),
        "{}",
        deny.reason
    );
}

#[tokio::test]
async fn the_daemon_installs_on_its_own_under_policy_auto() {
    let mut t = world("auto").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert_eq!(
        t.settle().await,
        DaemonExit::Reboot("trial boot of 1.1 in slot B".into())
    );
    t.power_cycle().await;
    // After committing, the daemon checks again, finds nothing and stays up.
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    assert_eq!(t.state().known_good, Some(Slot::B));
}

#[tokio::test]
async fn download_only_stages_and_waits_for_the_owner() {
    let mut t = world("download-only").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let env_before = t.snapshot()[2].clone();
    let staged =
        |s: &fwguard::state::PersistedState| matches!(s.update, UpdateState::Staged { .. });
    assert_eq!(t.settle_until(staged).await, DaemonExit::Stopped);
    let st = t.state();
    assert!(
        matches!(
            st.update,
            UpdateState::Staged {
                target: Slot::B,
                ..
            }
        ),
        "{:?}",
        st.update
    );
    assert_eq!(
        t.snapshot()[2],
        env_before,
        "staging never touches the bootloader env"
    );
    // The owner's `update` boots the staged image: re-verified in place, not downloaded again.
    std::fs::remove_file(t.world.www.join("images/fw-1.1.img")).unwrap();
    let action = t.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(action, Action::Reboot("trial boot of 1.1 in slot B".into()));
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "1.1"));
}

#[tokio::test]
async fn nothing_is_written_when_there_is_nothing_to_do() {
    let mut t = world("auto").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.update_and_judge().await;
    let state_file = t.settings().state_dir.join("state.json");
    let snap = |t: &common::TestWorld| (t.snapshot(), std::fs::read(&state_file).unwrap());
    // A healthy committed boot, a daemon round and repeated checks: no byte changes anywhere.
    t.power_cycle().await;
    let before = snap(&t);
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    for _ in 0..3 {
        let r = t.agent().check().await.unwrap();
        assert!(matches!(
            r.choice,
            fwguard::index::select::Choice::UpToDate { .. }
        ));
        assert!(matches!(
            t.agent().update(UpdateMode::Install).await.unwrap(),
            Action::UpToDate(_)
        ));
    }
    t.agent().status().unwrap();
    assert!(before == snap(&t), "something was written on a no-op");
    // A newer index with nothing new for this board is recorded (rollback protection), and
    // only the state file changes.
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().check().await.unwrap();
    let after = snap(&t);
    assert_eq!(after.0, before.0);
    assert_ne!(after.1, before.1);
}
