//! A board: the bootloader, the two slot devices and the platform facts (which slot is
//! running, which boot this is, how to reboot), built from the configuration. Nothing above
//! this module knows whether the board is real or simulated.

pub mod identity;
pub mod linksys;
mod linksys_root;
pub mod mountinfo;
pub mod mtd_table;
pub mod preflight;
pub mod state_location;
mod ubi_target;

use crate::boot::env_store::EnvStore;
use crate::boot::uboot::UBootAb;
use crate::boot::Bootloader;
use crate::config::BoardSettings;
use crate::flash::{FileSlot, SlotDevice};
use crate::slot::Slot;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no `{key}=A` or `{key}=B` on the kernel command line; the bootloader must pass the running slot")]
    NoSlotArg { path: PathBuf, key: &'static str },
    #[error(transparent)]
    MtdTable(#[from] mtd_table::MtdTableError),
    #[error("cannot tell which slot is running: {0}")]
    RunningSlot(String),
    #[error("reboot command {command:?} failed: {detail}")]
    Reboot { command: String, detail: String },
}

/// Facts and actions of the running system.
pub trait Platform: Send + Sync {
    fn booted_slot(&self) -> Result<Slot, BoardError>;
    /// Changes on every boot.
    fn boot_id(&self) -> Result<String, BoardError>;
    /// Milliseconds since this boot (monotonic, counts suspend).
    fn uptime_ms(&self) -> u64;
    /// Ask for a reboot. Returns once it is under way; the caller must stop acting.
    fn reboot(&self) -> Result<(), BoardError>;
}

/// One storage per slot: slot A's, then slot B's.
pub type SlotPair = [Box<dyn SlotDevice>; 2];

pub struct Board {
    pub id: String,
    pub bootloader: Box<dyn Bootloader>,
    slots: [Box<dyn SlotDevice>; 2],
    /// Where the parts of a release besides its boot image go, per slot.
    targets: Vec<(String, SlotPair)>,
    pub platform: Box<dyn Platform>,
}

impl Board {
    pub fn new(
        id: String,
        bootloader: Box<dyn Bootloader>,
        slots: [Box<dyn SlotDevice>; 2],
        platform: Box<dyn Platform>,
    ) -> Board {
        Board {
            id,
            bootloader,
            slots,
            targets: Vec::new(),
            platform,
        }
    }

    /// The board with further targets for a release's parts.
    pub fn with_targets(mut self, targets: Vec<(String, SlotPair)>) -> Board {
        self.targets = targets;
        self
    }

    /// The boot device of slot `s`: what the bootloader boots from its first byte.
    pub fn slot(&self, s: Slot) -> &dyn SlotDevice {
        self.slots[s.index()].as_ref()
    }

    /// Target `name` of slot `s`, if the board has it.
    pub fn target(&self, name: &str, s: Slot) -> Option<&dyn SlotDevice> {
        self.targets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d[s.index()].as_ref())
    }

    /// The names of the board's targets.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|(n, _)| n.as_str()).collect()
    }

    pub fn from_settings(settings: &BoardSettings) -> Result<Board, BoardError> {
        Ok(match settings {
            #[cfg(feature = "demo")]
            BoardSettings::Sim { dir } => crate::sim::SimRouter::open(dir).board(),
            BoardSettings::UBoot {
                id,
                env,
                sysfs,
                slot_a,
                slot_b,
                targets,
                cmdline,
                reboot_command,
                proc,
                shared_state,
            } => Board::new(
                id.clone(),
                Box::new(
                    UBootAb::with_store(EnvStore::from_fw_env_on(env, sysfs))
                        .carrying(!shared_state),
                ),
                [
                    slot_device(Slot::A, slot_a, sysfs)?,
                    slot_device(Slot::B, slot_b, sysfs)?,
                ],
                Box::new(LinuxPlatform {
                    cmdline: cmdline.clone(),
                    boot_id: "/proc/sys/kernel/random/boot_id".into(),
                    reboot_command: reboot_command.clone(),
                    active_from: None,
                }),
            )
            .with_targets(target_devices(targets, sysfs, proc)?),
            BoardSettings::Linksys(l) => linksys::board(l)?,
            BoardSettings::Grub(o) => other_board(
                o,
                Box::new(crate::boot::grub::grub_ab(&o.bootloader[0])),
                None,
            )?,
            BoardSettings::Script(o) => other_board(
                o,
                Box::new(crate::boot::script::ScriptBoot::new(o.bootloader.clone())),
                Some(o.bootloader.clone()),
            )?,
        })
    }
}

/// A GRUB or vendor-command board: the running slot from `ab.slot=` on the kernel command
/// line, or from the vendor command's `get-active` when it is given.
fn other_board(
    o: &crate::config::OtherBoot,
    bootloader: Box<dyn Bootloader>,
    active_from: Option<Vec<String>>,
) -> Result<Board, BoardError> {
    Ok(Board::new(
        o.id.clone(),
        bootloader,
        [
            slot_device(Slot::A, &o.slot_a, &o.sysfs)?,
            slot_device(Slot::B, &o.slot_b, &o.sysfs)?,
        ],
        Box::new(LinuxPlatform {
            cmdline: o.proc.join("cmdline"),
            boot_id: o.proc.join("sys/kernel/random/boot_id"),
            reboot_command: o.reboot_command.clone(),
            active_from: active_from.map(crate::boot::script::ScriptBoot::new),
        }),
    )
    .with_targets(target_devices(&o.targets, &o.sysfs, &o.proc)?))
}

/// The devices of the configured targets.
fn target_devices(
    targets: &[crate::config::targets::TargetPaths],
    sysfs: &Path,
    proc: &Path,
) -> Result<Vec<(String, SlotPair)>, BoardError> {
    targets
        .iter()
        .map(|t| {
            let dev = |s: Slot, path: &Path| match &t.ubi_volume {
                Some(v) => ubi_target::fresh_ubi_target(s, t, v, sysfs, proc),
                None => slot_device(s, path, sysfs),
            };
            Ok((
                t.name.clone(),
                [dev(Slot::A, &t.slot_a)?, dev(Slot::B, &t.slot_b)?],
            ))
        })
        .collect()
}

/// A slot on a UBI volume (`/dev/ubiX_Y`, or an image of one) is written with a volume
/// update; one on raw flash (an MTD character device `/dev/mtdN`, or an image of one) is
/// erased, programmed around bad blocks and read back; anything else (a block device,
/// `mtdblockN`, a file) is written as a file.
pub(crate) fn slot_device(
    slot: Slot,
    path: &Path,
    sysfs: &Path,
) -> Result<Box<dyn SlotDevice>, BoardError> {
    if let Some(vol) = crate::flash::ubi::open_ubi(path, sysfs) {
        let vol = vol.map_err(|source| BoardError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Box::new(crate::flash::ubi::UbiSlot::new(slot, vol)));
    }
    Ok(match crate::flash::mtd::open_mtd(path, sysfs) {
        Some(Ok(mtd)) => Box::new(crate::flash::MtdSlot::new(slot, mtd)),
        Some(Err(source)) => {
            return Err(BoardError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        None => Box::new(FileSlot::new(slot, path)),
    })
}

/// The kernel command-line argument the bootloader sets to the running slot.
pub const SLOT_ARG: &str = "ab.slot";

/// Find `ab.slot=X` in a kernel command line.
pub fn slot_from_cmdline(text: &str) -> Option<Slot> {
    text.split_whitespace()
        .filter_map(|w| w.strip_prefix(SLOT_ARG)?.strip_prefix('='))
        .next_back()
        .and_then(|v| v.parse().ok())
}

pub(crate) fn read(path: &PathBuf) -> Result<String, BoardError> {
    std::fs::read_to_string(path).map_err(|source| BoardError::Io {
        path: path.clone(),
        source,
    })
}

/// Milliseconds of CLOCK_BOOTTIME.
pub fn boottime_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

/// A real Linux system.
pub struct LinuxPlatform {
    pub cmdline: PathBuf,
    pub boot_id: PathBuf,
    pub reboot_command: Vec<String>,
    /// A vendor command whose `get-active` names the running slot (else the command line).
    pub active_from: Option<crate::boot::script::ScriptBoot>,
}

impl Platform for LinuxPlatform {
    fn booted_slot(&self) -> Result<Slot, BoardError> {
        if let Some(cmd) = &self.active_from {
            return cmd
                .get_active()
                .map(|a| a.active)
                .map_err(|e| BoardError::RunningSlot(e.to_string()));
        }
        slot_from_cmdline(&read(&self.cmdline)?).ok_or_else(|| BoardError::NoSlotArg {
            path: self.cmdline.clone(),
            key: SLOT_ARG,
        })
    }

    fn boot_id(&self) -> Result<String, BoardError> {
        Ok(read(&self.boot_id)?.trim().to_string())
    }

    fn uptime_ms(&self) -> u64 {
        boottime_ms()
    }

    fn reboot(&self) -> Result<(), BoardError> {
        run_reboot(&self.reboot_command)
    }
}

/// How long the reboot command may take to accept the reboot.
const REBOOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Run the configured reboot command; Ok once it was accepted (it exited 0), an error when
/// it failed or did not answer within [`REBOOT_TIMEOUT`] (then it is killed). Its output goes
/// where fwguard's goes (the console, the service's log): a reboot script's messages belong
/// there, and nothing is read from it, so neither a full pipe nor a process it leaves behind
/// can stall fwguard.
pub(crate) fn run_reboot(argv: &[String]) -> Result<(), BoardError> {
    let command = argv.join(" ");
    let fail = |detail: String| BoardError::Reboot {
        command: command.clone(),
        detail,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| fail("no command".into()))?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let until = std::time::Instant::now() + REBOOT_TIMEOUT;
    loop {
        match child.try_wait().map_err(|e| fail(e.to_string()))? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(fail(status.to_string())),
            None if std::time::Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "no answer within {} s; killed",
                    REBOOT_TIMEOUT.as_secs()
                )));
            }
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_slot() {
        assert_eq!(
            slot_from_cmdline("console=ttyAMA0 ab.slot=B quiet\n"),
            Some(Slot::B)
        );
        assert_eq!(slot_from_cmdline("ab.slotx=A"), None);
        assert_eq!(slot_from_cmdline("root=/dev/vda2"), None);
    }
}
