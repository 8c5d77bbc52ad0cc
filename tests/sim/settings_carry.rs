//! The settings carry of boards other than OpenWrt's (`[settings] mode = "keep"` and
//! `"command"`), through the kernel: each slot's file system is a real ext4 (mkfs.ext4) on a
//! loop device, mounted read-write by fwguard for the carry and unmounted after it, on
//! success and on failure. The slot left is never mounted: its image stays byte-identical.

use super::common;

use fwguard::carry::write::carry;
use fwguard::carry::{BlockMedium, CarryError, CarryPlan, Medium, Target};
use fwguard::Slot;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A loop device over a file, detached when dropped.
struct Loop {
    dev: PathBuf,
    file: PathBuf,
}

impl Loop {
    fn ext4(file: PathBuf) -> Loop {
        std::fs::write(&file, vec![0u8; 8 << 20]).unwrap();
        common::tools::tool("mkfs.ext4", &["-q", "-F", file.to_str().unwrap()]);
        let dev = common::tools::tool("losetup", &["-f", "--show", file.to_str().unwrap()]);
        Loop {
            dev: PathBuf::from(dev.trim()),
            file,
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.dev)
            .status();
    }
}

struct Board {
    tmp: tempfile::TempDir,
    slots: [Loop; 2],
    medium: BlockMedium,
}

fn board() -> Board {
    let tmp = tempfile::tempdir().unwrap();
    let slots = [Slot::A, Slot::B].map(|s| Loop::ext4(tmp.path().join(format!("data-{s}.ext4"))));
    let medium = BlockMedium {
        devices: Medium {
            slot_a: slots[0].dev.clone(),
            slot_b: slots[1].dev.clone(),
            fstype: "ext4".into(),
        },
        runtime_dir: tmp.path().join("run"),
    };
    Board { tmp, slots, medium }
}

fn target() -> Target {
    Target {
        name: "data".into(),
        fstype: "ext4".into(),
    }
}

/// Whether anything is mounted on the carry's mount point (or under the board's directory).
fn mounted_under(dir: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(dir.to_str().unwrap()))
}

/// Slot `s`'s file system, mounted read-only by the test to look.
fn look(b: &Board, s: Slot, f: impl FnOnce(&Path)) {
    let at = b.tmp.path().join(format!("look-{s}"));
    std::fs::create_dir_all(&at).unwrap();
    common::tools::tool(
        "mount",
        &[
            "-o",
            "ro",
            b.slots[s.index()].dev.to_str().unwrap(),
            at.to_str().unwrap(),
        ],
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&at)));
    common::tools::tool("umount", &[at.to_str().unwrap()]);
    r.unwrap();
}

#[test]
fn a_keep_list_is_copied_into_the_target_with_modes_owners_and_links_and_the_other_slot_is_untouched(
) {
    let b = board();
    let src = b.tmp.path().join("etc");
    std::fs::create_dir_all(src.join("wireguard")).unwrap();
    std::fs::write(
        src.join("wireguard/wg0.conf"),
        "[Interface]\nPrivateKey = k\n",
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("wireguard/wg0.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::lchown(src.join("wireguard/wg0.conf"), Some(1234), Some(4321)).unwrap();
    std::os::unix::fs::symlink("wireguard/wg0.conf", src.join("wg.link")).unwrap();
    std::fs::write(src.join("hostname"), "router\n").unwrap();
    let a_before = std::fs::read(&b.slots[0].file).unwrap();

    let plan = CarryPlan::Keep {
        paths: vec![
            src.join("wireguard"),
            src.join("wg.link"),
            src.join("hostname"),
            src.join("absent"),
        ],
        on: target(),
    };
    let said = carry(&plan, &b.medium, Slot::B, &b.tmp.path().join("run")).unwrap();
    assert!(said.starts_with("3 of 4 kept paths"), "{said}");
    assert!(
        !mounted_under(b.tmp.path()),
        "the target is unmounted after the carry"
    );
    assert_eq!(
        std::fs::read(&b.slots[0].file).unwrap(),
        a_before,
        "slot A was written"
    );

    let rel = src.strip_prefix("/").unwrap().to_path_buf();
    look(&b, Slot::B, |root| {
        let etc = root.join(&rel);
        let conf = etc.join("wireguard/wg0.conf");
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            "[Interface]\nPrivateKey = k\n"
        );
        let m = std::fs::metadata(&conf).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o600, 1234, 4321));
        assert_eq!(
            std::fs::read_link(etc.join("wg.link")).unwrap(),
            Path::new("wireguard/wg0.conf")
        );
        assert_eq!(
            std::fs::read_to_string(etc.join("hostname")).unwrap(),
            "router\n"
        );
        assert!(!etc.join("absent").exists());
    });
}

#[test]
fn a_carry_command_gets_the_mount_point_and_its_failure_is_an_error_that_leaves_nothing_mounted() {
    let b = board();
    let ok = CarryPlan::Command {
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo migrated > \"$0/marker\"".into(),
            "{target}".into(),
        ],
        on: target(),
    };
    carry(&ok, &b.medium, Slot::A, &b.tmp.path().join("run")).unwrap();
    look(&b, Slot::A, |root| {
        assert_eq!(
            std::fs::read_to_string(root.join("marker")).unwrap(),
            "migrated\n"
        );
    });

    let b_before = std::fs::read(&b.slots[1].file).unwrap();
    let failing = CarryPlan::Command {
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo no room for $0 >&2; exit 3".into(),
            "{target}".into(),
        ],
        on: target(),
    };
    let e = carry(&failing, &b.medium, Slot::A, &b.tmp.path().join("run")).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, CarryError::Refused(_)), "{text}");
    assert!(
        text.contains("settings.carry \"sh\" failed") && text.contains("no room for"),
        "{text}"
    );
    assert!(
        !mounted_under(b.tmp.path()),
        "a failed carry leaves nothing mounted"
    );
    assert_eq!(std::fs::read(&b.slots[1].file).unwrap(), b_before);

    // A device that holds no such file system: the mount's own error, nothing carried.
    let wrong = BlockMedium {
        devices: Medium {
            fstype: "xfs".into(),
            ..b.medium.devices.clone()
        },
        runtime_dir: b.tmp.path().join("run"),
    };
    let e = carry(&ok, &wrong, Slot::B, &b.tmp.path().join("run")).unwrap_err();
    assert!(e.to_string().contains("(xfs)"), "{e}");
    assert!(!mounted_under(b.tmp.path()));
}
