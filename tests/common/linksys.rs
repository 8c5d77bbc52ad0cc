//! A Linksys WRT32X-like flash described by files (`/proc/mtd`, `/dev/mtdN` images, the
//! sysfs geometry, fw_env.config), and the stock U-Boot played at power-on: read the env with
//! the real `fw_printenv`, count the boot in `s_env` as stock U-Boot does (a record appended
//! per boot, the partition erased only when full), past the limit switch partitions with the
//! real `fw_setenv`, then boot the kernel partition `bootcmd` names as its boot command
//! says: `bootz` (the stock WRT32X) accepts only an ARM zImage at offset 0, `bootm` only a
//! legacy uImage whose header and data CRCs match. Anything else fails to boot, and the
//! stock counter counts it.
//!
//! The `s_env` log is read and written here byte by byte, independently of fwguard's code.

use super::tools::tool;
use fwguard::sim::world::World;
use fwguard::Slot;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const ERASE: u64 = 0x20000;
pub const PAGE: u64 = 2048;
pub const MAGIC: u32 = 0x2011_0811;
/// Where rootfsN starts inside kernelN: kernelN's size less rootfsN's (the kernel's room).
pub const ROOT_AT: usize = 0x10_0000;
/// Counted boots the emulated stock U-Boot allows before it switches partitions.
pub const LIMIT: u32 = 3;

/// (mtd number, name, size)
pub const LAYOUT: [(u32, &str, u64); 10] = [
    (0, "u-boot", 0x10_0000),
    (1, "u_env", 0x2_0000),
    (2, "s_env", 0x4_0000),
    (3, "unused_area", 0x4_0000),
    (4, "devinfo", 0x2_0000),
    (5, "kernel1", 0x50_0000),
    (6, "rootfs1", 0x40_0000),
    (7, "kernel2", 0x50_0000),
    (8, "rootfs2", 0x40_0000),
    (9, "BBT", 0x2_0000),
];

pub const STOCK_ENV: &str = "auto_recovery=yes
boot_part=1
bootcmd=run nandboot
bootdelay=3
nandboot=setenv bootargs console=ttyS0,115200 root=/dev/mtdblock6; nand read 0x2000000 0x900000 0x600000; bootz 0x2000000
altnandboot=setenv bootargs console=ttyS0,115200 root=/dev/mtdblock8; nand read 0x2000000 0x8400000 0x600000; bootz 0x2000000
";

pub struct Flash {
    pub root: PathBuf,
}

impl Flash {
    /// Lay the flash out under `root`, with `image` in kernel1 and the stock env in u_env.
    pub fn create(root: &Path, image: &[u8]) -> Flash {
        let f = Flash {
            root: root.to_path_buf(),
        };
        for d in ["dev", "proc/sys/kernel/random", "etc", "sys/class/ubi/ubi0"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut table = String::from("dev:    size   erasesize  name\n");
        // Where each partition starts on the chip (sysfs `offset`); rootfsN is inside kernelN.
        let mut at = 0u64;
        let mut kernel_at = 0u64;
        for (n, name, size) in LAYOUT {
            let offset = if name.starts_with("rootfs") {
                kernel_at + ROOT_AT as u64
            } else {
                kernel_at = at;
                at += size;
                kernel_at
            };
            table += &format!("mtd{n}: {size:08x} {ERASE:08x} \"{name}\"\n");
            // rootfsN is the tail of kernelN (the firmware's UBI, after its kernel): its bytes
            // are kernelN's, so it has no file of its own.
            if !name.starts_with("rootfs") {
                std::fs::write(f.dev(n), vec![0xffu8; size as usize]).unwrap();
            }
            let class = root.join(format!("sys/class/mtd/mtd{n}"));
            std::fs::create_dir_all(&class).unwrap();
            for (k, v) in [
                ("size", size),
                ("erasesize", ERASE),
                ("writesize", PAGE),
                ("subpagesize", PAGE),
                ("offset", offset),
            ] {
                std::fs::write(class.join(k), format!("{v}\n")).unwrap();
            }
        }
        std::fs::write(root.join("proc/mtd"), table).unwrap();
        // OpenWrt's mounts: the state directory is on the running slot's overlay, its own on a
        // board without a shared partition (the state location check passes it).
        super::write_mountinfo(&root.join("proc"), &[]);
        let mut k1 = std::fs::read(f.dev(5)).unwrap();
        k1[..image.len()].copy_from_slice(image);
        std::fs::write(f.dev(5), k1).unwrap();
        std::fs::write(root.join("env.txt"), STOCK_ENV).unwrap();
        let env = f.dev(1);
        tool(
            "mkenvimage",
            &[
                "-s",
                "0x20000",
                "-o",
                env.to_str().unwrap(),
                root.join("env.txt").to_str().unwrap(),
            ],
        );
        std::fs::write(
            f.fw_env_config(),
            format!("# u_env\n{} 0x0 0x20000 0x20000\n", env.display()),
        )
        .unwrap();
        f
    }

    pub fn dev(&self, n: u32) -> PathBuf {
        self.root.join(format!("dev/mtd{n}"))
    }

    pub fn fw_env_config(&self) -> PathBuf {
        self.root.join("etc/fw_env.config")
    }

    /// The [board] section for this flash.
    pub fn board_config(&self) -> String {
        format!(
            "profile = \"linksys\"\nid = \"linksys-wrt32x\"\nenv_config = \"{}\"\nproc = \"{}\"\ndev = \"{}\"\nsysfs = \"{}\"\nreboot_command = [\"touch\", \"{}\"]\n",
            self.fw_env_config().display(),
            self.root.join("proc").display(),
            self.root.join("dev").display(),
            self.root.join("sys").display(),
            self.root.join("reboot-requested").display(),
        )
    }

    /// The env as the real fw_printenv prints it.
    pub fn env(&self) -> BTreeMap<String, String> {
        let cfg = self.fw_env_config();
        tool("fw_printenv", &["-c", cfg.to_str().unwrap()])
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn setenv(&self, pairs: &[(&str, &str)]) {
        let script = self.root.join("setenv.txt");
        let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&script, text).unwrap();
        let cfg = self.fw_env_config();
        tool(
            "fw_setenv",
            &["-c", cfg.to_str().unwrap(), "-s", script.to_str().unwrap()],
        );
    }

    /// The s_env log: (count of the last record, records).
    pub fn s_env(&self) -> (u32, u64) {
        let raw = std::fs::read(self.dev(2)).unwrap();
        let word = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().unwrap());
        let mut count = 0;
        let mut records = 0;
        for at in (0..raw.len()).step_by(PAGE as usize) {
            match word(at) {
                0xffff_ffff => break,
                MAGIC => {
                    assert_eq!(
                        word(at + 8),
                        MAGIC.wrapping_add(word(at + 4)),
                        "s_env record at {at:#x} has a bad checksum"
                    );
                    count = word(at + 4);
                    records += 1;
                }
                other => panic!("s_env at {at:#x}: foreign word {other:#x}"),
            }
        }
        (count, records)
    }

    /// What stock U-Boot does to s_env at a boot: append a record with the count + 1; erase
    /// the partition first when it is full.
    fn count_boot(&self) -> u32 {
        let (count, records) = self.s_env();
        let mut raw = std::fs::read(self.dev(2)).unwrap();
        let mut at = (records * PAGE) as usize;
        if at >= raw.len() {
            raw.fill(0xff);
            at = 0;
        }
        let n = count + 1;
        raw[at..at + 4].copy_from_slice(&MAGIC.to_le_bytes());
        raw[at + 4..at + 8].copy_from_slice(&n.to_le_bytes());
        raw[at + 8..at + 12].copy_from_slice(&MAGIC.wrapping_add(n).to_le_bytes());
        std::fs::write(self.dev(2), raw).unwrap();
        n
    }

    /// Power the router on: stock U-Boot until a firmware reaches userspace; then the WAN
    /// behaves as that firmware does. Returns the slot and version booted.
    pub async fn power_on(&self, world: &mut World) -> (Slot, String) {
        let _ = std::fs::remove_file(self.root.join("reboot-requested"));
        for _ in 0..16 {
            let env = self.env();
            let count = self.count_boot();
            if env.get("auto_recovery").map(String::as_str) == Some("yes") && count > LIMIT {
                let other = if env["boot_part"] == "1" {
                    ("2", "run altnandboot")
                } else {
                    ("1", "run nandboot")
                };
                self.setenv(&[("boot_part", other.0), ("bootcmd", other.1)]);
                std::fs::write(self.dev(2), vec![0xffu8; 0x4_0000]).unwrap();
                continue;
            }
            let env = self.env();
            let (slot, kernel, rootfs) = match env["bootcmd"].as_str() {
                "run nandboot" => (Slot::A, 5, 6),
                "run altnandboot" => (Slot::B, 7, 8),
                other => panic!("U-Boot: unknown bootcmd {other:?}"),
            };
            let command = if slot == Slot::A {
                "nandboot"
            } else {
                "altnandboot"
            };
            let img = std::fs::read(self.dev(kernel)).unwrap();
            let Some(payload) = load(&env[command], &img) else {
                continue; // not bootable: reset, counted again
            };
            let Ok(k) = fwguard::sim::Kernel::read(payload) else {
                continue; // the kernel crashes at once
            };
            if !k.behaviour.boots {
                continue;
            }
            if k.behaviour.root {
                // The kernel attaches the UBI on rootfsN (the tail of kernelN) and mounts
                // its root from volume rootfs, or panics. At the first attach UBI grows the
                // autoresize volume, rewriting its volume table.
                let mut img = img.clone();
                let area = &mut img[ROOT_AT..];
                let mounts = super::ubi::volume(area, "rootfs")
                    .is_some_and(|r| fwguard::sim::image::mounts_as_squashfs(&r).is_ok());
                if !mounts {
                    continue;
                }
                if super::ubi::has_autoresize(area) {
                    let pebs = area.len() / super::ubi::PEB;
                    super::ubi::first_attach(area, pebs);
                    std::fs::write(self.dev(kernel), &img).unwrap();
                }
            }
            std::fs::write(
                self.root.join("sys/class/ubi/ubi0/mtd_num"),
                format!("{rootfs}\n"),
            )
            .unwrap();
            let id: [u8; 16] = Sha256::digest(format!("{:?}", std::time::Instant::now()))[..16]
                .try_into()
                .unwrap();
            std::fs::write(
                self.root.join("proc/sys/kernel/random/boot_id"),
                hex::encode(id),
            )
            .unwrap();
            world.wan.set_up(k.behaviour.wan_up).await.unwrap();
            return (slot, k.version.as_str().to_string());
        }
        panic!("stuck in a boot loop");
    }

    pub fn reboot_requested(&self) -> bool {
        self.root.join("reboot-requested").exists()
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// What the boot command (`...; nand read ADDR OFFSET SIZE; bootz ADDR` or `bootm ADDR`)
/// makes of the kernel partition: the kernel it starts, or None when it refuses the image.
fn load<'a>(command: &str, part: &'a [u8]) -> Option<&'a [u8]> {
    let read_size = command
        .split(';')
        .find_map(|c| c.trim().strip_prefix("nand read "))
        .and_then(|args| args.split_whitespace().nth(2))
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .expect("the boot command reads the kernel from NAND") as usize;
    let loaded = &part[..read_size.min(part.len())];
    if command.contains("bootz ") {
        // Linux's arch/arm zImage head: magic at 0x24, start and end addresses after it.
        if le32(loaded, 0x24) != 0x016f_2818 {
            return None;
        }
        let size = le32(loaded, 0x2c).checked_sub(le32(loaded, 0x28))? as usize;
        if !(0x34..=loaded.len()).contains(&size) {
            return None;
        }
        Some(&loaded[0x34..size])
    } else if command.contains("bootm ") {
        // Legacy uImage: magic, header CRC (over the header with the field zeroed), data CRC.
        if be32(loaded, 0) != 0x2705_1956 {
            return None;
        }
        let mut header = loaded[..64].to_vec();
        header[4..8].fill(0);
        if crc32(&header) != be32(loaded, 4) {
            return None;
        }
        let end = 64 + be32(loaded, 12) as usize;
        let data = loaded.get(64..end)?;
        (crc32(data) == be32(loaded, 24)).then_some(data)
    } else {
        panic!("U-Boot: no bootz or bootm in {command:?}");
    }
}

/// CRC-32 (IEEE 802.3, as zlib's), bit by bit: independent of the crate fwguard uses.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A Linksys factory image of `version` (a zImage padded to the kernel's room, a UBI image
/// made by ubinize with a squashfs root made by mksquashfs, the `.LINKSYS.` footer naming
/// `model` with the CRC the real cksum computes), and where its file is under `root`.
pub fn factory_image(
    root: &Path,
    version: &str,
    b: fwguard::sim::Behaviour,
    model: &str,
) -> (Vec<u8>, PathBuf) {
    let dir = root.join(format!("factory-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let v = version.parse().unwrap();
    let mut img =
        fwguard::sim::firmware_image_for("linksys-wrt32x", &v, 1_793_491_200, 64 * 1024, b);
    img.resize(ROOT_AT, 0);
    img.extend(super::ubi::ubinize_root(
        &dir,
        &super::tools::squashfs(&dir, version),
    ));
    img.resize(img.len().div_ceil(2048) * 2048, 0);
    let body = dir.join("body.img");
    std::fs::write(&body, &img).unwrap();
    let crc: u32 = tool("cksum", &[body.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut footer = format!(
        ".LINKSYS.01000409{model:<15}{crc:08X}{:<8}{:<16}",
        "0", "K0000000F0246434"
    )
    .into_bytes();
    footer.resize(256, 0);
    img.extend(footer);
    let path = dir.join(format!("factory-{version}.img"));
    std::fs::write(&path, &img).unwrap();
    (img, path)
}
