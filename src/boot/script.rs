//! A vendor command that owns the A/B decision, for boards fwguard has no backend for. The
//! command is run with one of:
//!
//! - `get-active`: print the state as one JSON object:
//!   `{"active": "A", "next": "B", "trial": true, "bootcount": 1, "bootlimit": 3,
//!   "fell_back_from": null}` (`active` is the running slot; `next` the one the next boot
//!   takes; the others optional, defaulting to false, 0, 3, null);
//! - `set-next SLOT --trial`: boot SLOT next on trial (the bootloader counts its boots);
//! - `set-next SLOT`: boot SLOT from now on (a rollback);
//! - `commit SLOT`: SLOT is good; stop counting.
//!
//! A command that exits non-zero, times out or prints something else is an error naming the
//! command and its output. After every change fwguard runs `get-active` again and checks the
//! change took effect. The protocol is documented for vendors in `docs/script-backend.md`.

use super::{BootError, BootState, Bootloader};
use crate::flash::VerifiedSlot;
use crate::slot::Slot;
use std::time::Duration;

/// How long the vendor command may take. Its stdout and stderr are read while it runs (a
/// pipe never fills), 64 KiB of each kept; past this it is killed with its process group.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub active: Slot,
    pub next: Slot,
    #[serde(default)]
    pub trial: bool,
    #[serde(default)]
    pub bootcount: u32,
    #[serde(default = "default_limit")]
    pub bootlimit: u32,
    #[serde(default)]
    pub fell_back_from: Option<Slot>,
}

fn default_limit() -> u32 {
    3
}

/// Parse the vendor command's answer to `get-active` (its standard output; whitespace around
/// it is ignored): one JSON object with the fields of [`Answer`], nothing else.
pub fn parse_answer(text: &str) -> Result<Answer, serde_json::Error> {
    serde_json::from_slice(text.trim().as_bytes())
}

pub struct ScriptBoot {
    argv: Vec<String>,
}

impl ScriptBoot {
    /// `argv`: the vendor command and its leading arguments.
    pub fn new(argv: Vec<String>) -> Self {
        assert!(!argv.is_empty(), "a command");
        ScriptBoot { argv }
    }

    fn fail(&self, args: &[&str], detail: String) -> BootError {
        BootError::Script {
            command: format!("{} {}", self.argv.join(" "), args.join(" ")),
            detail,
        }
    }

    fn run(&self, args: &[&str]) -> Result<String, BootError> {
        let mut all: Vec<&str> = self.argv[1..].iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let done = crate::command::run(&self.argv[0], &all, TIMEOUT)
            .map_err(|e| self.fail(args, e.to_string()))?;
        if !done.status.success() {
            let err = String::from_utf8_lossy(&done.stderr.kept);
            return Err(self.fail(args, format!("{}: {}", done.status, err.trim())));
        }
        if done.stdout.truncated() {
            return Err(self.fail(
                args,
                format!(
                    "it printed {} bytes, more than the {} an answer may have",
                    done.stdout.total,
                    crate::command::KEPT
                ),
            ));
        }
        String::from_utf8(done.stdout.kept)
            .map_err(|_| self.fail(args, "output is not UTF-8".into()))
    }

    pub fn get_active(&self) -> Result<Answer, BootError> {
        let text = self.run(&["get-active"])?;
        parse_answer(&text).map_err(|e| {
            self.fail(
                &["get-active"],
                format!("unexpected answer {:?}: {e}", text.trim()),
            )
        })
    }

    /// Run a change, then check with `get-active` that it took effect.
    fn change(&self, args: &[&str], ok: impl Fn(&Answer) -> bool) -> Result<(), BootError> {
        self.run(args)?;
        let back = self.get_active()?;
        if !ok(&back) {
            return Err(self.fail(
                args,
                format!("it exited 0, but the change did not read back: get-active then answered {back:?}"),
            ));
        }
        Ok(())
    }
}

impl Bootloader for ScriptBoot {
    fn describe(&self) -> String {
        format!("vendor command {}", self.argv.join(" "))
    }

    fn read_state(&self) -> Result<BootState, BootError> {
        let a = self.get_active()?;
        Ok(BootState {
            primary: a.next,
            trial: a.trial,
            bootcount: a.bootcount,
            bootlimit: a.bootlimit,
            fell_back_from: a.fell_back_from,
        })
    }

    fn arm_trial(&self, target: &VerifiedSlot, booted: Slot) -> Result<(), BootError> {
        let slot = target.slot();
        if slot == booted {
            return Err(BootError::TargetIsBooted(slot));
        }
        self.change(&["set-next", slot.as_str(), "--trial"], |a| {
            a.next == slot && a.trial
        })
    }

    fn commit(&self, slot: Slot) -> Result<(), BootError> {
        let now = self.get_active()?;
        if now.next == slot && !now.trial && now.bootcount == 0 {
            return Ok(());
        }
        self.change(&["commit", slot.as_str()], |a| a.next == slot && !a.trial)
    }

    fn switch_to(&self, target: &VerifiedSlot) -> Result<(), BootError> {
        let slot = target.slot();
        self.change(&["set-next", slot.as_str()], |a| a.next == slot && !a.trial)
    }

    fn dump(&self) -> Result<Vec<(String, String)>, BootError> {
        Ok(vec![(
            "get-active".into(),
            self.run(&["get-active"])?.trim().to_string(),
        )])
    }
}
