//! Preflight checks of a board's update path, run by `fwguard doctor` and, for the ones that
//! would make a write go wrong, before any write: the environment's geometry against the
//! flash it lives on, the environment itself, the running slot, the slots; that the state
//! directory is where the other slot will see it (`state_location`); and that the runtime
//! directory is in RAM.

use super::{Board, BoardError};
use crate::boot::fw_env::{EnvDevice, FwEnvConfig};
use crate::config::{BoardSettings, Settings};
use crate::flash::mtd::mtd_name;
use std::path::Path;

/// One check's result; `fix` says what to change when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    pub(crate) fn ok(check: &'static str, detail: String) -> Self {
        Finding {
            check,
            ok: true,
            detail,
            fix: None,
        }
    }

    pub(crate) fn fail(check: &'static str, detail: String, fix: String) -> Self {
        Finding {
            check,
            ok: false,
            detail,
            fix: Some(fix),
        }
    }

    /// `detail; fix: ...`, for an error message.
    pub fn message(&self) -> String {
        match &self.fix {
            Some(fix) => format!("{}; fix: {fix}", self.detail),
            None => self.detail.clone(),
        }
    }
}

fn sysfs_number(path: &Path) -> Option<u64> {
    crate::boot::fw_env::number(std::fs::read_to_string(path).ok()?.trim())
}

/// Each copy of the environment against the device it is on: on flash (MTD), the sector
/// size must be the erase size the kernel reports, and the copy must lie inside the
/// partition; elsewhere the device must exist.
pub fn env_geometry(env: &FwEnvConfig, sysfs: &Path) -> Vec<Finding> {
    env.copies
        .iter()
        .map(|c| copy_geometry(env, c, sysfs))
        .collect()
}

fn copy_geometry(env: &FwEnvConfig, c: &EnvDevice, sysfs: &Path) -> Finding {
    const CHECK: &str = "env geometry";
    let at = if c.line > 0 {
        format!("{}:{}", env.source.display(), c.line)
    } else {
        env.source.display().to_string()
    };
    let dev = c.device.display();
    let Some(mtd) = mtd_name(&c.device) else {
        return match std::fs::metadata(&c.device) {
            Ok(_) => Finding::ok(
                CHECK,
                format!("{at}: {dev} at {:#x}, {:#x} bytes", c.offset, c.size),
            ),
            Err(e) => Finding::fail(
                CHECK,
                format!("{at}: {dev}: {e}"),
                format!("point {at} at the device that holds the U-Boot environment"),
            ),
        };
    };
    let class = sysfs.join("class/mtd").join(&mtd);
    let (Some(erase), Some(part)) = (
        sysfs_number(&class.join("erasesize")),
        sysfs_number(&class.join("size")),
    ) else {
        return Finding::fail(
            CHECK,
            format!(
                "{at}: {dev} is an MTD device, but {} does not give its erase size and size",
                class.display()
            ),
            format!(
                "check that {dev} exists on this board (cat /proc/mtd) and that sysfs is mounted"
            ),
        );
    };
    match c.sector_size {
        None => {
            return Finding::fail(
                CHECK,
                format!("{at}: no sector size for {dev}, which erases {erase:#x} bytes at a time"),
                format!("add {erase:#x} as the 4th field of {at}"),
            )
        }
        Some(s) if s != erase => {
            return Finding::fail(
                CHECK,
                format!("{at}: sector size {s:#x}, but {dev} erases {erase:#x} bytes at a time: an env write would not erase what it rewrites and the bootloader would keep the old environment"),
                format!("set the 4th field of {at} to {erase:#x}"),
            )
        }
        Some(_) => {}
    }
    let span = erase * c.sectors.unwrap_or(1).max(1);
    if c.offset % erase != 0 || c.offset + span.max(c.size as u64) > part {
        return Finding::fail(
            CHECK,
            format!("{at}: the copy at {:#x} ({span:#x} bytes) is not a whole number of erase blocks inside {dev} ({part:#x} bytes, erase size {erase:#x})", c.offset),
            format!("correct the offset in {at} (see /proc/mtd and the bootloader's CONFIG_ENV_OFFSET)"),
        );
    }
    Finding::ok(
        CHECK,
        format!(
            "{at}: {dev} at {:#x}, {:#x} bytes in {span:#x}-byte erase blocks",
            c.offset, c.size
        ),
    )
}

/// The checks of the configured layout that need no board: where the env is against the
/// flash it is on, the Linksys partitions.
fn layout(settings: &BoardSettings) -> Vec<Finding> {
    match settings {
        BoardSettings::UBoot { env, sysfs, .. } => env_geometry(env, sysfs),
        BoardSettings::Linksys(l) => {
            let mut v = env_geometry(&l.env, &l.sysfs);
            v.extend(super::linksys::preflight(l));
            v
        }
        _ => Vec::new(),
    }
}

/// The board's two slot devices are different storage, by the device node or image file
/// each one writes (not by its description): checked when the configuration is read, by
/// `doctor`, and again before every write (a symlink or a device node made after the
/// configuration was read must not turn the other slot into the running one; a Linksys
/// board's slots come from /proc/mtd, not from the configuration).
pub fn slots_apart(board: &Board, sysfs: &Path) -> Finding {
    const CHECK: &str = "slots";
    let (a, b) = (
        board.slot(crate::Slot::A).device_path(),
        board.slot(crate::Slot::B).device_path(),
    );
    // Every storage of the slots: their boot devices, then each target's.
    let mut all = vec![("slot A".to_string(), a), ("slot B".to_string(), b)];
    for name in board.target_names() {
        for s in crate::Slot::ALL {
            if let Some(dev) = board.target(name, s) {
                all.push((format!("slot {s}'s target {name}"), dev.device_path()));
            }
        }
    }
    for (i, (what, p)) in all.iter().enumerate() {
        for (other, q) in &all[i + 1..] {
            if let Some(why) = super::identity::overlap(p, q, sysfs) {
                return Finding::fail(
                    CHECK,
                    format!("{what} and {other} are the same storage ({why}): an update would overwrite what the other holds"),
                    "give each slot and each of [board.targets] a partition of its own".into(),
                );
            }
        }
    }
    let targets = match all.len() - 2 {
        0 => String::new(),
        n => format!(", and their {n} target devices are storage of their own"),
    };
    Finding::ok(
        CHECK,
        format!(
            "slot A {} and slot B {} are different storage{targets}",
            a.display(),
            b.display()
        ),
    )
}

/// The runtime directory is in RAM (tmpfs or ramfs), or will be once created.
pub fn runtime_dir(dir: &Path) -> Finding {
    const CHECK: &str = "runtime dir";
    match crate::runtime_dir::check(dir) {
        Ok(in_ram) => Finding::ok(CHECK, in_ram.to_string()),
        Err(e) => Finding::fail(CHECK, e.problem(), crate::runtime_dir::FIX.into()),
    }
}

/// The state directory is on storage both slots see (`super::state_location`).
pub fn state_location(settings: &Settings) -> Finding {
    use super::state_location::CHECK;
    match super::state_location::check(settings) {
        Ok(at) => Finding::ok(CHECK, at.to_string()),
        Err(e) => Finding::fail(CHECK, e.problem(), e.fix()),
    }
}

/// Every check, for `fwguard doctor`; `board` is what building the board from the settings
/// gave (finding its partitions and devices).
pub fn all(settings: &Settings, board: Result<&Board, &BoardError>) -> Vec<Finding> {
    let mut out = board_checks(&settings.board, board);
    out.push(state_location(settings));
    out.push(runtime_dir(&settings.runtime_dir));
    out.push(crate::carry::check::preflight(settings));
    out
}

fn board_checks(settings: &BoardSettings, board: Result<&Board, &BoardError>) -> Vec<Finding> {
    let mut out = layout(settings);
    let board = match board {
        Ok(b) => b,
        Err(e) => {
            out.push(Finding::fail(
                "board",
                e.to_string(),
                "check the [board] section of the configuration against the board's devices".into(),
            ));
            return out;
        }
    };
    out.push(slots_apart(board, settings.sysfs()));
    let describe = board.bootloader.describe();
    let boot = board.bootloader.read_state();
    out.push(match &boot {
        Ok(s) => Finding::ok(
            "bootloader env",
            format!("{describe}: next boot {}{}", s.primary, if s.trial { " on trial" } else { "" }),
        ),
        Err(e) => Finding::fail(
            "bootloader env",
            e.to_string(),
            "compare the environment location with the bootloader's (fw_printenv must read it); fwguard never writes over an environment it cannot read".into(),
        ),
    });
    let booted = board.platform.booted_slot();
    out.push(match &booted {
        Ok(b) => Finding::ok(
            "running slot",
            format!("running {b}; updates write slot {}", !*b),
        ),
        Err(e) => Finding::fail(
            "running slot",
            e.to_string(),
            settings.running_slot_fix().into(),
        ),
    });
    for slot in crate::Slot::ALL {
        let dev = board.slot(slot);
        out.push(match dev.capacity() {
            Ok(bytes) => Finding::ok(
                "slot",
                format!("slot {slot}: {} ({bytes} bytes)", dev.describe()),
            ),
            Err(e) => Finding::fail(
                "slot",
                e.to_string(),
                format!(
                    "point slot_{} in the configuration at the slot's device",
                    slot.as_str().to_lowercase()
                ),
            ),
        });
    }
    if let Ok(running) = booted {
        out.extend(targets(board, !running));
    }
    out
}

/// The targets of the slot updates write (`slot`): each one's device, or why it refuses
/// installs of a release's part (a root part: a whole image, commits and rollbacks go on).
fn targets(board: &Board, slot: crate::Slot) -> Vec<Finding> {
    let mut out = Vec::new();
    for name in board.target_names() {
        let Some(dev) = board.target(name, slot) else {
            continue;
        };
        let what = format!("slot {slot}'s target {name}: {}", dev.describe());
        out.push(match (dev.capacity(), dev.write_refused()) {
            (Ok(bytes), None) => Finding::ok("target", format!("{what} ({bytes} bytes)")),
            (Err(e), _) => Finding::fail(
                "target",
                format!("{what}: {e}"),
                format!("point board.targets.{name} at the partitions of that part"),
            ),
            (Ok(_), Some(why)) => Finding::fail(
                "target",
                format!("{what}: refuses installs of a release's {name} part: {why}"),
                "releases with that part cannot be installed until it is resolved; whole images, commits and rollbacks are not affected".into(),
            ),
        });
    }
    out
}

/// The checks that must pass before anything is written to `board`, the env included (the
/// ones a write would make worse); the first failure. The agent's own commit and rollback run
/// these.
pub fn before_write(settings: &Settings, board: &Board) -> Result<(), Finding> {
    let mut checks = layout(&settings.board);
    checks.push(slots_apart(board, settings.board.sysfs()));
    first_failure(checks)
}

/// [`before_write`], and that the state lives where the other slot sees it: checked before an
/// install starts (a state directory the other slot cannot see would lose the trial it arms).
/// A commit or a rollback is not held back by it: they settle a trial that exists already.
pub fn before_install(settings: &Settings, board: &Board) -> Result<(), Finding> {
    before_write(settings, board)?;
    first_failure(vec![state_location(settings)])
}

fn first_failure(checks: Vec<Finding>) -> Result<(), Finding> {
    match checks.into_iter().find(|f| !f.ok) {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::env_store::EnvLocation;
    use crate::flash::mtd::MtdInfo;
    use crate::flash::mtd_image::MtdImage;
    use crate::flash::{MtdSlot, SlotDevice};
    use crate::Slot;

    /// A board whose two slots are NAND images at `a` and `b`.
    fn nand_board(a: &Path, b: &Path) -> Board {
        let info = MtdInfo {
            size: 4 * 0x2_0000,
            erase_size: 0x2_0000,
            write_size: 0x800,
        };
        let slot = |s: Slot, p: &Path| -> Box<dyn SlotDevice> {
            Box::new(MtdSlot::new(s, MtdImage::open(p, info).unwrap()))
        };
        Board::new(
            "t".into(),
            Box::new(crate::boot::uboot::UBootAb::new(EnvLocation {
                path: a.with_extension("env"),
                offset: 0,
                size: 0x4000,
            })),
            [slot(Slot::A, a), slot(Slot::B, b)],
            Box::new(super::super::LinuxPlatform {
                cmdline: "/nonexistent".into(),
                boot_id: "/nonexistent".into(),
                reboot_command: vec!["true".into()],
                active_from: None,
            }),
        )
    }

    /// The slots are compared by the file or node each one writes, not by how it is
    /// described ("… (NAND image)"), so two NAND-image slots on one file are caught.
    #[test]
    fn two_nand_image_slots_on_one_file_are_the_same_storage() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, link) = (
            d.path().join("a.nand"),
            d.path().join("b.nand"),
            d.path().join("link.nand"),
        );
        for p in [&a, &b] {
            MtdImage::create(
                p,
                MtdInfo {
                    size: 4 * 0x2_0000,
                    erase_size: 0x2_0000,
                    write_size: 0x800,
                },
            )
            .unwrap();
        }
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let sys = d.path().join("sys");
        assert!(slots_apart(&nand_board(&a, &b), &sys).ok);
        for (x, y) in [(&a, &a), (&a, &link)] {
            let board = nand_board(x, y);
            assert!(board.slot(Slot::A).describe().ends_with("(NAND image)"));
            let f = slots_apart(&board, &sys);
            assert!(!f.ok && f.detail.contains("the same file"), "{f:?}");
        }
    }
}
