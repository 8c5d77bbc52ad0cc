//! Linksys WRT dual firmware (WRT32X, WRT3200ACM, WRT1900AC/ACS, WRT1200AC): the stock
//! U-Boot boots partition 1 (`kernel1`/`rootfs1`, slot A) or 2 (`kernel2`/`rootfs2`, slot B)
//! as `boot_part` and `bootcmd` (`run nandboot` / `run altnandboot`) say, and counts every
//! boot in the `s_env` log ([`BootCountLog`]); with `auto_recovery=yes` it boots the other
//! partition once the count passes its limit.
//!
//! fwguard changes `boot_part`, `bootcmd` and `auto_recovery` together, in one env write that
//! is read back. The stock U-Boot has no notion of a trial, so fwguard marks one in its own
//! variable (`fwguard_trial`, the partition on trial), which U-Boot ignores: a trial whose
//! partition is no longer the one booted was given up by the bootloader. Because U-Boot
//! counts every boot, not only trial boots, the count must be reset after every boot judged
//! healthy ([`Bootloader::counts_every_boot`]), and only then: a firmware that boots but
//! breaks the router keeps its count and the stock fallback stays armed.

use super::ab_vars::set;
use super::env_store::EnvStore;
use super::linksys_bootcount::BootCountLog;
use super::uboot_env::EnvVars;
use super::{BootError, BootState, Bootloader};
use crate::flash::{Mtd, VerifiedSlot};
use crate::slot::Slot;
use crate::state::CARRY_VAR;

/// Boots counted before the stock U-Boot gives a partition up (inferred from the stock
/// firmware's behaviour; reported in status, not used for decisions).
pub const STOCK_BOOTLIMIT: u32 = 3;
/// fwguard's own variable: the partition (1 or 2) booted on trial.
pub const TRIAL_VAR: &str = "fwguard_trial";

/// The partition number U-Boot uses for a slot.
pub fn part(slot: Slot) -> &'static str {
    match slot {
        Slot::A => "1",
        Slot::B => "2",
    }
}

/// The `bootcmd` that boots a slot.
pub fn bootcmd(slot: Slot) -> &'static str {
    match slot {
        Slot::A => "run nandboot",
        Slot::B => "run altnandboot",
    }
}

fn slot_of_part(p: &str) -> Option<Slot> {
    Slot::ALL.into_iter().find(|s| part(*s) == p)
}

pub struct LinksysDual {
    env: EnvStore,
    counter: BootCountLog<Box<dyn Mtd>>,
}

impl LinksysDual {
    /// `env`: the `u_env` partition (as the board's fw_env.config gives it); `s_env`: the
    /// boot-count partition.
    pub fn new(env: EnvStore, s_env: Box<dyn Mtd>) -> Self {
        LinksysDual {
            env,
            counter: BootCountLog::new(s_env),
        }
    }

    fn bad(&self, name: &str, value: &str, problem: String) -> BootError {
        BootError::BadVar {
            path: self.env.copies()[0].path.clone(),
            name: name.into(),
            value: value.into(),
            problem,
        }
    }

    /// The slot the next boot takes, and the slot on trial if fwguard marked one.
    fn decode(&self, vars: &EnvVars) -> Result<(Slot, Option<Slot>), BootError> {
        let cmd = vars.get("bootcmd").unwrap_or("");
        let primary = Slot::ALL
            .into_iter()
            .find(|s| bootcmd(*s) == cmd)
            .ok_or_else(|| {
                self.bad(
                    "bootcmd",
                    cmd,
                    "expected `run nandboot` or `run altnandboot` (the stock dual-firmware boot)"
                        .into(),
                )
            })?;
        if let Some(p) = vars.get("boot_part") {
            if p != part(primary) {
                return Err(self.bad(
                    "boot_part",
                    p,
                    format!(
                        "bootcmd `{cmd}` boots partition {}, but boot_part says {p}: the two must agree",
                        part(primary)
                    ),
                ));
            }
        }
        let trial = match vars.get(TRIAL_VAR) {
            None | Some("") => None,
            Some(p) => Some(
                slot_of_part(p).ok_or_else(|| self.bad(TRIAL_VAR, p, "expected 1 or 2".into()))?,
            ),
        };
        Ok((primary, trial))
    }

    /// Point the next boot at `slot` (the three stock variables together), with or without a
    /// trial mark, and with what fwguard carries to the other slot when given, in one write.
    fn point_at(&self, slot: Slot, trial: bool, carry: Option<&str>) -> Result<(), BootError> {
        self.env.change(|v| {
            self.decode(v)?;
            set(v, "boot_part", part(slot));
            set(v, "bootcmd", bootcmd(slot));
            set(v, "auto_recovery", "yes");
            if trial {
                set(v, TRIAL_VAR, part(slot));
            } else {
                v.remove(TRIAL_VAR);
            }
            if let Some(c) = carry {
                v.set(CARRY_VAR, c)
                    .map_err(|e| self.bad(CARRY_VAR, c, e.to_string()))?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn arm(
        &self,
        target: &VerifiedSlot,
        booted: Slot,
        carry: Option<&str>,
    ) -> Result<(), BootError> {
        let slot = target.slot();
        if slot == booted {
            return Err(BootError::TargetIsBooted(slot));
        }
        // The new firmware gets every try the bootloader allows.
        self.counter.reset()?;
        self.point_at(slot, true, carry)
    }
}

impl LinksysDual {
    fn commit_carrying_opt(&self, slot: Slot, carry: Option<&str>) -> Result<(), BootError> {
        self.point_at(slot, false, carry)?;
        self.counter.reset()?;
        Ok(())
    }

    fn switch_opt(&self, target: &VerifiedSlot, carry: Option<&str>) -> Result<(), BootError> {
        // The known-good firmware must not inherit the count of the one given up.
        self.counter.reset()?;
        self.point_at(target.slot(), false, carry)
    }
}

impl Bootloader for LinksysDual {
    fn describe(&self) -> String {
        format!(
            "Linksys dual firmware: {}; boot counter {}",
            self.env.describe(),
            self.counter.describe()
        )
    }

    fn read_state(&self) -> Result<BootState, BootError> {
        let (primary, trial) = self.decode(&self.env.read()?.vars)?;
        Ok(BootState {
            primary,
            trial: trial == Some(primary),
            bootcount: self.counter.read()?.count,
            bootlimit: STOCK_BOOTLIMIT,
            fell_back_from: trial.filter(|t| *t != primary),
        })
    }

    fn counts_every_boot(&self) -> bool {
        true
    }

    fn arm_trial(&self, target: &VerifiedSlot, booted: Slot) -> Result<(), BootError> {
        self.arm(target, booted, None)
    }

    fn commit(&self, slot: Slot) -> Result<(), BootError> {
        self.commit_carrying_opt(slot, None)
    }

    fn switch_to(&self, target: &VerifiedSlot) -> Result<(), BootError> {
        self.switch_opt(target, None)
    }

    fn carries(&self) -> bool {
        true
    }

    fn carried(&self) -> Result<Option<String>, BootError> {
        Ok(self
            .env
            .read()?
            .vars
            .get(CARRY_VAR)
            .filter(|t| !t.is_empty())
            .map(str::to_string))
    }

    fn arm_trial_carrying(
        &self,
        target: &VerifiedSlot,
        booted: Slot,
        carry: &str,
    ) -> Result<(), BootError> {
        self.arm(target, booted, Some(carry))
    }

    fn commit_carrying(&self, slot: Slot, carry: &str) -> Result<(), BootError> {
        self.commit_carrying_opt(slot, Some(carry))
    }

    fn switch_to_carrying(&self, target: &VerifiedSlot, carry: &str) -> Result<(), BootError> {
        self.switch_opt(target, Some(carry))
    }

    fn dump(&self) -> Result<Vec<(String, String)>, BootError> {
        let mut out: Vec<(String, String)> = self
            .env
            .read()?
            .vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = self.counter.read()?;
        out.push((
            "s_env".into(),
            format!(
                "count {} ({} records{})",
                c.count,
                c.records,
                if c.full { ", full" } else { "" }
            ),
        ));
        Ok(out)
    }
}
