//! The owner's configuration and the firmware it goes to: whether a release can take the
//! settings the running firmware has ([`compat`], OpenWrt's `compat_version`).

pub mod compat;

pub use compat::{Break, CompatError, CompatVersion};
