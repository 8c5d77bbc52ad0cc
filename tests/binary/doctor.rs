//! `fwguard doctor` and the preflight before any write (these start the binary, so they run on
//! the host only; cross/test.sh runs the in-process suites). On a U-Boot board made of files: the
//! env on an "MTD partition" (a file named `mtd1` whose geometry a sysfs tree gives), two slot
//! files, a kernel command line.

use super::common;

use common::linksys::Flash;
use common::vendor_script::vendor_script;
use common::{data_mountinfo, disk_dir, ram_dir, BIN};
use fwguard::boot::env_store::EnvLocation;
use fwguard::boot::env_store::EnvStore;
use fwguard::sim::SimRouter;
use std::path::PathBuf;
use std::process::{Command, Output};
const ERASE: u64 = 0x20000;

pub(super) struct Board {
    dir: tempfile::TempDir,
    /// The runtime directory's parent, in RAM.
    run: tempfile::TempDir,
}

impl Board {
    /// A board whose fw_env.config line is `fw_env_line` with DEV replaced by the env device;
    /// its directory (which holds the state directory) is on the shared data partition, as
    /// its `proc/self/mountinfo` says.
    pub(super) fn new(fw_env_line: &str) -> Board {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mtd = d.join("mtd1");
        std::fs::write(&mtd, vec![0xffu8; 2 * ERASE as usize]).unwrap();
        EnvStore::single(EnvLocation {
            path: mtd.clone(),
            offset: 0,
            size: 0x4000,
        })
        .write_fresh(&SimRouter::default_env())
        .unwrap();
        let class = d.join("sys/class/mtd/mtd1");
        std::fs::create_dir_all(&class).unwrap();
        std::fs::write(class.join("erasesize"), format!("{ERASE}\n")).unwrap();
        std::fs::write(class.join("size"), format!("{}\n", 2 * ERASE)).unwrap();
        for s in ["a", "b"] {
            std::fs::write(d.join(format!("slot-{s}.img")), vec![0u8; 1 << 20]).unwrap();
        }
        std::fs::write(d.join("cmdline"), "console=ttyS0 ab.slot=A\n").unwrap();
        data_mountinfo(&d.join("proc"), d);
        std::fs::write(
            d.join("fw_env.config"),
            format!(
                "# U-Boot env\n{}\n",
                fw_env_line.replace("DEV", &mtd.display().to_string())
            ),
        )
        .unwrap();
        let key = fwguard::index::sign::SecretKey::generate().unwrap();
        std::fs::write(d.join("vendor.pub"), key.public().to_file("test")).unwrap();
        let run = ram_dir();
        std::fs::write(
            d.join("config.toml"),
            format!(
                r#"[agent]
state_dir = "state"
runtime_dir = "{run}/fwguard"

[index]
url = "http://127.0.0.1:9/index.toml"
trusted_key_files = ["vendor.pub"]

[board]
profile = "uboot"
id = "wrt-test"
env_config = "fw_env.config"
sysfs = "sys"
proc = "proc"
slot_a = "{d}/slot-a.img"
slot_b = "{d}/slot-b.img"
cmdline = "{d}/cmdline"
reboot_command = ["true"]
"#,
                d = d.display(),
                run = run.path().display(),
            ),
        )
        .unwrap();
        Board { dir, run }
    }

    /// Point the configuration's runtime directory at `path`.
    fn set_runtime_dir(&self, path: &std::path::Path) {
        let cfg = std::fs::read_to_string(self.path("config.toml")).unwrap();
        let cfg: Vec<String> = cfg
            .lines()
            .map(|l| match l.starts_with("runtime_dir = ") {
                true => format!("runtime_dir = \"{}\"", path.display()),
                false => l.to_string(),
            })
            .collect();
        std::fs::write(self.path("config.toml"), cfg.join("\n")).unwrap();
    }

    /// Point the configuration's slot B at `path`.
    pub(super) fn set_slot_b(&self, path: &std::path::Path) {
        let cfg = std::fs::read_to_string(self.path("config.toml")).unwrap();
        let slot_b = self.path("slot-b.img").display().to_string();
        assert!(cfg.contains(&slot_b));
        std::fs::write(
            self.path("config.toml"),
            cfg.replace(&slot_b, &path.display().to_string()),
        )
        .unwrap();
    }

    /// The board's directory, which holds the state directory.
    pub(super) fn root(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(super) fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o: Output = Command::new(BIN)
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(args)
            .env_remove("FWGUARD_CONFIG")
            .output()
            .expect("runs");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
        )
    }

    /// Every file of the board, and whether the state directory exists.
    pub(super) fn snapshot(&self) -> (Vec<Vec<u8>>, bool) {
        let files = ["mtd1", "slot-a.img", "slot-b.img"]
            .iter()
            .map(|f| std::fs::read(self.path(f)).unwrap())
            .collect();
        (files, self.path("state").exists())
    }
}

#[test]
fn doctor_reports_a_healthy_board() {
    let b = Board::new(&format!("DEV 0x0 0x4000 {ERASE:#x}"));
    let (code, out, err) = b.run(&["doctor"]);
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "board wrt-test (profile uboot)",
        "ok   env geometry: ",
        "fw_env.config:2: ",
        "in 0x20000-byte erase blocks",
        "ok   bootloader env: u-boot env ",
        "next boot A",
        "ok   running slot: running A; updates write slot B",
        "ok   slot: slot B: ",
        "ok   state location: state_dir = ",
        "ok   runtime dir: ",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn a_wrong_sector_size_fails_doctor_and_update_and_writes_nothing() {
    let b = Board::new("DEV 0x0 0x4000 0x10000");
    let (code, out, _) = b.run(&["doctor"]);
    assert_eq!(code, 3, "{out}");
    let line = format!("{}:2", b.path("fw_env.config").display());
    assert!(
        out.contains(&format!(
            "FAIL env geometry: {line}: sector size 0x10000, but "
        )),
        "{out}"
    );
    assert!(out.contains("erases 0x20000 bytes at a time"), "{out}");
    assert!(
        out.contains(&format!("fix: set the 4th field of {line} to 0x20000")),
        "{out}"
    );
    let before = b.snapshot();
    for cmd in [&["update"][..], &["rollback"], &["pin", "9.9"]] {
        let (code, out, err) = b.run(cmd);
        assert_eq!(code, 3, "{cmd:?}: {out}{err}");
        assert!(
            err.contains(&format!("preflight: {line}: sector size 0x10000")),
            "{err}"
        );
        assert!(err.contains("fix: set the 4th field"), "{err}");
        assert_eq!(b.snapshot(), before, "{cmd:?} changed the board");
    }
}

#[test]
fn a_missing_sector_size_on_flash_and_a_bad_env_are_named() {
    let b = Board::new("DEV 0x0 0x4000");
    let (code, out, _) = b.run(&["doctor"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("no sector size for "), "{out}");
    assert!(
        out.contains("fix: add 0x20000 as the 4th field of "),
        "{out}"
    );
    // A good line, but an env that fails its CRC.
    let b = Board::new(&format!("DEV 0x0 0x4000 {ERASE:#x}"));
    let mut env = std::fs::read(b.path("mtd1")).unwrap();
    env[10] ^= 0xff;
    std::fs::write(b.path("mtd1"), &env).unwrap();
    let (code, out, _) = b.run(&["doctor"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("ok   env geometry"), "{out}");
    assert!(out.contains("FAIL bootloader env: "), "{out}");
    assert!(out.contains("bad CRC"), "{out}");
    // An unreadable fw_env.config is a configuration error naming the file.
    std::fs::remove_file(b.path("fw_env.config")).unwrap();
    let (code, _, err) = b.run(&["doctor"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("board.env_config"), "{err}");
    assert!(err.contains("cannot read it"), "{err}");
}

#[test]
fn doctor_fails_a_runtime_dir_on_disk_naming_the_key_and_the_fix() {
    let b = Board::new(&format!("DEV 0x0 0x4000 {ERASE:#x}"));
    let (code, out, _) = b.run(&["doctor"]);
    assert_eq!(code, 0, "{out}");
    // Not there yet: its nearest existing ancestor, in RAM, is what it will be on.
    let in_ram = format!(
        "ok   runtime dir: {}/fwguard does not exist yet (fwguard creates it): {} is on tmpfs",
        b.run.path().display(),
        b.run.path().display()
    );
    assert!(out.contains(&in_ram), "{out}");
    let disk = disk_dir();
    for run in [disk.path().to_path_buf(), disk.path().join("fwguard")] {
        b.set_runtime_dir(&run);
        let (code, out, _) = b.run(&["doctor"]);
        assert_eq!(code, 3, "{out}");
        assert!(
            out.contains(&format!(
                "FAIL runtime dir: agent.runtime_dir {}",
                run.display()
            )),
            "{out}"
        );
        assert!(out.contains("not in RAM (tmpfs or ramfs)"), "{out}");
        assert!(
            out.contains("fix: set agent.runtime_dir to a directory on tmpfs"),
            "{out}"
        );
        assert!(out.contains("/var/run/fwguard on OpenWrt"), "{out}");
        b.set_runtime_dir(&b.run.path().join("fwguard"));
    }
    assert!(!disk.path().join("fwguard").exists(), "doctor created it");
}

#[test]
fn slots_that_are_one_device_are_refused_by_doctor() {
    let b = Board::new(&format!("DEV 0x0 0x4000 {ERASE:#x}"));
    let link = b.path("slot-b-link.img");
    std::os::unix::fs::symlink(b.path("slot-a.img"), &link).unwrap();
    b.set_slot_b(&link);
    // The configuration itself is refused now (checked when it is read, and again by
    // the preflight before every write), naming the key.
    let (code, out, err) = b.run(&["doctor"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        err.contains("board.slot_b") && err.contains("are the same file"),
        "{err}"
    );
}

#[test]
fn a_slot_named_like_an_mtd_partition_is_raw_flash() {
    // A regular file named like /dev/mtd6 is an image of that partition: its geometry must
    // come from sysfs, as the kernel would report it, and it is written as raw flash.
    let b = Board::new(&format!("DEV 0x0 0x4000 {ERASE:#x}"));
    let mtd6 = b.path("mtd6");
    std::fs::write(&mtd6, vec![0xffu8; 1 << 20]).unwrap();
    b.set_slot_b(&mtd6);
    let (code, out, _) = b.run(&["doctor"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("FAIL board: ") && out.contains("sys/class/mtd/mtd6/size"),
        "{out}"
    );
    let class = b.path("sys/class/mtd/mtd6");
    std::fs::create_dir_all(&class).unwrap();
    for (k, v) in [
        ("size", 1u64 << 20),
        ("erasesize", ERASE),
        ("writesize", 2048),
    ] {
        std::fs::write(class.join(k), format!("{v}\n")).unwrap();
    }
    let (code, out, _) = b.run(&["doctor"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "ok   slot: slot B: {} (NAND image)",
            mtd6.display()
        )),
        "{out}"
    );
}

#[test]
fn doctor_reads_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let flash = Flash::create(tmp.path(), b"");
    std::fs::write(tmp.path().join("sys/class/ubi/ubi0/mtd_num"), "8\n").unwrap();
    std::fs::write(tmp.path().join("proc/sys/kernel/random/boot_id"), "x\n").unwrap();
    // The linksys profile carries OpenWrt's backup: doctor names what the carry lacks here.
    let (code, out) = doctor_on(tmp.path(), &flash.board_config());
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("FAIL settings carry: \"sysupgrade\" is not installed"),
        "{out}"
    );
    let with_backup = format!(
        "{}[settings]\nbackup_command = [\"/bin/sh\", \"-c\", \"tar czf $0 /etc/hostname\", \"{{backup}}\"]\n",
        flash.board_config()
    );
    let (code, out) = doctor_on(tmp.path(), &with_backup);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("ubi_ctrl is missing: this kernel has no UBI"),
        "{out}"
    );
    std::fs::write(flash.root.join("dev/ubi_ctrl"), "").unwrap();
    let doctor = || doctor_on(tmp.path(), &with_backup);
    let (code, out) = doctor();
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "ok   settings carry: the OpenWrt backup, as sysupgrade.tgz in the target's rootfs_data volume",
        "board linksys-wrt32x (profile linksys)",
        "ok   flash layout: boot counter s_env on mtd2",
        "ok   flash layout: slot A: kernel1 on mtd5 (0x500000 bytes, spanning rootfs1 on mtd6)",
        "ok   flash layout: slot B: kernel2 on mtd7",
        "ok   running slot: running B; updates write slot A",
        "next boot A",
    ] {
        assert!(out.contains(line), "{line:?} missing in:\n{out}");
    }
    // A layout without the second firmware is refused, naming the partition.
    let table = std::fs::read_to_string(tmp.path().join("proc/mtd")).unwrap();
    std::fs::write(
        tmp.path().join("proc/mtd"),
        table.replace("kernel2", "kernelX"),
    )
    .unwrap();
    let (code, out) = doctor();
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("no partition named \"kernel2\""), "{out}");
}

#[test]
fn doctor_on_grub_and_script_boards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    vendor_script(d, "ok");
    for s in ["a", "b"] {
        std::fs::write(d.join(format!("slot-{s}.img")), vec![0u8; 1 << 16]).unwrap();
    }
    std::fs::create_dir_all(d.join("proc/sys/kernel/random")).unwrap();
    std::fs::write(d.join("proc/cmdline"), "console=ttyS0 ab.slot=B\n").unwrap();
    std::fs::write(d.join("proc/sys/kernel/random/boot_id"), "x\n").unwrap();
    data_mountinfo(&d.join("proc"), d);
    let vars = fwguard::boot::uboot_env::EnvVars::from_pairs(&[("boot_slot", "B")]).unwrap();
    fwguard::boot::grub::create(&d.join("grubenv"), &vars).unwrap();
    let doctor = |board: &str| {
        doctor_on(
            d,
            &format!("slot_a = \"slot-a.img\"\nslot_b = \"slot-b.img\"\nproc = \"proc\"\n{board}"),
        )
    };
    let (code, out) = doctor("profile = \"grub\"\nid = \"x86\"\ngrubenv = \"grubenv\"\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("board x86 (profile grub)"), "{out}");
    assert!(
        out.contains("GRUB environment block") && out.contains("next boot B"),
        "{out}"
    );
    assert!(out.contains("running B; updates write slot A"), "{out}");
    let script = d.join("vendor-boot").display().to_string();
    let (code, out) = doctor(&format!(
        "profile = \"script\"\nid = \"acme\"\ncommand = [\"python3\", \"{script}\"]\n"
    ));
    assert_eq!(code, Some(0), "{out}");
    // The running slot comes from the vendor command (A), not the command line (B).
    assert!(out.contains("running A; updates write slot B"), "{out}");
    assert!(out.contains("vendor command python3"), "{out}");
    let (code, out) = doctor("profile = \"script\"\nid = \"acme\"\ncommand = []\n");
    assert_eq!(code, Some(3), "{out}");
}

/// Run `fwguard doctor` in `dir` with a minimal configuration whose `[board]` section is
/// `board` (a trusted key is made for it); the exit code and stdout.
fn doctor_on(dir: &std::path::Path, board: &str) -> (Option<i32>, String) {
    let (code, out, _) = run_with(&config_on(dir, board), &["doctor"]);
    (code, out)
}

/// Write `dir/config.toml`: a minimal configuration whose `[board]` section is `board`, the
/// state in `dir/state`, the runtime directory in RAM (a trusted key is made for it).
pub(super) fn config_on(dir: &std::path::Path, board: &str) -> PathBuf {
    let key = fwguard::index::sign::SecretKey::generate().unwrap();
    std::fs::write(dir.join("vendor.pub"), key.public().to_file("t")).unwrap();
    let cfg = dir.join("config.toml");
    // /dev/shm itself: in RAM, and there as long as the test runs.
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nstate_dir = \"state\"\nruntime_dir = \"/dev/shm/fwguard-test-{}\"\n[index]\nurl = \"http://127.0.0.1:9/i\"\ntrusted_key_files = [\"vendor.pub\"]\n[board]\n{board}",
            std::process::id()
        ),
    )
    .unwrap();
    cfg
}

/// Run `fwguard --config CFG ARGS…`: the exit code, stdout and stderr.
pub(super) fn run_with(cfg: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("FWGUARD_CONFIG")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}
