//! `fwguard sim ...`: create and power-cycle a simulated router.

use crate::error::{Error, EXIT_OK};
use crate::sim::{self, Behaviour, SimRouter};
use crate::version::Version;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Create a powered-off simulated router with firmware VERSION in slot A
    Create {
        dir: PathBuf,
        #[arg(long, default_value = "1.0")]
        version: Version,
        /// Slot size in bytes
        #[arg(long, default_value_t = sim::DEFAULT_SLOT_SIZE)]
        slot_size: u64,
    },
    /// Write a simulated firmware image to a file
    Image {
        out: PathBuf,
        #[arg(long)]
        version: Version,
        /// Payload size in bytes
        #[arg(long, default_value_t = 1 << 20)]
        size: usize,
        /// The firmware breaks the WAN once booted
        #[arg(long)]
        wan_down: bool,
        /// The firmware's kernel panics (it never reaches userspace)
        #[arg(long)]
        panics: bool,
    },
    /// Power-cycle the router: the bootloader picks a slot as the U-Boot script would
    Reboot { dir: PathBuf },
}

pub fn run(cmd: SimCommand) -> Result<i32, Error> {
    match cmd {
        SimCommand::Create {
            dir,
            version,
            slot_size,
        } => {
            let img =
                sim::firmware_image(&version, crate::time::unix_now(), 1 << 20, Behaviour::GOOD);
            SimRouter::create(&dir, slot_size, &img)?;
            println!(
                "created simulated router in {} with {version} in slot A (powered off)",
                dir.display()
            );
        }
        SimCommand::Image {
            out,
            version,
            size,
            wan_down,
            panics,
        } => {
            let b = Behaviour {
                wan_up: !wan_down,
                boots: !panics,
                root: false,
            };
            let img = sim::firmware_image(&version, crate::time::unix_now(), size, b);
            std::fs::write(&out, &img)
                .map_err(|e| Error::Other(format!("{}: {e}", out.display())))?;
            println!("wrote {} ({} bytes)", out.display(), img.len());
        }
        SimCommand::Reboot { dir } => {
            let r = SimRouter::open(&dir).reboot()?;
            for line in &r.log {
                println!("{line}");
            }
        }
    }
    Ok(EXIT_OK)
}
