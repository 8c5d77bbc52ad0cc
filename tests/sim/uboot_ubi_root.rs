//! `[board.targets.rootfs] ubi_volume = "rootfs"` on the uboot profile: a root part (a
//! squashfs made by the real mksquashfs) is written as a fresh UBI on the other slot's raw
//! flash partition, as OpenWrt lays out a NAND board, and that slot still verifies after its
//! kernel attached the UBI (erase counters, the autoresize volume grown, a block moved by
//! wear levelling). The board is built from its config, as the agent builds it; the flash
//! partitions are images with the geometry sysfs gives.

use super::common;

use common::expected;
use common::tools::squashfs;
use common::ubi;
use fwguard::board::Board;
use fwguard::config::Settings;
use fwguard::flash::mtd_image::MtdImage;
use fwguard::flash::{self, FlashError, MtdInfo, SlotDevice};
use fwguard::Slot;
use std::path::{Path, PathBuf};

const BLOCKS: u64 = 48;

struct Flash {
    dir: tempfile::TempDir,
}

impl Flash {
    /// Two 48-block partitions, mtd4 (slot A) and mtd6 (slot B), 2 KiB pages, no sub-pages.
    fn new() -> Flash {
        let dir = tempfile::tempdir().unwrap();
        let info = MtdInfo {
            size: BLOCKS * ubi::PEB as u64,
            erase_size: ubi::PEB as u64,
            write_size: ubi::PAGE as u64,
        };
        for n in [4, 6] {
            MtdImage::create(&dir.path().join(format!("mtd{n}")), info).unwrap();
            let class = dir.path().join(format!("sys/class/mtd/mtd{n}"));
            std::fs::create_dir_all(&class).unwrap();
            for (f, v) in [
                ("size", info.size),
                ("erasesize", info.erase_size),
                ("writesize", info.write_size),
                ("subpagesize", info.write_size),
            ] {
                std::fs::write(class.join(f), format!("{v}\n")).unwrap();
            }
        }
        std::fs::create_dir_all(dir.path().join("sys/class/ubi")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(
            dir.path().join("proc/mtd"),
            "dev:    size   erasesize  name\nmtd4: 00600000 00020000 \"firmware1\"\nmtd6: 00600000 00020000 \"firmware2\"\n",
        )
        .unwrap();
        for f in ["env.img", "kernel-a", "kernel-b"] {
            std::fs::write(dir.path().join(f), vec![0xffu8; 0x4000]).unwrap();
        }
        Flash { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn config(&self, target: &str) -> Result<Settings, String> {
        let key = self.path("k.pub");
        let secret = fwguard::index::sign::SecretKey::generate().unwrap();
        std::fs::write(&key, secret.public().to_file("test")).unwrap();
        let text = format!(
            "[index]\nurl = \"http://127.0.0.1:1/index.toml\"\ntrusted_key_files = [\"k.pub\"]\n\n\
             [board]\nprofile = \"uboot\"\nid = \"nand\"\nenv_device = \"env.img\"\nenv_size = 16384\n\
             sysfs = \"sys\"\nproc = \"proc\"\ncmdline = \"cmdline\"\nslot_a = \"kernel-a\"\nslot_b = \"kernel-b\"\n\
             [board.targets.rootfs]\n{target}\n"
        );
        let cfg = self.path("config.toml");
        std::fs::write(&cfg, text).unwrap();
        Settings::load(&cfg).map_err(|e| e.to_string())
    }

    fn board(&self) -> Board {
        let s = self
            .config("slot_a = \"mtd4\"\nslot_b = \"mtd6\"\nubi_volume = \"rootfs\"")
            .unwrap();
        Board::from_settings(&s.board).unwrap()
    }

    fn bytes(&self, mtd: u32) -> Vec<u8> {
        std::fs::read(self.path(&format!("mtd{mtd}"))).unwrap()
    }
}

fn install(dev: &dyn SlotDevice, img: &[u8]) -> Result<flash::VerifiedSlot, FlashError> {
    let exp = expected(img);
    let mut w = flash::begin(dev, &exp)?;
    for chunk in img.chunks(7001) {
        w.write(chunk)?;
    }
    w.finish(&exp)?.verify(dev, &exp)
}

#[test]
fn a_root_part_becomes_a_fresh_ubi_that_still_verifies_after_its_kernel_attached_it() {
    let f = Flash::new();
    let root = squashfs(f.dir.path(), "2.0");
    let board = f.board();
    let a = f.bytes(4);
    let dev = board.target("rootfs", Slot::B).unwrap();
    assert!(
        dev.describe().contains("UBI volume \"rootfs\""),
        "{}",
        dev.describe()
    );
    install(dev, &root).unwrap();
    assert_eq!(f.bytes(4), a, "slot A's partition was written");
    let b = f.bytes(6);
    let vol = ubi::volume(&b, "rootfs").expect("mtd6 holds a UBI with volume rootfs");
    assert_eq!(&vol[..root.len()], &root[..]);
    assert!(ubi::volume(&b, "rootfs_data").unwrap().is_empty());
    assert!(ubi::has_autoresize(&b));

    // The firmware's kernel attaches it: erase counters, rootfs_data grown, a block moved.
    let mut area = b.clone();
    ubi::first_attach(&mut area, BLOCKS as usize);
    let (from, to) = (0..BLOCKS as usize)
        .find_map(|p| {
            (ubi::leb_of(&area, p).map(|l| l.0) == Some(0)).then_some((p, BLOCKS as usize - 1))
        })
        .unwrap();
    ubi::move_block(&mut area, from, to);
    assert!(!ubi::has_autoresize(&area));
    std::fs::write(f.path("mtd6"), &area).unwrap();
    let board = f.board();
    let dev = board.target("rootfs", Slot::B).unwrap();
    flash::verify_existing(dev, &expected(&root)).expect("the slot verifies after the attach");
    let other = squashfs(f.dir.path(), "3.0");
    assert!(flash::verify_existing(dev, &expected(&other)).is_err());
}

#[test]
fn a_root_part_is_not_written_where_the_kernel_might_not_attach_it_and_the_running_ubi_may_be_attached(
) {
    let f = Flash::new();
    let root = squashfs(f.dir.path(), "2.0");
    let sys = f.path("sys/class");
    // The running firmware's UBI (on mtd4) is attached: B's install goes on.
    std::fs::create_dir_all(sys.join("ubi/ubi0")).unwrap();
    std::fs::write(sys.join("ubi/ubi0/mtd_num"), "4\n").unwrap();
    install(f.board().target("rootfs", Slot::B).unwrap(), &root).unwrap();
    let b = f.bytes(6);
    // A UBI device attached to the target partition.
    std::fs::create_dir_all(sys.join("ubi/ubi1")).unwrap();
    std::fs::write(sys.join("ubi/ubi1/mtd_num"), "6\n").unwrap();
    let board = f.board();
    let e = install(board.target("rootfs", Slot::B).unwrap(), &root).unwrap_err();
    assert!(e.to_string().contains("ubi1 is attached to mtd6"), "{e}");
    std::fs::remove_dir_all(sys.join("ubi/ubi1")).unwrap();
    // The sub-page size is unknown.
    std::fs::remove_file(sys.join("mtd/mtd6/subpagesize")).unwrap();
    let board = f.board();
    let e = install(board.target("rootfs", Slot::B).unwrap(), &root).unwrap_err();
    assert!(
        e.to_string().contains("sub-page size") && e.to_string().contains("mtd6/subpagesize"),
        "{e}"
    );
    std::fs::write(sys.join("mtd/mtd6/subpagesize"), "2048\n").unwrap();
    // The running slot's UBI (made by ubinize with 512-byte sub-pages) puts its headers
    // elsewhere than this geometry would: the kernel of this board wants them there.
    let factory = ubinize_subpage(f.dir.path(), &root, 512);
    let mut a = f.bytes(4);
    a[..factory.len()].copy_from_slice(&factory);
    std::fs::write(f.path("mtd4"), &a).unwrap();
    let board = f.board();
    let e = install(board.target("rootfs", Slot::B).unwrap(), &root).unwrap_err();
    assert!(e.to_string().contains("has its headers at 0x200"), "{e}");
    assert_eq!(f.bytes(6), b, "a refused install wrote slot B");
    assert_eq!(f.bytes(4), a, "slot A was written");
}

#[test]
fn doctor_names_a_root_target_that_refuses_installs_and_why() {
    let f = Flash::new();
    std::fs::write(f.path("cmdline"), "console=ttyS0 ab.slot=A\n").unwrap();
    let s = f
        .config("slot_a = \"mtd4\"\nslot_b = \"mtd6\"\nubi_volume = \"rootfs\"")
        .unwrap();
    let targets = |s: &Settings| -> Vec<(bool, String)> {
        let board = Board::from_settings(&s.board);
        fwguard::board::preflight::all(s, board.as_ref())
            .into_iter()
            .filter(|x| x.check == "target")
            .map(|x| (x.ok, x.detail))
            .collect()
    };
    let found = targets(&s);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].0 && found[0].1.contains("slot B's target rootfs"),
        "{found:?}"
    );
    // A UBI attached to slot B's partition: the root target refuses, and doctor says why.
    let ubi1 = f.path("sys/class/ubi/ubi1");
    std::fs::create_dir_all(&ubi1).unwrap();
    std::fs::write(ubi1.join("mtd_num"), "6\n").unwrap();
    let found = targets(&s);
    assert!(!found[0].0, "{found:?}");
    assert!(
        found[0]
            .1
            .contains("refuses installs of a release's rootfs part")
            && found[0].1.contains("ubi1 is attached to mtd6"),
        "{found:?}"
    );
}

#[test]
fn ubi_volume_needs_raw_flash_and_a_root_volume_name() {
    let f = Flash::new();
    std::fs::write(f.path("part-a"), b"").unwrap();
    std::fs::write(f.path("part-b"), b"").unwrap();
    let s = f
        .config("slot_a = \"part-a\"\nslot_b = \"part-b\"\nubi_volume = \"rootfs\"")
        .unwrap();
    let e = Board::from_settings(&s.board).err().unwrap().to_string();
    assert!(
        e.contains("ubi_volume needs the partition on raw flash"),
        "{e}"
    );
    let e = f
        .config("slot_a = \"mtd4\"\nslot_b = \"mtd6\"\nubi_volume = \"rootfs_data\"")
        .unwrap_err();
    assert!(e.contains("board.targets.rootfs.ubi_volume"), "{e}");
}

/// `ubinize` of a `rootfs` volume with sub-pages of `subpage` bytes.
fn ubinize_subpage(dir: &Path, root: &[u8], subpage: u32) -> Vec<u8> {
    let img = dir.join("sp-root.img");
    std::fs::write(&img, root).unwrap();
    let cfg = dir.join("sp.cfg");
    std::fs::write(
        &cfg,
        format!(
            "[rootfs]\nmode=ubi\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\nimage={}\n",
            img.display()
        ),
    )
    .unwrap();
    let out = dir.join("sp.ubi");
    common::tools::tool(
        "ubinize",
        &[
            "-o",
            out.to_str().unwrap(),
            "-p",
            "128KiB",
            "-m",
            "2048",
            "-s",
            &subpage.to_string(),
            cfg.to_str().unwrap(),
        ],
    );
    std::fs::read(out).unwrap()
}
