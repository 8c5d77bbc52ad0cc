//! The state directory must be where the other firmware slot will see it after the reboot:
//! on a partition both slots mount, not in RAM, not on the running slot's own file systems
//! (its overlay, a mount of a slot's device). `fwguard doctor` says where the state lives and
//! fails a location it refuses; the preflight refuses it before any write. The boards are
//! described by files (their `proc/self/mountinfo`, a sysfs tree), as in `doctor.rs`.

use super::common;
use super::doctor::{config_on, run_with, Board};

use common::linksys::Flash;
use common::vendor_script::vendor_script;
use common::{data_mountinfo, write_mountinfo, Mnt};
use std::path::{Path, PathBuf};

const ERASE: u64 = 0x20000;
const FIX: &str = "put state_dir on a partition both slots mount, such as /data";

/// A board under test: its configuration, where its mountinfo goes, what must not change.
struct Case {
    /// The directory that holds the state directory (`dir/state`).
    dir: PathBuf,
    cfg: PathBuf,
    proc: PathBuf,
    /// The files a refused command must leave as they were (the slots, the env).
    files: Vec<PathBuf>,
}

impl Case {
    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The mount point the fixtures list for `dir` (resolved, as the kernel lists it).
    fn point(&self) -> PathBuf {
        std::fs::canonicalize(&self.dir).unwrap()
    }

    fn snapshot(&self) -> Vec<Vec<u8>> {
        self.files
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect()
    }

    /// The `state location` line of `fwguard doctor`, and its exit code.
    fn doctor(&self) -> (Option<i32>, String) {
        let (code, out, err) = run_with(&self.cfg, &["doctor"]);
        // The check's line, and its fix on the next line when it failed.
        let mut lines = out.lines().skip_while(|l| !l.contains(" state location: "));
        let mut line = lines.next().unwrap_or_default().to_string();
        if let Some(fix) = lines.next().filter(|l| l.trim_start().starts_with("fix: ")) {
            line = format!("{line}\n{fix}");
        }
        assert!(!line.is_empty(), "no state location check in:\n{out}{err}");
        (code, line)
    }

    /// With `mounts` in the mountinfo, `doctor` fails the state location saying `why`, and
    /// the commands that write refuse before writing anything.
    fn refused(&self, mounts: &[Mnt], why: &str) {
        write_mountinfo(&self.proc, mounts);
        self.refused_as(why);
    }

    fn refused_as(&self, why: &str) {
        let (code, line) = self.doctor();
        assert_eq!(code, Some(3), "{line}");
        let head = format!(
            "FAIL state location: state_dir = \"{}\"",
            self.state().display()
        );
        assert!(line.starts_with(&head), "{head:?} not in:\n{line}");
        assert!(
            line.contains(why) && line.contains(FIX),
            "{why:?} or the fix not in:\n{line}"
        );
        let before = self.snapshot();
        // (A commit or a rollback settles a trial that exists: not held back by this.)
        for cmd in [&["update"][..], &["pin", "9.9"]] {
            let (code, out, err) = run_with(&self.cfg, cmd);
            assert_eq!(code, Some(3), "{cmd:?}: {out}{err}");
            let head = format!("preflight: state_dir = \"{}\"", self.state().display());
            assert!(err.contains(&head), "{cmd:?}: {err}");
            assert!(err.contains(why) && err.contains(FIX), "{cmd:?}: {err}");
            assert_eq!(self.snapshot(), before, "{cmd:?} wrote to the board");
            assert!(
                !self.state().exists(),
                "{cmd:?} created the state directory"
            );
        }
    }

    /// With `dir` on the shared data partition, doctor passes the location, naming it.
    fn passes_on_data(&self) {
        data_mountinfo(&self.proc, &self.dir);
        let (_, line) = self.doctor();
        let want = format!(
            "ok   state location: state_dir = \"{}\" is on {} (ext4 on /dev/sda4), which is neither slot: both slots see it",
            self.state().display(),
            self.point().display()
        );
        assert_eq!(line, want);
    }

    /// The refusals every board with a shared partition makes: RAM, the running slot's
    /// overlay, a mount of slot B's device (`slot_b`, an image named like its device, whose
    /// numbers the board's sysfs gives), an unreadable mountinfo.
    fn refuses_ram_the_overlay_and_a_slot_device(&self, slot_b: &Path, sysfs: &Path) {
        self.passes_on_data();
        let at = self.dir.as_path();
        let tmpfs = Mnt {
            at,
            dev: "0:40",
            fstype: "tmpfs",
            source: "tmpfs",
        };
        self.refused(
            &[tmpfs],
            "(tmpfs on tmpfs), in RAM, emptied at every reboot",
        );
        // Nothing mounted on `dir`: it is under / (the overlay, OpenWrt's root).
        self.refused(
            &[],
            "is on / (overlay on overlay), an overlay, whose upper layer is the running slot's own",
        );
        let class = sysfs.join("class/block/mmcblk0p3");
        std::fs::create_dir_all(&class).unwrap();
        std::fs::write(class.join("dev"), "179:3\n").unwrap();
        let own = Mnt {
            at,
            dev: "179:3",
            fstype: "ext4",
            source: "/dev/mmcblk0p3",
        };
        let why = format!(
            "on device 179:3, the device of slot B ({})",
            slot_b.display()
        );
        self.refused(&[own], &why);
        std::fs::remove_file(self.proc.join("self/mountinfo")).unwrap();
        self.refused_as("cannot tell which file system it is on");
    }
}

/// A U-Boot board (`doctor.rs`'s), its slot B an image named like an eMMC partition.
fn uboot() -> (Board, Case) {
    let b = Board::new(&format!("DEV 0x0 0x4000 {ERASE:#x}"));
    let slot_b = b.path("mmcblk0p3");
    std::fs::write(&slot_b, vec![0u8; 1 << 20]).unwrap();
    b.set_slot_b(&slot_b);
    let case = Case {
        dir: b.root().to_path_buf(),
        cfg: b.path("config.toml"),
        proc: b.path("proc"),
        files: vec![b.path("mtd1"), b.path("slot-a.img"), slot_b],
    };
    (b, case)
}

#[test]
fn uboot_refuses_a_state_dir_in_ram_on_its_overlay_or_on_a_slot() {
    let (b, case) = uboot();
    case.refuses_ram_the_overlay_and_a_slot_device(&b.path("mmcblk0p3"), &b.path("sys"));
    // The rest of doctor passes on the shared partition.
    data_mountinfo(&case.proc, &case.dir);
    let (code, out, _) = b.run(&["doctor"]);
    assert_eq!(code, 0, "{out}");
}

/// A GRUB or vendor-command board in `dir`: slot B an image named like an eMMC partition.
fn other_board(dir: &Path, board: &str) -> Case {
    for s in ["slot-a.img", "mmcblk0p3"] {
        std::fs::write(dir.join(s), vec![0u8; 1 << 16]).unwrap();
    }
    std::fs::create_dir_all(dir.join("proc/sys/kernel/random")).unwrap();
    std::fs::write(dir.join("proc/cmdline"), "console=ttyS0 ab.slot=B\n").unwrap();
    std::fs::write(dir.join("proc/sys/kernel/random/boot_id"), "x\n").unwrap();
    let cfg = config_on(
        dir,
        &format!("{board}slot_a = \"slot-a.img\"\nslot_b = \"mmcblk0p3\"\nproc = \"proc\"\nsysfs = \"sys\"\n"),
    );
    let mut files = vec![dir.join("slot-a.img"), dir.join("mmcblk0p3")];
    if dir.join("grubenv").exists() {
        files.push(dir.join("grubenv"));
    }
    Case {
        dir: dir.to_path_buf(),
        cfg,
        proc: dir.join("proc"),
        files,
    }
}

#[test]
fn grub_refuses_a_state_dir_in_ram_on_its_overlay_or_on_a_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let vars = fwguard::boot::uboot_env::EnvVars::from_pairs(&[("boot_slot", "B")]).unwrap();
    fwguard::boot::grub::create(&d.join("grubenv"), &vars).unwrap();
    let case = other_board(
        d,
        "profile = \"grub\"\nid = \"x86\"\ngrubenv = \"grubenv\"\n",
    );
    case.refuses_ram_the_overlay_and_a_slot_device(&d.join("mmcblk0p3"), &d.join("sys"));
}

#[test]
fn script_refuses_a_state_dir_in_ram_on_its_overlay_or_on_a_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    vendor_script(d, "ok");
    let script = d.join("vendor-boot").display().to_string();
    let board =
        format!("profile = \"script\"\nid = \"acme\"\ncommand = [\"python3\", \"{script}\"]\n");
    let case = other_board(d, &board);
    case.refuses_ram_the_overlay_and_a_slot_device(&d.join("mmcblk0p3"), &d.join("sys"));
}

/// The Linksys WRT profile has no partition both slots mount: the state is the running
/// slot's own wherever it survives a reboot, and only RAM is refused.
#[test]
fn linksys_refuses_only_ram_and_says_the_state_is_the_running_slots_own() {
    let tmp = tempfile::tempdir().unwrap();
    let flash = Flash::create(tmp.path(), b"");
    std::fs::write(tmp.path().join("sys/class/ubi/ubi0/mtd_num"), "8\n").unwrap();
    std::fs::write(tmp.path().join("proc/sys/kernel/random/boot_id"), "x\n").unwrap();
    let case = Case {
        dir: tmp.path().to_path_buf(),
        // The settings carry is doctor's other check (tests/binary/doctor.rs).
        cfg: config_on(
            tmp.path(),
            &format!("{}[settings]\nmode = \"none\"\n", flash.board_config()),
        ),
        proc: tmp.path().join("proc"),
        files: (0..10)
            .map(|n| flash.dev(n))
            .filter(|p| p.exists())
            .collect(),
    };
    let own = "; this board has no partition both slots mount, so this state is the running slot's own (a trial's facts travel in the bootloader environment, fwguard_carry)";
    let state = case.state().display().to_string();
    // The overlay (Flash's mountinfo), and the slot's own UBIFS (ubi0 on rootfs2).
    let (code, line) = case.doctor();
    assert!(
        line.starts_with(&format!(
            "ok   state location: state_dir = \"{state}\" is on / (overlay on overlay){own}"
        )),
        "{line}"
    );
    assert_eq!(code, Some(0), "{line}");
    let at = case.dir.as_path();
    let ubifs = Mnt {
        at,
        dev: "0:16",
        fstype: "ubifs",
        source: "ubi0:rootfs_data",
    };
    write_mountinfo(&case.proc, &[ubifs]);
    let (_, line) = case.doctor();
    assert!(
        line.starts_with("ok   state location: ")
            && line.contains("(ubifs on ubi0:rootfs_data)")
            && line.ends_with(own),
        "{line}"
    );
    let tmpfs = Mnt {
        at,
        dev: "0:40",
        fstype: "ramfs",
        source: "ramfs",
    };
    case.refused(
        &[tmpfs],
        "(ramfs on ramfs), in RAM, emptied at every reboot",
    );
}

/// The simulated router's slots are files of the host and a simulated reboot keeps every
/// host directory: its state is seen by both simulated slots wherever it is, even on tmpfs.
#[test]
fn the_simulated_router_passes_its_state_location() {
    let tmp = tempfile::tempdir().unwrap();
    let router = tmp.path().join("router");
    let (code, out, err) = run_with(
        &tmp.path().join("none.toml"),
        &["sim", "create", router.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let cfg = config_on(
        tmp.path(),
        &format!("profile = \"sim\"\ndir = \"{}\"\n", router.display()),
    );
    let ram = common::ram_dir();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace(
        "state_dir = \"state\"",
        &format!("state_dir = \"{}\"", ram.path().display()),
    );
    std::fs::write(&cfg, text).unwrap();
    let (_, out, _) = run_with(&cfg, &["doctor"]);
    let want = format!("ok   state location: state_dir = \"{}\" is a directory of the host, outside the simulated slots, and a simulated reboot keeps it: both simulated slots see it", ram.path().display());
    assert!(out.contains(&want), "{want:?} not in:\n{out}");
}
