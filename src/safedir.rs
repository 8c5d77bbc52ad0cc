//! A directory that fwguard works in without ever following a symbolic link: the archive on
//! removable storage (which anyone can prepare), the offline install path, the state and
//! runtime directories. The root is refused when it is a symlink; everything below it is
//! reached from the root's open descriptor one name at a time (`openat` with `O_NOFOLLOW`),
//! files are created exclusively, renames and removals are relative to the descriptor, and a
//! removal deletes a planted link itself, never what it points at.

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// What a name in a directory is (not following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

pub struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A refusal to go through a symbolic link, naming it.
fn link_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link (or not what it should be); fwguard opens nothing through a link here",
            path.display()
        ),
    )
}

fn kind(st: &FileStat) -> Kind {
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFDIR => Kind::Dir,
        SFlag::S_IFREG => Kind::File,
        SFlag::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

/// A single path component: no separator, not `.` or `..`.
fn name_ok(name: &str) -> io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    Ok(name)
}

impl SafeDir {
    /// Open `path` as a root: refused when it is a symbolic link or not a directory.
    pub fn open_root(path: &Path) -> io::Result<SafeDir> {
        let m = std::fs::symlink_metadata(path)?;
        if m.file_type().is_symlink() || !m.is_dir() {
            return Err(link_refused(path));
        }
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => link_refused(path),
            e => errno(e),
        })?;
        Ok(SafeDir {
            // SAFETY: a descriptor open() just returned, owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn raw(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn openat(&self, name: &str, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
        let name = name_ok(name)?;
        let fd = openat(
            self.raw(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            mode,
        )
        .map_err(|e| match e {
            nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => {
                link_refused(&self.path.join(name))
            }
            e => io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {e}", self.path.join(name).display()),
            ),
        })?;
        // SAFETY: a descriptor openat() just returned, owned by nothing else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// What `name` is, without following it; `None` when it does not exist.
    pub fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        match fstatat(
            self.raw(),
            name_ok(name)?,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(kind(&st))),
            Err(nix::errno::Errno::ENOENT) => Ok(None),
            Err(e) => Err(errno(e)),
        }
    }

    /// The size of the regular file `name` (a link or anything else is refused).
    pub fn file_len(&self, name: &str) -> io::Result<u64> {
        let st = fstatat(
            self.raw(),
            name_ok(name)?,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
        if kind(&st) != Kind::File {
            return Err(link_refused(&self.path.join(name)));
        }
        Ok(st.st_size as u64)
    }

    /// The subdirectory `name` (refused when it is a link).
    pub fn dir(&self, name: &str) -> io::Result<SafeDir> {
        let fd = self.openat(name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?;
        Ok(SafeDir {
            fd,
            path: self.path.join(name),
        })
    }

    /// The subdirectory `name`, created if missing.
    pub fn create_dir(&self, name: &str) -> io::Result<SafeDir> {
        match mkdirat(self.raw(), name_ok(name)?, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(errno(e)),
        }
        self.dir(name)
    }

    /// The regular file `name`, for reading (a link, a FIFO or a device is refused).
    pub fn open(&self, name: &str) -> io::Result<File> {
        // O_NONBLOCK so that a FIFO planted here cannot hang the open; refused below.
        let fd = self.openat(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty())?;
        let f = File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(link_refused(&self.path.join(name)));
        }
        let flags =
            nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).map_err(errno)?;
        let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(errno)?;
        Ok(f)
    }

    /// The regular file `name` for reading and writing, created if missing (a link there is
    /// refused): for lock files.
    pub fn open_or_create(&self, name: &str) -> io::Result<File> {
        let fd = self.openat(
            name,
            OFlag::O_RDWR | OFlag::O_CREAT,
            Mode::from_bits_truncate(0o644),
        )?;
        let f = File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(link_refused(&self.path.join(name)));
        }
        Ok(f)
    }

    /// Create `name` exclusively (a leftover of that name, link or file, is removed first).
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        self.remove_file(name)?;
        let fd = self.openat(
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o644),
        )?;
        Ok(File::from(fd))
    }

    /// Create `name` exclusively with `bytes`, synced (its directory entry is the caller's
    /// to sync).
    pub fn write_synced(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut f = self.create_new(name)?;
        f.write_all(bytes)?;
        f.sync_all()
    }

    /// Replace `name` with `bytes` atomically and durably: an exclusive temporary, synced,
    /// renamed over it (a link there is replaced, never followed), the directory synced.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = format!("{}.new", name_ok(name)?);
        self.write_synced(&tmp, bytes)?;
        self.rename(&tmp, name)?;
        self.sync()
    }

    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        renameat(self.raw(), name_ok(from)?, self.raw(), name_ok(to)?).map_err(errno)
    }

    /// Remove the file or link `name` if it is there (a directory is refused).
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        match unlinkat(self.raw(), name_ok(name)?, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    /// Remove `name` and, when it is a directory, everything in it; a link is removed
    /// itself, never what it points at. Nothing there is fine.
    pub fn remove_all(&self, name: &str) -> io::Result<()> {
        match self.kind(name)? {
            None => Ok(()),
            Some(Kind::Dir) => {
                let sub = self.dir(name)?;
                for (entry, _) in sub.entries()? {
                    sub.remove_all(&entry)?;
                }
                drop(sub);
                unlinkat(self.raw(), name, UnlinkatFlags::RemoveDir).map_err(errno)
            }
            Some(_) => self.remove_file(name),
        }
    }

    /// The names in this directory (not `.` and `..`) and what each is, not following links;
    /// names that are not UTF-8 are left out.
    pub fn entries(&self) -> io::Result<Vec<(String, Kind)>> {
        let mut dir = nix::dir::Dir::openat(
            self.raw(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let mut names = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(errno)?;
            let Ok(name) = e.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            names.push(name.to_string());
        }
        let mut out = Vec::new();
        for name in names {
            if let Some(k) = self.kind(&name)? {
                out.push((name, k));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Make this directory's entries durable.
    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(self.fd.as_raw_fd()).map_err(errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_never_followed_and_removals_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("archive");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(outside.join("1.1")).unwrap();
        std::fs::write(outside.join("victim"), b"keep").unwrap();
        std::fs::write(outside.join("1.1/data"), b"keep").unwrap();
        let a = SafeDir::open_root(&root).unwrap();
        // A link where a file is written: the link is replaced, the target kept.
        std::os::unix::fs::symlink(outside.join("victim"), root.join("f")).unwrap();
        a.write_atomic("f", b"new").unwrap();
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
        assert_eq!(std::fs::read(root.join("f")).unwrap(), b"new");
        // A link at the temporary's name: removed, not followed.
        std::os::unix::fs::symlink(outside.join("victim"), root.join("g.new")).unwrap();
        a.write_atomic("g", b"x").unwrap();
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
        // A linked directory: not entered, and removing it removes the link only.
        std::os::unix::fs::symlink(&outside, root.join(".incoming")).unwrap();
        let e = a.dir(".incoming").err().unwrap().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(a.create_dir(".incoming").is_err());
        assert!(a.open(".incoming").is_err());
        a.remove_all(".incoming").unwrap();
        assert!(outside.join("1.1/data").exists() && outside.join("victim").exists());
        // A link to a file is not opened for reading; a FIFO neither (and does not hang).
        std::os::unix::fs::symlink(outside.join("victim"), root.join("r")).unwrap();
        assert!(a.open("r").is_err());
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        assert!(a.open("fifo").is_err());
        assert!(a.file_len("r").is_err());
        // A root that is a link is refused.
        std::os::unix::fs::symlink(&outside, d.path().join("usb")).unwrap();
        let e = SafeDir::open_root(&d.path().join("usb"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // Names with separators are refused.
        assert!(a.open("../outside/victim").is_err());
        // A real tree is removed whole.
        let sub = a.create_dir("t").unwrap();
        sub.create_dir("u")
            .unwrap()
            .write_synced("x", b"1")
            .unwrap();
        a.remove_all("t").unwrap();
        assert_eq!(a.kind("t").unwrap(), None);
    }
}
