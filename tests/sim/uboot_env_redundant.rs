//! The redundant U-Boot environment (two copies with a flags byte, as a two-line
//! `fw_env.config` describes it) against the real tools: libubootenv's `fw_printenv` /
//! `fw_setenv` (Debian libubootenv-tool 0.3.x) and `mkenvimage -r` (u-boot-tools). Installed
//! by tests/run.sh; a missing tool fails the test.

use super::common;

use common::tools::tool;
use common::verified_slot as verified;
use fwguard::boot::env_store::EnvStore;
use fwguard::boot::fw_env::FwEnvConfig;
use fwguard::boot::uboot::UBootAb;
use fwguard::boot::uboot_env::EnvVars;
use fwguard::boot::Bootloader;
use fwguard::config::{BoardSettings, Settings};
use fwguard::Slot;
use std::path::{Path, PathBuf};

const SIZE: usize = 0x4000;

/// A file holding both copies (at 0 and SIZE) and the two-line fw_env.config for it.
fn pair(dir: &Path) -> (PathBuf, String, EnvStore) {
    let file = dir.join("env.img");
    std::fs::write(&file, vec![0xffu8; 2 * SIZE]).unwrap();
    let cfg = dir.join("fw_env.config");
    std::fs::write(
        &cfg,
        format!(
            "# redundant env: two copies\n{f} 0x0 {SIZE:#x} {SIZE:#x}\n{f} {SIZE:#x} {SIZE:#x} {SIZE:#x}\n",
            f = file.display()
        ),
    )
    .unwrap();
    let store = EnvStore::from_fw_env(&FwEnvConfig::load(&cfg).unwrap());
    (file, cfg.display().to_string(), store)
}

fn vars(pairs: &[(&str, &str)]) -> EnvVars {
    EnvVars::from_pairs(pairs).unwrap()
}

fn printenv(cfg: &str) -> EnvVars {
    let mut v = EnvVars::default();
    for line in tool("fw_printenv", &["-c", cfg]).lines() {
        let (k, val) = line.split_once('=').unwrap();
        v.set(k, val).unwrap();
    }
    v
}

#[test]
fn fwguard_and_fw_setenv_alternate_through_the_flags_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cfg, store) = pair(dir.path());
    store
        .write_fresh(&vars(&[("boot_slot", "A"), ("bootlimit", "3")]))
        .unwrap();
    assert_eq!(printenv(&cfg).get("boot_slot"), Some("A"));
    let b = UBootAb::with_store(store.clone());
    let (a_slot, b_slot) = (verified(dir.path(), Slot::A), verified(dir.path(), Slot::B));
    // 140 rounds of two writes each: the flags byte goes past 255 and wraps to 0.
    for round in 0..140u32 {
        let n = round.to_string();
        tool("fw_setenv", &["-c", &cfg, "round", &n]);
        let current = store.read().unwrap();
        assert_eq!(current.vars.get("round"), Some(n.as_str()), "round {round}");
        let (target, back) = if round % 2 == 0 {
            (&b_slot, Slot::A)
        } else {
            (&a_slot, Slot::B)
        };
        b.arm_trial(target, back).unwrap();
        let target = target.slot();
        let seen = printenv(&cfg);
        assert_eq!(
            seen.get("boot_slot"),
            Some(target.as_str()),
            "round {round}"
        );
        assert_eq!(seen.get("upgrade_available"), Some("1"));
        assert_eq!(seen.get("round"), Some(n.as_str()));
        b.commit(target).unwrap();
        assert_eq!(printenv(&cfg).get("upgrade_available"), Some("0"));
    }
}

#[test]
fn mkenvimage_redundant_copies_are_read_as_the_tools_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let (file, cfg, store) = pair(dir.path());
    let mut image = Vec::new();
    for (i, slot) in ["A", "B"].iter().enumerate() {
        let txt = dir.path().join(format!("env{i}.txt"));
        std::fs::write(&txt, format!("boot_slot={slot}\nbootcmd=run ab_boot\n")).unwrap();
        let out = dir.path().join(format!("env{i}.bin"));
        tool(
            "mkenvimage",
            &[
                "-r",
                "-s",
                &format!("{SIZE:#x}"),
                "-o",
                out.to_str().unwrap(),
                txt.to_str().unwrap(),
            ],
        );
        image.extend(std::fs::read(&out).unwrap());
    }
    // Same flags in both copies: the tools take the first; so does fwguard.
    std::fs::write(&file, &image).unwrap();
    assert_eq!(store.read().unwrap().vars, printenv(&cfg));
    assert_eq!(store.read().unwrap().vars.get("boot_slot"), Some("A"));
    // A newer flags byte in the second copy makes it the current one, for both.
    image[SIZE + 4] = image[4].wrapping_add(1);
    std::fs::write(&file, &image).unwrap();
    assert_eq!(store.read().unwrap().vars.get("boot_slot"), Some("B"));
    assert_eq!(printenv(&cfg).get("boot_slot"), Some("B"));
}

#[test]
fn a_torn_copy_is_passed_over_and_two_bad_copies_are_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let (file, cfg, store) = pair(dir.path());
    store.write_fresh(&vars(&[("boot_slot", "A")])).unwrap();
    let b = UBootAb::with_store(store.clone());
    b.arm_trial(&verified(dir.path(), Slot::B), Slot::A)
        .unwrap();
    // The change went to the second copy; tear it as a power cut mid-write would.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[SIZE + 10] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(store.read().unwrap().vars.get("boot_slot"), Some("A"));
    assert_eq!(printenv(&cfg).get("boot_slot"), Some("A"));
    // Both torn: fwguard names both copies and writes nothing.
    bytes[10] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let err = b.commit(Slot::A).unwrap_err().to_string();
    assert!(
        err.contains("env copy 1") && err.contains("env copy 2"),
        "{err}"
    );
    assert!(err.contains("refusing to write"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}

fn board_config(dir: &Path, env_lines: &str) -> PathBuf {
    let fw_env = dir.join("fw_env.config");
    std::fs::write(&fw_env, env_lines).unwrap();
    let key = dir.join("vendor.pub");
    let secret = fwguard::index::sign::SecretKey::generate().unwrap();
    std::fs::write(&key, secret.public().to_file("test")).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[index]\nurl = \"http://127.0.0.1:1/index.toml\"\ntrusted_key_files = [\"{}\"]\n\n\
             [board]\nprofile = \"uboot\"\nid = \"wrt\"\nenv_config = \"fw_env.config\"\n\
             slot_a = \"/dev/mtd4\"\nslot_b = \"/dev/mtd6\"\n",
            key.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn the_config_takes_the_boards_fw_env_config_and_names_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = board_config(
        dir.path(),
        "/dev/mtd1 0x0 0x20000 0x20000\n/dev/mtd2 0x0 0x20000 0x20000\n",
    );
    match Settings::load(&cfg).unwrap().board {
        BoardSettings::UBoot { env, .. } => {
            assert_eq!(env.copies.len(), 2);
            assert_eq!(env.copies[1].device, Path::new("/dev/mtd2"));
        }
        other => panic!("{other:?}"),
    }
    let cfg = board_config(dir.path(), "# u-boot env\n/dev/mtd1 0x0 0x20000 0x1000\n");
    let err = Settings::load(&cfg).unwrap_err().to_string();
    assert!(err.contains("board.env_config"), "{err}");
    assert!(err.contains("fw_env.config:2:"), "{err}");
    assert!(err.contains("does not fit"), "{err}");
}
