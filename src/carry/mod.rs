//! The owner's configuration and the firmware it goes to: whether a release can take the
//! settings the running firmware has ([`compat`], OpenWrt's `compat_version`), and carrying
//! them into the slot being installed before its trial is armed ([`plan`], [`write`]).

pub mod check;
pub mod compat;
pub mod medium;
pub mod plan;
pub mod ubi_mount;
pub mod write;

pub use compat::{Break, CompatError, CompatVersion};
pub use medium::{BlockMedium, Opened, SettingsMedium};
pub use plan::{CarryPlan, Medium, Target};
pub use ubi_mount::UbiMedium;

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CarryError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

impl CarryError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> CarryError {
        CarryError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The kernel's file systems the plan's target is mounted through, on `board`'s target
/// devices (`dev`: where `ubi_ctrl` is; `sysfs`: the kernel's).
pub fn medium_for(
    plan: &CarryPlan,
    board: &crate::board::Board,
    runtime_dir: &Path,
    dev: &Path,
    sysfs: &Path,
) -> Result<Option<Box<dyn SettingsMedium>>, CarryError> {
    let Some(t) = plan.target() else {
        return Ok(None);
    };
    let path = |slot| {
        board
            .target(&t.name, slot)
            .map(|d| d.device_path().to_path_buf())
            .ok_or_else(|| {
                CarryError::Refused(format!(
                    "settings.target {:?} is not a target of this board (it has: {})",
                    t.name,
                    board.target_names().join(", ")
                ))
            })
    };
    let on = Medium {
        slot_a: path(crate::slot::Slot::A)?,
        slot_b: path(crate::slot::Slot::B)?,
        fstype: t.fstype.clone(),
    };
    Ok(Some(match plan {
        CarryPlan::OpenWrt { volume, .. } => Box::new(UbiMedium {
            partitions: on,
            volume: volume.clone(),
            dev: dev.to_path_buf(),
            sysfs: sysfs.to_path_buf(),
            runtime_dir: runtime_dir.to_path_buf(),
        }),
        _ => Box::new(BlockMedium {
            devices: on,
            runtime_dir: runtime_dir.to_path_buf(),
        }),
    }))
}
