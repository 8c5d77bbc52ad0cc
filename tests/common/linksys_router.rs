//! The Linksys router the suites drive: the flash of `linksys.rs`, the stock U-Boot played at
//! power-on, and one fwguard per firmware.

use super::linksys::Flash;
use fwguard::agent::Agent;
use fwguard::carry::CarryPlan;
use fwguard::config::{BoardSettings, Settings};
use fwguard::sim::settings_medium::DirMedium;
use fwguard::sim::world::{World, WorldOptions};
use fwguard::sim::Behaviour;
use fwguard::state::{Carried, PersistedState, StateStore, UpdateState, CARRY_VAR};
use fwguard::Slot;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The owner's WAN settings (OpenWrt UCI): the PPPoE account the WAN needs.
pub const OWNER_NETWORK: &str = "config interface 'wan'\n\toption device 'wan'\n\toption proto 'pppoe'\n\toption username 'owner-pppoe'\n\toption password 'secret'\n";

/// A Linksys WRT32X-like router as it is: each firmware has its own overlay, so each slot's
/// fwguard has its own state directory; the two share nothing but the U-Boot env and the
/// s_env counter (as the real board).
pub struct Router {
    pub world: World,
    pub flash: Flash,
    /// One config per firmware: the same but for `state_dir`, on that slot's own overlay.
    cfg: [PathBuf; 2],
    /// Each firmware's overlay (its `rootfs_data`, the stand-in's): `/etc` and the state.
    pub overlays: [PathBuf; 2],
    /// The settings are carried, and the WAN needs them.
    carry: bool,
    pub booted: Slot,
    _tmp: tempfile::TempDir,
}

impl Router {
    /// Firmware 1.0 in slot A, and `images` ready to publish (1.0 is published); each
    /// update carries the owner's settings as OpenWrt's backup (`[settings]` as the linksys
    /// profile has it by default), so the images must have a UBI root.
    pub async fn new(images: &[(&str, Behaviour)]) -> Router {
        Router::build(images, true).await
    }

    /// The same with firmware whose images are a kernel alone (no UBI on rootfsN), as stock
    /// firmware is to fwguard: nothing is carried (`mode = "none"`).
    pub async fn stock(images: &[(&str, Behaviour)]) -> Router {
        Router::build(images, false).await
    }

    async fn build(images: &[(&str, Behaviour)], carry: bool) -> Router {
        let tmp = tempfile::tempdir().unwrap();
        let opts = WorldOptions {
            board: "linksys-wrt32x".into(),
            payload_len: 512 * 1024,
            ..WorldOptions::default()
        };
        let mut world = World::create(tmp.path().join("w"), opts).await.unwrap();
        for (version, b) in images {
            world.add_image(version, *b).unwrap();
        }
        world.publish(&["1.0"]).unwrap();
        let image = std::fs::read(world.www.join("images/fw-1.0.img")).unwrap();
        let flash = Flash::create(&tmp.path().join("flash"), &image);
        let text = world.config_text("policy = \"off\"", super::FAST_TRIAL);
        let sim_board = format!(
            "profile = \"sim\"\ndir = \"{}\"\n",
            world.router.dir().display()
        );
        let shared = Settings::load(&{
            let p = tmp.path().join("probe.toml");
            std::fs::write(&p, &text).unwrap();
            p
        })
        .unwrap()
        .state_dir;
        let overlays = [Slot::A, Slot::B].map(|s| tmp.path().join(format!("overlay-{s}")));
        if carry {
            // The owner's settings on firmware 1.0: without them the WAN does not come up.
            let etc = overlays[0].join("etc/config");
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("network"), OWNER_NETWORK).unwrap();
        }
        let cfg = [Slot::A, Slot::B].map(|s| {
            let overlay = &overlays[s.index()];
            let own = overlay.join("etc/fwguard/state");
            let mut t = text.replace(&sim_board, &flash.board_config()).replace(
                &format!("state_dir = \"{}\"", shared.display()),
                &format!("state_dir = \"{}\"", own.display()),
            );
            assert!(t.contains(&own.display().to_string()));
            // OpenWrt's carry, with `sysupgrade -b` played by tar over this firmware's /etc.
            t += &if !carry {
                "\n[settings]\nmode = \"none\"\n".to_string()
            } else { format!(
                "\n[settings]\nbackup_command = [\"sh\", \"-c\", \"tar czf \\\"$0\\\" -C {} etc\", \"{{backup}}\"]\n",
                overlay.display()
            )};
            let p = tmp.path().join(format!("config-{s}.toml"));
            std::fs::write(&p, t).unwrap();
            p
        });
        Router {
            world,
            flash,
            cfg,
            overlays,
            carry,
            booted: Slot::A,
            _tmp: tmp,
        }
    }

    /// The config of slot `s`'s firmware.
    pub fn config_path(&self, s: Slot) -> &std::path::Path {
        &self.cfg[s.index()]
    }

    pub fn settings(&self, s: Slot) -> Settings {
        Settings::load(&self.cfg[s.index()]).unwrap()
    }

    /// The fwguard of the firmware running now.
    pub fn agent(&self) -> Agent {
        let settings = self.settings(self.booted);
        let medium = match (&settings.board, &settings.carry) {
            (BoardSettings::Linksys(l), CarryPlan::OpenWrt { volume, .. }) => {
                Some(DirMedium::linksys(l, volume, self.overlays.clone()).unwrap())
            }
            _ => None,
        };
        let agent = Agent::from_settings(settings).unwrap();
        match medium {
            Some(m) => agent.with_settings_medium(Box::new(m)),
            None => agent,
        }
    }

    /// Whether slot `s`'s overlay holds the owner's network settings.
    pub fn has_owner_settings(&self, s: Slot) -> bool {
        std::fs::read_to_string(self.overlays[s.index()].join("etc/config/network"))
            .is_ok_and(|t| t.contains("owner-pppoe"))
    }

    /// The files of slot `s`'s overlay, with their bytes and modes.
    pub fn overlay(&self, s: Slot) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        super::tree(&self.overlays[s.index()])
    }

    /// The state of the firmware running now.
    pub fn state(&self) -> PersistedState {
        self.state_of(self.booted)
    }

    pub fn state_of(&self, s: Slot) -> PersistedState {
        StateStore::new(self.settings(s).state_dir).load().unwrap()
    }

    pub async fn power_on(&mut self) -> (Slot, String) {
        // A UBI never attached yet (its autoresize volume not grown) has a fresh, empty
        // rootfs_data: the kernel formats it at the first mount, and what the stand-in's
        // directory still holds of an earlier firmware in that slot is gone.
        let fresh = [5, 7].map(|mtd| {
            let bytes = self.bytes(mtd);
            super::ubi::has_autoresize(&bytes[super::linksys::ROOT_AT..])
        });
        let (slot, version) = self.flash.power_on(&mut self.world).await;
        self.booted = slot;
        let overlay = &self.overlays[slot.index()];
        let backup = overlay.join("sysupgrade.tgz");
        if self.carry && fresh[slot.index()] && !backup.exists() {
            let _ = std::fs::remove_dir_all(overlay);
        }
        // OpenWrt's preinit (80_mount_root): a backup on the overlay is restored, then removed.
        if backup.exists() {
            super::tools::tool(
                "tar",
                &[
                    "xzf",
                    backup.to_str().unwrap(),
                    "-C",
                    overlay.to_str().unwrap(),
                ],
            );
            std::fs::remove_file(&backup).unwrap();
        }
        // The WAN (PPPoE) comes up only with the owner's credentials in /etc/config/network.
        if self.carry && !self.has_owner_settings(slot) {
            self.world.wan.set_up(false).await.unwrap();
        }
        (slot, version)
    }

    /// Run the running firmware's daemon until its boot is settled, or it asks for a reboot.
    pub async fn settle(&self) {
        let agent = self.agent();
        let store = StateStore::new(self.settings(self.booted).state_dir);
        let flash = &self.flash;
        let done = async {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let idle = store.load().is_ok_and(|s| s.update == UpdateState::Idle);
                if idle && flash.s_env().0 == 0 || flash.reboot_requested() {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), agent.run_daemon(done))
            .await
            .expect("daemon settles in time")
            .expect("daemon runs");
    }

    pub fn carried(&self) -> Carried {
        Carried::decode(&self.flash.env()[CARRY_VAR]).unwrap()
    }

    /// Run `fwguard update` on the running firmware with `failpoint`, which kills it there
    /// (a power cut at that point).
    pub async fn cut(&self, failpoint: &str) {
        let out = tokio::process::Command::new(super::BIN)
            .arg("--config")
            .arg(self.config_path(self.booted))
            .arg("update")
            .env("FWGUARD_FAILPOINT", failpoint)
            .env(
                "FWGUARD_SIM_SETTINGS_DIRS",
                format!(
                    "{}:{}",
                    self.overlays[0].display(),
                    self.overlays[1].display()
                ),
            )
            .output()
            .await
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn bytes(&self, mtd: u32) -> Vec<u8> {
        std::fs::read(self.flash.dev(mtd)).unwrap()
    }

    /// Publish `version` as an OpenWrt sysupgrade image (`listed`: the versions in the
    /// index): a kernel and a squashfs root of several UBI blocks. Returns both.
    pub fn publish_sysupgrade(
        &mut self,
        version: &str,
        b: Behaviour,
        listed: &[&str],
    ) -> (Vec<u8>, Vec<u8>) {
        let (k, root) = (kernel(version, b), root(&self.world, version));
        let dir = self.world.root.join(format!("build-{version}"));
        let meta = super::sysupgrade::metadata("linksys,wrt32x", version, "1.0");
        let img = super::sysupgrade::sysupgrade_image(&dir, BOARD, &k, &root, Some(&meta));
        self.world.add_sysupgrade(version, &img).unwrap();
        self.world.publish(listed).unwrap();
        (k, root)
    }
}

pub const BOARD: &str = "linksys-wrt32x";

/// A kernel for the Linksys board that behaves as `b` says.
pub fn kernel(version: &str, b: Behaviour) -> Vec<u8> {
    fwguard::sim::firmware_image_for(
        BOARD,
        &version.parse().unwrap(),
        fwguard::sim::world::BUILD_TIME,
        64 * 1024,
        b,
    )
}

/// A root of several UBI blocks.
pub fn root(world: &World, version: &str) -> Vec<u8> {
    super::tools::squashfs_of(&world.root, version, 300_000)
}
