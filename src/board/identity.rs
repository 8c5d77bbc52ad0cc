//! Whether two configured slot paths are the same storage, however they are named: the same
//! file through a symlink, `/dev/mtdN` and `/dev/mtdblockN` (one MTD partition), a partition
//! and the whole disk it is on, the same device node under two names. Checked when the
//! configuration is read and again before every write: writing "the other slot" must never
//! write the running one.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What a path is, as far as overlapping storage goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Storage {
    /// An MTD partition (`mtdN`, whether reached as the character or the block device).
    Mtd(String),
    /// A UBI volume (`ubiX_Y`).
    Ubi(String),
    /// A block device (major, minor), with the whole disk it is a partition of, if any.
    Block { dev: u64, disk: Option<u64> },
    /// Any other file, by its device and inode.
    File { dev: u64, ino: u64 },
    /// Not there (yet): only its canonical path is known.
    Missing(PathBuf),
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The whole disk a block device is a partition of, from sysfs `dev/block/MAJ:MIN`.
pub(crate) fn disk_of(rdev: u64, sysfs: &Path) -> Option<u64> {
    let (maj, min) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let node = std::fs::canonicalize(sysfs.join(format!("dev/block/{maj}:{min}"))).ok()?;
    if !node.join("partition").exists() {
        return None;
    }
    let text = std::fs::read_to_string(node.parent()?.join("dev")).ok()?;
    let (a, b) = text.trim().split_once(':')?;
    Some(nix::sys::stat::makedev(a.parse().ok()?, b.parse().ok()?))
}

fn storage(p: &Path, sysfs: &Path) -> Storage {
    let real = canonical(p);
    // By name first: device nodes described by files (tests, boards given as images) and
    // the kernel's nodes alike.
    for name in [&real, p] {
        if let Some(mtd) = crate::flash::mtd::mtd_name(name) {
            return Storage::Mtd(mtd);
        }
        if let Some(vol) = crate::flash::ubi::ubi_volume_name(name) {
            return Storage::Ubi(vol);
        }
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.file_type().is_block_device() => Storage::Block {
            dev: m.rdev(),
            disk: disk_of(m.rdev(), sysfs),
        },
        Ok(m) if m.file_type().is_char_device() => Storage::Block {
            dev: m.rdev(),
            disk: None,
        },
        Ok(m) => Storage::File {
            dev: m.dev(),
            ino: m.ino(),
        },
        Err(_) => Storage::Missing(real),
    }
}

/// Why slot paths `a` and `b` are the same storage, if they are.
pub fn overlap(a: &Path, b: &Path, sysfs: &Path) -> Option<String> {
    let (sa, sb) = (storage(a, sysfs), storage(b, sysfs));
    let (da, db) = (a.display(), b.display());
    let why = match (&sa, &sb) {
        (x, y) if x == y => match x {
            Storage::Mtd(m) => format!("{da} and {db} are both MTD partition {m}"),
            Storage::Ubi(v) => format!("{da} and {db} are both UBI volume {v}"),
            Storage::Block { .. } => format!("{da} and {db} are the same block device"),
            Storage::File { .. } => format!("{da} and {db} are the same file"),
            Storage::Missing(p) => format!("{da} and {db} both name {}", p.display()),
        },
        (Storage::Block { disk, .. }, Storage::Block { dev: other, .. })
            if *disk == Some(*other) =>
        {
            format!("{da} is a partition of {db}")
        }
        (Storage::Block { dev: other, .. }, Storage::Block { disk, .. })
            if *disk == Some(*other) =>
        {
            format!("{db} is a partition of {da}")
        }
        _ => return None,
    };
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_storage_under_two_names_is_found() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("sys");
        let a = d.path().join("slot-a.img");
        let b = d.path().join("slot-b.img");
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        assert_eq!(overlap(&a, &b, &sys), None);
        let link = d.path().join("link.img");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert!(overlap(&a, &link, &sys).unwrap().contains("the same file"));
        let hard = d.path().join("hard.img");
        std::fs::hard_link(&a, &hard).unwrap();
        assert!(overlap(&hard, &a, &sys).is_some());
        let why = overlap(Path::new("/dev/mtd5"), Path::new("/dev/mtdblock5"), &sys).unwrap();
        assert!(why.contains("MTD partition mtd5"), "{why}");
        assert_eq!(
            overlap(Path::new("/dev/mtd5"), Path::new("/dev/mtdblock7"), &sys),
            None
        );
        assert!(overlap(Path::new("/dev/ubi0_1"), Path::new("/dev/ubi0_1"), &sys).is_some());
        assert!(overlap(&d.path().join("x"), &d.path().join("./x"), &sys).is_some());
    }

    #[test]
    fn a_partition_and_its_whole_disk_overlap() {
        // The host's own loop or virtual disks are not needed: sysfs is described by files,
        // with a block device node that exists on every Linux (/dev/null is a char device,
        // so the disk and partition are looked up by numbers only).
        let d = tempfile::tempdir().unwrap();
        let sys = d.path();
        let disk = sys.join("devices/virtual/block/vdx");
        std::fs::create_dir_all(disk.join("vdx1")).unwrap();
        std::fs::write(disk.join("dev"), "254:0\n").unwrap();
        std::fs::write(disk.join("vdx1/dev"), "254:1\n").unwrap();
        std::fs::write(disk.join("vdx1/partition"), "1\n").unwrap();
        std::fs::create_dir_all(sys.join("dev/block")).unwrap();
        std::os::unix::fs::symlink(disk.join("vdx1"), sys.join("dev/block/254:1")).unwrap();
        std::os::unix::fs::symlink(&disk, sys.join("dev/block/254:0")).unwrap();
        let part = nix::sys::stat::makedev(254, 1);
        assert_eq!(disk_of(part, sys), Some(nix::sys::stat::makedev(254, 0)));
        assert_eq!(disk_of(nix::sys::stat::makedev(254, 0), sys), None);
    }
}
