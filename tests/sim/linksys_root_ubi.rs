//! OpenWrt's sysupgrade image and a raw multi-part release on the Linksys emulation with the
//! stock boot commands: the kernel goes raw to kernelN, the root into volume `rootfs` of a
//! fresh UBI on rootfsN (the tail of kernelN) with an empty `rootfs_data`, as OpenWrt's own
//! sysupgrade leaves the slot. The emulated kernel attaches that UBI as the kernel does (one
//! image, the layout volume, the autoresize volume grown at the first attach) and mounts its
//! root from it. Images are made by the real tar, mksquashfs and ubinize.

use super::common;

use common::linksys::ROOT_AT;
use common::linksys_router::Router;
use common::ubi::{self, PEB};
use fwguard::agent::{Action, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::state::UpdateState;
use fwguard::Slot;

fn kernel(version: &str, b: Behaviour) -> Vec<u8> {
    common::linksys_router::kernel(version, b)
}

fn root(r: &Router, version: &str) -> Vec<u8> {
    common::linksys_router::root(&r.world, version)
}

fn publish_sysupgrade(
    r: &mut Router,
    version: &str,
    b: Behaviour,
    listed: &[&str],
) -> (Vec<u8>, Vec<u8>) {
    r.publish_sysupgrade(version, b, listed)
}

/// What the kernelN partition `mtd` holds: (its kernel, the root volume, the data volume).
fn slot_content(
    r: &Router,
    mtd: u32,
    kernel_len: usize,
) -> (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>) {
    let bytes = r.bytes(mtd);
    let area = &bytes[ROOT_AT..];
    (
        bytes[..kernel_len].to_vec(),
        ubi::volume(area, "rootfs"),
        ubi::volume(area, "rootfs_data"),
    )
}

#[tokio::test]
async fn a_sysupgrade_image_commits_a_bad_one_rolls_back_and_a_cut_write_leaves_the_old_booting() {
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    let k1 = r.bytes(5);

    // 2.0: kernel to kernel2, root into a fresh UBI on rootfs2; booted, committed by B.
    let (k, root) = publish_sysupgrade(&mut r, "2.0", Behaviour::GOOD_WITH_ROOT, &["1.0", "2.0"]);
    assert!(root.len() > 2 * PEB, "the root spans several UBI blocks");
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.0 in slot B".into()));
    assert_eq!(r.bytes(5), k1, "the running slot was written");
    let (kern, vol, data) = slot_content(&r, 7, k.len());
    assert_eq!(kern, k);
    let vol = vol.expect("rootfs2 holds a UBI with volume rootfs");
    assert_eq!(&vol[..root.len()], &root[..]);
    assert!(
        data.expect("and a rootfs_data volume").is_empty(),
        "rootfs_data is fresh"
    );
    assert!(ubi::has_autoresize(&r.bytes(7)[ROOT_AT..]));
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    assert!(
        !ubi::has_autoresize(&r.bytes(7)[ROOT_AT..]),
        "the kernel grew rootfs_data"
    );
    r.settle().await;
    let b = r.state_of(Slot::B);
    assert_eq!(
        (b.update.clone(), b.known_good),
        (UpdateState::Idle, Some(Slot::B))
    );
    let rec = b.slot_b.as_ref().unwrap();
    assert_eq!(
        (rec.version.as_str(), rec.good, rec.size),
        ("2.0", true, k.len() as u64)
    );
    assert_eq!(rec.parts[0].target, "rootfs");
    let status = r.agent().status().unwrap();
    assert_eq!(status.slots[1].verifies, Some(true), "{status}");

    // 2.1 breaks the WAN: written into slot A, rolled back to B, whose UBI (rewritten by its
    // kernel at the first attach) still verifies by its root's content.
    publish_sysupgrade(
        &mut r,
        "2.1",
        Behaviour {
            wan_up: false,
            ..Behaviour::GOOD_WITH_ROOT
        },
        &["1.0", "2.0", "2.1"],
    );
    let k2 = r.bytes(7);
    r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(r.bytes(7), k2, "the running slot was written");
    assert_eq!(r.power_on().await, (Slot::A, "2.1".into()));
    r.settle().await;
    assert!(r.flash.reboot_requested());
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    assert_eq!(r.bytes(7), k2, "slot B (the fallback) was written");
    r.settle().await;
    assert!(r.state_of(Slot::B).is_denylisted(&"2.1".parse().unwrap()));

    // 2.2: the power is cut halfway through the file. kernel1's head was erased first and
    // rootfs1 holds no volume table: the stock U-Boot boots B as before.
    publish_sysupgrade(
        &mut r,
        "2.2",
        Behaviour::GOOD_WITH_ROOT,
        &["1.0", "2.0", "2.1", "2.2"],
    );
    r.cut("install-mid-write").await;
    assert!(
        r.bytes(5)[..4096].iter().all(|&b| b == 0xff),
        "kernel1's head is not erased"
    );
    assert_eq!(
        ubi::volume(&r.bytes(5)[ROOT_AT..], "rootfs"),
        None,
        "rootfs1 reads as a UBI"
    );
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    r.settle().await;
    assert_eq!(r.state_of(Slot::B).known_good, Some(Slot::B));
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.2 in slot A".into()));
    assert_eq!(r.power_on().await, (Slot::A, "2.2".into()));
    r.settle().await;
    assert_eq!(r.state_of(Slot::A).known_good, Some(Slot::A));
}

/// Publish `version` as a kernel (the slot's boot image) and a root part for `rootfs`.
fn publish_parts(r: &mut Router, version: &str, k: &[u8], root: &[u8], listed: &[&str]) {
    r.world.add_image_bytes(version, k, Vec::new()).unwrap();
    r.world.add_part(version, "root", "rootfs", root).unwrap();
    r.world.publish(listed).unwrap();
}

#[tokio::test]
async fn a_raw_multi_part_release_commits_a_root_that_does_not_mount_is_given_up_and_a_cut_leaves_the_old(
) {
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    let k1 = r.bytes(5);

    // A kernel that runs into rootfs2 is refused before anything is written.
    let big = kernel("1.9", Behaviour::GOOD_WITH_ROOT);
    let mut big = big.clone();
    big.resize(ROOT_AT + 4096, 0);
    let root19 = root(&r, "1.9");
    publish_parts(&mut r, "1.9", &big, &root19, &["1.0", "1.9"]);
    let k2 = r.bytes(7);
    let e = r
        .agent()
        .update(UpdateMode::Install)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("boot image") && e.contains("before target rootfs"),
        "{e}"
    );
    assert_eq!(r.bytes(7), k2, "a refused release wrote slot B");

    // 3.0: kernel and root, each from its own file.
    let (k, root3) = (kernel("3.0", Behaviour::GOOD_WITH_ROOT), root(&r, "3.0"));
    publish_parts(&mut r, "3.0", &k, &root3, &["1.0", "3.0"]);
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 3.0 in slot B".into()));
    assert_eq!(r.bytes(5), k1);
    let (kern, vol, _) = slot_content(&r, 7, k.len());
    assert_eq!(
        (kern, &vol.unwrap()[..root3.len()]),
        (k.clone(), &root3[..])
    );
    assert_eq!(r.power_on().await, (Slot::B, "3.0".into()));
    r.settle().await;
    assert_eq!(r.state_of(Slot::B).known_good, Some(Slot::B));

    // 3.1's root is no file system: its kernel panics at every boot until the stock
    // counter gives it up; B's fwguard records that and never offers 3.1 again.
    let k31 = kernel("3.1", Behaviour::GOOD_WITH_ROOT);
    publish_parts(
        &mut r,
        "3.1",
        &k31,
        &[0x5a; 200_000],
        &["1.0", "3.0", "3.1"],
    );
    let k2 = r.bytes(7);
    r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(r.power_on().await, (Slot::B, "3.0".into()));
    assert_eq!(r.bytes(7), k2);
    r.settle().await;
    let b = r.state_of(Slot::B);
    assert_eq!(
        (b.update.clone(), b.known_good),
        (UpdateState::Idle, Some(Slot::B))
    );
    assert!(b.is_denylisted(&"3.1".parse().unwrap()), "{:#?}", b.history);

    // 3.2: cut after its root is written, before its kernel: kernel1 was invalidated first.
    let (k32, root32) = (kernel("3.2", Behaviour::GOOD_WITH_ROOT), root(&r, "3.2"));
    publish_parts(&mut r, "3.2", &k32, &root32, &["1.0", "3.0", "3.1", "3.2"]);
    r.cut("install-part-written").await;
    assert!(
        r.bytes(5)[..4096].iter().all(|&b| b == 0xff),
        "kernel1's head is not erased"
    );
    assert_eq!(r.power_on().await, (Slot::B, "3.0".into()));
    r.settle().await;
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 3.2 in slot A".into()));
    assert_eq!(r.power_on().await, (Slot::A, "3.2".into()));
    r.settle().await;
    assert_eq!(r.state_of(Slot::A).known_good, Some(Slot::A));
    let status = r.agent().status().unwrap();
    assert_eq!(status.slots[1].verifies, Some(true), "{status}");
}

#[tokio::test]
async fn a_root_part_is_not_written_where_the_kernel_might_not_attach_it() {
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    publish_sysupgrade(&mut r, "2.0", Behaviour::GOOD_WITH_ROOT, &["1.0", "2.0"]);
    let sys = r.flash.root.join("sys/class");
    let k2 = r.bytes(7);
    // rootfs2's sub-page size is unknown (so where UBI wants its headers).
    std::fs::rename(sys.join("mtd/mtd8/subpagesize"), sys.join("subpagesize")).unwrap();
    let e = r
        .agent()
        .update(UpdateMode::Install)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sub-page size") && e.contains("mtd8/subpagesize"),
        "{e}"
    );
    std::fs::rename(sys.join("subpagesize"), sys.join("mtd/mtd8/subpagesize")).unwrap();
    // rootfs2 does not start where kernel2's room ends.
    let off = sys.join("mtd/mtd8/offset");
    let good = std::fs::read_to_string(&off).unwrap();
    std::fs::write(&off, "0\n").unwrap();
    let e = r
        .agent()
        .update(UpdateMode::Install)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the tail of kernel2"), "{e}");
    std::fs::write(&off, good).unwrap();
    // A UBI device is attached to rootfs2.
    std::fs::create_dir_all(sys.join("ubi/ubi1")).unwrap();
    std::fs::write(sys.join("ubi/ubi1/mtd_num"), "8\n").unwrap();
    let e = r
        .agent()
        .update(UpdateMode::Install)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ubi1 is attached to mtd8"), "{e}");
    std::fs::remove_dir_all(sys.join("ubi/ubi1")).unwrap();
    assert_eq!(r.bytes(7), k2, "a refused install wrote slot B");
    let st = r.state();
    assert_eq!(
        (st.update.clone(), st.known_good),
        (UpdateState::Idle, Some(Slot::A))
    );
    // Then it installs.
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.0 in slot B".into()));
}
