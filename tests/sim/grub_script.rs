//! The GRUB environment backend against the real `grub-editenv` (grub-common, installed by
//! tests/run.sh), in both directions; and the vendor-command backend against a vendor script
//! that keeps its state in a file.

use super::common;

use common::tools::tool;
use common::vendor_script::vendor_script;
use common::verified_slot;
use fwguard::boot::grub::{self, grub_ab};
use fwguard::boot::{BootError, Bootloader};
use fwguard::Slot;
use std::collections::BTreeMap;
use std::path::Path;

fn editenv_list(f: &Path) -> BTreeMap<String, String> {
    tool("grub-editenv", &[f.to_str().unwrap(), "list"])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

#[test]
fn grubenv_interop_with_grub_editenv() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("grubenv");
    let fs = f.to_str().unwrap();
    tool("grub-editenv", &[fs, "create"]);
    tool(
        "grub-editenv",
        &[
            fs,
            "set",
            "boot_slot=A",
            "upgrade_available=0",
            "bootcount=0",
            "bootlimit=3",
            "saved_entry=fwguard",
            "odd=back\\slash",
        ],
    );
    // What grub-editenv wrote, fwguard reads.
    let ab = grub_ab(&f);
    let s = ab.read_state().unwrap();
    assert_eq!((s.primary, s.trial, s.bootlimit), (Slot::A, false, 3));
    // What fwguard writes, grub-editenv reads: one whole change, the block's size kept.
    ab.arm_trial(&verified_slot(dir.path(), Slot::B), Slot::A)
        .unwrap();
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 1024);
    let l = editenv_list(&f);
    assert_eq!(l["boot_slot"], "B");
    assert_eq!(l["upgrade_available"], "1");
    assert_eq!(l["bootcount"], "0");
    assert_eq!(l["saved_entry"], "fwguard");
    assert_eq!(l["odd"], "back\\slash");
    // GRUB's script counts the boot (as save_env would) and fwguard sees it.
    tool("grub-editenv", &[fs, "set", "bootcount=1"]);
    let s = ab.read_state().unwrap();
    assert_eq!((s.primary, s.trial, s.bootcount), (Slot::B, true, 1));
    ab.commit(Slot::B).unwrap();
    let l = editenv_list(&f);
    assert_eq!(
        (
            l["boot_slot"].as_str(),
            l["upgrade_available"].as_str(),
            l["bootcount"].as_str()
        ),
        ("B", "0", "0")
    );
    // Committed: a second commit writes nothing.
    let before = std::fs::read(&f).unwrap();
    let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
    ab.commit(Slot::B).unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), before);
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), mtime);
}

#[test]
fn a_damaged_grubenv_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("grubenv");
    std::fs::write(&f, vec![0u8; 1024]).unwrap();
    let ab = grub_ab(&f);
    let e = ab.read_state().unwrap_err().to_string();
    assert!(
        e.contains("not a GRUB environment block") && e.contains("grubenv"),
        "{e}"
    );
    assert!(ab.commit(Slot::A).is_err());
    assert_eq!(std::fs::read(&f).unwrap(), vec![0u8; 1024]);
    // A value the A/B scheme does not know is refused before any write too.
    let vars = fwguard::boot::uboot_env::EnvVars::from_pairs(&[("boot_slot", "C")]).unwrap();
    grub::create(&f, &vars).unwrap();
    let before = std::fs::read(&f).unwrap();
    let e = ab.commit(Slot::A).unwrap_err().to_string();
    assert!(
        e.contains("boot_slot") && e.contains("expected A or B"),
        "{e}"
    );
    assert_eq!(std::fs::read(&f).unwrap(), before);
}

#[test]
fn vendor_command_backend() {
    let dir = tempfile::tempdir().unwrap();
    let b = vendor_script(dir.path(), "ok");
    let s = b.read_state().unwrap();
    assert_eq!((s.primary, s.trial, s.bootlimit), (Slot::A, false, 3));
    let slot_b = verified_slot(dir.path(), Slot::B);
    assert!(matches!(
        b.arm_trial(&verified_slot(dir.path(), Slot::A), Slot::A),
        Err(BootError::TargetIsBooted(Slot::A))
    ));
    b.arm_trial(&slot_b, Slot::A).unwrap();
    let s = b.read_state().unwrap();
    assert_eq!((s.primary, s.trial), (Slot::B, true));
    b.commit(Slot::B).unwrap();
    assert!(!b.read_state().unwrap().trial);
    b.switch_to(&verified_slot(dir.path(), Slot::A)).unwrap();
    assert_eq!(b.read_state().unwrap().primary, Slot::A);
    assert!(b.dump().unwrap()[0].1.contains("\"next\": \"A\""));
}

#[test]
fn vendor_command_failures_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let slot_b = verified_slot(dir.path(), Slot::B);
    let e = vendor_script(dir.path(), "fails")
        .read_state()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("get-active` failed") && e.contains("flash is locked"),
        "{e}"
    );
    let e = vendor_script(dir.path(), "garbage")
        .read_state()
        .unwrap_err()
        .to_string();
    assert!(e.contains("unexpected answer \"not json\""), "{e}");
    // A command that says yes but does nothing is caught by the read-back.
    let e = vendor_script(dir.path(), "ignores")
        .arm_trial(&slot_b, Slot::A)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("did not read back") && e.contains("set-next B --trial"),
        "{e}"
    );
}

#[test]
fn a_vendor_command_that_writes_a_megabyte_to_stderr_answers_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let b = vendor_script(dir.path(), "chatty");
    b.arm_trial(&verified_slot(dir.path(), Slot::B), Slot::A)
        .unwrap();
    assert_eq!(b.read_state().unwrap().primary, Slot::B);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_vendor_command_that_leaves_a_process_holding_its_output_returns_when_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let b = vendor_script(dir.path(), "forks");
    let s = b.read_state().unwrap();
    assert_eq!((s.primary, s.trial), (Slot::A, false));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}
