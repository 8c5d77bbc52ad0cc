//! A volume of the UBI on the target slot's MTD partition, through the kernel: attach the
//! partition (`/dev/ubi_ctrl`), find the volume (making it, with the free space, when the UBI
//! has none, as OpenWrt's `nand.sh` does), mount it as UBIFS (the kernel formats an empty
//! volume at its first mount), and after the carry sync, unmount and detach. The running
//! firmware's UBI (`ubi0`, on the booted slot) is never attached, mounted or detached here:
//! the partition is the target slot's, and the kernel refuses to attach one twice.

use super::medium::{mount, mount_point, unmount, Opened, SettingsMedium};
use super::CarryError;
use crate::slot::Slot;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod ioctl {
    /// `struct ubi_attach_req` of <mtd/ubi-user.h>.
    #[repr(C)]
    pub struct AttachReq {
        pub ubi_num: i32,
        pub mtd_num: i32,
        pub vid_hdr_offset: i32,
        pub max_beb_per1024: i16,
        pub disable_fm: i8,
        pub need_resv_pool: i8,
        pub padding: [i8; 8],
    }
    /// `struct ubi_mkvol_req` (packed).
    #[repr(C, packed)]
    pub struct MkvolReq {
        pub vol_id: i32,
        pub alignment: i32,
        pub bytes: i64,
        pub vol_type: i8,
        pub flags: u8,
        pub name_len: i16,
        pub padding2: [i8; 4],
        pub name: [u8; 128],
    }
    nix::ioctl_write_ptr!(attach, b'o', 64, AttachReq);
    nix::ioctl_write_ptr!(detach, b'o', 65, i32);
    nix::ioctl_write_ptr!(mkvol, b'o', 0, MkvolReq);
}

/// Any free number (`UBI_DEV_NUM_AUTO`, `UBI_VOL_NUM_AUTO`).
const AUTO: i32 = -1;
const DYNAMIC_VOLUME: i8 = 3;

/// The MTD partition of each slot (`/dev/mtdN`) whose UBI holds volume `volume`.
pub struct UbiMedium {
    pub partitions: super::Medium,
    pub volume: String,
    /// Where `ubi_ctrl` and the `ubiN` nodes are (`/dev`), and the kernel's sysfs.
    pub dev: PathBuf,
    pub sysfs: PathBuf,
    pub runtime_dir: PathBuf,
}

/// The number N of `/dev/mtdN`.
pub fn mtd_number(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("mtd")?.parse().ok()
}

fn read(path: &Path) -> Result<String, CarryError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| CarryError::io(path.display().to_string(), e))
}

impl UbiMedium {
    /// The UBI device attached to MTD `mtd`, if one is.
    fn attached(&self, mtd: u32) -> Option<u32> {
        let dir = std::fs::read_dir(self.sysfs.join("class/ubi")).ok()?;
        dir.flatten().find_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("ubi")?.parse().ok()?;
            let num = std::fs::read_to_string(e.path().join("mtd_num")).ok()?;
            (num.trim() == mtd.to_string()).then_some(n)
        })
    }

    fn attach(&self, mtd: u32) -> Result<u32, CarryError> {
        let ctrl = self.dev.join("ubi_ctrl");
        let f = std::fs::File::open(&ctrl)
            .map_err(|e| CarryError::io(ctrl.display().to_string(), e))?;
        let mut req = ioctl::AttachReq {
            ubi_num: AUTO,
            mtd_num: mtd as i32,
            vid_hdr_offset: 0,
            max_beb_per1024: 0,
            disable_fm: 0,
            need_resv_pool: 0,
            padding: [0; 8],
        };
        // SAFETY: UBI_IOCATT reads a `struct ubi_attach_req`, which `req` is, and writes the
        // number of the new device into its first field.
        unsafe { ioctl::attach(fd(&f), std::ptr::addr_of_mut!(req).cast_const()) }.map_err(
            |e| {
                CarryError::io(
                    format!("attach the UBI on mtd{mtd} ({})", ctrl.display()),
                    e.into(),
                )
            },
        )?;
        Ok(req.ubi_num as u32)
    }

    fn detach(&self, ubi: u32) -> Result<(), CarryError> {
        let ctrl = self.dev.join("ubi_ctrl");
        let f = std::fs::File::open(&ctrl)
            .map_err(|e| CarryError::io(ctrl.display().to_string(), e))?;
        let n = ubi as i32;
        // SAFETY: UBI_IOCDET reads one int32.
        unsafe { ioctl::detach(fd(&f), &n) }
            .map_err(|e| CarryError::io(format!("detach ubi{ubi}"), e.into()))?;
        Ok(())
    }

    /// Whether UBI device `ubi` has volume `name`.
    fn has_volume(&self, ubi: u32, name: &str) -> bool {
        let dev = self.sysfs.join(format!("class/ubi/ubi{ubi}"));
        let Ok(dir) = std::fs::read_dir(&dev) else {
            return false;
        };
        dir.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("ubi{ubi}_"))
                && std::fs::read_to_string(e.path().join("name")).is_ok_and(|n| n.trim() == name)
        })
    }

    /// Make volume `name` on UBI device `ubi` with all its free space.
    fn make_volume(&self, ubi: u32, name: &str) -> Result<(), CarryError> {
        let dev = self.sysfs.join(format!("class/ubi/ubi{ubi}"));
        let blocks: i64 = read(&dev.join("avail_eraseblocks"))?.parse().unwrap_or(0);
        let leb: i64 = read(&dev.join("eraseblock_size"))?.parse().unwrap_or(0);
        if blocks < 1 || leb < 1 {
            return Err(CarryError::Refused(format!(
                "ubi{ubi} has no volume {name:?} and no free space to make it"
            )));
        }
        let node = self.dev.join(format!("ubi{ubi}"));
        let f = open_when_there(&node)?;
        let mut req = ioctl::MkvolReq {
            vol_id: AUTO,
            alignment: 1,
            bytes: blocks * leb,
            vol_type: DYNAMIC_VOLUME,
            flags: 0,
            name_len: name.len() as i16,
            padding2: [0; 4],
            name: [0; 128],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: UBI_IOCMKVOL reads a `struct ubi_mkvol_req`, which `req` is.
        unsafe { ioctl::mkvol(fd(&f), &req) }.map_err(|e| {
            CarryError::io(
                format!("make volume {name:?} on {}", node.display()),
                e.into(),
            )
        })?;
        tracing::info!("made volume {name:?} on ubi{ubi} ({} bytes)", blocks * leb);
        Ok(())
    }
}

/// Whether a volume of UBI device `ubi` is mounted, by `mountinfo` (its source field names
/// the volume as `ubiN:NAME`, `ubiN_M` or `/dev/ubiN_M`).
fn in_use(mountinfo: &str, ubi: u32) -> bool {
    let (by_name, by_node) = (format!("ubi{ubi}:"), format!("ubi{ubi}_"));
    mountinfo.lines().any(|l| {
        let source = l.split(" - ").nth(1).and_then(|t| t.split(' ').nth(1));
        source.is_some_and(|s| {
            let s = s.strip_prefix("/dev/").unwrap_or(s);
            s.starts_with(&by_name) || s.starts_with(&by_node)
        })
    })
}

fn fd(f: &std::fs::File) -> std::os::fd::RawFd {
    std::os::fd::AsRawFd::as_raw_fd(f)
}

/// The device node the kernel creates for a new UBI device (devtmpfs or hotplug makes it
/// shortly after the attach).
fn open_when_there(node: &Path) -> Result<std::fs::File, CarryError> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(node)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(CarryError::io(node.display().to_string(), e)),
        }
    }
}

struct MountedUbi<'a> {
    medium: &'a UbiMedium,
    at: PathBuf,
    ubi: u32,
    mounted: bool,
}

impl SettingsMedium for UbiMedium {
    fn open(&self, slot: Slot) -> Result<Box<dyn Opened + '_>, CarryError> {
        let part = self.partitions.path(slot);
        let mtd = mtd_number(part).ok_or_else(|| {
            CarryError::Refused(format!(
                "{} is not an MTD partition (/dev/mtdN)",
                part.display()
            ))
        })?;
        let ubi = match self.attached(mtd) {
            // Attached already (a carry cut off before it detached): only while nothing of
            // it is mounted, which is never so for the slot being installed.
            Some(n) => {
                let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
                if in_use(&mounts, n) {
                    return Err(CarryError::Refused(format!(
                        "ubi{n} on {} is mounted: that is a running firmware's UBI, not the slot being installed",
                        part.display()
                    )));
                }
                n
            }
            None => self.attach(mtd)?,
        };
        let mut m = MountedUbi {
            medium: self,
            at: PathBuf::new(),
            ubi,
            mounted: false,
        };
        if !self.has_volume(ubi, &self.volume) {
            self.make_volume(ubi, &self.volume)?;
        }
        m.at = mount_point(&self.runtime_dir)?;
        mount(&format!("ubi{ubi}:{}", self.volume), &m.at, "ubifs")?;
        m.mounted = true;
        tracing::debug!(
            "mounted volume {:?} of ubi{ubi} (on {}) for the settings",
            self.volume,
            part.display()
        );
        Ok(Box::new(m))
    }

    fn describe(&self, slot: Slot) -> String {
        format!(
            "volume {:?} of the UBI on {}",
            self.volume,
            self.partitions.path(slot).display()
        )
    }
}

impl Opened for MountedUbi<'_> {
    fn root(&self) -> &Path {
        &self.at
    }

    fn close(mut self: Box<Self>) -> Result<(), CarryError> {
        self.mounted = false;
        unmount(&self.at)?;
        let ubi = std::mem::replace(&mut self.ubi, u32::MAX);
        self.medium.detach(ubi)
    }
}

impl Drop for MountedUbi<'_> {
    /// A carry that failed half-way leaves nothing attached or mounted.
    fn drop(&mut self) {
        if self.mounted {
            let _ = unmount(&self.at);
        }
        if self.ubi != u32::MAX {
            let _ = self.medium.detach(self.ubi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requests_are_the_kernel_s_layout_and_numbers() {
        assert_eq!(std::mem::size_of::<ioctl::AttachReq>(), 24);
        assert_eq!(std::mem::size_of::<ioctl::MkvolReq>(), 152);
        // <mtd/ubi-user.h>: UBI_IOCATT, UBI_IOCDET, UBI_IOCMKVOL as the kernel defines them.
        assert_eq!(nix::request_code_write!(b'o', 64, 24), 0x4018_6f40);
        assert_eq!(nix::request_code_write!(b'o', 65, 4), 0x4004_6f41);
        assert_eq!(nix::request_code_write!(b'o', 0, 152), 0x4098_6f00);
        assert_eq!(mtd_number(Path::new("/dev/mtd7")), Some(7));
        assert_eq!(mtd_number(Path::new("/dev/mtdblock7")), None);
        assert_eq!(mtd_number(Path::new("/dev/sda2")), None);
    }

    #[test]
    fn a_ubi_with_a_mounted_volume_is_in_use() {
        let mounts = "22 1 0:17 / /rom ro,relatime - squashfs /dev/root ro\n\
                      25 22 0:23 / /overlay rw,noatime - ubifs ubi0:rootfs_data rw,assert=read-only\n\
                      30 22 0:25 / /mnt rw - ubifs /dev/ubi12_0 rw\n";
        assert!(in_use(mounts, 0));
        assert!(in_use(mounts, 12));
        assert!(!in_use(mounts, 1), "ubi1 is not ubi12");
        assert!(!in_use(mounts, 2));
    }
}
