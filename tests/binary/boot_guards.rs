//! Boots that fwguard's state does not fully explain: a trial armed while the state was
//! lost, a trial the bootloader gave up before the owner marked it good, an env that the
//! bootloader does not read, an arm whose read-back failed after the env write took effect.
//! Each must end on a good firmware without writing the slot the bootloader falls back to.

use super::common;

use common::{fwguard, history_has, run_daemon_for, world, TestWorld};
use fwguard::agent::{Action, Agent, UpdateMode};
use fwguard::config::Settings;
use fwguard::error::EXIT_DISALLOWED;
use fwguard::state::UpdateState;
use fwguard::Slot;
use std::path::PathBuf;

/// 1.1 published, written to slot B and armed; the router is not rebooted yet.
async fn armed_world() -> TestWorld {
    let mut t = world("off").await;
    t.world.publish(&["1.1"]).unwrap();
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::Reboot(_)), "{a:?}");
    t
}

#[tokio::test]
async fn a_trial_armed_with_the_state_lost_is_left_to_the_boot_counter_and_its_fallback_is_never_written(
) {
    let mut t = armed_world().await;
    // The state is lost between arming and the trial boot (on OpenWrt a state_dir on tmpfs).
    std::fs::remove_dir_all(t.settings().state_dir).unwrap();
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "1.1"));
    let fallback = std::fs::read(t.world.router.slot_path(Slot::A)).unwrap();
    let before = t.snapshot();
    let fetches = t.index_fetches();
    t.world
        .add_image("1.3", fwguard::sim::Behaviour::GOOD)
        .unwrap();
    t.world.publish(&["1.1", "1.3"]).unwrap();
    for args in [
        &["update", "--stage-only"][..],
        &["update"],
        &["pin", "1.3"],
        &["mark-good"],
    ] {
        let out = fwguard(&t.cfg, args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EXIT_DISALLOWED), "{args:?}: {err}");
        assert!(
            err.contains("trial of slot B armed") && err.contains("fall back to slot A"),
            "{args:?}: {err}"
        );
        assert_eq!(t.snapshot(), before, "{args:?} changed the router");
    }
    let offline = t.world.www.clone();
    let out = fwguard(&t.cfg, &["install", offline.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(EXIT_DISALLOWED));
    // The daemon writes nothing, installs nothing, does not adopt the untested firmware.
    let exit = run_daemon_for(t.agent(), 1500).await;
    assert_eq!(exit, fwguard::agent::DaemonExit::Stopped);
    assert_eq!(t.snapshot(), before, "the daemon changed the router");
    assert!(!t.world.router.reboot_requested());
    let st = t.state();
    assert_eq!(st.known_good, None, "the untested firmware was adopted");
    assert!(st.history.is_empty(), "{:?}", st.history);
    let status = fwguard(&t.cfg, &["status"]).await;
    assert!(String::from_utf8_lossy(&status.stdout).contains("fwguard did not arm"));
    assert_eq!(t.index_fetches(), fetches, "the daemon checked for updates");
    // The bootloader's counter settles it: without a commit it falls back to slot A, which
    // holds exactly what it held.
    let mut last = r;
    for _ in 0..4 {
        last = t.power_cycle().await;
    }
    assert_eq!(last.slot, Slot::A);
    assert_eq!(
        std::fs::read(t.world.router.slot_path(Slot::A)).unwrap(),
        fallback
    );
    t.settle().await;
    assert_eq!(t.state().known_good, Some(Slot::A));
}

#[tokio::test]
async fn mark_good_refuses_a_trial_the_bootloader_gave_up() {
    let mut t = armed_world().await;
    t.power_cycle().await; // B on trial (bootcount 1)
    assert_eq!(
        t.agent().reconcile().unwrap(),
        fwguard::agent::Situation::Trial
    );
    // B reboots without fwguard committing until U-Boot gives it up and boots A.
    let mut r = t.power_cycle().await;
    while r.slot == Slot::B {
        r = t.power_cycle().await;
    }
    assert!(matches!(
        t.state().update,
        UpdateState::Trial { slot: Slot::B, .. }
    ));
    let before = t.snapshot();
    let out = fwguard(&t.cfg, &["mark-good"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_DISALLOWED), "{err}");
    assert!(err.contains("not the trial slot B"), "{err}");
    assert_eq!(t.snapshot(), before, "mark-good wrote the env");
    // The daemon then records the given-up trial.
    t.settle().await;
    let st = t.state();
    assert_eq!(st.known_good, Some(Slot::A));
    assert!(history_has(&st, "trial-failed", "1.1"));
}

/// The world's config with a `uboot` board over the sim router's files: the env at `env`,
/// the slots at `slot_a` and `slot_b`, the world's directory (which holds the state) on the
/// shared data partition. Returns the config's path.
fn uboot_config(t: &TestWorld, env: &std::path::Path, slot_a: &str, slot_b: &str) -> PathBuf {
    uboot_config_with(t, env, slot_a, slot_b, "")
}

/// [`uboot_config`] with `extra` after the `[board]` section (its targets).
fn uboot_config_with(
    t: &TestWorld,
    env: &std::path::Path,
    slot_a: &str,
    slot_b: &str,
    extra: &str,
) -> PathBuf {
    let router = t.world.router.dir();
    let proc = t.world.root.join("proc");
    common::data_mountinfo(&proc, &t.world.root);
    let text = std::fs::read_to_string(&t.cfg).unwrap();
    let board = format!(
        "[board]\nprofile = \"uboot\"\nid = \"sim\"\nenv_device = \"{}\"\nenv_size = {}\nslot_a = \"{slot_a}\"\nslot_b = \"{slot_b}\"\ncmdline = \"{}\"\nproc = \"{}\"\nreboot_command = [\"touch\", \"{}\"]\n",
        env.display(),
        fwguard::sim::ENV_SIZE,
        router.join("cmdline").display(),
        proc.display(),
        router.join("reboot-requested").display(),
    ) + extra;
    let start = text.find("[board]").unwrap();
    let end = start + text[start..].find("\n[trial]").unwrap();
    let cfg = t.world.root.join("etc/uboot.toml");
    std::fs::write(&cfg, format!("{}{board}{}", &text[..start], &text[end..])).unwrap();
    cfg
}

/// A board whose fw_env.config names another environment than the one the (simulated)
/// bootloader reads: the `uboot` profile over the sim router's slots, with its env copied.
fn wrong_env_agent(t: &TestWorld) -> (Agent, PathBuf) {
    let stray = t.world.root.join("stray-env.img");
    if !stray.exists() {
        std::fs::copy(t.world.router.env_path(), &stray).unwrap();
    }
    let slot = |s| t.world.router.slot_path(s).display().to_string();
    let cfg = uboot_config(t, &stray, &slot(Slot::A), &slot(Slot::B));
    let agent = Agent::from_settings(Settings::load(&cfg).unwrap()).unwrap();
    (agent, stray)
}

#[tokio::test]
async fn an_env_the_bootloader_does_not_read_gives_the_release_up_after_three_boots() {
    let mut t = world("off").await;
    t.world.publish(&["1.1"]).unwrap();
    let (agent, stray) = wrong_env_agent(&t);
    let real_env = std::fs::read(t.world.router.env_path()).unwrap();
    let a = agent.update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::Reboot(_)), "{a:?}");
    let mut reboots = 1;
    loop {
        let r = t.power_cycle().await;
        assert_eq!(r.slot, Slot::A, "the bootloader never reads the stray env");
        match wrong_env_agent(&t).0.reconcile().unwrap() {
            fwguard::agent::Situation::NeedsReboot(_) => reboots += 1,
            other => {
                assert_eq!(other, fwguard::agent::Situation::Idle);
                break;
            }
        }
        assert!(reboots <= 3, "still rebooting after {reboots} boots");
    }
    assert_eq!(reboots, 3);
    let st = t.state();
    assert_eq!(st.update, UpdateState::Idle);
    let failed = st
        .history
        .iter()
        .rev()
        .find(|h| h.event == "trial-failed")
        .unwrap();
    assert!(
        failed
            .detail
            .contains("does not read the environment fwguard writes"),
        "{}",
        failed.detail
    );
    assert!(st.is_denylisted(&"1.1".parse().unwrap()));
    // The env fwguard writes points at the running slot again, and the bootloader's own env
    // was never touched.
    let stray_vars = fwguard::boot::env_store::EnvLocation {
        path: stray,
        offset: 0,
        size: fwguard::sim::ENV_SIZE,
    }
    .read_vars()
    .unwrap();
    assert_eq!(stray_vars.get("boot_slot"), Some("A"));
    assert_eq!(stray_vars.get("upgrade_available"), Some("0"));
    assert_eq!(std::fs::read(t.world.router.env_path()).unwrap(), real_env);
}

#[tokio::test]
async fn a_staged_release_whose_arm_took_effect_is_judged_on_its_trial_boot() {
    let mut t = world("off").await;
    t.world.publish(&["1.1"]).unwrap();
    let a = t.agent().update(UpdateMode::StageOnly).await.unwrap();
    assert!(matches!(a, Action::Staged(_)), "{a:?}");
    // The arm's env write took effect but its read-back failed: the state went back to
    // staged while the env boots slot B on trial.
    let env = t.world.router.env();
    let mut vars = env.read_vars().unwrap();
    for (k, v) in [
        ("boot_slot", "B"),
        ("upgrade_available", "1"),
        ("bootcount", "0"),
    ] {
        vars.set(k, v).unwrap();
    }
    env.write_vars(&vars).unwrap();
    assert!(matches!(t.state().update, UpdateState::Staged { .. }));
    let r = t.power_cycle().await;
    assert_eq!(r.slot, Slot::B);
    t.settle().await;
    let st = t.state();
    assert_eq!(st.known_good, Some(Slot::B), "{:?}", st.history);
    assert!(history_has(&st, "committed", "1.1"));
}

#[tokio::test]
async fn two_names_for_one_slot_are_refused_in_the_config_and_before_every_write() {
    let mut t = world("off").await;
    t.world.publish(&["1.1"]).unwrap();
    let env = t.world.router.env_path();
    let a = t.world.router.slot_path(Slot::A).display().to_string();
    // In the configuration: a symlink to slot A, and an MTD partition under its two names.
    let link = t.world.root.join("slot-b-link.img");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let cfg = uboot_config(&t, &env, &a, &link.display().to_string());
    let e = Settings::load(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("board.slot_b") && e.contains("the same file"),
        "{e}"
    );
    let cfg = uboot_config(&t, &env, "/dev/mtd5", "/dev/mtdblock5");
    let e = Settings::load(&cfg).unwrap_err().to_string();
    assert!(e.contains("MTD partition mtd5"), "{e}");
    // Before a write: slot B's device is replaced by a link to slot A after the daemon read
    // its configuration.
    let b = t.world.root.join("slot-b-moved.img");
    std::fs::copy(t.world.router.slot_path(Slot::B), &b).unwrap();
    let cfg = uboot_config(&t, &env, &a, &b.display().to_string());
    let agent = Agent::from_settings(Settings::load(&cfg).unwrap()).unwrap();
    std::fs::remove_file(&b).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let before = t.snapshot();
    let e = agent.update(UpdateMode::StageOnly).await.unwrap_err();
    assert_eq!(e.exit_code(), fwguard::error::EXIT_CONFIG, "{e}");
    assert!(e.to_string().contains("same storage"), "{e}");
    assert_eq!(t.snapshot(), before, "the running slot was written");
    // Read now, the configuration itself is refused.
    let doctor = fwguard(&cfg, &["doctor"]).await;
    let text = String::from_utf8_lossy(&doctor.stderr);
    assert_eq!(doctor.status.code(), Some(fwguard::error::EXIT_CONFIG));
    assert!(
        text.contains("board.slot_b") && text.contains("the same file"),
        "{text}"
    );
}

/// A target path that becomes the other slot's storage after the configuration was read (a
/// symbolic link made later) is refused before anything is written.
#[tokio::test]
async fn a_target_that_turns_into_a_slot_s_storage_is_refused_before_a_write() {
    let mut t = world("off").await;
    let root = common::tools::squashfs(&t.world.root, "2.0");
    t.world
        .add_image("2.0", fwguard::sim::Behaviour::GOOD_WITH_ROOT)
        .unwrap();
    t.world.add_part("2.0", "root", "rootfs", &root).unwrap();
    t.world.publish(&["1.0", "2.0"]).unwrap();
    let r = &t.world.router;
    let late = t.world.root.join("rootfs-b-link.img");
    let targets = format!(
        "[board.targets.rootfs]\nslot_a = \"{}\"\nslot_b = \"{}\"\n",
        r.rootfs_path(Slot::A).display(),
        late.display()
    );
    let slot = |s| r.slot_path(s).display().to_string();
    let cfg = uboot_config_with(&t, &r.env_path(), &slot(Slot::A), &slot(Slot::B), &targets);
    let settings = Settings::load(&cfg).unwrap();
    // After the configuration was read, slot B's target becomes slot A's boot device.
    std::os::unix::fs::symlink(r.slot_path(Slot::A), &late).unwrap();
    let before = t.snapshot();
    let err = Agent::from_settings(settings)
        .unwrap()
        .update(UpdateMode::Install)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("slot A and slot B's target rootfs are the same storage"),
        "{err}"
    );
    assert_eq!(t.snapshot(), before);
}
