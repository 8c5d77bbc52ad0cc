//! Recovery from a fast-forwarded time: a leaked index key signs an index issued in 2099, the
//! device accepts it and its time floor jumps there, so every honest index is stale and no
//! maintenance window opens. A root rotation that says `time_floor = "..."` resets the floor
//! (never below the running firmware's build time); one that does not keeps it.

use super::common;

use common::trust::{draft, fresh, publish, publish_root, use_root, DAY};
use common::{world, TestWorld, FAST_TRIAL};
use fwguard::agent::DaemonExit;
use fwguard::index::root::root_toml;
use fwguard::index::sign::SecretKey;
use fwguard::sim::world::BUILD_TIME;
use fwguard::time::{format_time, unix_now};

/// 2099-01-01T00:00:00Z.
const Y2099: u64 = 4_070_908_800;

/// A world whose device trusts a root (index key `leaked`, root key `root_key`) and may
/// reboot into updates only in a daily window around now (UTC).
async fn device(leaked: &SecretKey, root_key: &SecretKey) -> TestWorld {
    let t = world("auto").await;
    let minute = (unix_now() % DAY) as i64 / 60;
    let hm = |m: i64| {
        format!(
            "{:02}:{:02}",
            m.rem_euclid(1440) / 60,
            m.rem_euclid(1440) % 60
        )
    };
    let extra = format!(
        "policy = \"auto\"\ntimezone = \"UTC0\"\ncheck_jitter = \"0s\"\n\n[[maintenance]]\nfrom = \"{}\"\nto = \"{}\"\n",
        hm(minute - 120),
        hm(minute + 120)
    );
    t.world.write_config(&extra, FAST_TRIAL).unwrap();
    use_root(&t, &[leaked], 1, &[root_key], 1);
    t
}

/// The leaked key signs an index issued in 2099 and the device takes it: its floor is 2099.
async fn fast_forward(t: &TestWorld, leaked: &SecretKey) {
    publish(
        t,
        &draft(t, 2, Y2099, Y2099 + 30 * DAY, &["1.0"]),
        &[leaked],
    );
    t.agent().check().await.unwrap();
    assert_eq!(t.state().time_floor, Y2099);
    assert!(!t.agent().in_maintenance_window());
}

/// Root version 2: index key `new`, the same root key, and `reset` as its time floor line.
fn rotated_root(new: &SecretKey, root_key: &SecretKey, reset: Option<u64>) -> String {
    let mut text = root_toml(2, &[new.public()], 1, &[root_key.public()], 1);
    if let Some(at) = reset {
        text += &format!("time_floor = \"{}\"\n", format_time(at));
    }
    text
}

#[tokio::test]
async fn a_root_rotation_that_resets_the_time_floor_recovers_from_an_index_issued_in_2099() {
    let (leaked, new, root_key) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    let mut t = device(&leaked, &root_key).await;
    fast_forward(&t, &leaked).await;
    // The honest index, issued now, is stale against a floor in 2099.
    publish(&t, &fresh(&t, 3, &["1.0", "1.1"]), &[&leaked]);
    let err = t.agent().check().await.unwrap_err();
    assert!(
        err.to_string().contains("before the trusted time floor"),
        "{err}"
    );

    // The vendor rotates the index key, and resets the floor to the time of the rotation.
    let rotation = unix_now() - 60;
    publish_root(
        &t,
        &rotated_root(&new, &root_key, Some(rotation)),
        &[&root_key],
    );
    let honest = fresh(&t, 4, &["1.0", "1.1"]);
    publish(&t, &honest, &[&new]);
    let report = t.agent().check().await.unwrap();
    assert_eq!(report.index_version, 4);
    let st = t.state();
    assert!(
        st.time_floor >= rotation && st.time_floor < Y2099,
        "time floor {} after the reset",
        format_time(st.time_floor)
    );
    let reset = st
        .history
        .iter()
        .find(|h| h.event == "time-floor-reset")
        .expect("the reset is in the history");
    assert!(
        reset.detail.contains(&format_time(Y2099)) && reset.detail.contains(&format_time(rotation)),
        "{}",
        reset.detail
    );
    assert_eq!(t.agent().status().unwrap().root_version, 2);

    // The window opens again, and the daemon installs the update and reboots into it.
    assert!(t.agent().in_maintenance_window());
    assert_eq!(
        common::run_daemon_for(t.agent(), 20_000).await,
        DaemonExit::Reboot("trial boot of 1.1 in slot B".into())
    );
    assert_eq!(t.power_cycle().await.version.as_str(), "1.1");
}

#[tokio::test]
async fn a_root_rotation_without_a_reset_keeps_the_time_floor() {
    let (leaked, new, root_key) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    let t = device(&leaked, &root_key).await;
    fast_forward(&t, &leaked).await;
    // Rotated, but without a time floor: the new key's honest index is still stale.
    publish_root(&t, &rotated_root(&new, &root_key, None), &[&root_key]);
    publish(&t, &fresh(&t, 3, &["1.0", "1.1"]), &[&new]);
    let err = t.agent().check().await.unwrap_err();
    assert!(
        err.to_string().contains("before the trusted time floor"),
        "{err}"
    );
    let st = t.state();
    assert_eq!(st.time_floor, Y2099);
    assert!(!st.history.iter().any(|h| h.event == "time-floor-reset"));
    assert!(!t.agent().in_maintenance_window());
}

#[tokio::test]
async fn a_time_floor_reset_never_goes_below_the_running_firmware_build_time() {
    let (leaked, new, root_key) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    let t = device(&leaked, &root_key).await;
    fast_forward(&t, &leaked).await;
    // A reset to 2020, before the running firmware was built: the floor stops at its build
    // time, so an index signed before that build stays stale.
    publish_root(
        &t,
        &rotated_root(&new, &root_key, Some(BUILD_TIME - 365 * 6 * DAY)),
        &[&root_key],
    );
    publish(
        &t,
        &draft(&t, 3, BUILD_TIME - DAY, unix_now() + 30 * DAY, &["1.0"]),
        &[&new],
    );
    let err = t.agent().check().await.unwrap_err();
    let floor = format!("before the trusted time floor {}", format_time(BUILD_TIME));
    assert!(err.to_string().contains(&floor), "{err}");
    publish(&t, &fresh(&t, 4, &["1.0"]), &[&new]);
    t.agent().check().await.unwrap();
    let st = t.state();
    let reset = st
        .history
        .iter()
        .find(|h| h.event == "time-floor-reset")
        .expect("the reset is in the history");
    assert!(
        reset.detail.contains(&format_time(BUILD_TIME)),
        "{}",
        reset.detail
    );
}
