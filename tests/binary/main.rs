//! The suites that run the `fwguard` and `fwguard-index` binaries (and the packaging scripts)
//! as child processes, in this one test binary. One module per former `tests/<name>.rs`
//! crate. Host only: under qemu-user the children would need binfmt_misc.

#[path = "../common/mod.rs"]
mod common;

mod archive;
mod boot_guards;
mod boot_images;
mod check_now;
mod cli;
mod demo;
mod diag;
mod doctor;
mod examples;
#[cfg(feature = "fleet")]
mod fleet_cli;
mod notify_log;
mod offline;
mod packaging;
mod parts_offline;
mod progress;
mod rpcd;
mod runtime_dir;
mod signify_interop;
mod state_location;
mod syslog;
mod ubi_image;
mod vendor_halt;
mod vendor_parts;
mod vendor_tool;
