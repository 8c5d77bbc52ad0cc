//! How the owner's settings reach the firmware being installed (`[settings]`): what is
//! carried, and into which file system of the target slot.

use std::path::PathBuf;

/// The placeholder in `backup_command` replaced by the file the backup is written to.
pub const BACKUP_PLACEHOLDER: &str = "{backup}";
/// The placeholder in `carry` replaced by the mount point of the target's file system.
pub const TARGET_PLACEHOLDER: &str = "{target}";
/// OpenWrt's backup of the changed configuration, as `sysupgrade -b` makes it.
pub const OPENWRT_BACKUP: [&str; 3] = ["sysupgrade", "-b", BACKUP_PLACEHOLDER];
/// The volume of a NAND firmware's UBI that holds its overlay, and the name under which
/// OpenWrt's preinit (`80_mount_root`) finds a backup there and restores it.
pub const OPENWRT_DATA_VOLUME: &str = "rootfs_data";
pub const OPENWRT_BACKUP_NAME: &str = "sysupgrade.tgz";
/// The largest backup fwguard places (OpenWrt's are a few KiB to a few hundred).
pub const MAX_BACKUP: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarryPlan {
    /// The new firmware boots with what its image holds.
    Nothing,
    /// OpenWrt on NAND: `backup_command` writes the backup (`sysupgrade -b`: the owner's
    /// `/etc/sysupgrade.conf`, the packages' keep lists, the changed conffiles); it is
    /// placed as `sysupgrade.tgz` in volume `volume` of the UBI on the target's partition,
    /// which the new firmware's preinit restores at its first boot.
    OpenWrt {
        backup_command: Vec<String>,
        volume: String,
        on: Target,
    },
    /// The paths copied (with their modes, owners and times) into the target's file system.
    Keep { paths: Vec<PathBuf>, on: Target },
    /// A command run with the target's file system mounted (`{target}`: its mount point).
    Command { command: Vec<String>, on: Target },
}

/// Which of the board's targets (`[board.targets]`, or the Linksys profile's `rootfs`)
/// holds the file system the settings go to, and what it is mounted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// `OpenWrt`: always ubifs.
    pub fstype: String,
}

/// Where the carried settings go in each slot: the target's partition (an MTD partition
/// holding a UBI for `OpenWrt`, a block device otherwise), mounted for the carry only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medium {
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
    pub fstype: String,
}

impl Medium {
    pub fn path(&self, slot: crate::slot::Slot) -> &std::path::Path {
        match slot {
            crate::slot::Slot::A => &self.slot_a,
            crate::slot::Slot::B => &self.slot_b,
        }
    }
}

impl CarryPlan {
    pub fn target(&self) -> Option<&Target> {
        match self {
            CarryPlan::Nothing => None,
            CarryPlan::OpenWrt { on, .. }
            | CarryPlan::Keep { on, .. }
            | CarryPlan::Command { on, .. } => Some(on),
        }
    }

    /// What the plan carries, for logs and `doctor`.
    pub fn describe(&self) -> String {
        match self {
            CarryPlan::Nothing => {
                "nothing (the new firmware boots with what its image holds)".into()
            }
            CarryPlan::OpenWrt { volume, .. } => {
                format!(
                    "the OpenWrt backup, as {OPENWRT_BACKUP_NAME} in the target's {volume} volume"
                )
            }
            CarryPlan::Keep { paths, .. } => format!(
                "{} kept path{} into the target's file system",
                paths.len(),
                if paths.len() == 1 { "" } else { "s" }
            ),
            CarryPlan::Command { command, .. } => {
                format!(
                    "the carry command {:?} on the target's file system",
                    command[0]
                )
            }
        }
    }
}
