//! Health policy on the sim router: the baseline rule, the soak period, and the stop after
//! rollbacks in a row. (The trial deadline is in cycle.rs; k-of-n groups in tests/health_net.rs.)

use super::common;

use common::{world, TestWorld, WAN_DOWN};
use fwguard::agent::{Action, By, DaemonExit, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::Slot;
use std::time::Duration;

/// Add a required check that passes only while `flag` exists (a service the ISP provides).
fn add_flag_check(t: &TestWorld) -> std::path::PathBuf {
    let flag = t.world.root.join("modem-up");
    let mut c = std::fs::read_to_string(&t.cfg).unwrap();
    c.push_str(&format!(
        "\n[[health.check]]\nname = \"modem\"\nkind = \"command\"\nargv = [\"/bin/sh\", \"-c\", \"test -e {}\"]\n",
        flag.display()
    ));
    std::fs::write(&t.cfg, c).unwrap();
    flag
}

#[tokio::test]
async fn baseline_a_check_failing_before_the_update_neither_blocks_nor_rolls_back() {
    let mut t = world("off").await;
    add_flag_check(&t); // the modem check fails all along
    t.world.publish(&["1.0", "1.1"]).unwrap();
    // An update does not start while a required check fails ...
    let before = t.snapshot();
    let err = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the running firmware fails required health checks (modem:"),
        "{err}"
    );
    assert_eq!(t.snapshot(), before);
    // ... unless the owner forces it; then that check does not block the new firmware.
    let a = t
        .agent()
        .update_by(UpdateMode::Install, By::Owner { force: true })
        .await
        .unwrap();
    assert!(matches!(a, Action::Reboot(_)));
    assert_eq!(
        t.state().baseline.unwrap(),
        vec!["internet".to_string(), "vendor-site".to_string()]
    );
    t.power_cycle().await;
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    let st = t.state();
    assert_eq!(st.known_good, Some(Slot::B));
    let c = st.history.iter().find(|h| h.event == "committed").unwrap();
    assert!(
        c.detail
            .contains("not blocking, as they failed before the update too: modem"),
        "{}",
        c.detail
    );
}

#[tokio::test]
async fn baseline_a_check_that_passed_before_must_pass_after() {
    let mut t = world("off").await;
    let flag = add_flag_check(&t);
    std::fs::write(&flag, "").unwrap();
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().update(UpdateMode::Install).await.unwrap();
    std::fs::remove_file(&flag).unwrap(); // the new firmware breaks the modem link
    t.power_cycle().await;
    assert_eq!(
        t.settle().await,
        DaemonExit::Reboot("rollback from 1.1 to slot A".into())
    );
}

#[tokio::test]
async fn a_regression_during_the_soak_rolls_back() {
    let mut t = world("off").await;
    let c = std::fs::read_to_string(&t.cfg)
        .unwrap()
        .replace("soak = \"0s\"", "soak = \"20s\"\nsoak_failures = 2");
    std::fs::write(&t.cfg, c).unwrap();
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().update(UpdateMode::Install).await.unwrap();
    t.power_cycle().await;
    let agent = t.agent();
    let daemon = tokio::time::timeout(
        Duration::from_secs(30),
        agent.run_daemon(std::future::pending()),
    );
    let world = &mut t.world;
    let cut_wan = async {
        // Once the checks have passed and the soak is under way, the WAN goes down.
        while agent.last_health().is_none_or(|h| h.phase != "soak") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        world.wan.set_up(false).await.unwrap();
    };
    let (exit, ()) = tokio::join!(daemon, cut_wan);
    assert_eq!(
        exit.unwrap().unwrap(),
        DaemonExit::Reboot("rollback from 1.1 to slot A".into())
    );
    let rb = t
        .state()
        .history
        .into_iter()
        .find(|h| h.event == "rollback")
        .unwrap();
    assert!(
        rb.detail
            .contains("health checks regressed during the soak period"),
        "{}",
        rb.detail
    );
}

#[tokio::test]
async fn the_soak_commits_once_it_has_held() {
    let mut t = world("off").await;
    let c = std::fs::read_to_string(&t.cfg)
        .unwrap()
        .replace("soak = \"0s\"", "soak = \"600ms\"");
    std::fs::write(&t.cfg, c).unwrap();
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().update(UpdateMode::Install).await.unwrap();
    t.power_cycle().await;
    let started = std::time::Instant::now();
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    assert!(started.elapsed() >= Duration::from_millis(600));
    let c = t
        .state()
        .history
        .into_iter()
        .find(|h| h.event == "committed")
        .unwrap();
    assert!(
        c.detail.contains("held through the 600ms soak"),
        "{}",
        c.detail
    );
}

#[tokio::test]
async fn rollbacks_in_a_row_stop_automatic_installs_until_the_owner_acts() {
    let mut t = world("auto").await;
    t.world.add_image("1.3", WAN_DOWN).unwrap();
    t.world.add_image("1.4", Behaviour::GOOD).unwrap();
    let mut published = vec!["1.0", "1.2"];
    for bad in ["1.2", "1.3"] {
        if !published.contains(&bad) {
            published.push(bad);
        }
        t.world.publish(&published).unwrap();
        assert_eq!(
            t.settle().await,
            DaemonExit::Reboot(format!("trial boot of {bad} in slot B"))
        );
        t.power_cycle().await;
        assert_eq!(
            t.settle().await,
            DaemonExit::Reboot(format!("rollback from {bad} to slot A"))
        );
        t.power_cycle().await;
    }
    t.world.publish(&["1.0", "1.2", "1.3", "1.4"]).unwrap();
    let before = t.snapshot();
    // The daemon finishes the rollback, then does not install 1.4 on its own.
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    assert_eq!(t.snapshot(), before);
    let st = t.state();
    assert_eq!(st.rollbacks_in_a_row, 2);
    assert!(!st
        .history
        .iter()
        .any(|h| h.event == "install" && h.version.as_ref().is_some_and(|v| v.as_str() == "1.4")));
    let s = t.agent().status().unwrap();
    assert!(
        s.notices
            .iter()
            .any(|n| n.contains("automatic installs are stopped after 2 rollbacks")),
        "{:?}",
        s.notices
    );
    // The owner acts: their update installs it, and the count starts over.
    assert_eq!(
        t.agent().update(UpdateMode::Install).await.unwrap(),
        Action::Reboot("trial boot of 1.4 in slot B".into())
    );
    t.power_cycle().await;
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    assert_eq!(t.state().rollbacks_in_a_row, 0);
    assert_eq!(t.state().known_good, Some(Slot::B));
}
