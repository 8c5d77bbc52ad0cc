//! The Linksys dual-firmware backend through whole update / commit / rollback cycles on
//! file-backed images of u_env, s_env and the kernel/rootfs partitions, with the stock
//! U-Boot played at every power-on (tests/common/linksys.rs): the env is read and checked
//! with the real fw_printenv, the s_env boot counter is read and counted byte by byte. Each
//! firmware's fwguard has its own state directory, as on the real board.

use super::common;

use common::linksys::{Flash, LIMIT};
use common::linksys_router::Router;
use common::{history_has, PANICS, WAN_DOWN};
use fwguard::agent::{Action, Confirmed, UpdateMode};
use fwguard::sim::Behaviour;
use fwguard::state::UpdateState;
use fwguard::Slot;

/// The router with the images of these tests: 1.1 good, 1.2 breaks the WAN, 1.3 panics.
async fn router() -> Router {
    Router::stock(&[("1.1", Behaviour::GOOD), ("1.2", WAN_DOWN), ("1.3", PANICS)]).await
}

fn env_says(flash: &Flash, part: &str, bootcmd: &str, trial: Option<&str>) {
    let env = flash.env();
    assert_eq!(env["boot_part"], part, "{env:?}");
    assert_eq!(env["bootcmd"], bootcmd, "{env:?}");
    assert_eq!(env["auto_recovery"], "yes", "{env:?}");
    assert_eq!(
        env.get("fwguard_trial").map(String::as_str),
        trial,
        "{env:?}"
    );
    // The stock variables fwguard does not own are kept.
    assert!(env["nandboot"].contains("0x900000") && env["altnandboot"].contains("0x8400000"));
}

#[tokio::test]
async fn update_commit_rollback_and_the_stock_boot_counter() {
    let mut r = router().await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    assert_eq!(r.flash.s_env(), (1, 1), "stock U-Boot counted the boot");

    // A healthy committed boot: the count is reset (one record appended), the env untouched.
    let env_before = r.bytes(1);
    let mut never = std::pin::pin!(std::future::pending::<()>());
    assert_eq!(
        r.agent().confirm_boot(&mut never).await.unwrap(),
        Confirmed::Reset
    );
    assert_eq!(r.flash.s_env(), (0, 2));
    assert_eq!(r.bytes(1), env_before);
    // Nothing counted, nothing written.
    let s_env = r.bytes(2);
    assert_eq!(
        r.agent().confirm_boot(&mut never).await.unwrap(),
        Confirmed::NothingCounted
    );
    assert_eq!((r.bytes(2), r.bytes(1)), (s_env, env_before));

    // Update to 1.1: written to kernel2 only, then boot_part + bootcmd flipped in one write.
    r.world.publish(&["1.0", "1.1"]).unwrap();
    // kernel1 spans rootfs1: all of slot A.
    let k1 = r.bytes(5);
    let action = r.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(action, Action::Reboot(_)), "{action:?}");
    assert!(r.flash.reboot_requested());
    let image = std::fs::read(r.world.www.join("images/fw-1.1.img")).unwrap();
    assert_eq!(&r.bytes(7)[..image.len()], &image[..]);
    assert_eq!(r.bytes(5), k1);
    env_says(&r.flash, "2", "run altnandboot", Some("2"));
    assert_eq!(r.flash.s_env().0, 0);

    // Its first boot is counted; healthy: committed, the trial mark gone, the count reset.
    assert_eq!(r.power_on().await, (Slot::B, "1.1".into()));
    assert_eq!(r.flash.s_env().0, 1);
    r.settle().await;
    let st = r.state();
    assert_eq!(
        (st.update.clone(), st.known_good),
        (UpdateState::Idle, Some(Slot::B))
    );
    assert!(history_has(&st, "committed", "1.1"));
    env_says(&r.flash, "2", "run altnandboot", None);
    assert_eq!(r.flash.s_env().0, 0);

    // 1.2 breaks the WAN: written to kernel1 (the old slot; kernel2 runs and is known-good),
    // judged unhealthy, rolled back to partition 2 with the count reset.
    r.world.publish(&["1.0", "1.1", "1.2"]).unwrap();
    let k2 = r.bytes(7);
    r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(r.bytes(7), k2);
    env_says(&r.flash, "1", "run nandboot", Some("1"));
    assert_eq!(r.power_on().await, (Slot::A, "1.2".into()));
    r.settle().await;
    assert!(r.flash.reboot_requested());
    assert!(history_has(&r.state(), "rollback", "1.2"));
    env_says(&r.flash, "2", "run altnandboot", None);
    assert_eq!(r.flash.s_env().0, 0);
    assert_eq!(r.power_on().await, (Slot::B, "1.1".into()));
    r.settle().await;
    let st = r.state();
    assert!(history_has(&st, "rolled-back", "1.2"));
    assert_eq!(st.known_good, Some(Slot::B));
    assert_eq!(
        r.flash.s_env().0,
        0,
        "the healthy boot after the rollback is confirmed"
    );

    // 1.3 never boots: stock U-Boot counts its boots and, past its limit, goes back to
    // partition 2 by itself; fwguard sees the trial given up and denylists 1.3.
    r.world.publish(&["1.0", "1.1", "1.2", "1.3"]).unwrap();
    r.agent().update(UpdateMode::Install).await.unwrap();
    env_says(&r.flash, "1", "run nandboot", Some("1"));
    assert_eq!(r.power_on().await, (Slot::B, "1.1".into()));
    let boot = r.agent().board.bootloader.read_state().unwrap();
    assert_eq!(
        (boot.primary, boot.trial, boot.fell_back_from),
        (Slot::B, false, Some(Slot::A))
    );
    r.settle().await;
    let st = r.state();
    assert!(history_has(&st, "trial-failed", "1.3"), "{:?}", st.history);
    assert_eq!(
        (st.update.clone(), st.known_good),
        (UpdateState::Idle, Some(Slot::B))
    );
    let choice = r.agent().check().await.unwrap().choice;
    assert!(
        matches!(choice, fwguard::index::select::Choice::UpToDate { .. }),
        "1.2 and 1.3 are denylisted: {choice:?}"
    );
}

#[tokio::test]
async fn an_unhealthy_committed_boot_keeps_its_count() {
    let mut r = router().await;
    let mut never = std::pin::pin!(std::future::pending::<()>());
    // Below the stock limit (past it, U-Boot would boot the other firmware: see above).
    for boot in 1..LIMIT {
        assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
        // The firmware boots, but the internet is unreachable: never confirmed.
        r.world.wan.set_up(false).await.unwrap();
        assert_eq!(
            r.agent().confirm_boot(&mut never).await.unwrap(),
            Confirmed::Failing
        );
        assert_eq!(
            r.flash.s_env().0,
            boot,
            "count kept after unhealthy boot {boot}"
        );
    }
    // Healthy again: one confirmation resets it.
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    assert_eq!(r.flash.s_env().0, LIMIT);
    assert_eq!(
        r.agent().confirm_boot(&mut never).await.unwrap(),
        Confirmed::Reset
    );
    assert_eq!(r.flash.s_env().0, 0);
}

#[tokio::test]
async fn the_s_env_log_fills_and_is_erased_as_u_boot_expects() {
    // 128 pages: after many boots and confirmations the log wraps (erase, then record 0),
    // and what fwguard appends stays readable by the byte-level reader.
    let mut r = router().await;
    let mut never = std::pin::pin!(std::future::pending::<()>());
    let mut wrapped = false;
    let mut last = 0;
    for _ in 0..70 {
        r.power_on().await;
        r.agent().confirm_boot(&mut never).await.unwrap();
        let (count, records) = r.flash.s_env();
        assert_eq!(count, 0);
        wrapped |= records < last;
        last = records;
    }
    assert!(wrapped, "the log never filled");
}
