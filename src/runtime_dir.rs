//! The runtime directory (`agent.runtime_dir`): what fwguard rewrites often and needs only
//! until the next boot (the latest health round, rewritten every round; the latest round; the
//! daemon's pid). It must be in RAM: on OpenWrt `/run` may not exist, and creating
//! `/run/fwguard` would put it on the overlay, on flash, which every health round would wear.
//!
//! So before anything is created or written there, the kernel is asked (statfs) which file
//! system the directory is on, or its nearest existing ancestor when it does not exist yet
//! (it is created on first use), and anything but tmpfs and ramfs is refused.

use nix::sys::statfs::{statfs, FsType, TMPFS_MAGIC};
use std::path::{Path, PathBuf};

/// ramfs (not among nix's constants).
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// What to change when the runtime directory is refused.
pub const FIX: &str = "set agent.runtime_dir to a directory on tmpfs: /run/fwguard where /run is a tmpfs (systemd), /var/run/fwguard on OpenWrt (/var is /tmp there, a tmpfs)";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeDirError {
    #[error("{}; fix: {FIX}", self.problem())]
    NotInRam {
        dir: PathBuf,
        /// The nearest existing ancestor, when `dir` does not exist yet.
        checked: PathBuf,
        fs: String,
    },
    #[error("{}; fix: {FIX}", self.problem())]
    Statfs {
        dir: PathBuf,
        checked: PathBuf,
        source: std::io::Error,
    },
    #[error("agent.runtime_dir {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeDirError {
    /// The directory is refused (not in RAM, or its file system unknown), as opposed to
    /// failing to be created or written.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, RuntimeDirError::Io { .. })
    }

    /// What is wrong, without the fix (for `doctor`, which prints the fix on its own line).
    pub fn problem(&self) -> String {
        match self {
            RuntimeDirError::NotInRam { dir, checked, fs } => format!(
                "agent.runtime_dir {}{} is on {fs}, not in RAM (tmpfs or ramfs): fwguard rewrites files there every health round, which would wear the flash, so it writes nothing there",
                dir.display(),
                not_yet(dir, checked),
            ),
            RuntimeDirError::Statfs {
                dir,
                checked,
                source,
            } => format!(
                "agent.runtime_dir {}{}: cannot tell which file system it is on ({source}), so fwguard writes nothing there",
                dir.display(),
                not_yet(dir, checked),
            ),
            RuntimeDirError::Io { .. } => self.to_string(),
        }
    }
}

fn not_yet(dir: &Path, checked: &Path) -> String {
    if dir == checked {
        String::new()
    } else {
        format!(
            " does not exist yet (fwguard creates it): {}",
            checked.display()
        )
    }
}

/// A runtime directory found in RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRam {
    pub dir: PathBuf,
    /// `dir`, or its nearest existing ancestor.
    pub checked: PathBuf,
    /// "tmpfs" or "ramfs".
    pub fs: &'static str,
}

impl std::fmt::Display for InRam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = not_yet(&self.dir, &self.checked);
        if what.is_empty() {
            write!(f, "{} is on {}", self.dir.display(), self.fs)
        } else {
            write!(f, "{}{what} is on {}", self.dir.display(), self.fs)
        }
    }
}

/// `dir`, or the nearest of its ancestors that exists (following symlinks, as creating it
/// would).
pub(crate) fn nearest_existing(dir: &Path) -> PathBuf {
    dir.ancestors()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// The 32-bit magic number of a file system type (its width differs between C libraries).
fn magic(t: FsType) -> u64 {
    #[allow(clippy::unnecessary_cast)]
    let m = t.0 as u64;
    m & 0xffff_ffff
}

/// A name for the file systems a router or a build machine has, else the magic number.
fn fs_name(t: FsType) -> String {
    let name = match magic(t) {
        0xef53 => "ext2/ext3/ext4",
        0x794c_7630 => "overlayfs",
        0x7371_7368 => "squashfs",
        0x72b6 => "jffs2",
        0x2405_1905 => "ubifs",
        0xf2f5_2010 => "f2fs",
        0x9123_683e => "btrfs",
        0x5846_5342 => "xfs",
        0x4d44 => "vfat",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        m => return format!("a file system of type {m:#x}"),
    };
    name.to_string()
}

/// Whether `dir` is (or, created, would be) on tmpfs or ramfs.
pub fn check(dir: &Path) -> Result<InRam, RuntimeDirError> {
    let checked = nearest_existing(dir);
    let t = statfs(&checked)
        .map_err(|source| RuntimeDirError::Statfs {
            dir: dir.to_path_buf(),
            checked: checked.clone(),
            source: source.into(),
        })?
        .filesystem_type();
    let fs = match magic(t) {
        m if m == magic(TMPFS_MAGIC) => "tmpfs",
        RAMFS_MAGIC => "ramfs",
        _ => {
            return Err(RuntimeDirError::NotInRam {
                dir: dir.to_path_buf(),
                checked,
                fs: fs_name(t),
            })
        }
    };
    Ok(InRam {
        dir: dir.to_path_buf(),
        checked,
        fs,
    })
}

/// Check `dir` and create it: the only way fwguard makes its runtime directory.
pub fn create(dir: &Path) -> Result<(), RuntimeDirError> {
    check(dir)?;
    std::fs::create_dir_all(dir).map_err(|source| RuntimeDirError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// The runtime directory, created if missing, opened without following links (a symlinked
/// runtime directory, or a link planted in it, is refused: on OpenWrt it is under the
/// world-writable /tmp).
pub fn open(dir: &Path) -> Result<crate::safedir::SafeDir, RuntimeDirError> {
    create(dir)?;
    crate::safedir::SafeDir::open_root(dir).map_err(|source| RuntimeDirError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Replace `dir/name` with `bytes` (a temporary file created exclusively, then a rename), in
/// RAM only.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RuntimeDirError> {
    use std::io::Write;
    let root = open(dir)?;
    let tmp = format!("{name}.tmp");
    let io = |path: PathBuf| move |source| RuntimeDirError::Io { path, source };
    root.create_new(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(io(dir.join(&tmp)))?;
    root.rename(&tmp, name).map_err(io(dir.join(name)))
}

/// Most bytes read back from a record of the runtime directory.
const MAX_RECORD: u64 = 1 << 20;

/// The record `dir/name`, if it is there: read without following a link (a link, a FIFO or
/// a device planted there reads as no record), at most 1 MiB, creating nothing.
pub fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let f = crate::safedir::SafeDir::open_root(dir)
        .ok()?
        .open(name)
        .ok()?;
    let mut bytes = Vec::new();
    f.take(MAX_RECORD).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_runtime_dir_is_judged_by_its_nearest_existing_ancestor() {
        assert_eq!(
            nearest_existing(Path::new("/proc/no/such/dir")),
            Path::new("/proc")
        );
        assert_eq!(nearest_existing(Path::new("no/such/dir")), Path::new("."));
        assert_eq!(nearest_existing(Path::new("/")), Path::new("/"));
    }

    #[test]
    fn a_file_system_that_is_not_in_ram_is_refused_by_name() {
        // procfs is neither tmpfs nor ramfs, on every Linux machine.
        let e = check(Path::new("/proc/fwguard")).unwrap_err();
        assert!(
            matches!(&e, RuntimeDirError::NotInRam { checked, .. } if checked == Path::new("/proc")),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.starts_with("agent.runtime_dir /proc/fwguard does not exist yet (fwguard creates it): /proc is on a file system of type 0x9fa0, not in RAM"), "{msg}");
        assert!(msg.ends_with(&format!("; fix: {FIX}")), "{msg}");
        assert_eq!(fs_name(FsType(0x794c_7630 as _)), "overlayfs");
    }

    #[test]
    fn links_in_the_runtime_dir_are_never_followed() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let victim = shm.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let dir = shm.path().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("health.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("round.json")).unwrap();
        write(&dir, "health.json", b"{}").unwrap();
        write(&dir, "round.json", b"{}").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(dir.join("round.json")).unwrap(), b"{}");
        assert_eq!(read(&dir, "round.json").unwrap(), b"{}");
        // Read back, a planted link or FIFO is no record.
        std::fs::remove_file(dir.join("health.json")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("health.json")).unwrap();
        assert_eq!(read(&dir, "health.json"), None);
        nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(read(&dir, "fifo"), None);
        std::os::unix::fs::symlink(&victim, dir.join("daemon.pid")).unwrap();
        assert!(open(&dir).unwrap().open_or_create("daemon.pid").is_err());
        let linked = shm.path().join("linked");
        std::os::unix::fs::symlink(&dir, &linked).unwrap();
        assert!(write(&linked, "health.json", b"{}").is_err());
    }
}
