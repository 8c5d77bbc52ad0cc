//! A whole simulated world around a sim router: a vendor with a signing key, firmware
//! images, a signed index published on a loopback web server, and a WAN endpoint that the
//! booted firmware can break. Used by `fwguard demo` and by the integration tests.

use super::httpd::{ServeOptions, Server};
use super::wan::Wan;
use super::{firmware_image_for, Behaviour, BootReport, SimError, SimRouter};
use crate::index::build::{sign_bytes, IndexDraft, NewRelease};
use crate::index::sign::SecretKey;
use crate::version::Version;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Firmware build time of the simulated images (2026-11-01T00:00:00Z).
pub const BUILD_TIME: u64 = 1_793_491_200;
/// Index validity when published.
pub const INDEX_LIFETIME: u64 = 90 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct WorldOptions {
    pub slot_size: u64,
    pub payload_len: usize,
    pub serve: ServeOptions,
    /// The board id images and index entries are made for.
    pub board: String,
}

impl Default for WorldOptions {
    fn default() -> Self {
        WorldOptions {
            slot_size: super::DEFAULT_SLOT_SIZE,
            payload_len: 1 << 20,
            serve: ServeOptions::default(),
            board: super::BOARD_ID.into(),
        }
    }
}

/// The world's runtime directory: in RAM, as on a router (fwguard writes runtime files
/// nowhere else), so outside `root`; removed with the world.
#[derive(Debug)]
struct RamDir(PathBuf);

impl RamDir {
    fn create() -> Result<RamDir, SimError> {
        let bases = [PathBuf::from("/dev/shm"), std::env::temp_dir()];
        let base = bases
            .iter()
            .find(|b| crate::runtime_dir::check(b).is_ok_and(|r| r.checked == **b))
            .ok_or_else(|| SimError::NoRam {
                tried: bases
                    .iter()
                    .map(|b| b.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id)
            .map_err(|e| io(base, std::io::Error::other(e.to_string())))?;
        let dir = base.join(format!("fwguard-sim-{}", hex::encode(id)));
        std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
        Ok(RamDir(dir))
    }
}

impl Drop for RamDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct World {
    pub root: PathBuf,
    pub router: SimRouter,
    pub key: SecretKey,
    pub www: PathBuf,
    pub server: Option<Server>,
    pub wan: Wan,
    opts: WorldOptions,
    run: RamDir,
    index_version: u64,
    images: BTreeMap<String, (Version, PathBuf)>,
    /// Per version: its parts besides the image (name, target, file).
    parts: BTreeMap<String, Vec<(String, String, PathBuf)>>,
    /// Per version: the extents a slot holding it is checked by, when not the whole image.
    verify: BTreeMap<String, Vec<crate::index::extent::Extent>>,
    /// The versions whose image is an OpenWrt sysupgrade image (published as a container).
    sysupgrade: std::collections::BTreeSet<String>,
}

fn io(path: &Path, e: std::io::Error) -> SimError {
    SimError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl World {
    /// A world whose router runs firmware 1.0 from slot A (not yet powered on).
    pub async fn create(root: impl Into<PathBuf>, opts: WorldOptions) -> Result<World, SimError> {
        let root = root.into();
        let www = root.join("www");
        std::fs::create_dir_all(www.join("images")).map_err(|e| io(&www, e))?;
        let v1: Version = "1.0".parse().expect("static version");
        let img = firmware_image_for(
            &opts.board,
            &v1,
            BUILD_TIME,
            opts.payload_len,
            Behaviour::GOOD,
        );
        let router = SimRouter::create(root.join("router"), opts.slot_size, &img)?;
        let key = SecretKey::generate()
            .map_err(|e| SimError::NoBootableSlot(format!("no randomness: {e}")))?;
        let vendor = root.join("vendor");
        std::fs::create_dir_all(&vendor).map_err(|e| io(&vendor, e))?;
        let write = |name: &str, text: String| {
            let p = vendor.join(name);
            std::fs::write(&p, text).map_err(|e| io(&p, e))
        };
        write("vendor.sec", key.to_file("fwguard demo vendor secret key"))?;
        write(
            "vendor.pub",
            key.public().to_file("fwguard demo vendor public key"),
        )?;
        let server = Server::start(
            "127.0.0.1:0".parse().expect("addr"),
            www.clone(),
            opts.serve.clone(),
        )
        .await
        .map_err(|e| io(&www, e))?;
        let wan = Wan::start().await.map_err(|e| io(&root, e))?;
        let mut w = World {
            root,
            router,
            key,
            www,
            server: Some(server),
            wan,
            opts,
            run: RamDir::create()?,
            index_version: 0,
            images: BTreeMap::new(),
            parts: BTreeMap::new(),
            verify: BTreeMap::new(),
            sysupgrade: Default::default(),
        };
        w.images
            .insert("1.0".into(), (v1, w.www.join("images/fw-1.0.img")));
        std::fs::write(w.www.join("images/fw-1.0.img"), &img).map_err(|e| io(&w.www, e))?;
        Ok(w)
    }

    /// The agent's runtime directory (`agent.runtime_dir`): on a tmpfs, removed with the
    /// world. It does not exist until fwguard creates it.
    pub fn runtime_dir(&self) -> PathBuf {
        self.run.0.join("run")
    }

    pub fn index_url(&self) -> String {
        self.server
            .as_ref()
            .expect("server running")
            .url("index.toml")
    }

    /// Build and place a firmware image for `version`.
    pub fn add_image(&mut self, version: &str, b: Behaviour) -> Result<PathBuf, SimError> {
        let v: Version = version
            .parse()
            .map_err(|e| SimError::NoBootableSlot(format!("{e}")))?;
        let img = firmware_image_for(&self.opts.board, &v, BUILD_TIME, self.opts.payload_len, b);
        let p = self.www.join(format!("images/fw-{version}.img"));
        std::fs::write(&p, img).map_err(|e| io(&p, e))?;
        self.images.insert(version.to_string(), (v, p.clone()));
        Ok(p)
    }

    /// Place `bytes` as the image of release `version` (a vendor's own format, say), checked
    /// on the device by `verify` when that is not empty.
    pub fn add_image_bytes(
        &mut self,
        version: &str,
        bytes: &[u8],
        verify: Vec<crate::index::extent::Extent>,
    ) -> Result<PathBuf, SimError> {
        let v: Version = version
            .parse()
            .map_err(|e| SimError::NoBootableSlot(format!("{e}")))?;
        let p = self.www.join(format!("images/fw-{version}.img"));
        std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
        self.images.insert(version.to_string(), (v, p.clone()));
        self.verify.insert(version.to_string(), verify);
        Ok(p)
    }

    /// Place `bytes`, an OpenWrt sysupgrade image, as release `version`: published with its
    /// kernel as the boot range and its root for target `rootfs`, as the vendor tool does.
    pub fn add_sysupgrade(&mut self, version: &str, bytes: &[u8]) -> Result<PathBuf, SimError> {
        let p = self.add_image_bytes(version, bytes, Vec::new())?;
        self.sysupgrade.insert(version.to_string());
        Ok(p)
    }

    /// Give the release `version` a part `name` for `target` holding `bytes` (published with
    /// it, at `images/NAME-VERSION.img`).
    pub fn add_part(
        &mut self,
        version: &str,
        name: &str,
        target: &str,
        bytes: &[u8],
    ) -> Result<PathBuf, SimError> {
        let p = self.www.join(format!("images/{name}-{version}.img"));
        std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
        self.parts.entry(version.to_string()).or_default().push((
            name.to_string(),
            target.to_string(),
            p.clone(),
        ));
        Ok(p)
    }

    /// Publish a new signed index listing `versions` (for the world's board, channel
    /// `stable`).
    pub fn publish(&mut self, versions: &[&str]) -> Result<u64, SimError> {
        let all: Vec<(&str, &[&str])> = versions.iter().map(|v| (*v, &["stable"][..])).collect();
        self.publish_channels(&all)
    }

    /// Publish a new signed index listing each version in the given channels.
    pub fn publish_channels(&mut self, versions: &[(&str, &[&str])]) -> Result<u64, SimError> {
        let now = crate::time::unix_now().max(BUILD_TIME);
        self.index_version += 1;
        let mut draft = IndexDraft::new(self.index_version, now, now + INDEX_LIFETIME);
        for (v, channels) in versions {
            let (version, path) = self
                .images
                .get(*v)
                .cloned()
                .ok_or_else(|| SimError::NoBootableSlot(format!("no image {v}")))?;
            let rel = NewRelease::from_image(
                version,
                vec![self.opts.board.clone()],
                channels.iter().map(|c| c.to_string()).collect(),
                vec![format!("images/fw-{v}.img")],
                &path,
            )
            .map_err(|e| io(&path, e))?;
            let mut rel = rel;
            rel.verify = self.verify.get(*v).cloned().unwrap_or_default();
            if self.sysupgrade.contains(*v) {
                let s = crate::index::sysupgrade::read(&path).map_err(SimError::NoBootableSlot)?;
                let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
                crate::index::sysupgrade::fill(&mut rel, &s, &bytes, super::ROOTFS_TARGET);
            }
            for (name, target, file) in self.parts.get(*v).into_iter().flatten() {
                let url = format!(
                    "images/{}",
                    file.file_name().unwrap_or_default().to_string_lossy()
                );
                rel.parts.push(
                    crate::index::build::part_from_file(
                        name.clone(),
                        target.clone(),
                        vec![url],
                        file,
                    )
                    .map_err(|e| io(file, e))?,
                );
            }
            draft.add_release(rel).map_err(SimError::NoBootableSlot)?;
        }
        self.write_index(draft.to_toml().as_bytes(), &self.key)?;
        Ok(self.index_version)
    }

    /// Place index bytes and a signature by `key` (tests use this to publish bad indexes).
    pub fn write_index(&self, bytes: &[u8], key: &SecretKey) -> Result<(), SimError> {
        let p = self.www.join("index.toml");
        std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
        let s = self.www.join("index.toml.sig");
        std::fs::write(&s, sign_bytes(key, bytes, "vendor.pub")).map_err(|e| io(&s, e))
    }

    /// The agent configuration for this world.
    pub fn config_text(&self, extra_agent: &str, trial: &str) -> String {
        format!(
            r#"# fwguard configuration for a simulated router
[agent]
state_dir = "{state}"
runtime_dir = "{run}"
check_interval = "1s"
{extra_agent}

[index]
url = "{url}"
channel = "stable"
trusted_key_files = ["{key}"]

[board]
profile = "sim"
dir = "{router}"

[trial]
{trial}

[[health.check]]
name = "internet"
kind = "tcp"
address = "{wan}"
timeout = "500ms"

[[health.check]]
name = "vendor-site"
kind = "http"
url = "{url}"
expect_status = 200
timeout = "2s"
"#,
            state = self.root.join("state").display(),
            run = self.runtime_dir().display(),
            url = self.index_url(),
            key = self.root.join("vendor/vendor.pub").display(),
            router = self.router.dir().display(),
            wan = self.wan.addr(),
        )
    }

    /// Write the configuration file and return its path.
    pub fn write_config(&self, extra_agent: &str, trial: &str) -> Result<PathBuf, SimError> {
        let etc = self.root.join("etc");
        std::fs::create_dir_all(&etc).map_err(|e| io(&etc, e))?;
        let p = etc.join("config.toml");
        std::fs::write(&p, self.config_text(extra_agent, trial)).map_err(|e| io(&p, e))?;
        Ok(p)
    }

    /// Power-cycle the router and make the WAN behave as the booted firmware does.
    pub async fn power_cycle(&mut self) -> Result<BootReport, SimError> {
        // RAM does not survive a reboot: the runtime directory is gone, as on a router.
        let run = self.runtime_dir();
        match std::fs::remove_dir_all(&run) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&run, e)),
            _ => {}
        }
        let r = self.router.reboot()?;
        self.wan
            .set_up(r.wan_up)
            .await
            .map_err(|e| io(&self.root, e))?;
        Ok(r)
    }
}
