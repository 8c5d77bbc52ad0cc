//! A release of several parts kept and installed without its vendor's server: the archive
//! keeps each part next to the boot image and puts all of them back; an offline install from
//! an image file takes the parts from beside it, or refuses with nothing written.

use super::archive::{archived_world, commit_newest, listed, text};
use super::common;

use common::tools::squashfs;
use common::{fwguard, history_has, world, TestWorld};
use fwguard::agent::{Action, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::Slot;

/// Add release `version` with its root file system part.
fn two_part(t: &mut TestWorld, version: &str) -> Vec<u8> {
    let root = squashfs(&t.world.root, version);
    t.world
        .add_image(version, Behaviour::GOOD_WITH_ROOT)
        .unwrap();
    t.world.add_part(version, "root", "rootfs", &root).unwrap();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_keeps_every_part_and_puts_them_all_back() {
    let (mut t, usb) = archived_world(3).await;
    let root = two_part(&mut t, "2.0");
    two_part(&mut t, "2.1");
    commit_newest(&mut t, &["1.0", "2.0"]).await;
    assert_eq!(std::fs::read(usb.join("2.0/part-root.bin")).unwrap(), root);
    commit_newest(&mut t, &["1.0", "2.1"]).await;
    assert!(listed(&t).await.contains(&("2.0".to_string(), true)));

    // The vendor pulls 2.0 from its site. Slot B still holds it; its root is wiped, so that
    // the install shows the archive writes every part back.
    std::fs::remove_file(t.world.www.join("images/root-2.0.img")).unwrap();
    std::fs::remove_file(t.world.www.join("images/fw-2.0.img")).unwrap();
    let b_root = t.world.router.rootfs_path(Slot::B);
    std::fs::write(&b_root, vec![0u8; fwguard::sim::ROOTFS_SIZE as usize]).unwrap();
    let o = fwguard(&t.cfg, &["archive", "install", "2.0"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "2.0"));
    t.settle().await;
    assert!(history_has(&t.state(), "committed", "2.0"));
    assert_eq!(&std::fs::read(&b_root).unwrap()[..root.len()], &root[..]);

    // An archived part that changed is named, listed as failed, and refused.
    let part = usb.join("2.0/part-root.bin");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&part, bytes).unwrap();
    let o = fwguard(&t.cfg, &["archive", "list"]).await;
    let out = text(&o);
    assert!(
        out.contains("part-root.bin") && out.contains("its part \"root\""),
        "{out}"
    );
    assert!(listed(&t).await.contains(&("2.0".to_string(), false)));
}

#[tokio::test]
async fn an_image_file_takes_its_parts_from_beside_it() {
    let mut t = world("off").await;
    let root = two_part(&mut t, "2.0");
    t.world.publish(&["1.0", "2.0"]).unwrap();
    let usb = tempfile::tempdir().unwrap();
    let index = usb.path().join("index.toml");
    for f in ["index.toml", "index.toml.sig"] {
        std::fs::copy(t.world.www.join(f), usb.path().join(f)).unwrap();
    }
    let image = usb.path().join("fw-2.0.img");
    std::fs::copy(t.world.www.join("images/fw-2.0.img"), &image).unwrap();
    t.world.server.take().unwrap().stop();
    // Without the part beside it: refused, nothing written.
    let before = t.snapshot();
    let e = t
        .agent()
        .install_offline(&image, Some(&index), UpdateMode::StageOnly, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("its part \"root\" (root-2.0.img) is not next to"),
        "{e}"
    );
    assert_eq!(t.snapshot(), before);
    // With it: staged, both parts in slot B.
    std::fs::copy(
        t.world.www.join("images/root-2.0.img"),
        usb.path().join("root-2.0.img"),
    )
    .unwrap();
    let a = t
        .agent()
        .install_offline(&image, Some(&index), UpdateMode::StageOnly, true)
        .await
        .unwrap();
    assert_eq!(a, Action::Staged("2.0".parse().unwrap()));
    let b_root = std::fs::read(t.world.router.rootfs_path(Slot::B)).unwrap();
    assert_eq!(&b_root[..root.len()], &root[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_keeps_a_sysupgrade_as_the_slot_held_it_and_puts_it_back() {
    let (mut t, usb) = archived_world(3).await;
    let v = "3.0".parse().unwrap();
    let kernel = fwguard::sim::firmware_image(
        &v,
        fwguard::sim::world::BUILD_TIME,
        16 * 1024,
        Behaviour::GOOD_WITH_ROOT,
    );
    let root = squashfs(&t.world.root, "3.0");
    let img =
        common::sysupgrade::sysupgrade_image(&t.world.root.join("b3"), "sim", &kernel, &root, None);
    t.world.add_sysupgrade("3.0", &img).unwrap();
    two_part(&mut t, "3.1");
    commit_newest(&mut t, &["1.0", "3.0"]).await;
    // The entry holds what the slot held: the kernel and the root, not the tar.
    assert_eq!(std::fs::read(usb.join("3.0/image.bin")).unwrap(), kernel);
    assert_eq!(std::fs::read(usb.join("3.0/part-root.bin")).unwrap(), root);
    assert!(listed(&t).await.contains(&("3.0".to_string(), true)));
    commit_newest(&mut t, &["1.0", "3.0", "3.1"]).await;
    std::fs::remove_file(t.world.www.join("images/fw-3.0.img")).unwrap();
    let o = fwguard(&t.cfg, &["archive", "install", "3.0"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "3.0"));
    t.settle().await;
    assert!(history_has(&t.state(), "committed", "3.0"));
}
