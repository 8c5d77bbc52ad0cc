//! A Linksys WRT32X as it is: each firmware has its own overlay, so each slot's fwguard has
//! its own state directory, and the two share nothing but the U-Boot env (and the s_env
//! counter). The trial's facts travel in the env (`fwguard_carry`), written with the arm,
//! the commit or the rollback: the new firmware's fwguard takes the trial over and judges
//! it; after a rollback the old firmware's fwguard records how it ended and denylists the
//! release; the slot the bootloader falls back to is never written meanwhile.

use super::common;

use common::linksys_router::Router;
use common::{history_has, WAN_DOWN};
use fwguard::agent::{Action, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::state::{Origin, TrialResult, UpdateState};
use fwguard::Slot;

#[tokio::test]
async fn a_trial_is_judged_by_the_new_firmware_s_own_fwguard_and_a_rollback_reaches_the_old() {
    let mut r = Router::stock(&[
        ("1.1", Behaviour::GOOD),
        ("1.2", WAN_DOWN),
        ("1.3", Behaviour::GOOD),
    ])
    .await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    r.world.publish(&["1.0", "1.1"]).unwrap();
    r.agent().check().await.unwrap();
    let a_state = r.state_of(Slot::A);
    assert_eq!(a_state.slot_a.as_ref().unwrap().origin, Origin::Adopted);

    // 1.1 armed from A: the env carries the trial with the facts B's fwguard needs.
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 1.1 in slot B".into()));
    let c = r.carried();
    let t = c.trial.as_ref().expect("the trial travels in the env");
    assert_eq!((t.slot, t.previous), (Slot::B, Slot::A));
    assert_eq!(t.release.version.as_str(), "1.1");
    assert_eq!(t.previous_record.as_ref().unwrap().version.as_str(), "1.0");
    assert_eq!(t.device_id, a_state.device_id);
    assert_eq!(t.report_key, a_state.report_key);
    assert_eq!(c.last_index, r.state_of(Slot::A).last_index);

    // B boots with a state directory of its own that has never seen this trial.
    let k1 = r.bytes(5);
    assert_eq!(r.power_on().await, (Slot::B, "1.1".into()));
    assert!(!r.settings(Slot::B).state_dir.exists());
    r.settle().await;
    let b = r.state_of(Slot::B);
    assert_eq!(
        (b.update.clone(), b.known_good),
        (UpdateState::Idle, Some(Slot::B))
    );
    assert!(history_has(&b, "trial-carried", "1.1"), "{:?}", b.history);
    assert!(history_has(&b, "committed", "1.1"));
    assert_eq!(b.slot_a.as_ref().unwrap().version.as_str(), "1.0");
    assert_eq!(b.device_id, a_state.device_id, "the rollout bucket follows");
    assert_eq!(
        b.report_key, a_state.report_key,
        "both slots sign reports with one key"
    );
    assert_eq!(b.time_floor, r.state_of(Slot::A).time_floor);
    assert_eq!(r.bytes(5), k1, "slot A was written");
    let c = r.carried();
    assert!(c.trial.is_none());
    let o = c.outcome.unwrap();
    assert_eq!((o.result, o.slot), (TrialResult::Committed, Slot::B));
    // A healthy boot of B later writes nothing to the env, nor to its state.
    let env = r.bytes(1);
    let state_file = r.settings(Slot::B).state_dir.join("state.json");
    let state = std::fs::read(&state_file).unwrap();
    assert_eq!(r.power_on().await, (Slot::B, "1.1".into()));
    r.settle().await;
    assert_eq!(r.bytes(1), env);
    assert_eq!(std::fs::read(&state_file).unwrap(), state);

    // B's fwguard installs 1.2 (breaks the WAN) into A, arms it: A's fwguard, whose own
    // state still says it armed 1.1, learns 1.1 was committed, takes the trial over, finds
    // it unhealthy and rolls back to B.
    r.world.publish(&["1.0", "1.1", "1.2"]).unwrap();
    let k2 = r.bytes(7);
    r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(r.power_on().await, (Slot::A, "1.2".into()));
    r.settle().await;
    assert!(r.flash.reboot_requested());
    assert_eq!(r.bytes(7), k2, "slot B (the fallback) was written");
    let a_state = r.state_of(Slot::A);
    assert!(
        history_has(&a_state, "committed", "1.1"),
        "{:?}",
        a_state.history
    );
    assert!(history_has(&a_state, "trial-carried", "1.2"));
    assert!(history_has(&a_state, "rollback", "1.2"));
    let o = r.carried().outcome.unwrap();
    assert_eq!((o.result, o.slot), (TrialResult::RolledBack, Slot::A));

    // B runs again: its fwguard records the rollback, denylists 1.2, and never retries it.
    assert_eq!(r.power_on().await, (Slot::B, "1.1".into()));
    r.settle().await;
    let b = r.state_of(Slot::B);
    assert_eq!(
        (b.update.clone(), b.known_good),
        (UpdateState::Idle, Some(Slot::B))
    );
    assert!(history_has(&b, "rolled-back", "1.2"), "{:?}", b.history);
    assert!(b.is_denylisted(&"1.2".parse().unwrap()));
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert!(
        matches!(&a, Action::UpToDate(why) if why.contains("1.2 was rolled back on this device")),
        "{a:?}"
    );

    // A's own state still holds the rollback it made (B ran next, so it never finished
    // there). B installs 1.3 into A: that is another arm, and A's fwguard takes it over
    // instead of taking the stale rollback for it.
    assert!(matches!(
        r.state_of(Slot::A).update,
        UpdateState::RollingBack { .. }
    ));
    r.world.publish(&["1.0", "1.1", "1.2", "1.3"]).unwrap();
    r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(r.power_on().await, (Slot::A, "1.3".into()));
    r.settle().await;
    let a_state = r.state_of(Slot::A);
    assert_eq!(
        (a_state.update.clone(), a_state.known_good),
        (UpdateState::Idle, Some(Slot::A))
    );
    assert!(
        history_has(&a_state, "committed", "1.3"),
        "{:?}",
        a_state.history
    );
    assert_eq!(a_state.slot_a.as_ref().unwrap().version.as_str(), "1.3");
}
