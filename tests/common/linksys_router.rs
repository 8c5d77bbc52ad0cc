//! The Linksys router the suites drive: the flash of `linksys.rs`, the stock U-Boot played at
//! power-on, and one fwguard per firmware.

use super::linksys::Flash;
use fwguard::agent::Agent;
use fwguard::config::Settings;
use fwguard::sim::world::{World, WorldOptions};
use fwguard::sim::Behaviour;
use fwguard::state::{Carried, PersistedState, StateStore, UpdateState, CARRY_VAR};
use fwguard::Slot;
use std::path::PathBuf;
use std::time::Duration;

/// A Linksys WRT32X-like router as it is: each firmware has its own overlay, so each slot's
/// fwguard has its own state directory; the two share nothing but the U-Boot env and the
/// s_env counter (as the real board).
pub struct Router {
    pub world: World,
    pub flash: Flash,
    /// One config per firmware: the same but for `state_dir`, on that slot's own overlay.
    cfg: [PathBuf; 2],
    pub booted: Slot,
    _tmp: tempfile::TempDir,
}

impl Router {
    /// Firmware 1.0 in slot A, and `images` ready to publish (1.0 is published).
    pub async fn new(images: &[(&str, Behaviour)]) -> Router {
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
        let cfg = [Slot::A, Slot::B].map(|s| {
            let own = tmp.path().join(format!("overlay-{s}/etc/fwguard/state"));
            let t = text.replace(&sim_board, &flash.board_config()).replace(
                &format!("state_dir = \"{}\"", shared.display()),
                &format!("state_dir = \"{}\"", own.display()),
            );
            assert!(t.contains(&own.display().to_string()));
            let p = tmp.path().join(format!("config-{s}.toml"));
            std::fs::write(&p, t).unwrap();
            p
        });
        Router {
            world,
            flash,
            cfg,
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
        Agent::from_settings(self.settings(self.booted)).unwrap()
    }

    /// The state of the firmware running now.
    pub fn state(&self) -> PersistedState {
        self.state_of(self.booted)
    }

    pub fn state_of(&self, s: Slot) -> PersistedState {
        StateStore::new(self.settings(s).state_dir).load().unwrap()
    }

    pub async fn power_on(&mut self) -> (Slot, String) {
        let (slot, version) = self.flash.power_on(&mut self.world).await;
        self.booted = slot;
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
}
