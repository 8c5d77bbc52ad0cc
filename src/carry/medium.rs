//! The target slot's file system, mounted read-write for the carry and nothing else: a block
//! device (`BlockMedium`), or a volume of the UBI on an MTD partition (`ubi_mount`). Mounted
//! under the runtime directory (RAM), never over anything of the running firmware's, and
//! unmounted (the UBI detached) before the trial is armed, on success or failure.

use super::CarryError;
use crate::slot::Slot;
use std::path::{Path, PathBuf};

/// Opens slot `slot`'s file system for the settings.
pub trait SettingsMedium: Send + Sync {
    /// Mount it read-write; the caller writes under [`Opened::root`], then closes it.
    fn open(&self, slot: Slot) -> Result<Box<dyn Opened + '_>, CarryError>;
    /// What it is, for messages.
    fn describe(&self, slot: Slot) -> String;
}

/// A mounted file system of the target slot.
pub trait Opened {
    fn root(&self) -> &Path;
    /// Everything written is on the flash, the file system unmounted (and its UBI detached).
    fn close(self: Box<Self>) -> Result<(), CarryError>;
}

/// The mount point under the runtime directory: made empty, owned by fwguard.
pub(super) fn mount_point(runtime_dir: &Path) -> Result<PathBuf, CarryError> {
    let dir = runtime_dir.join("carry");
    let made = std::fs::create_dir_all(runtime_dir).and_then(|()| {
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Left by a carry cut off before it unmounted: unmount what is there still.
                let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
                Ok(())
            }
            r => r,
        }
    });
    made.map_err(|e| CarryError::io(format!("mount point {}", dir.display()), e))?;
    if std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(CarryError::Refused(format!(
            "the mount point {} is not an empty directory",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Mount `source` (a device, or `ubiN:VOLUME`) as `fstype` on `at`.
pub(super) fn mount(source: &str, at: &Path, fstype: &str) -> Result<(), CarryError> {
    use nix::mount::MsFlags;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
    nix::mount::mount(Some(source), at, Some(fstype), flags, None::<&str>).map_err(|e| {
        CarryError::io(
            format!("mount {source} ({fstype}) on {}", at.display()),
            e.into(),
        )
    })
}

/// Flush the file system at `at` to its device, then unmount it.
pub(super) fn unmount(at: &Path) -> Result<(), CarryError> {
    let synced = std::fs::File::open(at).and_then(|f| {
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)).map_err(std::io::Error::from)
    });
    synced.map_err(|e| CarryError::io(format!("sync {}", at.display()), e))?;
    nix::mount::umount2(at, nix::mount::MntFlags::empty())
        .map_err(|e| CarryError::io(format!("unmount {}", at.display()), e.into()))?;
    let _ = std::fs::remove_dir(at);
    Ok(())
}

/// A block device of each slot, mounted as `fstype`.
pub struct BlockMedium {
    pub devices: super::Medium,
    pub runtime_dir: PathBuf,
}

struct MountedBlock {
    at: PathBuf,
    open: bool,
}

impl SettingsMedium for BlockMedium {
    fn open(&self, slot: Slot) -> Result<Box<dyn Opened + '_>, CarryError> {
        let dev = self.devices.path(slot);
        let at = mount_point(&self.runtime_dir)?;
        mount(&dev.to_string_lossy(), &at, &self.devices.fstype)?;
        Ok(Box::new(MountedBlock { at, open: true }))
    }

    fn describe(&self, slot: Slot) -> String {
        format!(
            "{} ({})",
            self.devices.path(slot).display(),
            self.devices.fstype
        )
    }
}

impl Opened for MountedBlock {
    fn root(&self) -> &Path {
        &self.at
    }

    fn close(mut self: Box<Self>) -> Result<(), CarryError> {
        self.open = false;
        unmount(&self.at)
    }
}

impl Drop for MountedBlock {
    fn drop(&mut self) {
        if self.open {
            let _ = unmount(&self.at);
        }
    }
}
