//! The A/B variables a boot script acts on (`boot_slot`, `upgrade_available`, `bootcount`,
//! `bootlimit`, `ab_rollback`), the same whether they live in a U-Boot environment
//! (`uboot.rs`) or a GRUB environment block (`grub.rs`): one scheme, one decoder, every change
//! in one write of the store, read back. On a board whose slots share no partition
//! (`carrying`), the trial's facts (`state::carried`) go in the same write as the change
//! that arms, commits or rolls back the trial.

use super::uboot_env::EnvVars;
use super::{BootError, BootState, Bootloader};
use crate::flash::VerifiedSlot;
use crate::slot::Slot;
use crate::state::CARRY_VAR;
use std::path::Path;

/// Where the variables are kept: reads all of them, persists a whole change in one write and
/// reads it back.
pub trait VarStore: Send {
    fn describe(&self) -> String;
    /// The file or device, for messages.
    fn location(&self) -> &Path;
    fn read_vars(&self) -> Result<EnvVars, BootError>;
    /// Read, let `f` change the variables in memory (or refuse), write once if anything
    /// changed; returns whether it wrote.
    fn change_vars(
        &self,
        f: &mut dyn FnMut(&mut EnvVars) -> Result<(), BootError>,
    ) -> Result<bool, BootError>;
}

pub struct AbVars {
    env: Box<dyn VarStore>,
    carries: bool,
}

impl AbVars {
    pub fn on(env: Box<dyn VarStore>) -> Self {
        AbVars {
            env,
            carries: false,
        }
    }

    /// Carry the trial's facts in the store ([`CARRY_VAR`]) when `yes`.
    pub fn carrying(mut self, yes: bool) -> Self {
        self.carries = yes;
        self
    }

    pub fn location(&self) -> &Path {
        self.env.location()
    }

    fn bad(&self, name: &str, value: &str, problem: &str) -> BootError {
        BootError::BadVar {
            path: self.location().to_path_buf(),
            name: name.into(),
            value: value.into(),
            problem: problem.into(),
        }
    }

    /// Decode the A/B variables from a variable set.
    pub fn decode_state(&self, vars: &EnvVars) -> Result<BootState, BootError> {
        let slot = vars.get("boot_slot").unwrap_or("A");
        let primary = slot
            .parse::<Slot>()
            .map_err(|_| self.bad("boot_slot", slot, "expected A or B"))?;
        let ua = vars.get("upgrade_available").unwrap_or("0");
        let trial = match ua {
            "0" | "" => false,
            "1" => true,
            _ => return Err(self.bad("upgrade_available", ua, "expected 0 or 1")),
        };
        // U-Boot's setexpr writes hex without a 0x prefix, and itest reads hex.
        let hex = |name: &str, default: &str| -> Result<u32, BootError> {
            let v = vars.get(name).unwrap_or(default);
            let digits = v.trim_start_matches("0x");
            u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16)
                .map_err(|_| self.bad(name, v, "expected a hexadecimal number"))
        };
        let fell_back_from = match vars.get("ab_rollback").unwrap_or("") {
            "" => None,
            s => Some(
                s.parse::<Slot>()
                    .map_err(|_| self.bad("ab_rollback", s, "expected A, B or empty"))?,
            ),
        };
        Ok(BootState {
            primary,
            trial,
            bootcount: hex("bootcount", "0")?,
            bootlimit: hex("bootlimit", "3")?,
            fell_back_from,
        })
    }

    /// Point the next boot at `slot`, on trial or not, with `carry` as [`CARRY_VAR`] when
    /// given, in one write of the store, refusing an env whose A/B variables cannot be
    /// understood.
    fn point(&self, slot: Slot, trial: bool, carry: Option<&str>) -> Result<(), BootError> {
        self.env.change_vars(&mut |v| {
            self.decode_state(v)?;
            if let Some(c) = carry {
                v.set(CARRY_VAR, c)
                    .map_err(|e| self.bad(CARRY_VAR, c, &e.to_string()))?;
            }
            set(v, "boot_slot", slot.as_str());
            set(v, "upgrade_available", if trial { "1" } else { "0" });
            set(v, "bootcount", "0");
            if trial {
                v.remove("ab_rollback");
            }
            Ok(())
        })?;
        Ok(())
    }

    fn arm(&self, target: &VerifiedSlot, booted: Slot, c: Option<&str>) -> Result<(), BootError> {
        let slot = target.slot();
        if slot == booted {
            return Err(BootError::TargetIsBooted(slot));
        }
        self.point(slot, true, c)
    }
}

pub(super) fn set(vars: &mut EnvVars, name: &str, value: &str) {
    vars.set(name, value).expect("fixed valid names and values");
}

impl Bootloader for AbVars {
    fn describe(&self) -> String {
        self.env.describe()
    }

    fn read_state(&self) -> Result<BootState, BootError> {
        self.decode_state(&self.env.read_vars()?)
    }

    fn arm_trial(&self, target: &VerifiedSlot, booted: Slot) -> Result<(), BootError> {
        self.arm(target, booted, None)
    }

    fn commit(&self, slot: Slot) -> Result<(), BootError> {
        self.point(slot, false, None)
    }

    fn switch_to(&self, target: &VerifiedSlot) -> Result<(), BootError> {
        self.point(target.slot(), false, None)
    }

    fn carries(&self) -> bool {
        self.carries
    }

    fn carried(&self) -> Result<Option<String>, BootError> {
        if !self.carries {
            return Ok(None);
        }
        let vars = self.env.read_vars()?;
        Ok(vars
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
        self.arm(target, booted, self.carries.then_some(carry))
    }

    fn commit_carrying(&self, slot: Slot, carry: &str) -> Result<(), BootError> {
        self.point(slot, false, self.carries.then_some(carry))
    }

    fn switch_to_carrying(&self, target: &VerifiedSlot, carry: &str) -> Result<(), BootError> {
        self.point(target.slot(), false, self.carries.then_some(carry))
    }

    fn dump(&self) -> Result<Vec<(String, String)>, BootError> {
        Ok(self
            .env
            .read_vars()?
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}
