//! The owner's standing choices, which win over the shipped configuration: the policy (auto,
//! download-only, notify, off), the channel, and a hold on the running version.

use super::common;

use common::{run_daemon_for, run_daemon_until, world};
use fwguard::agent::{Action, By, DaemonExit, UpdateMode};
use fwguard::config::Policy;
use fwguard::error::Error;
use fwguard::state::{PersistedState, UpdateState};
use fwguard::Slot;

const IMAGE: &str = "/images/fw-1.1.img";

#[tokio::test]
async fn hold_stays_on_the_running_version_until_release() {
    let mut t = world("auto").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    // The first check identifies the running firmware as 1.0 of the index.
    t.agent().check().await.unwrap();
    assert_eq!(
        t.agent().hold().unwrap(),
        Action::Done("holding at 1.0".into())
    );
    for by in [By::Daemon, By::Owner { force: false }] {
        let a = t.agent().update_by(UpdateMode::Install, by).await.unwrap();
        assert_eq!(
            a,
            Action::UpToDate(
                "held at 1.0 by the owner (`fwguard release` to follow the channel)".into()
            )
        );
    }
    assert!(t.agent().status().unwrap().held);
    assert!(t.world.server.as_ref().unwrap().ranges(IMAGE).is_empty());
    // Release: the channel's newest is installed again.
    assert!(matches!(t.agent().unpin().unwrap(), Action::Done(_)));
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 1.1 in slot B".into()));
}

#[tokio::test]
async fn the_owner_switches_channels() {
    let mut t = world("off").await;
    t.world
        .publish_channels(&[("1.0", &["stable", "beta"]), ("1.1", &["beta"])])
        .unwrap();
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::UpToDate(_)), "{a:?}");
    // A bad name is refused and changes nothing.
    let before = std::fs::read(t.settings().state_dir.join("state.json")).unwrap();
    let e = t.agent().set_channel("beta; rm -rf /").unwrap_err();
    assert!(matches!(e, Error::Refused(_)) && e.to_string().contains("not a channel name"));
    assert_eq!(
        std::fs::read(t.settings().state_dir.join("state.json")).unwrap(),
        before
    );
    assert_eq!(
        t.agent().set_channel("beta").unwrap(),
        Action::Done("following channel beta".into())
    );
    assert_eq!(t.agent().status().unwrap().channel, "beta");
    let (r, _) = t.update_and_judge().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "1.1"));
    assert!(common::history_has(&t.state(), "committed", "1.1"));
}

#[tokio::test]
async fn the_owners_policy_wins_over_the_configuration() {
    // The vendor shipped policy auto; the owner turns it off before the daemon ever runs.
    let mut t = world("auto").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert_eq!(
        t.agent().set_policy(Policy::Off).unwrap(),
        Action::Done("policy is now off".into())
    );
    let server = || t.world.server.as_ref().unwrap();
    assert_eq!(run_daemon_for(t.agent(), 2500).await, DaemonExit::Stopped);
    assert!(
        server().ranges("/index.toml").is_empty(),
        "off: not even a check"
    );
    assert!(server().ranges(IMAGE).is_empty());
    assert_eq!(t.agent().status().unwrap().policy, Policy::Off);

    // Notify: the daemon checks, reports, and downloads nothing.
    t.agent().set_policy(Policy::Notify).unwrap();
    assert_eq!(
        run_daemon_until(t.agent(), || t.index_fetches() >= 2).await,
        DaemonExit::Stopped
    );
    assert!(
        server().ranges("/index.toml").len() >= 2,
        "notify checks each interval"
    );
    assert!(server().ranges(IMAGE).is_empty());
    assert_eq!(t.state().slot_b, None);

    // Download-only: staged, not armed.
    t.agent().set_policy(Policy::DownloadOnly).unwrap();
    let staged = |s: &PersistedState| matches!(s.update, UpdateState::Staged { .. });
    assert_eq!(
        t.run_daemon_past(t.agent(), staged).await,
        DaemonExit::Stopped
    );
    assert!(matches!(t.state().update, UpdateState::Staged { .. }));
    assert!(!t.world.router.reboot_requested());

    // Auto: installed and rebooted into the trial.
    t.agent().set_policy(Policy::Auto).unwrap();
    let exit = run_daemon_for(t.agent(), 20_000).await;
    assert_eq!(
        exit,
        DaemonExit::Reboot("trial boot of 1.1 in slot B".into())
    );
    let r = t.power_cycle().await;
    assert_eq!(r.version.as_str(), "1.1");
}
