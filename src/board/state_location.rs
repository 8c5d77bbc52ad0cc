//! Where `agent.state_dir` lives, and whether the other firmware slot will see it. After an
//! update the router reboots into the other slot, whose fwguard must find the state this one
//! wrote (the trial it armed, the known-good slot, the denylist). So the state directory must
//! be on storage both slots mount: a data partition (ext4, f2fs, UBIFS on a device that is
//! neither slot, such as `/data`, or a UBI volume like `syscfg`). Refused:
//!
//! - a file system in RAM (tmpfs, ramfs; on OpenWrt `/var` is a link to `/tmp`, a tmpfs): it
//!   is empty after every reboot;
//! - the running slot's own file systems: an overlay (OpenWrt's `/` and `/etc`, whose upper
//!   layer is the slot's own `rootfs_data`), a squashfs, a mount whose device is a slot's
//!   device (or a partition of a slot's disk, or the disk a slot is a partition of), a slot's
//!   MTD partition (`mtdblockN`), UBIFS on a UBI device attached to a slot's MTD partition,
//!   or a slot's own UBI volume.
//!
//! The mount is found from `<proc>/self/mountinfo` (the board profile's procfs) and the slot
//! devices from sysfs, both read as files, so tests describe a board with a few files. A
//! mountinfo that cannot be read fails the check: the location cannot be verified.
//!
//! The Linksys WRT profile has no partition both slots mount (only the U-Boot environment is
//! shared), nor has a uboot board with `shared_state = false`, so there any state directory
//! that survives a reboot is the running slot's own:
//! only RAM and read-only file systems (a squashfs root) are refused, and the passing detail says so (the trial's facts travel in the
//! bootloader environment instead: `state::carried`). The simulated router's slots are files on the host,
//! and its simulated reboot keeps every host directory, so its state is seen by both slots.

use super::mountinfo::{self, Mount, MountinfoError};
use crate::config::{BoardSettings, Settings};
use crate::slot::Slot;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub const CHECK: &str = "state location";

/// What to change when the state directory is refused.
pub const FIX: &str = "put state_dir on a partition both slots mount, such as /data (ext4, f2fs or ubifs on a device that is neither slot, or a UBI volume like syscfg); on OpenWrt /var is tmpfs and /etc is the running slot's overlay";

/// File systems in RAM.
const IN_RAM: [&str; 4] = ["tmpfs", "ramfs", "rootfs", "devtmpfs"];

/// File systems that are read-only by their format.
const READ_ONLY: [&str; 3] = ["squashfs", "cramfs", "romfs"];

/// The major number of the MTD block devices (`mtdblockN` is 31:N).
const MTD_BLOCK_MAJOR: u32 = 31;

/// What the board's storage allows.
#[derive(Debug, Clone)]
pub enum Layout {
    /// The state must be on neither slot: `slots` are the two slot devices.
    Shared {
        slots: Vec<(String, PathBuf)>,
        sysfs: PathBuf,
    },
    /// No partition both slots mount (Linksys WRT): only RAM is refused.
    NoSharedPartition,
}

#[derive(Debug, thiserror::Error)]
pub enum StateLocationError {
    #[error("{}; fix: {}", self.problem(), self.fix())]
    Mountinfo {
        dir: PathBuf,
        proc: PathBuf,
        source: MountinfoError,
    },
    #[error("{}; fix: {}", self.problem(), self.fix())]
    NoMount {
        dir: PathBuf,
        real: PathBuf,
        proc: PathBuf,
    },
    #[error("{}; fix: {}", self.problem(), self.fix())]
    Refused {
        dir: PathBuf,
        mount: Box<Mount>,
        why: String,
    },
}

impl StateLocationError {
    /// What is wrong, without the fix (for `doctor`, which prints the fix on its own line).
    pub fn problem(&self) -> String {
        match self {
            StateLocationError::Mountinfo { dir, source, .. } => format!(
                "state_dir = \"{}\": cannot tell which file system it is on ({source}), so fwguard cannot verify that the other slot will see its state, and writes nothing",
                dir.display()
            ),
            StateLocationError::NoMount { dir, real, proc } => format!(
                "state_dir = \"{}\": no mount in {} holds {}, so fwguard cannot verify that the other slot will see its state, and writes nothing",
                dir.display(),
                proc.join("self/mountinfo").display(),
                real.display()
            ),
            StateLocationError::Refused { dir, mount, why } => format!(
                "state_dir = \"{}\" is on {}, {why}: the other slot would not find the update state after the reboot, so fwguard writes nothing",
                dir.display(),
                on(mount)
            ),
        }
    }

    pub fn fix(&self) -> String {
        match self {
            StateLocationError::Refused { .. } => FIX.into(),
            StateLocationError::Mountinfo { proc, .. } | StateLocationError::NoMount { proc, .. } => format!(
                "mount procfs at {} (fwguard reads self/mountinfo there) or set board.proc to where it is; then {FIX}",
                proc.display()
            ),
        }
    }
}

/// `MOUNT_POINT (FSTYPE on SOURCE)`.
fn on(m: &Mount) -> String {
    format!("{} ({} on {})", m.mount_point.display(), m.fstype, m.source)
}

/// Where the state lives, found acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub dir: PathBuf,
    /// None on the simulated router (no procfs to read).
    pub mount: Option<Mount>,
    /// The running slot's own (a board without a shared partition).
    pub per_slot: bool,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self.dir.display();
        match &self.mount {
            None => write!(f, "state_dir = \"{dir}\" is a directory of the host, outside the simulated slots, and a simulated reboot keeps it: both simulated slots see it"),
            Some(m) if self.per_slot => write!(f, "state_dir = \"{dir}\" is on {}; this board has no partition both slots mount, so this state is the running slot's own (a trial's facts travel in the bootloader environment, fwguard_carry)", on(m)),
            Some(m) => write!(f, "state_dir = \"{dir}\" is on {}, which is neither slot: both slots see it", on(m)),
        }
    }
}

/// Check the configured state directory on the configured board.
pub fn check(settings: &Settings) -> Result<Location, StateLocationError> {
    let dir = &settings.state_dir;
    let (proc, layout) = match &settings.board {
        #[cfg(feature = "demo")]
        BoardSettings::Sim { .. } => {
            return Ok(Location {
                dir: dir.clone(),
                mount: None,
                per_slot: false,
            })
        }
        BoardSettings::UBoot {
            proc,
            shared_state: false,
            ..
        } => (proc, Layout::NoSharedPartition),
        BoardSettings::UBoot {
            proc,
            sysfs,
            slot_a,
            slot_b,
            targets,
            ..
        } => (proc, shared(slot_a, slot_b, targets, sysfs)),
        BoardSettings::Grub(o) | BoardSettings::Script(o) => {
            (&o.proc, shared(&o.slot_a, &o.slot_b, &o.targets, &o.sysfs))
        }
        BoardSettings::Linksys(l) => (&l.proc, Layout::NoSharedPartition),
    };
    check_at(dir, proc, &layout)
}

/// The storage of both slots: their boot devices and every target of theirs.
fn shared(
    a: &Path,
    b: &Path,
    targets: &[crate::config::targets::TargetPaths],
    sysfs: &Path,
) -> Layout {
    let mut slots = vec![
        (format!("slot {}", Slot::A), a.to_path_buf()),
        (format!("slot {}", Slot::B), b.to_path_buf()),
    ];
    for t in targets {
        for (s, p) in [(Slot::A, &t.slot_a), (Slot::B, &t.slot_b)] {
            slots.push((format!("slot {s}'s target {}", t.name), p.clone()));
        }
    }
    Layout::Shared {
        slots,
        sysfs: sysfs.to_path_buf(),
    }
}

/// Check `dir` against the mounts of `<proc>/self/mountinfo`.
pub fn check_at(dir: &Path, proc: &Path, layout: &Layout) -> Result<Location, StateLocationError> {
    let mounts = mountinfo::read(proc).map_err(|source| StateLocationError::Mountinfo {
        dir: dir.to_path_buf(),
        proc: proc.to_path_buf(),
        source,
    })?;
    // The directory is created on first use: judge where it would be created.
    let near = crate::runtime_dir::nearest_existing(dir);
    let real = std::fs::canonicalize(&near).unwrap_or(near);
    let mount = mountinfo::holding(&mounts, &real).ok_or_else(|| StateLocationError::NoMount {
        dir: dir.to_path_buf(),
        real: real.clone(),
        proc: proc.to_path_buf(),
    })?;
    match judge(mount, layout) {
        Ok(per_slot) => Ok(Location {
            dir: dir.to_path_buf(),
            mount: Some(mount.clone()),
            per_slot,
        }),
        Err(why) => Err(StateLocationError::Refused {
            dir: dir.to_path_buf(),
            mount: Box::new(mount.clone()),
            why,
        }),
    }
}

/// Whether the state may live on `mount`: Ok(true) when it is then the running slot's own
/// (a board without a shared partition), else why not.
pub fn judge(mount: &Mount, layout: &Layout) -> Result<bool, String> {
    if IN_RAM.contains(&mount.fstype.as_str()) {
        return Err("in RAM, emptied at every reboot".into());
    }
    let Layout::Shared { slots, sysfs } = layout else {
        if READ_ONLY.contains(&mount.fstype.as_str()) {
            return Err(format!(
                "a {}, read-only (a firmware's root): fwguard could not write its state there",
                mount.fstype
            ));
        }
        return Ok(true);
    };
    match mount.fstype.as_str() {
        "overlay" => return Err("an overlay, whose upper layer is the running slot's own (OpenWrt's rootfs_data under / and /etc): the other slot mounts its own".into()),
        "squashfs" => return Err("a squashfs, a firmware slot's read-only root file system".into()),
        _ => {}
    }
    for (what, path) in slots {
        if let Some(why) = on_slot(mount, path, sysfs) {
            return Err(format!("{why} {what} ({})", path.display()));
        }
    }
    Ok(false)
}

/// How `mount` is on the slot device `slot` (ending so that "slot X (path)" follows).
fn on_slot(mount: &Mount, slot: &Path, sysfs: &Path) -> Option<String> {
    let real = std::fs::canonicalize(slot).unwrap_or_else(|_| slot.to_path_buf());
    let named = |f: fn(&Path) -> Option<String>| f(&real).or_else(|| f(slot));
    if let Some(mtd) = named(crate::flash::mtd::mtd_name) {
        let n: u32 = mtd["mtd".len()..].parse().ok()?;
        let source_mtd = crate::flash::mtd::mtd_name(Path::new(&mount.source));
        if source_mtd.as_deref() == Some(mtd.as_str()) || mount.dev == (MTD_BLOCK_MAJOR, n) {
            return Some(format!("on {mtd}, the MTD partition of"));
        }
        let ubi = ubi_source(mount)?;
        let attached = sysfs.join(format!("class/ubi/ubi{}/mtd_num", ubi.device));
        let mtd_num = std::fs::read_to_string(attached).ok()?;
        return (mtd_num.trim().parse() == Ok(n)).then(|| {
            format!(
                "UBIFS on ubi{}, the UBI device attached to {mtd}, the MTD partition of",
                ubi.device
            )
        });
    }
    if let Some(vol) = named(crate::flash::ubi::ubi_volume_name) {
        let ubi = ubi_source(mount)?;
        let (d, id) = vol["ubi".len()..].split_once('_')?;
        if ubi.device.to_string() != d {
            return None;
        }
        let same = match ubi.volume {
            Volume::Id(v) => v.to_string() == id,
            Volume::Name(name) => {
                let path = sysfs.join("class/ubi").join(&vol).join("name");
                std::fs::read_to_string(path).is_ok_and(|n| n.trim() == name)
            }
        };
        return same.then(|| format!("UBIFS on {vol}, the UBI volume of"));
    }
    if mount.dev.0 == 0 {
        return None;
    }
    let dev = nix::sys::stat::makedev(mount.dev.0.into(), mount.dev.1.into());
    let slot_dev = block_device(&real, sysfs)?;
    let (maj, min) = mount.dev;
    if dev == slot_dev {
        Some(format!("on device {maj}:{min}, the device of"))
    } else if super::identity::disk_of(dev, sysfs) == Some(slot_dev) {
        Some(format!("on device {maj}:{min}, a partition of the disk of"))
    } else if super::identity::disk_of(slot_dev, sysfs) == Some(dev) {
        Some(format!(
            "on device {maj}:{min}, the whole disk that holds the partition of"
        ))
    } else {
        None
    }
}

/// The device number of a slot on a block device: its node's, or (a slot given as an image
/// named like its device, `mmcblk0p3`) the one sysfs gives for that name.
fn block_device(slot: &Path, sysfs: &Path) -> Option<u64> {
    if let Ok(m) = std::fs::metadata(slot) {
        if m.file_type().is_block_device() {
            return Some(m.rdev());
        }
    }
    let name = slot.file_name()?.to_str()?;
    let text = std::fs::read_to_string(sysfs.join("class/block").join(name).join("dev")).ok()?;
    let (a, b) = text.trim().split_once(':')?;
    Some(nix::sys::stat::makedev(a.parse().ok()?, b.parse().ok()?))
}

#[derive(Debug, PartialEq, Eq)]
enum Volume<'a> {
    Id(u32),
    Name(&'a str),
}

#[derive(Debug, PartialEq, Eq)]
struct UbiSource<'a> {
    device: u32,
    volume: Volume<'a>,
}

/// The UBI volume a UBIFS mount is of, in the forms the kernel takes: `ubiX_Y`, `ubiY`
/// (device 0, volume Y), `ubiX:NAME`, `ubi:NAME` (device 0), `!` for `:`, and the volume's
/// character device `/dev/ubiX_Y`.
fn ubi_source(mount: &Mount) -> Option<UbiSource<'_>> {
    if mount.fstype != "ubifs" {
        return None;
    }
    let s = mount.source.strip_prefix("/dev/").unwrap_or(&mount.source);
    let rest = s.strip_prefix("ubi")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (n, tail) = rest.split_at(digits);
    let number = || n.parse::<u32>().ok();
    let (device, volume) = match tail.as_bytes().first() {
        None => (0, Volume::Id(number()?)),
        Some(b':') | Some(b'!') if tail.len() > 1 => (
            if n.is_empty() { 0 } else { number()? },
            Volume::Name(&tail[1..]),
        ),
        Some(b'_') => (number()?, Volume::Id(tail[1..].parse().ok()?)),
        _ => return None,
    };
    Some(UbiSource { device, volume })
}

#[cfg(test)]
#[path = "state_location_tests.rs"]
mod tests;
