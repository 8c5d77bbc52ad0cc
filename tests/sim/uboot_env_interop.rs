//! fwguard's U-Boot environment against the real tools: libubootenv's `fw_printenv` /
//! `fw_setenv` (Debian libubootenv-tool 0.3.x) and u-boot-tools' `mkenvimage`. Installed by
//! tests/run.sh; a missing tool fails the test.

use super::common;

use common::tools::tool;
use fwguard::boot::env_store::EnvLocation;
use fwguard::boot::uboot_env::EnvVars;
use fwguard::sim::{firmware_image, Behaviour, SimRouter, ENV_SIZE};
use std::path::Path;
use std::process::Command;

/// A one-line fw_env.config for `file`.
fn config(dir: &Path, file: &Path) -> String {
    let c = dir.join("fw_env.config");
    std::fs::write(
        &c,
        format!("{} 0x0 {ENV_SIZE:#x} {ENV_SIZE:#x}\n", file.display()),
    )
    .unwrap();
    c.display().to_string()
}

/// An env file holding the sim bootloader's default environment, written by fwguard.
fn default_env(dir: &Path) -> (EnvLocation, std::path::PathBuf) {
    let file = dir.join("env.img");
    std::fs::write(&file, vec![0u8; ENV_SIZE]).unwrap();
    let env = EnvLocation {
        path: file.clone(),
        offset: 0,
        size: ENV_SIZE,
    };
    env.write_vars(&SimRouter::default_env()).unwrap();
    (env, file)
}

fn printenv(cfg: &str) -> Vec<(String, String)> {
    tool("fw_printenv", &["-c", cfg])
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn fw_printenv_reads_what_fwguard_arms() {
    let dir = tempfile::tempdir().unwrap();
    let img = firmware_image(&"1.0".parse().unwrap(), 1, 4096, Behaviour::GOOD);
    let sim = SimRouter::create(dir.path().join("r"), 1 << 20, &img).unwrap();
    sim.reboot().unwrap();
    let cfg = config(dir.path(), &sim.env_path());
    // Arm a trial the way the agent does, in one write.
    let env = sim.env();
    let mut v = env.read_vars().unwrap();
    for (k, val) in [
        ("boot_slot", "B"),
        ("upgrade_available", "1"),
        ("bootcount", "0"),
    ] {
        v.set(k, val).unwrap();
    }
    v.set("note", "spaces and = signs survive").unwrap();
    env.write_vars(&v).unwrap();
    let mut ours: Vec<(String, String)> = v.iter().map(|(k, v)| (k.into(), v.into())).collect();
    ours.sort();
    assert_eq!(printenv(&cfg), ours);
    assert_eq!(
        tool("fw_printenv", &["-c", &cfg, "-n", "boot_slot"]).trim(),
        "B"
    );
}

#[test]
fn fwguard_reads_what_fw_setenv_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (env, file) = default_env(dir.path());
    let cfg = config(dir.path(), &file);
    tool("fw_setenv", &["-c", &cfg, "boot_slot", "B"]);
    tool("fw_setenv", &["-c", &cfg, "bootcount", "a"]);
    tool("fw_setenv", &["-c", &cfg, "bootdelay"]); // no value: delete
    let script = dir.path().join("script");
    std::fs::write(&script, "upgrade_available=1\nab_rollback=A\n").unwrap();
    tool("fw_setenv", &["-c", &cfg, "-s", script.to_str().unwrap()]);
    let v = env.read_vars().unwrap();
    assert_eq!(v.get("boot_slot"), Some("B"));
    assert_eq!(v.get("bootcount"), Some("a"));
    assert_eq!(v.get("bootdelay"), None);
    assert_eq!(v.get("upgrade_available"), Some("1"));
    let state = fwguard::boot::uboot::UBootAb::new(env)
        .decode_state(&v)
        .unwrap();
    assert_eq!(
        (state.bootcount, state.trial, state.fell_back_from),
        (10, true, Some(fwguard::Slot::A))
    );
}

#[test]
fn fwguard_reads_mkenvimage_output() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("env.txt");
    std::fs::write(
        &txt,
        "bootcmd=run ab_boot\nboot_slot=A\nbootlimit=3\nbootargs=console=ttyS0 ab.slot=A\n",
    )
    .unwrap();
    let out = dir.path().join("env.bin");
    tool(
        "mkenvimage",
        &[
            "-s",
            &format!("{ENV_SIZE:#x}"),
            "-o",
            out.to_str().unwrap(),
            txt.to_str().unwrap(),
        ],
    );
    let env = EnvLocation {
        path: out,
        offset: 0,
        size: ENV_SIZE,
    };
    let v = env.read_vars().unwrap();
    let mut want = EnvVars::default();
    for (k, val) in [
        ("bootcmd", "run ab_boot"),
        ("boot_slot", "A"),
        ("bootlimit", "3"),
        ("bootargs", "console=ttyS0 ab.slot=A"),
    ] {
        want.set(k, val).unwrap();
    }
    assert_eq!(v, want);
}

#[test]
fn a_corrupt_env_is_refused_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let (env, file) = default_env(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[8] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    // The real tool agrees the CRC is bad ...
    let cfg = config(dir.path(), &file);
    let o = Command::new("fw_printenv")
        .args(["-c", &cfg])
        .output()
        .expect("fw_printenv");
    assert!(!o.status.success() || String::from_utf8_lossy(&o.stderr).contains("default"));
    // ... and fwguard refuses to act on it, writing nothing.
    let b = fwguard::boot::uboot::UBootAb::new(env);
    use fwguard::boot::Bootloader;
    let err = b.commit(fwguard::Slot::A).unwrap_err();
    assert!(err.to_string().contains("bad CRC"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}

/// A uboot board whose slots share no partition (`shared_state = false`) carries the trial's
/// facts in the env, in the same write that arms, commits or rolls back; `fw_printenv` reads
/// them beside the A/B variables. A board with a shared partition writes none.
#[test]
fn a_board_without_a_shared_partition_carries_the_trial_in_the_same_env_write() {
    use fwguard::boot::Bootloader;
    use fwguard::state::CARRY_VAR;
    use fwguard::Slot;
    let dir = tempfile::tempdir().unwrap();
    let (env, file) = default_env(dir.path());
    let cfg = config(dir.path(), &file);
    let b_slot = common::verified_slot(dir.path(), Slot::B);
    let a_slot = common::verified_slot(dir.path(), Slot::A);
    let get = |name: &str| {
        printenv(&cfg)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    };

    let shared = fwguard::boot::uboot::UBootAb::new(env.clone());
    assert!(!shared.carries());
    shared
        .arm_trial_carrying(&b_slot, Slot::A, "{\"schema\":1}")
        .unwrap();
    assert_eq!(get("upgrade_available").as_deref(), Some("1"));
    assert_eq!(
        get(CARRY_VAR),
        None,
        "a board with a shared partition carried"
    );
    assert_eq!(shared.carried().unwrap(), None);
    shared.commit(Slot::A).unwrap();

    let own = fwguard::boot::uboot::UBootAb::new(env).carrying(true);
    assert!(own.carries());
    let armed = r#"{"schema":1,"trial":{"arm":"a1"}}"#;
    own.arm_trial_carrying(&b_slot, Slot::A, armed).unwrap();
    assert_eq!(
        (get("boot_slot"), get("upgrade_available"), get(CARRY_VAR)),
        (Some("B".into()), Some("1".into()), Some(armed.into()))
    );
    assert_eq!(own.carried().unwrap().as_deref(), Some(armed));
    let committed = r#"{"schema":1,"outcome":"committed"}"#;
    own.commit_carrying(Slot::B, committed).unwrap();
    assert_eq!(
        (get("upgrade_available"), get(CARRY_VAR)),
        (Some("0".into()), Some(committed.into()))
    );
    let back = r#"{"schema":1,"outcome":"rolled-back"}"#;
    own.switch_to_carrying(&a_slot, back).unwrap();
    assert_eq!(
        (get("boot_slot"), get(CARRY_VAR)),
        (Some("A".into()), Some(back.into()))
    );
    // A value the env cannot hold is refused, and nothing is written.
    let before = std::fs::read(&file).unwrap();
    let e = own
        .arm_trial_carrying(&b_slot, Slot::A, "a\0b")
        .unwrap_err()
        .to_string();
    assert!(e.contains(CARRY_VAR), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
}
