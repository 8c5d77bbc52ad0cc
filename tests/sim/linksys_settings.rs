//! The owner's settings on the Linksys emulation, as OpenWrt carries them: `sysupgrade -b`
//! (played by tar over the firmware's /etc) makes the backup when the trial is armed, fwguard
//! places it as `sysupgrade.tgz` in the target's fresh `rootfs_data`, and the new firmware's
//! preinit restores it at its first boot. The WAN (PPPoE) comes up only with the owner's
//! account, so a firmware that boots without the settings fails its health checks.
//! `rootfs_data` is the stand-in's directory per slot (`sim::settings_medium`); the kernel's
//! own attach and mount run on the virtual router.

use super::common;

use common::linksys_router::Router;
use fwguard::agent::{Action, UpdateMode};
use fwguard::error::Error;
use fwguard::sim::Behaviour;
use fwguard::state::UpdateState;
use fwguard::Slot;
use std::path::PathBuf;

const WAN_BREAKS: Behaviour = Behaviour {
    wan_up: false,
    ..Behaviour::GOOD_WITH_ROOT
};

/// Slot `s`'s overlay but fwguard's own state (its directory): the owner's settings, each
/// file by its SHA-256 and mode.
fn settings_of(r: &Router, s: Slot) -> Vec<(PathBuf, String, u32)> {
    use sha2::{Digest, Sha256};
    r.overlay(s)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("etc/fwguard"))
        .map(|(p, (bytes, mode))| (p, hex::encode(Sha256::digest(bytes)), mode))
        .collect()
}

/// The update waits, written and verified in slot B, its trial not armed.
fn assert_staged_in_b(st: &fwguard::state::PersistedState, case: &str) {
    let staged = matches!(
        st.update,
        UpdateState::Staged {
            target: Slot::B,
            ..
        }
    );
    assert!(staged, "{case}: {:?}", st.update);
}

fn carried_backup(r: &Router, s: Slot) -> Option<Vec<u8>> {
    std::fs::read(r.overlays[s.index()].join("sysupgrade.tgz")).ok()
}

#[tokio::test]
async fn the_settings_follow_an_update_and_a_rollback_finds_the_old_ones_as_they_were() {
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    r.agent().check().await.unwrap();
    let a_settings = settings_of(&r, Slot::A);
    assert!(r.has_owner_settings(Slot::A));

    // 2.0 is armed from A: the backup of A's /etc (its state, Armed, with it) is in B's
    // rootfs_data before the env switches, and nothing of A's changed.
    r.publish_sysupgrade("2.0", Behaviour::GOOD_WITH_ROOT, &["1.0", "2.0"]);
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.0 in slot B".into()));
    let backup = carried_backup(&r, Slot::B).expect("the backup is in B's rootfs_data");
    assert_eq!(&backup[..2], &[0x1f, 0x8b]);
    assert_eq!(
        settings_of(&r, Slot::A),
        a_settings,
        "A's settings were written"
    );

    // B boots: preinit restores the backup, the WAN comes up with the owner's account, and
    // B's fwguard (with the state that came along) commits.
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    assert!(
        carried_backup(&r, Slot::B).is_none(),
        "restored and removed"
    );
    assert!(r.has_owner_settings(Slot::B));
    r.settle().await;
    let b = r.state_of(Slot::B);
    assert_eq!(
        (&b.update, b.known_good),
        (&UpdateState::Idle, Some(Slot::B))
    );
    assert_eq!(
        b.device_id,
        r.state_of(Slot::A).device_id,
        "the state came along"
    );
    assert!(common::history_has(&b, "committed", "2.0"));

    // The new firmware migrates its settings. 2.1 breaks the WAN: written into A with B's
    // settings, rolled back to B, whose settings are the migrated ones, untouched.
    let net = r.overlays[1].join("etc/config/network");
    let migrated = std::fs::read_to_string(&net).unwrap() + "\toption ipv6 'auto'\n";
    std::fs::write(&net, &migrated).unwrap();
    let b_settings = settings_of(&r, Slot::B);
    r.publish_sysupgrade("2.1", WAN_BREAKS, &["1.0", "2.0", "2.1"]);
    r.agent().update(UpdateMode::Install).await.unwrap();
    assert!(carried_backup(&r, Slot::A).is_some());
    assert_eq!(r.power_on().await, (Slot::A, "2.1".into()));
    assert_eq!(
        std::fs::read_to_string(r.overlays[0].join("etc/config/network")).unwrap(),
        migrated
    );
    r.settle().await;
    assert!(r.flash.reboot_requested(), "2.1 is rolled back");
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    assert_eq!(
        settings_of(&r, Slot::B),
        b_settings,
        "B's settings are as when 2.1 was armed"
    );
    r.settle().await;
    assert!(r.state_of(Slot::B).is_denylisted(&"2.1".parse().unwrap()));
    assert_eq!(settings_of(&r, Slot::B), b_settings);
}

#[tokio::test]
async fn a_backup_that_fails_leaves_the_trial_unarmed_and_nothing_of_the_running_firmware_changed()
{
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    r.publish_sysupgrade("2.0", Behaviour::GOOD_WITH_ROOT, &["1.0", "2.0"]);
    // A backup past the bound (16 MiB): incompressible bytes in /etc.
    let big = r.overlays[0].join("etc/big.bin");
    std::fs::write(
        &big,
        common::tools::incompressible(0x9e37_79b9_7f4a_7c15, 17 << 20),
    )
    .unwrap();
    let env = r.flash.env();
    let a_settings = settings_of(&r, Slot::A);

    let e = r.agent().update(UpdateMode::Install).await.unwrap_err();
    assert!(matches!(e, Error::Carry { slot: Slot::B, .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("not carried into slot B") && text.contains("16777216"),
        "{text}"
    );
    assert_eq!(e.exit_code(), fwguard::error::EXIT_DEVICE);
    assert_eq!(r.flash.env(), env, "the env was written");
    assert!(carried_backup(&r, Slot::B).is_none());
    assert_eq!(settings_of(&r, Slot::A), a_settings);
    let st = r.state();
    assert_staged_in_b(&st, "");
    assert!(common::history_has(&st, "arm-failed", "2.0"));

    // Fixed, the staged slot is armed with the settings.
    std::fs::remove_file(&big).unwrap();
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.0 in slot B".into()));
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    assert!(r.has_owner_settings(Slot::B));
    r.settle().await;
    assert_eq!(r.state_of(Slot::B).known_good, Some(Slot::B));
}

#[tokio::test]
async fn a_power_cut_while_the_settings_are_written_boots_the_old_firmware_and_the_update_is_retried(
) {
    for cut in ["settings-mounted", "settings-carried"] {
        let mut r = Router::new(&[]).await;
        assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
        r.publish_sysupgrade("2.0", Behaviour::GOOD_WITH_ROOT, &["1.0", "2.0"]);
        let a_settings = settings_of(&r, Slot::A);
        r.cut(cut).await;
        assert_eq!(r.power_on().await, (Slot::A, "1.0".into()), "{cut}");
        assert_eq!(settings_of(&r, Slot::A), a_settings, "{cut}");
        r.agent().reconcile().unwrap();
        assert_staged_in_b(&r.state(), cut);
        let a = r.agent().update(UpdateMode::Install).await.unwrap();
        assert_eq!(
            a,
            Action::Reboot("trial boot of 2.0 in slot B".into()),
            "{cut}"
        );
        assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
        assert!(r.has_owner_settings(Slot::B), "{cut}");
        r.settle().await;
        assert_eq!(r.state_of(Slot::B).known_good, Some(Slot::B), "{cut}");
    }
}

#[tokio::test]
async fn with_no_settings_nothing_is_carried_and_the_new_firmware_boots_on_its_defaults() {
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    r.publish_sysupgrade("2.0", Behaviour::GOOD_WITH_ROOT, &["1.0", "2.0"]);
    let a = r
        .agent()
        .on_defaults()
        .update(UpdateMode::Install)
        .await
        .unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.0 in slot B".into()));
    assert!(carried_backup(&r, Slot::B).is_none());
    // On its defaults the PPPoE account is missing: the WAN stays down and the trial is
    // rolled back to A, whose settings are there.
    assert_eq!(r.power_on().await, (Slot::B, "2.0".into()));
    assert!(!r.has_owner_settings(Slot::B));
    r.settle().await;
    assert!(r.flash.reboot_requested());
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    assert!(r.has_owner_settings(Slot::A));
}

#[tokio::test]
async fn no_settings_given_when_staging_holds_when_the_staged_release_is_armed_later() {
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    r.publish_sysupgrade("2.0", Behaviour::GOOD_WITH_ROOT, &["1.0", "2.0"]);
    let a = r
        .agent()
        .on_defaults()
        .update(UpdateMode::StageOnly)
        .await
        .unwrap();
    assert_eq!(a, Action::Staged("2.0".parse().unwrap()));
    assert_staged_in_b(&r.state(), "staged on its defaults");
    let status = r.agent().status().unwrap();
    let staged = status.staged.as_ref().unwrap();
    assert!(
        staged.own_defaults && staged.text.contains("--no-settings"),
        "{staged:?}"
    );
    // Armed later by a command that says nothing about the settings: the owner's word at
    // the install stands, and nothing is carried.
    let a = r.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 2.0 in slot B".into()));
    assert!(
        carried_backup(&r, Slot::B).is_none(),
        "the settings were carried"
    );
    // A release staged without the word is carried as usual.
    let mut r = Router::new(&[]).await;
    assert_eq!(r.power_on().await, (Slot::A, "1.0".into()));
    r.publish_sysupgrade("2.0", Behaviour::GOOD_WITH_ROOT, &["1.0", "2.0"]);
    r.agent().update(UpdateMode::StageOnly).await.unwrap();
    r.agent().update(UpdateMode::Install).await.unwrap();
    assert!(carried_backup(&r, Slot::B).is_some());
}
