//! One test per attack on the update metadata (the rest of the list is in refusals.rs:
//! bad signature, unknown key, older index, forked index, expired index, wrong hash, other
//! board). Fixtures are generated in each test and named after the attack.

use super::common;

use common::installs;

use common::trust::{draft, fresh, keys, publish, publish_root, reconfigure, use_root, DAY};
use common::{release, world, TestWorld};
use fwguard::agent::{Action, UpdateMode};
use fwguard::error::{EXIT_NETWORK, EXIT_VERIFICATION};
use fwguard::index::build::IndexDraft;
use fwguard::index::root::root_toml;
use fwguard::index::sign::SecretKey;
use fwguard::sim::httpd::Fault;
use fwguard::sim::world::BUILD_TIME;
use fwguard::sim::Behaviour;
use fwguard::time::unix_now;
use std::sync::Arc;

async fn refused(t: &TestWorld, code: i32, words: &str) {
    let before = t.snapshot();
    let err = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert_eq!(err.exit_code(), code, "{err}");
    assert!(
        err.to_string().contains(words),
        "{err:?} does not mention {words:?}"
    );
    assert_eq!(t.snapshot(), before);
}

// ---- arbitrary software ----

#[tokio::test]
async fn arbitrary_software_fewer_signatures_than_the_threshold() {
    let t = world("off").await;
    let k = keys(3);
    use_root(&t, &[&k[0], &k[1], &k[2]], 2, &[&k[0]], 1);
    publish(&t, &fresh(&t, 1, &["1.1"]), &[&k[0]]);
    refused(
        &t,
        EXIT_VERIFICATION,
        "1 valid signature(s) from distinct trusted keys, 2 required",
    )
    .await;
    publish(&t, &fresh(&t, 1, &["1.1"]), &[&k[0], &k[2]]);
    installs(&t, "1.1").await;
}

#[tokio::test]
async fn arbitrary_software_the_same_key_counted_twice() {
    let t = world("off").await;
    let k = keys(2);
    use_root(&t, &[&k[0], &k[1]], 2, &[&k[0]], 1);
    // One key's signature, twice in the file.
    publish(&t, &fresh(&t, 1, &["1.1"]), &[&k[0], &k[0]]);
    refused(&t, EXIT_VERIFICATION, "1 valid signature(s)").await;
    // A root that lists one key twice (under two key numbers) is refused outright.
    let twice = root_toml(1, &[k[0].public(), k[0].public()], 2, &[k[0].public()], 1);
    assert!(fwguard::index::root::TrustRoot::parse(&twice)
        .unwrap_err()
        .to_string()
        .contains("same key twice"));
}

#[tokio::test]
async fn key_compromise_below_the_threshold() {
    let t = world("off").await;
    let k = keys(5);
    let all: Vec<&SecretKey> = k.iter().collect();
    use_root(&t, &all, 3, &all, 3);
    // The attacker holds two of five keys and adds a third, unknown key of its own.
    let mallory = SecretKey::generate().unwrap();
    publish(&t, &fresh(&t, 1, &["1.2"]), &[&k[0], &k[1], &mallory]);
    refused(
        &t,
        EXIT_VERIFICATION,
        "2 valid signature(s) from distinct trusted keys, 3 required",
    )
    .await;
    // Nor can it rotate the root to keys of its own.
    let evil = root_toml(2, &[mallory.public()], 1, &[mallory.public()], 1);
    publish_root(&t, &evil, &[&k[0], &k[1], &mallory]);
    refused(
        &t,
        EXIT_VERIFICATION,
        "root version 2 (by root version 1) is not signed by enough trusted keys",
    )
    .await;
}

// ---- indefinite freeze, without a real-time clock ----

fn with_clock(t: &TestWorld, secs: u64) -> fwguard::agent::Agent {
    t.agent().with_clock(Arc::new(move || secs))
}

#[tokio::test]
async fn indefinite_freeze_with_the_clock_at_1970() {
    for clock in [0, BUILD_TIME - 30 * DAY] {
        let t = world("off").await;
        // Stale: signed and expired before this firmware was even built. A device trusting
        // its clock (1970, or a month back) would take it.
        publish(
            &t,
            &draft(&t, 1, BUILD_TIME - 60 * DAY, BUILD_TIME - DAY, &["1.1"]),
            &[&t.world.key],
        );
        let err = with_clock(&t, clock)
            .update(UpdateMode::Install)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("before the trusted time floor"),
            "{err}"
        );
        // Fresh relative to the floor: accepted, and the floor moves up to its issue time.
        let issued = BUILD_TIME + DAY;
        publish(
            &t,
            &draft(&t, 2, issued, issued + 30 * DAY, &["1.1"]),
            &[&t.world.key],
        );
        let a = with_clock(&t, clock)
            .update(UpdateMode::Install)
            .await
            .unwrap();
        assert!(matches!(a, Action::Reboot(_)), "{a:?}");
        assert_eq!(t.state().time_floor, issued);
    }
}

#[tokio::test]
async fn indefinite_freeze_with_the_clock_stepped_backwards() {
    let t = world("off").await;
    let now = unix_now();
    publish(
        &t,
        &draft(&t, 5, now, now + 30 * DAY, &["1.0"]),
        &[&t.world.key],
    );
    t.agent().check().await.unwrap();
    assert_eq!(t.state().time_floor, now);
    // The clock steps back a year. An index that expired before the floor is refused
    // although the stepped-back clock would call it valid.
    let back = now - 365 * DAY;
    publish(
        &t,
        &draft(&t, 6, now - 20 * DAY, now - DAY, &["1.0", "1.1"]),
        &[&t.world.key],
    );
    let err = with_clock(&t, back)
        .update(UpdateMode::Install)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("before the trusted time floor"),
        "{err}"
    );
    // Issued at the floor and expiring there: dead by the floor, alive by the clock.
    publish(
        &t,
        &draft(&t, 7, now, now, &["1.0", "1.1"]),
        &[&t.world.key],
    );
    let err = with_clock(&t, back)
        .update(UpdateMode::Install)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

// ---- fast-forward ----

#[tokio::test]
async fn fast_forward_is_recovered_by_rotating_the_root() {
    let t = world("off").await;
    let (old, new) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    let root_key = SecretKey::generate().unwrap();
    use_root(&t, &[&old], 1, &[&root_key], 1);
    // An index with an absurd version got signed (a leaked key, or a slip).
    publish(&t, &fresh(&t, 1_000_000_000, &["1.0"]), &[&old]);
    t.agent().check().await.unwrap();
    // Every normal index is now refused ...
    publish(&t, &fresh(&t, 8, &["1.0", "1.1"]), &[&old]);
    refused(&t, EXIT_VERIFICATION, "older than version 1000000000").await;
    // ... until the vendor rotates the root: new index key, signed by the root key.
    let next = root_toml(2, &[new.public()], 1, &[root_key.public()], 1);
    publish_root(&t, &next, &[&root_key]);
    publish(&t, &fresh(&t, 9, &["1.0", "1.1"]), &[&new]);
    installs(&t, "1.1").await;
    let st = t.state();
    assert_eq!(st.last_index.unwrap().version, 9);
    assert!(st.history.iter().any(|h| h.event == "root-rotated"));
    assert_eq!(t.agent().status().unwrap().root_version, 2);
}

#[tokio::test]
async fn root_rotation_needs_the_next_version() {
    let t = world("off").await;
    let r = SecretKey::generate().unwrap();
    use_root(&t, &[&t.world.key], 1, &[&r], 1);
    let skip = root_toml(3, &[t.world.key.public()], 1, &[r.public()], 1);
    publish_root(&t, &skip, &[&r]);
    publish(&t, &fresh(&t, 1, &["1.1"]), &[&t.world.key]);
    refused(
        &t,
        EXIT_VERIFICATION,
        "new root version 3 does not follow the current root version 1",
    )
    .await;
}

// ---- endless data and slow retrieval ----

#[tokio::test]
async fn endless_data_index_and_image() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let server = t.world.server.as_ref().unwrap();
    server.set_fault("/index.toml", Some(Fault::Endless));
    refused(&t, EXIT_VERIFICATION, "more than 1048576 bytes").await;
    server.set_fault("/index.toml", None);
    server.set_fault("/images/fw-1.1.img", Some(Fault::Endless));
    let err = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert_eq!(err.exit_code(), EXIT_VERIFICATION, "{err}");
    assert!(
        err.to_string().contains("bytes (the allowed size)"),
        "{err}"
    );
    assert_eq!(t.state().update, fwguard::state::UpdateState::Idle);
}

fn slow_config(t: &TestWorld) {
    reconfigure(t, |c| {
        c.replace(
            "channel = \"stable\"",
            "channel = \"stable\"\nmin_rate = 100000\nrate_window = \"1s\"",
        )
    });
}

#[tokio::test]
async fn slow_retrieval_is_abandoned() {
    let mut t = world("off").await;
    slow_config(&t);
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let server = t.world.server.as_ref().unwrap();
    server.set_fault(
        "/index.toml",
        // 50 bytes/s: the signed index is several hundred bytes, so it can never finish
        // inside the 1 s window (at 10 bytes per tick it could, on a fast run).
        Some(Fault::Trickle {
            bytes: 1,
            every_ms: 20,
        }),
    );
    refused(&t, EXIT_NETWORK, "below the minimum rate of 100000 bytes/s").await;
    server.set_fault("/index.toml", None);
    server.set_fault(
        "/images/fw-1.1.img",
        Some(Fault::Trickle {
            bytes: 100,
            every_ms: 20,
        }),
    );
    let started = std::time::Instant::now();
    let err = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert!(err.to_string().contains("below the minimum rate"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn a_server_that_never_answers_is_abandoned() {
    let mut t = world("off").await;
    slow_config(&t);
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.world
        .server
        .as_ref()
        .unwrap()
        .set_fault("/index.toml", Some(Fault::Stall));
    refused(&t, EXIT_NETWORK, "only 0 bytes in 1 s").await;
}

// ---- vendor controls: pulled, security floor, min_from, staged rollout ----

#[tokio::test]
async fn a_pulled_release_is_never_installed_and_its_owner_is_told() {
    let mut t = world("off").await;
    t.world.add_image("1.3", Behaviour::GOOD).unwrap();
    let mut d = fresh(&t, 1, &["1.0", "1.1", "1.3"]);
    d.set_pulled(
        &"1.3".parse().unwrap(),
        None,
        Some("corrupts the 5 GHz calibration".into()),
    )
    .unwrap();
    publish(&t, &d, &[&t.world.key]);
    // The newest is pulled: the one before it is chosen.
    installs(&t, "1.1").await;
    // Pinning it is refused too.
    let mut d = fresh(&t, 3, &["1.0", "1.1", "1.3"]);
    d.set_pulled(
        &"1.0".parse().unwrap(),
        None,
        Some("leaks the admin password".into()),
    )
    .unwrap();
    d.set_pulled(
        &"1.3".parse().unwrap(),
        None,
        Some("corrupts the 5 GHz calibration".into()),
    )
    .unwrap();
    publish(&t, &d, &[&t.world.key]);
    let err = t
        .agent()
        .pin("1.3".parse().unwrap(), false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("pulled by the vendor: corrupts"),
        "{err}"
    );
    // The device runs 1.0 (1.1 is only armed, not booted): once it has seen the index, status
    // says its firmware was pulled.
    t.agent().check().await.unwrap();
    let s = t.agent().status().unwrap();
    assert!(
        s.notices
            .iter()
            .any(|n| n.contains("running version 1.0 was pulled by the vendor: leaks")),
        "{:?}",
        s.notices
    );
}

#[tokio::test]
async fn security_floor_refuses_an_insecure_pin_unless_forced() {
    let mut t = world("off").await;
    t.world.add_image("1.3", Behaviour::GOOD).unwrap();
    let mut d = fresh(&t, 1, &["1.0", "1.1", "1.3"]);
    d.set_security_floor("sim", Some("1.1".parse().unwrap()));
    publish(&t, &d, &[&t.world.key]);
    t.update_and_judge().await; // 1.3 committed in slot B
    let err = t
        .agent()
        .pin("1.0".parse().unwrap(), false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("below the security floor 1.1"),
        "{err}"
    );
    assert_eq!(t.state().pin, None);
    let done = t.agent().pin("1.0".parse().unwrap(), true).await.unwrap();
    assert!(matches!(done, Action::Done(_)));
    let st = t.state();
    assert!(st.pin_insecure);
    assert!(st
        .history
        .iter()
        .any(|h| h.event == "pin" && h.detail.contains("BELOW THE SECURITY FLOOR")));
    let (r, _) = t.update_and_judge().await;
    assert_eq!(r.version.as_str(), "1.0");
    let s = t.agent().status().unwrap();
    assert!(
        s.notices
            .iter()
            .any(|n| n.contains("below the security floor 1.1")),
        "{:?}",
        s.notices
    );
}

#[tokio::test]
async fn min_from_makes_a_stepping_stone() {
    let t = world("off").await;
    let mut d = IndexDraft::new(1, unix_now(), unix_now() + DAY);
    d.add_release(release(&t, "1.1")).unwrap();
    let mut big = release(&t, "1.2");
    big.min_from = Some("1.1".parse().unwrap());
    d.add_release(big).unwrap();
    publish(&t, &d, &[&t.world.key]);
    installs(&t, "1.1").await;
}

#[tokio::test]
async fn staged_rollout_admits_this_device_by_its_bucket() {
    let t = world("off").await;
    reconfigure(&t, |c| {
        c.replace("[agent]", "[agent]\ndevice_id = \"router-0042\"")
    });
    let bucket = fwguard::index::rollout::bucket("router-0042", &"1.1".parse().unwrap());
    let now = unix_now();
    // The first wave stops just short of this device's bucket; the next opens in an hour.
    let mut d = fresh(&t, 1, &["1.0", "1.1"]);
    d.set_rollout(
        &"1.1".parse().unwrap(),
        None,
        now - 60,
        &[(0, bucket), (3600, 100)],
    )
    .unwrap();
    publish(&t, &d, &[&t.world.key]);
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(
        matches!(&a, Action::UpToDate(why) if why.contains(&format!("rollout bucket {bucket}"))),
        "{a:?}"
    );
    // The same device, the same answer, every check.
    let again = t.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, again);
    // Halted: nobody new gets it, even in an open wave.
    let mut d = fresh(&t, 2, &["1.0", "1.1"]);
    d.set_rollout(&"1.1".parse().unwrap(), None, now - 60, &[(0, 100)])
        .unwrap();
    d.set_halted(&"1.1".parse().unwrap(), None, true).unwrap();
    publish(&t, &d, &[&t.world.key]);
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(
        matches!(&a, Action::UpToDate(why) if why.contains("halted")),
        "{a:?}"
    );
    // Its wave open: installed.
    let mut d = fresh(&t, 3, &["1.0", "1.1"]);
    d.set_rollout(&"1.1".parse().unwrap(), None, now - 60, &[(0, bucket + 1)])
        .unwrap();
    publish(&t, &d, &[&t.world.key]);
    installs(&t, "1.1").await;
}

#[tokio::test]
async fn a_new_root_must_also_be_signed_by_its_own_root_keys() {
    let t = world("off").await;
    let (r1, r2) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    use_root(&t, &[&t.world.key], 1, &[&r1], 1);
    // Signed by the current root key only; the new root key never agreed.
    let next = root_toml(2, &[t.world.key.public()], 1, &[r2.public()], 1);
    publish_root(&t, &next, &[&r1]);
    publish(&t, &fresh(&t, 1, &["1.1"]), &[&t.world.key]);
    refused(
        &t,
        EXIT_VERIFICATION,
        "root version 2 (by its own root keys) is not signed by enough",
    )
    .await;
    // With both signatures it is accepted.
    publish_root(&t, &next, &[&r1, &r2]);
    installs(&t, "1.1").await;
}
