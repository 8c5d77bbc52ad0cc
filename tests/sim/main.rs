//! The in-process suites: each drives the sim router (or a slot, an env, a flash image)
//! through the library, in this one test binary. None starts the fwguard binary, so the
//! first eleven modules also run for router CPUs under qemu-user (cross/test.sh selects
//! them by module). One module per former `tests/<name>.rs` crate.

#[path = "../common/mod.rs"]
mod common;

// Run under qemu-user by cross/test.sh too (its `modules` list).
mod adopt;
mod attacks;
mod cycle;
mod grub_script;
mod health_policy;
mod linksys;
mod linksys_factory;
mod linksys_per_slot;
mod mtd_slot;
mod owner;
mod parts;
mod refusals;
mod ubi_slot;
mod uboot_env_interop;
mod uboot_env_redundant;

// Host only.
mod health_hostile;
mod index_url;
mod owner_controls;
mod report;
mod resume;
mod sources;
mod time_floor_reset;
mod tls;
mod windows;
