//! `fwguard doctor`'s look at the settings carry: what is carried, and that what it needs is
//! there (the program it runs, the kernel's UBI control device), before an update needs it.

use super::plan::CarryPlan;
use crate::board::preflight::Finding;
use crate::config::Settings;
use std::path::Path;

pub const CHECK: &str = "settings carry";

/// Whether `program` can be run: a path to a file, or a name found in `$PATH`.
fn runnable(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

pub fn preflight(settings: &Settings) -> Finding {
    let plan = &settings.carry;
    let program = match plan {
        CarryPlan::Nothing => return Finding::ok(CHECK, plan.describe()),
        CarryPlan::OpenWrt { backup_command, .. } => &backup_command[0],
        CarryPlan::Command { command, .. } => &command[0],
        CarryPlan::Keep { .. } => "",
    };
    if !program.is_empty() && !runnable(program) {
        return Finding::fail(
            CHECK,
            format!("{program:?} is not installed: the settings cannot be carried, so no trial would be armed"),
            "install it, or set [settings] for this board (mode = \"none\" carries nothing)".into(),
        );
    }
    if let CarryPlan::OpenWrt { .. } = plan {
        let ctrl = settings.board.dev_dir().join("ubi_ctrl");
        if !ctrl.exists() {
            return Finding::fail(
                CHECK,
                format!("{} is missing: this kernel has no UBI to attach the new slot's partition with", ctrl.display()),
                "load the ubi module (OpenWrt's NAND targets have it built in), or set [settings] mode for this board".into(),
            );
        }
    }
    Finding::ok(CHECK, plan.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_by_path_or_in_path() {
        assert!(runnable("sh"));
        assert!(runnable("/bin/sh"));
        assert!(!runnable("no-such-program-here"));
        assert!(!runnable("/nonexistent/sysupgrade"));
    }
}
