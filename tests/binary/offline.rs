//! Offline install (`fwguard install PATH`) with the vendor's server unreachable: from a copy
//! of the update tree (a USB stick), or from one image file with its signed index; the same
//! signature, hash and board checks as online; anything else refused with nothing written.

use super::common;

use common::trust::reconfigure;
use common::{fwguard, history_has, world};
use fwguard::agent::{Action, UpdateMode};
use fwguard::error::{Error, EXIT_NETWORK};
use fwguard::Slot;
use std::path::Path;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("images")).unwrap();
    for name in ["index.toml", "index.toml.sig"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for e in std::fs::read_dir(from.join("images")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join("images").join(e.file_name())).unwrap();
    }
}

/// A world whose index lists 1.1, copied to a "USB stick"; then the server goes away.
async fn offline() -> (common::TestWorld, tempfile::TempDir) {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let usb = tempfile::tempdir().unwrap();
    copy_tree(&t.world.www, usb.path());
    t.world.server.take().unwrap().stop();
    (t, usb)
}

#[tokio::test]
async fn from_a_usb_stick_with_the_server_gone() {
    let (mut t, usb) = offline().await;
    // The vendor-site check fails now (no server), before as after: forced, it is excused.
    let e = t
        .agent()
        .install_offline(usb.path(), None, UpdateMode::Install, false)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("fails required health checks"),
        "{e}"
    );
    let a = t
        .agent()
        .install_offline(usb.path(), None, UpdateMode::Install, true)
        .await
        .unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 1.1 in slot B".into()));
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "1.1"));
    t.settle().await;
    assert!(history_has(&t.state(), "committed", "1.1"));
}

#[tokio::test]
async fn from_an_image_file_with_its_signed_index() {
    let (t, usb) = offline().await;
    let image = usb.path().join("images/fw-1.1.img");
    let index = usb.path().join("index.toml");
    let a = t
        .agent()
        .install_offline(&image, Some(&index), UpdateMode::StageOnly, true)
        .await
        .unwrap();
    assert_eq!(a, Action::Staged("1.1".parse().unwrap()));
    let slot = std::fs::read(t.world.router.slot_path(Slot::B)).unwrap();
    let img = std::fs::read(&image).unwrap();
    assert_eq!(&slot[..img.len()], &img[..]);
}

#[tokio::test]
async fn what_the_signed_index_does_not_vouch_for_is_refused() {
    let (t, usb) = offline().await;
    let before = std::fs::read(t.world.router.slot_path(Slot::B)).unwrap();
    // An image the index does not list (one byte changed).
    let image = usb.path().join("images/fw-1.1.img");
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[5000] ^= 1;
    let evil = usb.path().join("evil.img");
    std::fs::write(&evil, &bytes).unwrap();
    let e = t
        .agent()
        .install_offline(&evil, None, UpdateMode::Install, true)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("is not a release in the signed index"),
        "{e}"
    );
    // The listed image swapped for other bytes on the stick: the hash check refuses it.
    std::fs::write(&image, &bytes).unwrap();
    let e = t
        .agent()
        .install_offline(usb.path(), None, UpdateMode::Install, true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sha256"), "{e}");
    // A tampered index: the signature check refuses it.
    let text = std::fs::read_to_string(usb.path().join("index.toml")).unwrap();
    std::fs::write(usb.path().join("index.toml"), text.replace("1.1", "1.9")).unwrap();
    let e = t
        .agent()
        .install_offline(usb.path(), None, UpdateMode::Install, true)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Index(_)), "{e}");
    // No index at all.
    let e = t
        .agent()
        .install_offline(&usb.path().join("nowhere"), None, UpdateMode::Install, true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nowhere"), "{e}");
    // The running slot was never touched, and no refused image was left looking bootable.
    let after = std::fs::read(t.world.router.slot_path(Slot::B)).unwrap();
    assert!(after[..4096].iter().all(|&b| b == 0) || after == before);
    assert!(!t.world.router.reboot_requested());
}

#[tokio::test]
async fn an_image_for_another_board_is_refused_before_anything_is_written() {
    let t = world("off").await;
    // The index lists 1.3 twice: this board's image, and another board's image (a zImage
    // for a Linksys-like board: other bytes).
    let v13: fwguard::Version = "1.3".parse().unwrap();
    let other = fwguard::sim::firmware_image_for(
        "linksys-other",
        &v13,
        fwguard::sim::world::BUILD_TIME,
        1 << 20,
        fwguard::sim::Behaviour::GOOD,
    );
    let other_path = t.world.www.join("images/other-1.3.img");
    std::fs::write(&other_path, &other).unwrap();
    let mut world = t;
    world
        .world
        .add_image("1.3", fwguard::sim::Behaviour::GOOD)
        .unwrap();
    let t = world;
    let now = fwguard::time::unix_now().max(fwguard::sim::world::BUILD_TIME);
    let mut d = fwguard::index::build::IndexDraft::new(1, now, now + 86400);
    d.add_release(common::release(&t, "1.3")).unwrap();
    d.add_release(
        fwguard::index::build::NewRelease::from_image(
            v13.clone(),
            vec!["linksys-other".into()],
            vec!["stable".into()],
            vec!["images/other-1.3.img".into()],
            &other_path,
        )
        .unwrap(),
    )
    .unwrap();
    t.world
        .write_index(d.to_toml().as_bytes(), &t.world.key)
        .unwrap();
    let before = t.snapshot();
    let e = t
        .agent()
        .install_offline(
            &other_path,
            Some(&t.world.www.join("index.toml")),
            UpdateMode::Install,
            true,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("for board linksys-other, not for this board (sim)"),
        "{e}"
    );
    assert_eq!(e.exit_code(), fwguard::error::EXIT_VERIFICATION);
    assert_eq!(t.snapshot(), before, "the fallback slot was written");
    assert!(!t.world.router.reboot_requested());
}

#[tokio::test]
async fn nothing_on_the_stick_is_read_through_a_symbolic_link() {
    let (t, usb) = offline().await;
    let before = t.snapshot();
    let refused = |e: fwguard::error::Error| {
        let msg = e.to_string();
        assert!(msg.contains("symbolic link"), "{msg}");
    };
    // The stick's directory given as a link.
    let link = usb.path().parent().unwrap().join(format!(
        "{}-link",
        usb.path().file_name().unwrap().to_str().unwrap()
    ));
    std::os::unix::fs::symlink(usb.path(), &link).unwrap();
    let a = t.agent();
    refused(
        a.install_offline(&link, None, UpdateMode::StageOnly, true)
            .await
            .unwrap_err(),
    );
    // The index, or the images directory, replaced by links into the stick's other tree.
    let real = usb.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::rename(usb.path().join("images"), real.join("images")).unwrap();
    std::os::unix::fs::symlink(real.join("images"), usb.path().join("images")).unwrap();
    refused(
        a.install_offline(usb.path(), None, UpdateMode::StageOnly, true)
            .await
            .unwrap_err(),
    );
    std::fs::rename(usb.path().join("index.toml"), real.join("index.toml")).unwrap();
    std::os::unix::fs::symlink(real.join("index.toml"), usb.path().join("index.toml")).unwrap();
    refused(
        a.install_offline(usb.path(), None, UpdateMode::StageOnly, true)
            .await
            .unwrap_err(),
    );
    assert_eq!(t.snapshot()[0], before[0], "the running slot changed");
    assert_eq!(t.snapshot()[2], before[2], "the env changed");
}

#[tokio::test]
async fn an_index_on_a_device_that_never_answers_fails_as_a_fetch_error_within_fetch_timeout() {
    let t = world("off").await;
    // A FIFO nobody writes stands in for a dead USB stick: opening it never returns.
    let usb = t.world.root.join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let fifo = usb.join("index.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let url = t.world.index_url();
    reconfigure(&t, |c| {
        c.replace(
            &format!("[index]\nurl = \"{url}\""),
            &format!(
                "[index]\nurl = \"file://{}\"\nfetch_timeout = \"1s\"",
                fifo.display()
            ),
        )
    });
    assert!(t.settings().index.url.starts_with("file://"));
    let start = std::time::Instant::now();
    let o = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        fwguard(&t.cfg, &["check"]),
    )
    .await
    .expect("fwguard check gives up on the FIFO");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(EXIT_NETWORK), "{err}");
    assert!(err.contains("no complete answer within 1 s"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}
