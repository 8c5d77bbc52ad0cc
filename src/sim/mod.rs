//! The simulated router (board profile `sim`): a directory with two slot images, a U-Boot
//! environment image in the real format, and the files a real board's kernel would provide
//! (`cmdline`, `boot_id`). [`SimRouter::reboot`] runs the same selection logic as the U-Boot
//! boot script (`packaging/uboot/ab-boot.env`).

mod boot;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod httpd;
pub mod image;
pub mod settings_medium;
#[cfg(feature = "demo")]
pub mod wan;
#[cfg(feature = "demo")]
pub mod world;

pub use boot::BootReport;
pub use image::{firmware_image_for, Behaviour, Kernel};

use crate::board::{self, Board, BoardError, Platform};
use crate::boot::env_store::EnvLocation;
use crate::boot::uboot::UBootAb;
use crate::boot::uboot_env::EnvVars;
use crate::flash::FileSlot;
use crate::slot::Slot;
use crate::version::Version;
use std::path::{Path, PathBuf};

/// Board id of the simulated router.
pub const BOARD_ID: &str = "sim";
/// Size of the simulated environment area (as on the virtual ARM router).
pub const ENV_SIZE: usize = 0x4000;
/// Default slot size.
pub const DEFAULT_SLOT_SIZE: u64 = 8 * 1024 * 1024;
/// The sim board's second target, for a release's root file system part.
pub const ROOTFS_TARGET: &str = "rootfs";
/// Its size in each slot.
pub const ROOTFS_SIZE: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("sim router {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sim router: {0}")]
    Boot(#[from] crate::boot::BootError),
    #[error("sim router: no bootable slot: {0}")]
    NoBootableSlot(String),
    #[error("sim router: no tmpfs for its runtime directory (fwguard writes runtime files only in RAM): tried {tried}")]
    NoRam { tried: String },
}

/// Build a simulated firmware image for the sim board (a uImage) of about `payload_len`
/// bytes.
pub fn firmware_image(
    version: &Version,
    build_time: u64,
    payload_len: usize,
    b: Behaviour,
) -> Vec<u8> {
    firmware_image_for(BOARD_ID, version, build_time, payload_len, b)
}

pub struct SimRouter {
    dir: PathBuf,
}

impl SimRouter {
    pub fn open(dir: impl Into<PathBuf>) -> SimRouter {
        SimRouter { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn slot_path(&self, s: Slot) -> PathBuf {
        self.dir.join(match s {
            Slot::A => "slot-a.img",
            Slot::B => "slot-b.img",
        })
    }

    /// Slot `s`'s `rootfs` target: where a release's root file system part goes.
    pub fn rootfs_path(&self, s: Slot) -> PathBuf {
        self.dir.join(match s {
            Slot::A => "rootfs-a.img",
            Slot::B => "rootfs-b.img",
        })
    }

    pub fn env_path(&self) -> PathBuf {
        self.dir.join("env.img")
    }

    pub fn env(&self) -> EnvLocation {
        EnvLocation {
            path: self.env_path(),
            offset: 0,
            size: ENV_SIZE,
        }
    }

    fn io(&self, path: &Path, source: std::io::Error) -> SimError {
        SimError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The default environment the simulated U-Boot ships with.
    pub fn default_env() -> EnvVars {
        EnvVars::from_pairs(&[
            ("bootcmd", "run ab_boot"),
            ("bootdelay", "0"),
            ("boot_slot", "A"),
            ("upgrade_available", "0"),
            ("bootcount", "0"),
            ("bootlimit", "3"),
        ])
        .expect("static env")
    }

    /// Create a powered-off router whose slot A holds `image`; slot B is empty.
    pub fn create(
        dir: impl Into<PathBuf>,
        slot_size: u64,
        image: &[u8],
    ) -> Result<SimRouter, SimError> {
        let sim = SimRouter::open(dir);
        std::fs::create_dir_all(&sim.dir).map_err(|e| sim.io(&sim.dir, e))?;
        for s in Slot::ALL {
            let p = sim.rootfs_path(s);
            std::fs::File::create(&p)
                .and_then(|f| f.set_len(ROOTFS_SIZE))
                .map_err(|e| sim.io(&p, e))?;
            let p = sim.slot_path(s);
            let f = std::fs::File::create(&p).map_err(|e| sim.io(&p, e))?;
            f.set_len(slot_size).map_err(|e| sim.io(&p, e))?;
            if s == Slot::A {
                use std::os::unix::fs::FileExt;
                f.write_all_at(image, 0).map_err(|e| sim.io(&p, e))?;
            }
            f.sync_all().map_err(|e| sim.io(&p, e))?;
        }
        let env = sim.env();
        std::fs::File::create(&env.path)
            .and_then(|f| f.set_len(ENV_SIZE as u64))
            .map_err(|e| sim.io(&env.path, e))?;
        env.write_vars(&Self::default_env())?;
        Ok(sim)
    }

    /// The board the agent sees: the same U-Boot backend and file slots a real board uses.
    pub fn board(&self) -> Board {
        Board::new(
            BOARD_ID.to_string(),
            Box::new(UBootAb::new(self.env())),
            [
                Box::new(FileSlot::new(Slot::A, self.slot_path(Slot::A))),
                Box::new(FileSlot::new(Slot::B, self.slot_path(Slot::B))),
            ],
            Box::new(SimPlatform {
                dir: self.dir.clone(),
            }),
        )
        .with_targets(vec![(
            ROOTFS_TARGET.to_string(),
            [
                Box::new(FileSlot::new(Slot::A, self.rootfs_path(Slot::A))),
                Box::new(FileSlot::new(Slot::B, self.rootfs_path(Slot::B))),
            ],
        )])
    }

    /// Whether the agent asked for a reboot since the last boot.
    pub fn reboot_requested(&self) -> bool {
        self.dir.join("reboot-requested").exists()
    }

    /// The slot that booted last, if the router was ever powered on.
    pub fn booted(&self) -> Option<Slot> {
        std::fs::read_to_string(self.dir.join("cmdline"))
            .ok()
            .and_then(|t| board::slot_from_cmdline(&t))
    }
}

/// The simulated kernel's view: `cmdline` and `boot_id` written by the simulated boot.
pub struct SimPlatform {
    dir: PathBuf,
}

impl Platform for SimPlatform {
    fn booted_slot(&self) -> Result<Slot, BoardError> {
        let path = self.dir.join("cmdline");
        board::slot_from_cmdline(&board::read(&path)?).ok_or(BoardError::NoSlotArg {
            path,
            key: board::SLOT_ARG,
        })
    }

    fn boot_id(&self) -> Result<String, BoardError> {
        Ok(board::read(&self.dir.join("boot_id"))?.trim().to_string())
    }

    fn uptime_ms(&self) -> u64 {
        board::boottime_ms()
    }

    fn reboot(&self) -> Result<(), BoardError> {
        let path = self.dir.join("reboot-requested");
        std::fs::write(&path, b"").map_err(|source| BoardError::Io { path, source })
    }
}
