//! OpenWrt's sysupgrade image (a tar made by the real tar, with fwtool's metadata trailer)
//! on the sim board: the device streams the file once; the signed index says where in it the
//! kernel (the slot's boot image) and the root (for the `rootfs` target) are, so nothing of
//! the tar is parsed on the device and nothing but those bytes is written.

use super::common;

use common::sysupgrade::{metadata, sysupgrade_image};
use common::tools::squashfs;
use common::{history_has, world, TestWorld};
use fwguard::agent::UpdateMode;
use fwguard::sim::{firmware_image, Behaviour};
use fwguard::state::UpdateState;
use fwguard::Slot;

/// Publish `version` as a sysupgrade image of a kernel behaving as `b` and `root`; returns
/// (kernel, image).
fn publish(t: &mut TestWorld, version: &str, b: Behaviour, root: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let v = version.parse().unwrap();
    let kernel = firmware_image(&v, fwguard::sim::world::BUILD_TIME, 16 * 1024, b);
    let dir = t.world.root.join(format!("build-{version}"));
    let meta = metadata("fwguard,sim", version, "1.0");
    let img = sysupgrade_image(&dir, "sim", &kernel, root, Some(&meta));
    t.world.add_sysupgrade(version, &img).unwrap();
    t.world.publish(&["1.0", version]).unwrap();
    (kernel, img)
}

#[tokio::test]
async fn a_sysupgrade_image_streams_its_kernel_to_the_slot_and_its_root_to_its_target() {
    let mut t = world("off").await;
    let root = squashfs(&t.world.root, "2.0");
    let (kernel, img) = publish(&mut t, "2.0", Behaviour::GOOD_WITH_ROOT, &root);
    assert!(
        img.len() > kernel.len() + root.len(),
        "the tar has headers and metadata"
    );
    let (r, _) = t.update_and_judge().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "2.0"));
    let st = t.state();
    assert!(history_has(&st, "committed", "2.0"));
    let b = st.slot_b.as_ref().unwrap();
    assert_eq!(
        b.size,
        kernel.len() as u64,
        "the slot holds the kernel, not the tar"
    );
    assert_eq!(b.parts[0].size, root.len() as u64);
    let slot = std::fs::read(t.world.router.slot_path(Slot::B)).unwrap();
    assert_eq!(&slot[..kernel.len()], &kernel[..]);
    assert!(
        slot[kernel.len()..kernel.len() + 8192]
            .iter()
            .all(|&x| x == 0),
        "bytes of the tar other than the kernel were written to the slot"
    );
    let rootfs = std::fs::read(t.world.router.rootfs_path(Slot::B)).unwrap();
    assert_eq!(&rootfs[..root.len()], &root[..]);
    assert_eq!(t.agent().status().unwrap().slots[1].verifies, Some(true));
}

#[tokio::test]
async fn a_sysupgrade_whose_root_does_not_mount_is_given_up_by_the_bootloader() {
    let mut t = world("off").await;
    publish(&mut t, "2.1", Behaviour::GOOD_WITH_ROOT, &[0x5a; 8192]);
    let (r, _) = t.update_and_judge().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "1.0"));
    let st = t.state();
    assert_eq!(
        (st.update.clone(), st.known_good),
        (UpdateState::Idle, Some(Slot::A))
    );
    assert!(st.is_denylisted(&"2.1".parse().unwrap()));
}

#[tokio::test]
async fn a_sysupgrade_changed_outside_its_kernel_and_root_is_refused_and_never_booted() {
    let mut t = world("off").await;
    let root = squashfs(&t.world.root, "2.2");
    publish(&mut t, "2.2", Behaviour::GOOD_WITH_ROOT, &root);
    // The mirror serves the file with one byte of its CONTROL member changed: the kernel and
    // the root still hash right, the file does not.
    let path = t.world.www.join("images/fw-2.2.img");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(6).position(|w| w == b"BOARD=").unwrap();
    bytes[at] = b'b';
    std::fs::write(&path, bytes).unwrap();
    let err = t
        .agent()
        .update(UpdateMode::Install)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the downloaded file of 2.2 is") && err.contains("the index states"),
        "{err}"
    );
    let st = t.state();
    assert_eq!(st.update, UpdateState::Idle);
    assert!(!t.world.router.reboot_requested());
    // Slot B was never made bootable: the next boot is slot A, as before.
    let slot = std::fs::read(t.world.router.slot_path(Slot::B)).unwrap();
    assert!(slot[..4096].iter().all(|&x| x == 0));
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "1.0"));
}

#[tokio::test]
async fn a_staged_sysupgrade_is_armed_without_being_written_again() {
    let mut t = world("off").await;
    let root = squashfs(&t.world.root, "2.3");
    publish(&mut t, "2.3", Behaviour::GOOD_WITH_ROOT, &root);
    let a = t.agent().update(UpdateMode::StageOnly).await.unwrap();
    assert_eq!(a, fwguard::agent::Action::Staged("2.3".parse().unwrap()));
    let server = t.world.server.as_ref().unwrap();
    let fetched = server.ranges("/images/fw-2.3.img").len();
    let slots = t.snapshot();
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, fwguard::agent::Action::Reboot(_)), "{a:?}");
    let server = t.world.server.as_ref().unwrap();
    assert_eq!(
        server.ranges("/images/fw-2.3.img").len(),
        fetched,
        "downloaded again"
    );
    let now = t.snapshot();
    assert_eq!(
        (&now[0], &now[1], &now[3], &now[4]),
        (&slots[0], &slots[1], &slots[3], &slots[4])
    );
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "2.3"));
}
