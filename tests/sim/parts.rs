//! Releases of several parts: a boot image for the slot and a root file system (a squashfs
//! made with the real mksquashfs) for the slot's `rootfs` target. The sim kernel of these
//! releases mounts its root from that target and panics when it cannot, as a real kernel
//! does; so a slot boots only when both parts are in place.

use super::common;

use common::tools::squashfs;
use common::{history_has, world, TestWorld};
use fwguard::agent::{Action, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::state::UpdateState;
use fwguard::Slot;

/// Add release `version`: a kernel that mounts its root from `rootfs`, and `root` there.
fn two_part(t: &mut TestWorld, version: &str, kernel: Behaviour, root: &[u8]) {
    t.world.add_image(version, kernel).unwrap();
    t.world.add_part(version, "root", "rootfs", root).unwrap();
}

fn rootfs(t: &TestWorld, s: Slot) -> Vec<u8> {
    std::fs::read(t.world.router.rootfs_path(s)).unwrap()
}

#[tokio::test]
async fn a_release_with_a_root_part_is_written_part_by_part_and_committed() {
    let mut t = world("off").await;
    let root = squashfs(&t.world.root, "2.0");
    two_part(&mut t, "2.0", Behaviour::GOOD_WITH_ROOT, &root);
    t.world.publish(&["1.0", "2.0"]).unwrap();
    let rootfs_a = rootfs(&t, Slot::A);
    let (r, _) = t.update_and_judge().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "2.0"));
    let st = t.state();
    assert_eq!(st.update, UpdateState::Idle);
    assert_eq!(st.known_good, Some(Slot::B));
    assert!(history_has(&st, "committed", "2.0"));
    let b = st.slot_b.as_ref().unwrap();
    assert_eq!(b.parts.len(), 1);
    assert_eq!(
        (
            b.parts[0].name.as_str(),
            b.parts[0].target.as_str(),
            b.parts[0].size
        ),
        ("root", "rootfs", root.len() as u64)
    );
    // The root part is in slot B's target, from its first byte; slot A's is untouched.
    assert_eq!(&rootfs(&t, Slot::B)[..root.len()], &root[..]);
    assert_eq!(rootfs(&t, Slot::A), rootfs_a);
    let status = t.agent().status().unwrap();
    let text = status.to_string();
    assert!(
        text.contains(&format!("part root: {} bytes in target rootfs", root.len())),
        "{text}"
    );
    assert_eq!(status.slots[1].verifies, Some(true), "{text}");
    // Nothing to do next: nothing is written.
    let before = t.snapshot();
    let action = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(action, Action::UpToDate(_)), "{action:?}");
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn a_root_part_the_kernel_cannot_mount_is_given_up_by_the_bootloader() {
    let mut t = world("off").await;
    // Signed and intact, but no file system: the kernel panics on mounting it.
    two_part(&mut t, "2.1", Behaviour::GOOD_WITH_ROOT, &[0x5a; 8192]);
    t.world.publish(&["1.0", "2.1"]).unwrap();
    let (r, _) = t.update_and_judge().await;
    assert_eq!(
        (r.slot, r.version.as_str()),
        (Slot::A, "1.0"),
        "{:?}",
        r.log
    );
    assert!(
        r.log.iter().any(|l| l.contains("panic")),
        "the trial kernel did not panic: {:?}",
        r.log
    );
    let st = t.state();
    assert_eq!(
        (st.update.clone(), st.known_good),
        (UpdateState::Idle, Some(Slot::A))
    );
    assert!(st.is_denylisted(&"2.1".parse().unwrap()));
}

#[tokio::test]
async fn a_slot_whose_root_part_changed_is_not_returned_to() {
    let mut t = world("off").await;
    let dir = t.world.root.clone();
    two_part(
        &mut t,
        "2.0",
        Behaviour::GOOD_WITH_ROOT,
        &squashfs(&dir, "2.0"),
    );
    two_part(
        &mut t,
        "2.2",
        Behaviour::GOOD_WITH_ROOT,
        &squashfs(&dir, "2.2"),
    );
    t.world.publish(&["1.0", "2.0"]).unwrap();
    t.update_and_judge().await;
    t.world.publish(&["1.0", "2.0", "2.2"]).unwrap();
    let (r, _) = t.update_and_judge().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "2.2"));
    // Slot B (2.0) has its boot image intact, but one byte of its root changed.
    let path = t.world.router.rootfs_path(Slot::B);
    let mut b = std::fs::read(&path).unwrap();
    b[100] ^= 1;
    std::fs::write(&path, b).unwrap();
    let before = t.snapshot();
    let err = t.agent().rollback().unwrap_err().to_string();
    assert!(
        err.contains("part \"root\" in target rootfs") && err.contains("does not match"),
        "{err}"
    );
    assert_eq!(t.snapshot(), before);
    let status = t.agent().status().unwrap();
    assert_eq!(status.slots[1].verifies, Some(false), "{status}");
    assert!(
        status
            .to_string()
            .contains("DOES NOT VERIFY: slot B: part \"root\""),
        "{status}"
    );
}

#[tokio::test]
async fn a_part_for_a_target_the_board_lacks_is_refused_before_anything_is_written() {
    let mut t = world("off").await;
    t.world.add_image("2.3", Behaviour::GOOD).unwrap();
    t.world.add_part("2.3", "dtb", "dtb", &[1; 512]).unwrap();
    t.world.publish(&["1.0", "2.3"]).unwrap();
    // The check that adopts the running firmware is all that may write.
    t.agent().check().await.unwrap();
    let (before, state) = (t.snapshot(), t.state());
    let err = t
        .agent()
        .update(UpdateMode::Install)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not installing 2.3")
            && err.contains("part \"dtb\" goes to target \"dtb\", which [board] does not configure (configured: rootfs)"),
        "{err}"
    );
    assert_eq!(t.snapshot(), before);
    assert_eq!(t.state(), state);
}
