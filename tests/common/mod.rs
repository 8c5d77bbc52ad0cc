//! Shared helpers: a simulated world in a temp dir, an agent for it, byte snapshots of the
//! router, and a daemon runner that stops once the boot is settled.
#![allow(dead_code)]

#[cfg(feature = "fleet")]
pub mod browser;
pub mod linksys;
pub mod linksys_router;
#[cfg(feature = "fleet")]
pub mod postgres;
pub mod sysupgrade;
pub mod tools;
pub mod trust;
pub mod ubi;
pub mod vendor_script;

use fwguard::agent::{Agent, DaemonExit};
use fwguard::config::Settings;
use fwguard::sim::world::{World, WorldOptions};
use fwguard::sim::{Behaviour, BootReport};
use fwguard::state::{PersistedState, StateStore, UpdateState};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// The fwguard binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_fwguard");

/// Run `fwguard --config CFG ARGS…` (without `$FWGUARD_CONFIG` from the environment).
pub async fn fwguard(cfg: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("FWGUARD_CONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("the fwguard binary runs")
}

/// A directory in RAM (tmpfs, under /dev/shm), where a runtime directory belongs.
pub fn ram_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fwguard-test-")
        .tempdir_in("/dev/shm")
        .expect("/dev/shm (tmpfs) is writable")
}

/// A directory on the build machine's disk (in the target directory), where no runtime file
/// may go.
pub fn disk_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fs = nix::sys::statfs::statfs(d.path())
        .unwrap()
        .filesystem_type();
    assert!(
        fs != nix::sys::statfs::TMPFS_MAGIC && fs.0 as u64 != 0x8584_58f6,
        "{} is in RAM: these tests need the target directory on a disk",
        d.path().display()
    );
    d
}

/// One line of a board's `<proc>/self/mountinfo`: a mount point (resolved, as the kernel
/// lists it), the device's `major:minor`, the file system type and the source.
pub struct Mnt<'a> {
    pub at: &'a Path,
    pub dev: &'a str,
    pub fstype: &'a str,
    pub source: &'a str,
}

/// The shared data partition of the boards the tests describe: ext4 on /dev/sda4 (8:4), a
/// device that is neither slot (the virtual router's /data is its disk's 4th partition).
pub const DATA_DEV: &str = "8:4";

/// Write `<proc>/self/mountinfo`: an OpenWrt router's root (the running slot's overlay, its
/// squashfs under /rom), then `mounts` in order (a later one on the same point covers the
/// earlier). Paths are escaped as the kernel does (`\040` for a space).
pub fn write_mountinfo(proc: &Path, mounts: &[Mnt]) {
    let esc = |p: &Path| {
        p.display()
            .to_string()
            .replace('\\', "\\134")
            .replace(' ', "\\040")
            .replace('\t', "\\011")
            .replace('\n', "\\012")
    };
    let mut text = String::from(
        "15 1 0:13 / / rw,noatime shared:1 - overlay overlay rw,lowerdir=/,upperdir=/overlay/upper\n\
         16 15 0:12 / /rom ro,relatime shared:2 - squashfs /dev/root ro\n",
    );
    for (i, m) in mounts.iter().enumerate() {
        let at = std::fs::canonicalize(m.at).unwrap_or_else(|_| m.at.to_path_buf());
        text += &format!(
            "{} 15 {} / {} rw,relatime shared:{} - {} {} rw\n",
            30 + i,
            m.dev,
            esc(&at),
            30 + i,
            m.fstype,
            m.source
        );
    }
    std::fs::create_dir_all(proc.join("self")).unwrap();
    std::fs::write(proc.join("self/mountinfo"), text).unwrap();
}

/// `<proc>/self/mountinfo` with `data` (which holds the state directory) mounted from the
/// shared data partition, so the state location check passes.
pub fn data_mountinfo(proc: &Path, data: &Path) {
    write_mountinfo(
        proc,
        &[Mnt {
            at: data,
            dev: DATA_DEV,
            fstype: "ext4",
            source: "/dev/sda4",
        }],
    );
}

pub const WAN_DOWN: Behaviour = Behaviour {
    wan_up: false,
    boots: true,
    root: false,
};
pub const PANICS: Behaviour = Behaviour {
    wan_up: true,
    boots: false,
    root: false,
};

pub struct TestWorld {
    pub world: World,
    pub cfg: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Trial settings short enough for tests.
pub const FAST_TRIAL: &str = "deadline = \"1500ms\"\nretry_interval = \"100ms\"\nsoak = \"0s\"";

/// A world with images 1.1 (good) and 1.2 (breaks the WAN), nothing published yet, and a
/// config with the given policy. The router is powered on (1.0 from slot A).
pub async fn world(policy: &str) -> TestWorld {
    world_with(policy, WorldOptions::default()).await
}

pub async fn world_with(policy: &str, opts: WorldOptions) -> TestWorld {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut world = World::create(tmp.path().join("w"), opts)
        .await
        .expect("world");
    world.add_image("1.1", Behaviour::GOOD).unwrap();
    world.add_image("1.2", WAN_DOWN).unwrap();
    let cfg = world
        .write_config(&format!("policy = \"{policy}\""), FAST_TRIAL)
        .unwrap();
    let r = world.power_cycle().await.unwrap();
    assert_eq!(r.version.as_str(), "1.0");
    TestWorld {
        world,
        cfg,
        _tmp: tmp,
    }
}

impl TestWorld {
    /// Point `agent.runtime_dir` at `dir`.
    pub fn set_runtime_dir(&self, dir: &Path) {
        let text = std::fs::read_to_string(&self.cfg).unwrap();
        let text: Vec<String> = text
            .lines()
            .map(|l| match l.starts_with("runtime_dir = ") {
                true => format!("runtime_dir = \"{}\"", dir.display()),
                false => l.to_string(),
            })
            .collect();
        std::fs::write(&self.cfg, text.join("\n")).unwrap();
    }

    pub fn settings(&self) -> Settings {
        Settings::load(&self.cfg).expect("config loads")
    }

    pub fn agent(&self) -> Agent {
        Agent::from_settings(self.settings()).expect("agent")
    }

    pub fn state(&self) -> PersistedState {
        StateStore::new(self.settings().state_dir).load().unwrap()
    }

    /// The bytes of both slots, the env, and both slots' rootfs targets.
    pub fn snapshot(&self) -> Vec<Vec<u8>> {
        let r = &self.world.router;
        vec![
            std::fs::read(r.slot_path(fwguard::Slot::A)).unwrap(),
            std::fs::read(r.slot_path(fwguard::Slot::B)).unwrap(),
            std::fs::read(r.env_path()).unwrap(),
            std::fs::read(r.rootfs_path(fwguard::Slot::A)).unwrap(),
            std::fs::read(r.rootfs_path(fwguard::Slot::B)).unwrap(),
        ]
    }

    pub async fn power_cycle(&mut self) -> BootReport {
        self.world.power_cycle().await.expect("the router boots")
    }

    /// Run the daemon until it asks for a reboot, or until no update is in progress.
    pub async fn settle(&self) -> DaemonExit {
        self.settle_until(|s| s.update == UpdateState::Idle).await
    }

    /// Run the daemon until it asks for a reboot, or until `done` holds for the state.
    pub async fn settle_until(&self, done: impl Fn(&PersistedState) -> bool) -> DaemonExit {
        let store = StateStore::new(self.settings().state_dir);
        run_daemon_until(self.agent(), || {
            store.load().map(|s| done(&s)).unwrap_or(false)
        })
        .await
    }

    /// How many times the vendor's server was asked for the index.
    pub fn index_fetches(&self) -> usize {
        let server = self.world.server.as_ref().expect("the server runs");
        server.ranges("/index.toml").len()
    }

    /// Run `agent`'s daemon until `done` holds for the state and a later round has begun
    /// (one more index request), so the round that made `done` true ran to its end; or
    /// until it asks for a reboot.
    pub async fn run_daemon_past(
        &self,
        agent: Agent,
        done: impl Fn(&PersistedState) -> bool,
    ) -> DaemonExit {
        let store = StateStore::new(self.settings().state_dir);
        let since = std::cell::Cell::new(None);
        run_daemon_until(agent, || match since.get() {
            Some(n) => self.index_fetches() > n,
            None => {
                let n = self.index_fetches();
                if store.load().map(|s| done(&s)).unwrap_or(false) {
                    since.set(Some(n));
                }
                false
            }
        })
        .await
    }

    /// Install the newest release, boot it and let the daemon judge it.
    pub async fn update_and_judge(&mut self) -> (BootReport, DaemonExit) {
        let action = self
            .agent()
            .update(fwguard::agent::UpdateMode::Install)
            .await
            .expect("update");
        assert!(
            matches!(action, fwguard::agent::Action::Reboot(_)),
            "{action:?}"
        );
        let r = self.power_cycle().await;
        let exit = self.settle().await;
        (r, exit)
    }
}

/// The release entry (board `sim`, channel `stable`) for the world's image of `version`.
pub fn release(t: &TestWorld, version: &str) -> fwguard::index::build::NewRelease {
    fwguard::index::build::NewRelease::from_image(
        version.parse().unwrap(),
        vec!["sim".into()],
        vec!["stable".into()],
        vec![format!("images/fw-{version}.img")],
        &t.world.www.join(format!("images/fw-{version}.img")),
    )
    .unwrap()
}

/// An owner's `fwguard update` on `t` installs `version` and reboots into its trial.
pub async fn installs(t: &TestWorld, version: &str) {
    let a = t
        .agent()
        .update(fwguard::agent::UpdateMode::Install)
        .await
        .unwrap();
    assert!(
        matches!(&a, fwguard::agent::Action::Reboot(why) if why.contains(version)),
        "{a:?}"
    );
}

pub fn history_has(st: &PersistedState, event: &str, version: &str) -> bool {
    st.history
        .iter()
        .any(|h| h.event == event && h.version.as_ref().map(|v| v.as_str()) == Some(version))
}

/// The size and SHA-256 of `img`, as an index entry announces them.
pub fn expected(img: &[u8]) -> fwguard::flash::Expected {
    fwguard::flash::Expected {
        size: img.len() as u64,
        sha256: <sha2::Sha256 as sha2::Digest>::digest(img).into(),
    }
}

/// A file of the repository (the shipped examples, the packaging scripts).
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A slot file holding a small image, written and read back through fwguard's pipeline: only
/// such a slot can be armed.
pub fn verified_slot(dir: &std::path::Path, slot: fwguard::Slot) -> fwguard::flash::VerifiedSlot {
    let path = dir.join(format!("slot-{slot}.img"));
    std::fs::write(&path, vec![0u8; 64 * 1024]).unwrap();
    let image = vec![slot.as_str().as_bytes()[0]; 8192];
    let expected = expected(&image);
    let dev = fwguard::flash::FileSlot::new(slot, &path);
    let mut w = fwguard::flash::begin(&dev, &expected).unwrap();
    w.write(&image).unwrap();
    w.finish(&expected)
        .unwrap()
        .verify(&dev, &expected)
        .unwrap()
}

/// Run `agent`'s daemon for `ms` milliseconds (or until it asks for a reboot).
pub async fn run_daemon_for(agent: Agent, ms: u64) -> DaemonExit {
    let stop = tokio::time::sleep(Duration::from_millis(ms));
    tokio::time::timeout(Duration::from_secs(30), agent.run_daemon(stop))
        .await
        .expect("daemon stops in time")
        .expect("daemon runs")
}

/// Run `agent`'s daemon until `done` holds (asked every 20 ms) or it asks for a reboot,
/// 30 s at most.
pub async fn run_daemon_until(agent: Agent, done: impl Fn() -> bool) -> DaemonExit {
    let stop = async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if done() {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), agent.run_daemon(stop))
        .await
        .expect("the daemon gets there in time")
        .expect("daemon runs")
}

/// Run the fwguard daemon binary under a service manager that asks for a watchdog of
/// `watchdog_usec` (its notify socket a datagram socket here), collect what it sends until
/// `done` holds for the messages so far (30 s at most), then kill it.
pub async fn notifications_until(
    t: &TestWorld,
    watchdog_usec: u64,
    done: impl Fn(&[String]) -> bool + Send + 'static,
) -> Vec<String> {
    let sock_path = t.world.root.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&t.cfg)
        .arg("daemon")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", watchdog_usec.to_string())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !done(&seen) {
            let n = sock.recv(&mut buf).expect("a notification within 30 s");
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        seen
    })
    .await
    .unwrap();
    child.start_kill().unwrap();
    got
}

/// Every file and link under `root` (relative paths), with its bytes (a link: its target)
/// and mode: what "byte-identical" compares.
pub fn tree(root: &Path) -> std::collections::BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if m.file_type().is_dir() {
                out.insert(rel, (Vec::new(), m.mode()));
                todo.push(p);
            } else if m.file_type().is_symlink() {
                let to = std::fs::read_link(&p).unwrap();
                out.insert(rel, (to.into_os_string().into_encoded_bytes(), m.mode()));
            } else {
                out.insert(rel, (std::fs::read(&p).unwrap(), m.mode()));
            }
        }
    }
    out
}
