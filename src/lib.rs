//! fwguard: a firmware update and rollback agent for home routers.
//!
//! A new image is written only to the inactive slot of an A/B pair, verified, and booted on
//! trial; health checks then commit it or roll back to the previous slot, which stays on the
//! device. The bootloader's boot counter abandons a firmware that never boots far enough to
//! run fwguard.

pub mod agent;
pub mod archive_dir;
pub mod board;
pub mod boot;
pub mod bootimg;
pub mod carry;
pub mod cli;
pub mod command;
pub mod config;
pub mod error;
pub mod failpoint;
pub mod fetch;
pub mod flash;
#[cfg(feature = "fleet")]
pub mod fleet;
pub mod fsutil;
pub mod health;
pub mod index;
pub mod memory;
pub mod notify;
pub mod redact;
pub mod runtime_dir;
pub mod safedir;
/// The simulated router and its world (`fwguard sim`, `fwguard demo`): never in a router
/// build (cross/build.sh builds without `demo` and checks that no `sim` code is linked).
#[cfg(feature = "demo")]
pub mod sim;
pub mod slot;
pub mod state;
pub mod time;
pub mod version;

pub use error::{Error, Result};
pub use slot::Slot;
pub use version::Version;
