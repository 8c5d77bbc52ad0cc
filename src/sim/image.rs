//! Simulated firmware images in the formats real bootloaders boot: a legacy uImage for the
//! sim board's U-Boot (`bootm`), or an ARM zImage for a stock Linksys U-Boot (`bootz`). What
//! the simulated kernel does once booted (keep the WAN up, panic) is written in its payload,
//! which only the simulated machine reads ([`Kernel::read`]); fwguard never does.

use crate::bootimg::{self, Format};
use crate::version::Version;
use sha2::{Digest, Sha256};

/// How a simulated firmware behaves once booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    pub wan_up: bool,
    pub boots: bool,
    /// It mounts its root file system from the slot's `rootfs` target (a squashfs): a
    /// target that holds none makes it panic, as a real kernel does.
    pub root: bool,
}

impl Behaviour {
    pub const GOOD: Behaviour = Behaviour {
        wan_up: true,
        boots: true,
        root: false,
    };
    /// Good, with its root file system in the slot's `rootfs` target.
    pub const GOOD_WITH_ROOT: Behaviour = Behaviour {
        root: true,
        ..Behaviour::GOOD
    };
}

/// First line of a simulated kernel's payload.
const MAGIC: &str = "fwguard-sim-kernel";
const UIMAGE_HEADER: usize = 64;

/// The format the bootloader of board `board` boots: stock Linksys U-Boot `bootz`es a zImage;
/// the sim board's U-Boot `bootm`s a uImage.
pub fn format_for(board: &str) -> Format {
    if board.starts_with("linksys") {
        Format::ZImage
    } else {
        Format::UImage
    }
}

/// The payload of a simulated kernel: what it is and does, then deterministic filler that
/// differs per version, `payload_len` bytes in all.
fn payload(version: &Version, payload_len: usize, b: Behaviour) -> Vec<u8> {
    let mut out = format!(
        "{MAGIC}\nversion={version}\nwan={}\nboot={}\n{}\0",
        if b.wan_up { "up" } else { "down" },
        if b.boots { "ok" } else { "panic" },
        if b.root { "root=rootfs\n" } else { "" }
    )
    .into_bytes();
    let mut block: [u8; 32] = Sha256::digest(version.as_str().as_bytes()).into();
    while out.len() < payload_len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(payload_len.max(out.iter().position(|&c| c == 0).unwrap_or(0) + 1));
    out
}

/// A simulated firmware image for `board`, about `payload_len` bytes.
pub fn firmware_image_for(
    board: &str,
    version: &Version,
    build_time: u64,
    payload_len: usize,
    b: Behaviour,
) -> Vec<u8> {
    let data = payload(version, payload_len, b);
    match format_for(board) {
        Format::ZImage => zimage(&data),
        _ => uimage(&format!("sim {version}"), build_time as u32, &data),
    }
}

/// What `mkimage -A arm -O linux -T kernel -C none -n NAME -d DATA` writes.
pub fn uimage(name: &str, time: u32, data: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; UIMAGE_HEADER];
    h[0..4].copy_from_slice(&0x2705_1956u32.to_be_bytes());
    h[8..12].copy_from_slice(&time.to_be_bytes());
    h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
    h[16..20].copy_from_slice(&0x4000_8000u32.to_be_bytes());
    h[20..24].copy_from_slice(&0x4000_8000u32.to_be_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(data).to_be_bytes());
    h[28] = 5; // IH_OS_LINUX
    h[29] = 2; // IH_ARCH_ARM
    h[30] = 2; // IH_TYPE_KERNEL
    let name = &name.as_bytes()[..name.len().min(31)];
    h[32..32 + name.len()].copy_from_slice(name);
    let crc = crc32fast::hash(&h);
    h[4..8].copy_from_slice(&crc.to_be_bytes());
    h.extend_from_slice(data);
    h
}

/// An ARM zImage: the decompressor's 0x30-byte head (the magic at 0x24, start and end at
/// 0x28 and 0x2c, the endianness word at 0x30), then the payload.
pub fn zimage(data: &[u8]) -> Vec<u8> {
    let mut img = vec![0u8; 0x34];
    // The head starts with NOPs (`mov r0, r0`), as the kernel's does.
    for at in (0..0x24).step_by(4) {
        img[at..at + 4].copy_from_slice(&0xe1a0_0000u32.to_le_bytes());
    }
    let size = (0x34 + data.len()) as u32;
    img[0x24..0x28].copy_from_slice(&0x016f_2818u32.to_le_bytes());
    img[0x28..0x2c].copy_from_slice(&0u32.to_le_bytes());
    img[0x2c..0x30].copy_from_slice(&size.to_le_bytes());
    img[0x30..0x34].copy_from_slice(&0x0403_0201u32.to_le_bytes());
    img.extend_from_slice(data);
    img
}

/// A simulated kernel as the simulated machine runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub version: Version,
    pub behaviour: Behaviour,
}

impl Kernel {
    /// Run the kernel the bootloader loaded (the data after the boot image's header): a
    /// payload that is no simulated kernel crashes at once.
    pub fn read(data: &[u8]) -> Result<Kernel, String> {
        let end = data.iter().position(|&b| b == 0).unwrap_or(0);
        let text = std::str::from_utf8(&data[..end]).map_err(|_| "not a simulated kernel")?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err("not a simulated kernel: it crashes at once".into());
        }
        let (mut version, mut behaviour) = (None, Behaviour::GOOD);
        for line in lines {
            match line.split_once('=') {
                Some(("version", v)) => version = v.parse().ok(),
                Some(("wan", v)) => behaviour.wan_up = v != "down",
                Some(("boot", v)) => behaviour.boots = v != "panic",
                Some(("root", "rootfs")) => behaviour.root = true,
                _ => {}
            }
        }
        Ok(Kernel {
            version: version.ok_or("simulated kernel without a version")?,
            behaviour,
        })
    }

    /// Load a slot as a bootloader does, by `format`: a uImage must pass `bootm`'s header
    /// and data CRCs; a zImage must carry its magic and a plausible size. Returns the kernel.
    pub fn load(slot: &[u8], format: Format) -> Result<Kernel, String> {
        let found = bootimg::detect(slot).filter(|b| b.format == format);
        let Some(b) = found else {
            return Err(format!("no {} at the start of the slot", format.as_str()));
        };
        let end = b.size as usize;
        if slot.len() < end {
            return Err(format!("{} runs past the slot", b.describe()));
        }
        let skip = match format {
            Format::UImage => {
                if !bootimg::uimage_intact(&slot[..end]) {
                    return Err("Bad Data CRC".into());
                }
                UIMAGE_HEADER
            }
            Format::ZImage => 0x34,
            Format::Fit => return Err("the simulated loaders boot no FIT".into()),
        };
        Kernel::read(&slot[skip.min(end)..end])
    }
}

/// Whether `bytes` (a root target) holds a squashfs 4.0 file system a kernel would mount:
/// its superblock's magic and version, and all of its `bytes_used` within the target.
pub fn mounts_as_squashfs(bytes: &[u8]) -> Result<(), String> {
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if bytes.len() < 96 || le32(0) != 0x7371_7368 {
        return Err("no squashfs superblock (magic hsqs)".into());
    }
    let major = u16::from_le_bytes([bytes[28], bytes[29]]);
    if major != 4 {
        return Err(format!("squashfs version {major}, the kernel mounts 4"));
    }
    let used = u64::from_le_bytes(bytes[40..48].try_into().expect("8 bytes"));
    if used > bytes.len() as u64 {
        return Err(format!(
            "squashfs of {used} bytes on a {}-byte device",
            bytes.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_load_as_their_bootloader_loads_them() {
        let v: Version = "1.2".parse().unwrap();
        let bad = Behaviour {
            wan_up: false,
            boots: true,
            root: true,
        };
        for (board, format) in [("sim", Format::UImage), ("linksys-wrt32x", Format::ZImage)] {
            let img = firmware_image_for(board, &v, 42, 4096, bad);
            assert_eq!(
                img.len(),
                4096 + if format == Format::UImage { 64 } else { 0x34 }
            );
            let k = Kernel::load(&img, format).unwrap();
            assert_eq!((k.version, k.behaviour), (v.clone(), bad));
            let other = if format == Format::UImage {
                Format::ZImage
            } else {
                Format::UImage
            };
            assert!(Kernel::load(&img, other).is_err(), "{board}");
        }
        let mut img = firmware_image_for("sim", &v, 42, 4096, bad);
        img[2000] ^= 1;
        assert_eq!(
            Kernel::load(&img, Format::UImage).unwrap_err(),
            "Bad Data CRC"
        );
    }
}
