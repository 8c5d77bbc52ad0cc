//! `/proc/self/mountinfo` (proc(5)): every mount this process sees, one a line:
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)         (6)      (7)      (8) (9)  (10)      (11)
//! ```
//!
//! mount id, parent id, `major:minor` of the file system's device (0:N for the ones without
//! one: tmpfs, overlay, UBIFS), the root of the mount in its file system, the mount point,
//! the mount's options, zero or more optional fields ended by a lone `-`, then the file
//! system type, the source (a device, or whatever the mount was given) and the super block's
//! options. Paths have space, tab, newline and backslash written as octal escapes (`\040`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The file system's device: (major, minor).
    pub dev: (u32, u32),
    /// The directory of the file system that is mounted (`/` unless a bind mount).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fstype: String,
    /// `/dev/sda4`, `ubi0:syscfg`, `overlay`, `tmpfs`…
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MountinfoError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a mountinfo line ({problem})")]
    Line {
        path: PathBuf,
        line: usize,
        problem: &'static str,
    },
}

/// Undo the kernel's octal escapes (`\040` is a space; a backslash not followed by three
/// octal digits is kept as it is).
pub fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
            .filter(|n| *n <= 0xff);
        match octal {
            Some(n) => {
                out.push(n as u8);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

fn path(field: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// One line, or what is wrong with it.
pub fn parse_line(line: &str) -> Result<Mount, &'static str> {
    let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
    let sep = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or("no ` - ` before the file system type")?;
    if sep < 6 {
        return Err("fewer than 6 fields before ` - `");
    }
    let (fstype, source) = match (fields.get(sep + 1), fields.get(sep + 2)) {
        (Some(t), Some(s)) => (*t, *s),
        _ => return Err("no file system type and source after ` - `"),
    };
    let dev = fields[2]
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or("the device is not major:minor")?;
    Ok(Mount {
        dev,
        root: path(fields[3]),
        mount_point: path(fields[4]),
        fstype: String::from_utf8_lossy(&unescape(fstype)).into_owned(),
        source: String::from_utf8_lossy(&unescape(source)).into_owned(),
    })
}

/// Every mount of a mountinfo text (`path` names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Mount>, MountinfoError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            parse_line(l).map_err(|problem| MountinfoError::Line {
                path: path.to_path_buf(),
                line: n + 1,
                problem,
            })
        })
        .collect()
}

/// The mounts of `<proc>/self/mountinfo`.
pub fn read(proc: &Path) -> Result<Vec<Mount>, MountinfoError> {
    let path = proc.join("self/mountinfo");
    let text = std::fs::read_to_string(&path).map_err(|source| MountinfoError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&path, &text)
}

/// The mount that holds the absolute, resolved path `real`: the longest mount point it is
/// under (by whole components), the last one listed when two are mounted on the same point
/// (the later mount covers the earlier).
pub fn holding<'a>(mounts: &'a [Mount], real: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| real.starts_with(&m.mount_point))
        .fold(None, |best: Option<&Mount>, m| match best {
            Some(b) if b.mount_point.as_os_str().len() > m.mount_point.as_os_str().len() => Some(b),
            _ => Some(m),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OpenWrt router's mounts (a UBI-based board), with a data partition whose mount
    /// point has a space in it.
    const OPENWRT: &str = "\
15 1 0:13 / / rw,noatime master:1 - overlay overlay rw,lowerdir=/,upperdir=/overlay/upper,workdir=/overlay/work
16 15 254:0 / /rom ro,relatime shared:2 - squashfs /dev/root ro,errors=continue
17 15 0:4 / /proc rw,nosuid,nodev,noexec,noatime - proc proc rw
19 15 0:14 / /tmp rw,nosuid,nodev,noatime - tmpfs tmpfs rw
21 15 0:16 / /overlay rw,noatime - ubifs ubi0:rootfs_data rw,assert=read-only,ubi=0,vol=2
22 15 8:4 / /mnt/my\\040data rw,relatime - ext4 /dev/sda4 rw
23 15 8:4 /fwguard /data rw,relatime shared:7 master:3 - ext4 /dev/sda4 rw
24 19 0:14 /run /tmp/run rw - tmpfs tmpfs rw
";

    fn mounts() -> Vec<Mount> {
        parse(Path::new("mountinfo"), OPENWRT).unwrap()
    }

    #[test]
    fn fields_optional_fields_and_escapes_are_read() {
        let m = mounts();
        assert_eq!(m.len(), 8);
        assert_eq!(
            m[0],
            Mount {
                dev: (0, 13),
                root: "/".into(),
                mount_point: "/".into(),
                fstype: "overlay".into(),
                source: "overlay".into(),
            }
        );
        assert_eq!(m[4].source, "ubi0:rootfs_data");
        assert_eq!(m[5].mount_point, Path::new("/mnt/my data"));
        // Two optional fields before the separator, and a bind mount's root.
        assert_eq!((m[6].dev, m[6].fstype.as_str()), ((8, 4), "ext4"));
        assert_eq!(m[6].root, Path::new("/fwguard"));
        assert_eq!(unescape(r"a\134b\011c\0d\999"), b"a\\b\tc\\0d\\999");
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, problem) in [
            ("1 2 0:1 / / rw shared:1 overlay overlay rw", "no ` - `"),
            ("1 2 0:1 / - overlay overlay rw", "fewer than 6"),
            ("1 2 0:1 / / rw -", "no file system type"),
            ("1 2 x / / rw - ext4 /dev/sda1 rw", "major:minor"),
        ] {
            let e = parse(Path::new("/proc/self/mountinfo"), &format!("\n{text}\n")).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("/proc/self/mountinfo:2: ") && msg.contains(problem),
                "{text}: {msg}"
            );
        }
    }

    #[test]
    fn the_longest_mount_point_above_a_path_holds_it() {
        let m = mounts();
        let at = |p: &str| holding(&m, Path::new(p)).map(|m| m.mount_point.clone());
        assert_eq!(at("/etc/fwguard"), Some("/".into()));
        assert_eq!(at("/tmp/lib/fwguard"), Some("/tmp".into()));
        assert_eq!(at("/tmp/run/fwguard"), Some("/tmp/run".into()));
        assert_eq!(at("/data/fwguard"), Some("/data".into()));
        // By whole components: /database is not under /data.
        assert_eq!(at("/database"), Some("/".into()));
        assert_eq!(at("/mnt/my data/x"), Some("/mnt/my data".into()));
        assert_eq!(holding(&m[1..2], Path::new("/etc")), None);
        // Mounted twice on one point: the later mount is the one seen.
        let twice = parse(
            Path::new("m"),
            "1 0 8:1 / /data rw - ext4 /dev/sda1 rw\n2 0 0:9 / /data rw - tmpfs tmpfs rw\n",
        )
        .unwrap();
        assert_eq!(
            holding(&twice, Path::new("/data/x")).unwrap().fstype,
            "tmpfs"
        );
    }
}
