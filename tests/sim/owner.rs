//! The owner's controls: pin (downgrade included), unpin, rollback without a network,
//! mark-good.

use super::common;

use common::{history_has, world, WAN_DOWN};
use fwguard::agent::{Action, DaemonExit, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::state::UpdateState;
use fwguard::Slot;

#[tokio::test]
async fn pin_installs_exactly_that_version_including_a_downgrade_and_unpin_follows_the_channel() {
    let mut t = world("off").await;
    t.world.add_image("1.2", Behaviour::GOOD).unwrap();
    t.world.publish(&["1.0", "1.1", "1.2"]).unwrap();
    // Following the channel: the newest, 1.2.
    let (r, exit) = t.update_and_judge().await;
    assert_eq!((r.version.as_str(), exit), ("1.2", DaemonExit::Stopped));

    // Pin 1.1: a downgrade, installed into slot A (1.0 there is not the known-good slot).
    let done = t.agent().pin("1.1".parse().unwrap(), false).await.unwrap();
    assert_eq!(
        done,
        Action::Done("pinned 1.1; `fwguard update` (or the daemon) installs it".into())
    );
    let (r, exit) = t.update_and_judge().await;
    assert_eq!(
        (r.slot, r.version.as_str(), exit),
        (Slot::A, "1.1", DaemonExit::Stopped)
    );
    assert_eq!(t.state().known_good, Some(Slot::A));
    // Held there: nothing newer is installed while pinned.
    let again = t.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(
        again,
        Action::UpToDate("running the pinned version 1.1".into())
    );

    // Unpin: back to the channel's newest.
    assert!(matches!(t.agent().unpin().unwrap(), Action::Done(_)));
    let (r, _) = t.update_and_judge().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "1.2"));
    assert_eq!(t.state().pin, None);
}

#[tokio::test]
async fn pin_of_a_version_the_index_does_not_list_changes_nothing() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let state_file = t.settings().state_dir.join("state.json");
    t.agent().check().await.unwrap();
    let before = std::fs::read(&state_file).unwrap();
    let err = t
        .agent()
        .pin("9.9".parse().unwrap(), false)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("pinned version 9.9 is not in the index for board sim"),
        "{err}"
    );
    assert_eq!(std::fs::read(&state_file).unwrap(), before);
}

#[tokio::test]
async fn pinning_a_rolled_back_release_retries_it_once() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.2"]).unwrap();
    t.update_and_judge().await; // 1.2 breaks the WAN: rolled back
    t.power_cycle().await;
    t.settle().await;
    assert!(t.state().is_denylisted(&"1.2".parse().unwrap()));
    t.agent().pin("1.2".parse().unwrap(), false).await.unwrap();
    assert!(!t.state().is_denylisted(&"1.2".parse().unwrap()));
    let (r, exit) = t.update_and_judge().await;
    assert_eq!(r.version.as_str(), "1.2");
    assert_eq!(
        exit,
        DaemonExit::Reboot("rollback from 1.2 to slot A".into())
    );
}

#[tokio::test]
async fn rollback_works_with_the_server_stopped() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.update_and_judge().await;
    assert_eq!(t.state().known_good, Some(Slot::B));
    t.world.server.take().unwrap().stop();

    let action = t.agent().rollback().unwrap();
    assert_eq!(action, Action::Reboot("rollback from 1.1 to slot A".into()));
    let boot = t.agent().board.bootloader.read_state().unwrap();
    assert_eq!((boot.primary, boot.trial), (Slot::A, false));
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "1.0"));
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    let st = t.state();
    assert_eq!(
        (&st.update, st.known_good),
        (&UpdateState::Idle, Some(Slot::A))
    );
    // The owner's rollback is honoured: 1.1 is not re-installed behind their back.
    assert!(st.is_denylisted(&"1.1".parse().unwrap()));
    assert!(history_has(&st, "rolled-back", "1.1"));
}

#[tokio::test]
async fn rollback_refuses_when_the_other_slot_holds_nothing_good() {
    let t = world("off").await;
    let before = t.snapshot();
    t.agent().reconcile().unwrap();
    let err = t.agent().rollback().unwrap_err();
    assert!(
        err.to_string()
            .contains("slot B holds no known-good firmware"),
        "{err}"
    );
    assert_eq!(err.exit_code(), fwguard::error::EXIT_DISALLOWED);
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn rollback_refuses_a_damaged_old_slot() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.update_and_judge().await;
    // Flip one byte of the old firmware in slot A.
    let a = t.world.router.slot_path(Slot::A);
    let mut bytes = std::fs::read(&a).unwrap();
    bytes[10_000] ^= 0xff;
    std::fs::write(&a, bytes).unwrap();
    let env_before = t.snapshot()[2].clone();
    let err = t.agent().rollback().unwrap_err();
    assert!(err.to_string().contains("read back sha256"), "{err}");
    assert_eq!(t.snapshot()[2], env_before);
    assert_eq!(t.state().update, UpdateState::Idle);
}

#[tokio::test]
async fn mark_good_commits_a_trial_by_hand() {
    let mut t = world("off").await;
    t.world.add_image("1.3", WAN_DOWN).unwrap();
    t.world.publish(&["1.0", "1.3"]).unwrap();
    t.agent().update(UpdateMode::Install).await.unwrap();
    t.power_cycle().await;
    assert_eq!(
        t.agent().reconcile().unwrap(),
        fwguard::agent::Situation::Trial
    );
    assert_eq!(
        t.agent().mark_good().unwrap(),
        Action::Committed("1.3".parse().unwrap())
    );
    let boot = t.agent().board.bootloader.read_state().unwrap();
    assert_eq!((boot.primary, boot.trial), (Slot::B, false));
    assert_eq!(t.state().known_good, Some(Slot::B));
    // On a committed system it is a no-op that writes nothing.
    let before = t.snapshot();
    assert!(matches!(
        t.agent().mark_good().unwrap(),
        Action::UpToDate(_)
    ));
    assert_eq!(t.snapshot(), before);
}
