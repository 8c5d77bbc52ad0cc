//! The command line as typed: the `fwguard` subcommands and their flags (clap).

use super::archive_cmd;
#[cfg(feature = "demo")]
use super::sim_cmd;
use crate::version::Version;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "fwguard",
    version,
    about = "Firmware update and rollback agent for A/B routers"
)]
pub struct Cli {
    /// Configuration file [default: $FWGUARD_CONFIG, else /etc/fwguard/config.toml]
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub(super) config: Option<PathBuf>,
    /// More log output (repeat for more)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub(super) verbose: u8,
    /// Log to syslog instead of stderr (the local socket, /dev/log unless SOCKET is given)
    #[arg(long, global = true, value_name = "SOCKET", num_args = 0..=1, require_equals = true, default_missing_value = "/dev/log")]
    pub(super) syslog: Option<PathBuf>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Fetch and verify the index; say what would be installed
    Check {
        /// Exit with 10 when there is nothing to install
        #[arg(long)]
        exit_code: bool,
        /// Do the daemon's round now: wake the running daemon (or, with none running, do it
        /// here) to check and then download or install as the policy and windows allow
        #[arg(long)]
        now: bool,
    },
    /// Install the chosen release into the inactive slot and reboot into a trial
    Update {
        /// Write and verify the inactive slot, but do not switch or reboot
        #[arg(long)]
        stage_only: bool,
        /// Install even while a required health check fails on the running firmware (it
        /// then does not block the new one either)
        #[arg(long)]
        force: bool,
        /// Boot it on its own defaults: the owner's settings are not carried (needed for
        /// a release whose configuration format breaks with the running firmware's)
        #[arg(long)]
        no_settings: bool,
    },
    /// Install offline: PATH is a directory (or USB stick) holding the vendor's signed
    /// index.toml, its .sig and the images, an index file, or one image file (its signed
    /// index beside it, or --index). The same checks as online.
    Install {
        path: std::path::PathBuf,
        /// The signed index for an image file (default: index.toml beside it)
        #[arg(long)]
        index: Option<std::path::PathBuf>,
        /// Write and verify the inactive slot, but do not switch or reboot
        #[arg(long)]
        stage_only: bool,
        /// Install even while a required health check fails on the running firmware
        #[arg(long)]
        force: bool,
        /// Boot it on its own defaults: the owner's settings are not carried (needed for
        /// a release whose configuration format breaks with the running firmware's)
        #[arg(long)]
        no_settings: bool,
    },
    /// Run the health checks once now (exit 9 when a required one fails)
    Health {
        #[arg(long)]
        json: bool,
    },
    /// Run the agent: judge a trial boot, then check for updates on an interval
    Daemon,
    /// Judge this boot and exit: commit or roll back a trial (for a boot-assessment unit)
    Assess,
    /// Show the device's update status
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show installs, commits, rollbacks and their reasons
    History {
        #[arg(long)]
        json: bool,
    },
    /// Go back to the known-good firmware in the other slot (no download)
    Rollback,
    /// Install exactly VERSION (downgrade included) and stay on it
    Pin {
        version: Version,
        /// Allow a version below the vendor's security floor (logged as a warning)
        #[arg(long)]
        force_insecure: bool,
        /// Boot it on its own defaults: the owner's settings are not carried (needed for
        /// a release whose configuration format breaks with the running firmware's)
        #[arg(long)]
        no_settings: bool,
    },
    /// Follow the channel again (drops a pin or a hold)
    #[command(alias = "release")]
    Unpin,
    /// Stay on the running version: install nothing until `fwguard release`
    Hold,
    /// Approve VERSION's exact bytes (policy approve): the daemon boots it at its next round,
    /// inside the reboot window; undoes `deny`
    Approve { version: Version },
    /// Never install VERSION automatically (under any policy; `fwguard update` still does),
    /// until `fwguard approve VERSION`
    Deny { version: Version },
    /// What the daemon may do on its own: auto, approve, download-only, notify or off
    /// (overrides the configuration)
    Policy {
        #[arg(value_parser = parse_policy)]
        mode: crate::config::Policy,
    },
    /// Follow another channel of the index (e.g. stable, beta)
    Channel { name: String },
    /// Commit the running trial boot now
    MarkGood,
    /// The archive of known-good images kept on USB storage or a spare partition
    /// (`[archive] dir`)
    #[command(subcommand)]
    Archive(archive_cmd::ArchiveCommand),
    /// Write a support bundle (.tar.gz): versions, status, state and history, the
    /// configuration with secrets removed, the bootloader's variables, the board checks,
    /// the last health round, recent logs
    Diag {
        /// Where to write it [default: fwguard-diag-<time>.tar.gz here]
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Check the board: where the bootloader env is and whether it fits the flash, the env
    /// itself, the running slot, the slots, and that the runtime directory is in RAM; each
    /// failure with a fix (exit 3 on any failure)
    Doctor,
    /// The rpcd exec plugin protocol (OpenWrt's ubus): `rpcd list`, or `rpcd call METHOD`
    /// with the arguments as JSON on stdin
    #[command(hide = true)]
    Rpcd {
        /// list or call
        action: String,
        method: Option<String>,
    },
    /// The simulated router
    #[cfg(feature = "demo")]
    #[command(subcommand)]
    Sim(sim_cmd::SimCommand),
    /// Run the whole update / trial / commit / rollback cycle on a simulated router
    #[cfg(feature = "demo")]
    Demo {
        /// Keep the simulated world in DIR instead of a temporary directory
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

pub(super) fn parse_policy(s: &str) -> Result<crate::config::Policy, String> {
    crate::config::Policy::parse(s)
        .ok_or_else(|| format!("{s:?} is not one of auto, approve, download-only, notify, off"))
}
