//! The Linksys factory image on the Linksys emulation with the stock boot commands: a zImage
//! padded to the kernel's room, then a UBI image (made by the real ubinize, its root a
//! squashfs made by mksquashfs) with the stock `.LINKSYS.` footer (CRC by the real cksum),
//! written whole to kernelN. The emulated kernel mounts its root from the UBI on rootfsN (the
//! tail of kernelN) and UBI rewrites its volume table at the first attach, so the slot no
//! longer matches the image byte for byte once it has run: fwguard checks it by its kernel
//! and its root volume's content, as the index's extents say.

use super::common;

use common::linksys::{factory_image, ROOT_AT};
use common::linksys_router::Router;
use common::ubi::PEB;
use fwguard::agent::{Action, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::state::UpdateState;
use fwguard::Slot;
use sha2::{Digest, Sha256};

/// Publish `version` as its factory image, checked by the extents the vendor tool's code
/// finds in it.
fn publish(r: &mut Router, version: &str, b: Behaviour, listed: &[&str]) -> Vec<u8> {
    let (img, path) = factory_image(&r.world.root, version, b, "WRT32X");
    let extents = fwguard::index::factory::linksys_factory_extents(
        &path,
        Some("WRT32X"),
        ROOT_AT as u64,
        PEB as u64,
    )
    .unwrap();
    assert_eq!(extents.len(), 2);
    r.world.add_image_bytes(version, &img, extents).unwrap();
    r.world.publish(listed).unwrap();
    img
}

fn good_root() -> Behaviour {
    Behaviour::GOOD_WITH_ROOT
}

#[tokio::test]
async fn a_factory_image_commits_a_bad_one_rolls_back_and_a_cut_write_leaves_the_old_booting() {
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));

    // 2.0, good: written whole to kernel2, booted, committed by slot B's own fwguard.
    let img = publish(&mut r, "2.0", good_root(), &["1.0", "2.0"]);
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.0 in slot B".into()));
    assert_eq!(&r.bytes(7)[..img.len()], &img[..]);
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    // UBI grew rootfs_data at the first attach: the raw image no longer matches.
    assert_ne!(
        Sha256::digest(&r.bytes(7)[..img.len()]),
        Sha256::digest(&img)
    );
    r.settle().await;
    let b = r.state_of(Slot::B);
    assert_eq!(
        (b.update.clone(), b.known_good),
        (UpdateState::Idle, Some(Slot::B))
    );
    let rec = b.slot_b.as_ref().unwrap();
    assert_eq!((rec.version.as_str(), rec.good), ("2.0", true));
    assert_eq!(rec.verify.len(), 2);
    let status = r.agent().status().unwrap();
    assert_eq!(status.slots[1].verifies, Some(true), "{status}");

    // 2.1 breaks the WAN: written into kernel1, rolled back to B, which is checked first by
    // its extents (its raw bytes changed when it ran) and so is returned to.
    publish(
        &mut r,
        "2.1",
        Behaviour {
            wan_up: false,
            ..good_root()
        },
        &["1.0", "2.0", "2.1"],
    );
    let k2 = r.bytes(7);
    r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(r.power_on().await, (Slot::A, "2.1".into()));
    r.settle().await;
    assert!(r.flash.reboot_requested());
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    assert_eq!(r.bytes(7), k2, "slot B (the fallback) was written");
    r.settle().await;
    let b = r.state_of(Slot::B);
    assert!(b.is_denylisted(&"2.1".parse().unwrap()), "{:#?}", b.history);

    // 2.2: the power is cut in the middle of writing kernel1. Its start was erased first,
    // so the stock U-Boot could not boot it, and it still boots B as before.
    publish(&mut r, "2.2", good_root(), &["1.0", "2.0", "2.1", "2.2"]);
    r.cut("install-mid-write").await;
    assert!(
        r.bytes(5)[..4096].iter().all(|&b| b == 0xff),
        "kernel1's head is not erased"
    );
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    r.settle().await;
    let b = r.state_of(Slot::B);
    assert_eq!(
        (b.update.clone(), b.known_good),
        (UpdateState::Idle, Some(Slot::B))
    );
    // And the install goes through on the next try.
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.2 in slot A".into()));
    assert_eq!(r.power_on().await, (Slot::A, "2.2".into()));
    r.settle().await;
    let a_state = r.state_of(Slot::A);
    assert_eq!(a_state.known_good, Some(Slot::A), "{:#?}", a_state.history);
}
