//! The simulated bootloader: the selection logic of the U-Boot A/B script.
//!
//! While `upgrade_available=1`, every boot increments `bootcount` (hex, as `setexpr`
//! writes it) and saves; past `bootlimit` the slot is given up (`ab_rollback` set, the other
//! slot made primary, the trial cleared). A slot whose image does not verify, or whose
//! kernel panics, resets the board during a trial (one more try); a committed slot that
//! does not boot makes the bootloader switch slots at once.

use super::{Kernel, SimError, SimRouter};
use crate::boot::uboot_env::EnvVars;
use crate::bootimg::Format;
use crate::slot::Slot;
use crate::version::Version;

/// Resets before the simulated board is declared stuck in a boot loop.
const MAX_RESETS: usize = 32;

#[derive(Debug, Clone)]
pub struct BootReport {
    pub slot: Slot,
    pub version: Version,
    pub wan_up: bool,
    /// What the bootloader printed, one line per step.
    pub log: Vec<String>,
}

fn var(v: &EnvVars, name: &str, default: &str) -> String {
    v.get(name).unwrap_or(default).to_string()
}

fn hex(v: &EnvVars, name: &str) -> u32 {
    u32::from_str_radix(v.get(name).unwrap_or("0").trim_start_matches("0x"), 16).unwrap_or(0)
}

fn set(v: &mut EnvVars, name: &str, value: &str) {
    v.set(name, value).expect("static names");
}

impl SimRouter {
    /// Load a slot as `bootm` does (a uImage at offset 0, its header and data CRCs) and say
    /// how the kernel in it behaves.
    fn try_slot(&self, slot: Slot) -> Result<(Version, bool, bool), String> {
        let path = self.slot_path(slot);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let k = Kernel::load(&bytes, Format::UImage)?;
        if k.behaviour.root {
            // The kernel mounts its root from the slot's rootfs target, or panics.
            let path = self.rootfs_path(slot);
            let root = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Err(why) = super::image::mounts_as_squashfs(&root) {
                tracing::debug!(
                    "VFS: unable to mount root fs from {}: {why}",
                    path.display()
                );
                return Ok((k.version, false, false));
            }
        }
        Ok((k.version, k.behaviour.boots, k.behaviour.wan_up))
    }

    /// Power-cycle the router: run the bootloader until a firmware reaches userspace.
    pub fn reboot(&self) -> Result<BootReport, SimError> {
        let env = self.env();
        let mut log = Vec::new();
        let _ = std::fs::remove_file(self.dir.join("reboot-requested"));
        for _ in 0..MAX_RESETS {
            let mut v = match env.read_vars() {
                Ok(v) => v,
                Err(e) => {
                    log.push(format!("U-Boot: {e}; using default environment"));
                    Self::default_env()
                }
            };
            let mut slot: Slot = var(&v, "boot_slot", "A").parse().unwrap_or(Slot::A);
            let trial = var(&v, "upgrade_available", "0") == "1";
            if trial {
                let count = hex(&v, "bootcount") + 1;
                set(&mut v, "bootcount", &format!("{count:x}"));
                let limit = hex(&v, "bootlimit");
                if count > limit {
                    log.push(format!(
                        "AB: bootcount {count:x} > bootlimit {limit:x}: ROLLBACK from {slot}"
                    ));
                    set(&mut v, "ab_rollback", slot.as_str());
                    slot = !slot;
                    set(&mut v, "boot_slot", slot.as_str());
                    set(&mut v, "upgrade_available", "0");
                    set(&mut v, "bootcount", "0");
                }
                env.write_vars(&v)?;
            }
            let trial = var(&v, "upgrade_available", "0") == "1";
            log.push(format!(
                "AB: booting slot {slot} (upgrade_available={} bootcount={} bootlimit={})",
                var(&v, "upgrade_available", "0"),
                var(&v, "bootcount", "0"),
                var(&v, "bootlimit", "3")
            ));
            match self.try_slot(slot) {
                Ok((h, true, wan_up)) => return self.booted_into(slot, h, wan_up, log),
                Ok((version, false, _)) => {
                    log.push(format!(
                        "kernel of {version} in slot {slot}: panic, resetting"
                    ));
                    if trial {
                        continue;
                    }
                    // A committed slot that panics loops until the board is declared stuck.
                    continue;
                }
                Err(why) => {
                    log.push(format!("AB: slot {slot} did not boot: {why}"));
                    if trial {
                        log.push("AB: resetting".into());
                        continue;
                    }
                    log.push(format!(
                        "AB: committed slot {slot} is unbootable, switching slots"
                    ));
                    set(&mut v, "ab_rollback", slot.as_str());
                    let other = !slot;
                    set(&mut v, "boot_slot", other.as_str());
                    env.write_vars(&v)?;
                    match self.try_slot(other) {
                        Ok((h, true, wan_up)) => return self.booted_into(other, h, wan_up, log),
                        Ok(_) => {
                            return Err(SimError::NoBootableSlot(format!(
                                "slot {other} panics too"
                            )))
                        }
                        Err(why2) => {
                            return Err(SimError::NoBootableSlot(format!(
                                "slot {slot}: {why}; slot {other}: {why2}"
                            )))
                        }
                    }
                }
            }
        }
        Err(SimError::NoBootableSlot(format!(
            "stuck in a boot loop after {MAX_RESETS} resets: {}",
            log.join(" | ")
        )))
    }

    fn booted_into(
        &self,
        slot: Slot,
        version: Version,
        wan_up: bool,
        mut log: Vec<String>,
    ) -> Result<BootReport, SimError> {
        let mut id = [0u8; 16];
        getrandom::getrandom(&mut id)
            .map_err(|e| SimError::NoBootableSlot(format!("no randomness for boot id: {e}")))?;
        let w = |name: &str, text: String| {
            let p = self.dir.join(name);
            std::fs::write(&p, text).map_err(|e| self.io(&p, e))
        };
        w(
            "cmdline",
            format!("console=ttyS0,115200 rdinit=/init ab.slot={slot}\n"),
        )?;
        w("boot_id", format!("{}\n", hex::encode(id)))?;
        log.push(format!(
            "Linux: running firmware {version} from slot {slot}"
        ));
        Ok(BootReport {
            slot,
            version,
            wan_up,
            log,
        })
    }
}
