//! The `[board]` section: which bootloader backend, where its state and the slots live.

use super::keys::KeyError;
use super::raw::{RawBoard, RawSimBoard};
use super::targets::TargetPaths;
use super::{ConfigError, Validator};
use crate::boot::fw_env::{EnvDevice, FwEnvConfig};
use std::path::{Path, PathBuf};

/// The profiles, for an error message.
const PROFILES: &str = "expected sim, uboot, linksys, grub or script";

#[derive(Debug, Clone)]
pub enum BoardSettings {
    /// The simulated router (`fwguard sim`, the demo): only in builds with `demo`.
    #[cfg(feature = "demo")]
    Sim {
        dir: PathBuf,
    },
    UBoot {
        id: String,
        /// Where the environment lives: one copy or a redundant pair.
        env: FwEnvConfig,
        /// Where sysfs is mounted.
        sysfs: PathBuf,
        /// Where procfs is mounted (`self/mountinfo`: where the state directory lives).
        proc: PathBuf,
        slot_a: PathBuf,
        slot_b: PathBuf,
        /// Where the parts of a release besides its boot image go.
        targets: Vec<TargetPaths>,
        cmdline: PathBuf,
        reboot_command: Vec<String>,
        /// Whether a partition both slots mount holds the state (default). If not, the
        /// state directory is the running slot's own and the trial's facts travel in the env
        /// (`fwguard_carry`), as on the Linksys profile.
        shared_state: bool,
    },
    Linksys(LinksysSettings),
    Grub(OtherBoot),
    Script(OtherBoot),
}

/// A board whose bootloader is a GRUB environment block or a vendor command.
#[derive(Debug, Clone)]
pub struct OtherBoot {
    pub id: String,
    /// The grubenv file, or the vendor command.
    pub bootloader: Vec<String>,
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
    /// Where the parts of a release besides its boot image go.
    pub targets: Vec<TargetPaths>,
    /// procfs (`cmdline`, `sys/kernel/random/boot_id`) and sysfs.
    pub proc: PathBuf,
    pub sysfs: PathBuf,
    pub reboot_command: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LinksysSettings {
    pub id: String,
    /// The `u_env` partition, from the board's fw_env.config.
    pub env: FwEnvConfig,
    /// procfs (`mtd`, `sys/kernel/random/boot_id`), device nodes and sysfs.
    pub proc: PathBuf,
    pub dev: PathBuf,
    pub sysfs: PathBuf,
    pub reboot_command: Vec<String>,
}

impl BoardSettings {
    /// The profile's name, as in `[board] profile`.
    pub fn profile(&self) -> &'static str {
        match self {
            #[cfg(feature = "demo")]
            BoardSettings::Sim { .. } => "sim",
            BoardSettings::UBoot { .. } => "uboot",
            BoardSettings::Linksys(_) => "linksys",
            BoardSettings::Grub(_) => "grub",
            BoardSettings::Script(_) => "script",
        }
    }

    /// The board id images must be built for.
    pub fn id(&self) -> &str {
        match self {
            #[cfg(feature = "demo")]
            BoardSettings::Sim { .. } => crate::sim::BOARD_ID,
            BoardSettings::UBoot { id, .. } => id,
            BoardSettings::Linksys(l) => &l.id,
            BoardSettings::Grub(o) | BoardSettings::Script(o) => &o.id,
        }
    }

    /// Where sysfs is (for what a slot path is: an MTD partition, a disk's partition).
    pub fn sysfs(&self) -> &Path {
        match self {
            #[cfg(feature = "demo")]
            BoardSettings::Sim { .. } => Path::new("/sys"),
            BoardSettings::UBoot { sysfs, .. } => sysfs,
            BoardSettings::Linksys(l) => &l.sysfs,
            BoardSettings::Grub(o) | BoardSettings::Script(o) => &o.sysfs,
        }
    }

    /// How to make the running slot known when it cannot be told.
    pub fn running_slot_fix(&self) -> &'static str {
        match self {
            BoardSettings::Linksys(_) => "boot a firmware whose root file system is UBI on rootfs1 or rootfs2 (ubi0), as stock and OpenWrt firmware are",
            BoardSettings::Script(_) => "make the vendor command's get-active answer {\"active\": \"A\" or \"B\", ...} (docs/script-backend.md)",
            BoardSettings::Grub(_) => "make grub.cfg pass ab.slot=${boot_slot} on the kernel command line (packaging/grub/ab-boot.cfg does)",
            _ => "make the bootloader pass ab.slot=A or ab.slot=B on the kernel command line (packaging/uboot/ab-boot.env does)",
        }
    }
}

impl Validator<'_> {
    /// The environment's location: the board's fw_env.config, or one copy given inline.
    fn env(
        &self,
        config: Option<PathBuf>,
        device: Option<PathBuf>,
        offset: u64,
        size: Option<usize>,
    ) -> Result<FwEnvConfig, ConfigError> {
        match (config, device, size) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(self.err(
                "board.env_config",
                "give either env_config or env_device and env_size, not both",
            )),
            (Some(path), None, None) => FwEnvConfig::load(&self.path_rel(path))
                .map_err(|e| self.err("board.env_config", e.to_string())),
            (None, Some(device), Some(size)) => {
                if size < 16 {
                    return Err(self.err("board.env_size", format!("{size} bytes is too small")));
                }
                Ok(FwEnvConfig {
                    source: self.path.to_path_buf(),
                    copies: vec![EnvDevice {
                        device: self.path_rel(device),
                        offset,
                        size,
                        sector_size: None,
                        sectors: None,
                        line: 0,
                    }],
                })
            }
            (None, Some(_), None) => Err(self.err("board.env_size", "missing")),
            (None, None, _) => Err(self.err(
                "board.env_config",
                "missing: the board's fw_env.config, or env_device and env_size",
            )),
        }
    }

    /// `[board]`: the profile's keys (serde refuses the others, and this names the key it
    /// refused), then what they say.
    pub(super) fn board(&self, table: toml::Table) -> Result<BoardSettings, ConfigError> {
        let profile = match table.get("profile") {
            Some(toml::Value::String(p)) => p.clone(),
            Some(v) => {
                return Err(self.err(
                    "board.profile",
                    format!("expected a string, found {}", v.type_str()),
                ))
            }
            None => return Err(self.err("board.profile", format!("missing ({PROFILES})"))),
        };
        // `targets` is read on its own, so that its errors name its own keys.
        let mut table = table;
        let targets = table.remove("targets");
        if targets.is_some() && !matches!(profile.as_str(), "uboot" | "grub" | "script") {
            return Err(self.err(
                "board.targets",
                format!("not a key of profile {profile:?} (targets are for the uboot, grub and script profiles)"),
            ));
        }
        let raw = match RawBoard::read(&profile, table) {
            None => {
                return Err(self.err(
                    "board.profile",
                    format!("unknown profile {profile:?} ({PROFILES})"),
                ))
            }
            Some(raw) => raw.map_err(|e| self.board_error(&profile, e))?,
        };
        let reboot = |argv| self.reboot_command(argv);
        let dir = |p: Option<PathBuf>, default: &str| {
            p.map_or_else(|| default.into(), |p| self.path_rel(p))
        };
        Ok(match raw {
            RawBoard::Sim(s) => self.sim(s)?,
            RawBoard::Uboot(u) => {
                let (slot_a, slot_b) = self.slots(u.slot_a, u.slot_b, u.sysfs.as_deref())?;
                let targets =
                    self.targets(targets.clone(), (&slot_a, &slot_b), u.sysfs.as_deref())?;
                BoardSettings::UBoot {
                    targets,
                    id: self.id(u.id)?,
                    env: self.env(
                        u.env_config,
                        u.env_device,
                        u.env_offset.unwrap_or(0),
                        u.env_size,
                    )?,
                    sysfs: dir(u.sysfs, "/sys"),
                    proc: dir(u.proc, "/proc"),
                    slot_a,
                    slot_b,
                    cmdline: dir(u.cmdline, "/proc/cmdline"),
                    reboot_command: reboot(u.reboot_command)?,
                    shared_state: u.shared_state.unwrap_or(true),
                }
            }
            RawBoard::Linksys(l) => BoardSettings::Linksys(LinksysSettings {
                id: self.id(l.id)?,
                env: self.env(
                    Some(l.env_config.unwrap_or_else(|| "/etc/fw_env.config".into())),
                    None,
                    0,
                    None,
                )?,
                proc: dir(l.proc, "/proc"),
                dev: dir(l.dev, "/dev"),
                sysfs: dir(l.sysfs, "/sys"),
                reboot_command: reboot(l.reboot_command)?,
            }),
            RawBoard::Grub(g) => {
                let id = self.id(g.id)?;
                let (slot_a, slot_b) = self.slots(g.slot_a, g.slot_b, g.sysfs.as_deref())?;
                let targets =
                    self.targets(targets.clone(), (&slot_a, &slot_b), g.sysfs.as_deref())?;
                BoardSettings::Grub(OtherBoot {
                    id,
                    bootloader: vec![self.path_rel(g.grubenv).display().to_string()],
                    slot_a,
                    slot_b,
                    targets,
                    proc: dir(g.proc, "/proc"),
                    sysfs: dir(g.sysfs, "/sys"),
                    reboot_command: reboot(g.reboot_command)?,
                })
            }
            RawBoard::Script(s) => {
                let id = self.id(s.id)?;
                if s.command.is_empty() {
                    return Err(self.err("board.command", "must name a program"));
                }
                let (slot_a, slot_b) = self.slots(s.slot_a, s.slot_b, s.sysfs.as_deref())?;
                let targets =
                    self.targets(targets.clone(), (&slot_a, &slot_b), s.sysfs.as_deref())?;
                BoardSettings::Script(OtherBoot {
                    id,
                    bootloader: s.command,
                    slot_a,
                    slot_b,
                    targets,
                    proc: dir(s.proc, "/proc"),
                    sysfs: dir(s.sysfs, "/sys"),
                    reboot_command: reboot(s.reboot_command)?,
                })
            }
        })
    }

    #[cfg(feature = "demo")]
    fn sim(&self, s: RawSimBoard) -> Result<BoardSettings, ConfigError> {
        Ok(BoardSettings::Sim {
            dir: self.path_rel(s.dir),
        })
    }

    /// A router build has no simulated router to drive.
    #[cfg(not(feature = "demo"))]
    fn sim(&self, _: RawSimBoard) -> Result<BoardSettings, ConfigError> {
        Err(self.err(
            "board.profile",
            "the simulated router is not part of this build (built without the demo feature)",
        ))
    }

    /// serde's refusal of the `[board]` table, with the key it names as `board.KEY`.
    fn board_error(&self, profile: &str, e: KeyError) -> ConfigError {
        match e {
            KeyError::Unknown(key, expected) => self.err(
                &format!("board.{key}"),
                format!("not a key of profile {profile:?} ({expected})"),
            ),
            KeyError::Missing(key) => self.err(
                &format!("board.{key}"),
                format!("missing (profile {profile:?})"),
            ),
            KeyError::Type(key, what, found) => self.err(
                &format!("board.{key}"),
                format!("invalid type: {found}, expected {what}"),
            ),
        }
    }

    /// A key of section `section` (read by hand) that is wrong, named as `section.key`.
    pub(super) fn key_error(&self, section: &str, e: KeyError) -> ConfigError {
        let (key, problem) = e.describe(section);
        self.err(&key, problem)
    }

    fn id(&self, id: String) -> Result<String, ConfigError> {
        if id.is_empty() {
            return Err(self.err("board.id", "must not be empty"));
        }
        Ok(id)
    }

    /// The two slots, which must be different storage.
    fn slots(
        &self,
        a: PathBuf,
        b: PathBuf,
        sysfs: Option<&Path>,
    ) -> Result<(PathBuf, PathBuf), ConfigError> {
        let (a, b) = (self.path_rel(a), self.path_rel(b));
        let sysfs = sysfs.map_or_else(|| PathBuf::from("/sys"), |p| self.path_rel(p.into()));
        if let Some(why) = crate::board::identity::overlap(&a, &b, &sysfs) {
            return Err(self.err(
                "board.slot_b",
                format!("must differ from board.slot_a: {why}, so an update would overwrite the running firmware"),
            ));
        }
        Ok((a, b))
    }

    fn reboot_command(&self, argv: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
        let argv = argv.unwrap_or_else(|| vec!["/sbin/reboot".into()]);
        if argv.is_empty() {
            return Err(self.err("board.reboot_command", "must name a program"));
        }
        Ok(argv)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{BoardSettings, Settings};
    use std::path::Path;

    /// The shipped example config with its [board] section replaced.
    fn parse(board: &str) -> Result<BoardSettings, String> {
        let example = include_str!("../../packaging/config.toml");
        let start = example.find("[board]").unwrap();
        let end = start + example[start..].find("\n[trial]").unwrap();
        let text = format!("{}[board]\n{board}\n{}", &example[..start], &example[end..]);
        Settings::parse(Path::new("/etc/fwguard/config.toml"), &text)
            .map(|s| s.board)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn profiles_and_their_keys() {
        let grub = parse("profile = \"grub\"\nid = \"x\"\ngrubenv = \"grubenv\"\nslot_a = \"/dev/sda2\"\nslot_b = \"/dev/sda3\"").unwrap();
        let BoardSettings::Grub(g) = grub else {
            panic!("{grub:?}")
        };
        assert_eq!(g.bootloader, ["/etc/fwguard/grubenv"]);
        assert_eq!(g.proc, Path::new("/proc"));
        let uboot = "profile = \"uboot\"\nid = \"u\"\nenv_device = \"e\"\nenv_size = 4096\nslot_a = \"a\"\nslot_b = \"b\"";
        let proc = |board: &str| match parse(board).unwrap() {
            BoardSettings::UBoot { proc, .. } => proc,
            other => panic!("{other:?}"),
        };
        assert_eq!(proc(uboot), Path::new("/proc"));
        assert_eq!(
            proc(&format!("{uboot}\nproc = \"p\"")),
            Path::new("/etc/fwguard/p")
        );
        let shared = |board: &str| match parse(board) {
            Ok(BoardSettings::UBoot { shared_state, .. }) => Ok(shared_state),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(shared(uboot), Ok(true));
        assert_eq!(shared(&format!("{uboot}\nshared_state = false")), Ok(false));
        let e = shared(&format!("{uboot}\nshared_state = \"no\"")).unwrap_err();
        assert!(
            e.contains("board.shared_state") && e.contains("true or false"),
            "{e}"
        );
        let e = parse("profile = \"grub\"\nid = \"x\"\ngrubenv = \"g\"\nslot_a = \"a\"\nslot_b = \"b\"\nshared_state = false").unwrap_err();
        assert!(e.contains("board.shared_state"), "{e}");
        let linksys = parse("profile = \"linksys\"\nid = \"wrt\"\nenv_config = \"/nonexistent\"");
        assert!(linksys.unwrap_err().contains("board.env_config"));
        for (board, key, problem) in [
            ("profile = \"x\"", "board.profile", "unknown profile \"x\""),
            ("profile = \"sim\"\ndir = \"d\"\nslot_a = \"a\"", "board.slot_a", "not a key of profile \"sim\""),
            ("profile = \"linksys\"\nid = \"w\"\ngrubenv = \"g\"", "board.grubenv", "not a key of profile \"linksys\""),
            ("profile = \"linksys\"\nid = \"w\"\n[board.targets.rootfs]\nslot_a = \"a\"\nslot_b = \"b\"", "board.targets", "not a key of profile \"linksys\""),
            ("profile = \"grub\"\nid = \"x\"\ngrubenv = \"g\"\nslot_b = \"b\"", "board.slot_a", "missing (profile \"grub\")"),
            ("profile = \"script\"\nid = \"x\"\nslot_a = \"a\"\nslot_b = \"b\"", "board.command", "missing"),
            ("profile = \"script\"\nid = \"x\"\ncommand = []\nslot_a = \"a\"\nslot_b = \"b\"", "board.command", "must name a program"),
            ("profile = \"uboot\"\nid = \"\"\nenv_device = \"e\"\nenv_size = 4096\nslot_a = \"a\"\nslot_b = \"b\"", "board.id", "must not be empty"),
            ("profile = \"uboot\"\nid = \"u\"\nenv_device = \"e\"\nenv_size = 4096\nslot_a = \"a\"\nslot_b = \"a\"", "board.slot_b", "must differ"),
            ("profile = \"grub\"\ngrubenv = \"g\"\nslot_a = \"a\"\nslot_b = \"b\"", "board.id", "missing"),
            ("profile = \"uboot\"\nid = \"u\"\nbogus = 1", "board.bogus", "not a key of profile \"uboot\" (expected one of `id`"),
            ("id = \"u\"", "board.profile", "missing"),
            ("profile = \"uboot\"\nid = \"u\"\nenv_device = \"e\"\nenv_size = \"4k\"\nslot_a = \"a\"\nslot_b = \"b\"", "board.env_size", "invalid type: string \"4k\""),
            ("profile = \"script\"\nid = \"x\"\ncommand = \"ls\"\nslot_a = \"a\"\nslot_b = \"b\"", "board.command", "expected a sequence"),
        ] {
            let e = parse(board).unwrap_err();
            assert!(e.contains(key) && e.contains(problem), "{board:?}: {e}");
        }
    }

    /// The simulated router is a profile only where it is built in.
    #[test]
    fn the_sim_profile_only_with_the_demo_feature() {
        let sim = parse("profile = \"sim\"\ndir = \"d\"");
        #[cfg(feature = "demo")]
        {
            let sim = sim.unwrap();
            assert!(
                matches!(&sim, BoardSettings::Sim { dir } if dir == Path::new("/etc/fwguard/d"))
            );
            assert_eq!((sim.profile(), sim.id()), ("sim", crate::sim::BOARD_ID));
        }
        #[cfg(not(feature = "demo"))]
        {
            let e = sim.unwrap_err();
            assert!(
                e.contains("board.profile")
                    && e.contains("not part of this build (built without the demo feature)"),
                "{e}"
            );
        }
    }
}
