//! The firmware a router already runs, which fwguard never installed: identified by the
//! signed index (adopted as known-good) or not (unidentified: kept as known-good, checked by
//! its boot image), and what each allows.

use super::common;

use common::{history_has, world};
use fwguard::agent::{Action, By, DaemonExit, UpdateMode};
use fwguard::state::{Origin, UpdateState};
use fwguard::Slot;

fn state_bytes(t: &common::TestWorld) -> Vec<u8> {
    std::fs::read(t.settings().state_dir.join("state.json")).unwrap()
}

#[tokio::test]
async fn stock_firmware_the_index_lists_is_adopted_as_known_good_once() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let report = t.agent().check().await.unwrap();
    assert_eq!(report.running.as_ref().map(|v| v.as_str()), Some("1.0"));
    let st = t.state();
    let a = st.slot_a.as_ref().expect("slot A is on record");
    assert_eq!(
        (a.version.as_str(), a.good, a.origin),
        ("1.0", true, Origin::Adopted)
    );
    assert_eq!(st.known_good, Some(Slot::A));
    assert!(st.unidentified.is_none());
    assert!(history_has(&st, "adopted", "1.0"));
    let status = t.agent().status().unwrap();
    assert_eq!(status.running_version.as_ref().unwrap().as_str(), "1.0");
    assert_eq!(
        (status.slots[0].identified, status.slots[0].verifies),
        ("adopted", Some(true))
    );
    assert!(
        status.to_string().contains(
            "slot A:       1.0, adopted: matches a release of the signed index, verifies [booted, known-good]"
        ),
        "{status}"
    );
    // A later check of the same index finds nothing to do and writes nothing.
    let before = (state_bytes(&t), t.snapshot());
    t.agent().check().await.unwrap();
    assert_eq!((state_bytes(&t), t.snapshot()), before);
}

#[tokio::test]
async fn firmware_no_release_matches_is_unidentified_and_a_bad_update_returns_to_it() {
    let mut t = world("off").await;
    // The vendor's index does not list what the router came with.
    t.world.publish(&["1.2"]).unwrap();
    let report = t.agent().check().await.unwrap();
    assert_eq!(report.running, None);
    let st = t.state();
    assert!(st.slot_a.is_none());
    let u = st.unidentified.clone().expect("recorded as unidentified");
    assert_eq!((u.slot, u.index_version), (Slot::A, Some(1)));
    let image = u.boot_image.expect("its uImage is read");
    assert!(
        image.describe.starts_with("uImage \"sim 1.0\""),
        "{image:?}"
    );
    assert_eq!(st.known_good, Some(Slot::A));
    let status = t.agent().status().unwrap();
    assert_eq!(status.running_version, None);
    assert_eq!(
        (status.slots[0].identified, status.slots[0].verifies),
        ("unidentified", Some(true))
    );
    let text = status.to_string();
    assert!(text.contains("running:      unknown in slot A"), "{text}");
    assert!(
        text.contains("slot A:       unidentified firmware (no release of the signed index), checked by its boot image uImage \"sim 1.0\""),
        "{text}"
    );
    // The same index again: nothing is hashed or written again.
    let before = state_bytes(&t);
    t.agent().check().await.unwrap();
    assert_eq!(state_bytes(&t), before);

    // Updates are allowed: 1.2 goes to slot B (A, the known-good, is never written); it
    // breaks the WAN, and fwguard returns to A, which it checks by its boot image first.
    let a_before = std::fs::read(t.world.router.slot_path(Slot::A)).unwrap();
    let (r, exit) = t.update_and_judge().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "1.2"));
    assert_eq!(
        exit,
        DaemonExit::Reboot("rollback from 1.2 to slot A".into())
    );
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "1.0"));
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    assert_eq!(
        std::fs::read(t.world.router.slot_path(Slot::A)).unwrap(),
        a_before
    );
    let st = t.state();
    assert_eq!(st.update, UpdateState::Idle);
    assert_eq!(st.known_good, Some(Slot::A));
    assert_eq!(st.unidentified_in(Slot::A).map(|u| u.slot), Some(Slot::A));
    assert!(st.is_denylisted(&"1.2".parse().unwrap()));
}

#[tokio::test]
async fn unidentified_firmware_whose_boot_image_changed_is_not_switched_back_to() {
    let mut t = world("off").await;
    t.world.publish(&["1.1"]).unwrap();
    t.agent().check().await.unwrap();
    // 1.1 commits in slot B; then someone writes slot A behind fwguard's back.
    let (_, exit) = t.update_and_judge().await;
    assert_eq!(exit, DaemonExit::Stopped);
    assert_eq!(t.state().known_good, Some(Slot::B));
    let path = t.world.router.slot_path(Slot::A);
    let mut a = std::fs::read(&path).unwrap();
    a[100_000] ^= 0xff;
    std::fs::write(&path, &a).unwrap();
    let status = t.agent().status().unwrap();
    assert_eq!(status.slots[0].verifies, Some(false));
    assert!(status.to_string().contains("DOES NOT VERIFY"), "{status}");
    let before = t.snapshot();
    let e = t.agent().rollback().unwrap_err();
    assert!(e.to_string().contains("slot A: read back sha256"), "{e}");
    assert_eq!(
        t.snapshot(),
        before,
        "the env was switched to a slot that does not verify"
    );
    // The owner's hold works on what runs, identified or not.
    assert_eq!(
        t.agent().hold().unwrap(),
        Action::Done("holding at 1.1".into())
    );
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::UpToDate(_)), "{a:?}");
}

#[tokio::test]
async fn firmware_fwguard_could_not_check_again_is_not_left_without_the_owner_s_word() {
    let mut t = world("off").await;
    // The running slot starts with nothing fwguard reads as a boot image (the simulated
    // machine booted it before; fwguard sees what is there now).
    let path = t.world.router.slot_path(Slot::A);
    let mut a = std::fs::read(&path).unwrap();
    a[..64].fill(0x5a);
    std::fs::write(&path, &a).unwrap();
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let before = t.snapshot();
    // The daemon does not install; the owner is told why, and what `--force` means.
    let a = t
        .agent()
        .update_by(UpdateMode::Install, By::Daemon)
        .await
        .unwrap();
    assert!(
        matches!(&a, Action::UpToDate(why) if why.contains("not installing 1.1: slot A holds unidentified firmware without a boot image")),
        "{a:?}"
    );
    let e = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert!(e.to_string().contains("`--force` installs anyway"), "{e}");
    assert_eq!(t.snapshot(), before, "a refusal wrote a slot or the env");
    let st = t.state();
    let u = st
        .unidentified_in(Slot::A)
        .expect("recorded as unidentified");
    assert!(u.boot_image.is_none());
    let a = t
        .agent()
        .update_by(UpdateMode::Install, By::Owner { force: true })
        .await
        .unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 1.1 in slot B".into()));
}
