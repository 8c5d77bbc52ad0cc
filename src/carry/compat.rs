//! OpenWrt's `compat_version`: the version of a firmware's configuration format, MAJOR.MINOR.
//! A release whose major differs cannot be installed over this firmware at all (a
//! factory-style install is needed: the vendor's `compat_message` says how); one whose minor
//! differs cannot take the running firmware's settings, so it is installed only on the
//! owner's word, on its defaults. The running firmware's version comes from its UCI
//! `system` section (`system.@system[0].compat_version`), or from a file holding
//! `MAJOR.MINOR` on other boards; a firmware that declares none is 1.0, as in OpenWrt.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CompatVersion {
    pub major: u32,
    pub minor: u32,
}

impl CompatVersion {
    /// What a firmware or a release that declares nothing is (OpenWrt's default).
    pub const DEFAULT: CompatVersion = CompatVersion { major: 1, minor: 0 };

    /// `MAJOR.MINOR`, both decimal.
    pub fn parse(s: &str) -> Result<CompatVersion, String> {
        let bad = || format!("compat_version {s:?} is not MAJOR.MINOR (two decimal numbers)");
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let num = |p: &str| {
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse::<u32>().map_err(|_| bad())
        };
        Ok(CompatVersion {
            major: num(major)?,
            minor: num(minor)?,
        })
    }

    /// How a release of version `release` meets a firmware of this version.
    pub fn judge(self, release: CompatVersion) -> Break {
        if self.major != release.major {
            Break::Major
        } else if self.minor != release.minor {
            Break::Minor
        } else {
            Break::Same
        }
    }
}

impl fmt::Display for CompatVersion {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl serde::Serialize for CompatVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CompatVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        CompatVersion::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How a release's configuration format meets the running firmware's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// Same major and minor: the settings are carried.
    Same,
    /// The minor differs: the settings cannot be carried; only the owner installs it, on the
    /// new firmware's defaults (`--no-settings`).
    Minor,
    /// The major differs: not installable over this firmware.
    Major,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}: {problem}")]
pub struct CompatError {
    pub path: PathBuf,
    pub problem: String,
}

/// Largest compat file read (a UCI `system` file is a few hundred bytes).
const MAX_FILE: u64 = 64 * 1024;

/// The running firmware's compat version as `path` declares it: None when the file does not
/// exist or declares none. A UCI file (OpenWrt's `/etc/config/system`) is read for
/// `option compat_version` in its first `config system` section; any other file holds
/// `MAJOR.MINOR` and nothing else.
pub fn read_declared(path: &Path) -> Result<Option<CompatVersion>, CompatError> {
    let err = |problem: String| CompatError {
        path: path.to_path_buf(),
        problem,
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let mut text = String::new();
    use std::io::Read;
    let n = f
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| err(format!("cannot be read as text: {e}")))?;
    if n as u64 > MAX_FILE {
        return Err(err(format!("larger than {MAX_FILE} bytes")));
    }
    let uci = text
        .lines()
        .any(|l| l.split_whitespace().next() == Some("config"));
    if !uci {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        return CompatVersion::parse(t).map(Some).map_err(err);
    }
    from_uci(&text).map_err(err)
}

/// `compat_version` of the first `config system` section of a UCI file.
fn from_uci(text: &str) -> Result<Option<CompatVersion>, String> {
    let mut in_first_system = false;
    let mut seen_system = false;
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("config") => {
                let first = !seen_system && words.next() == Some("system");
                seen_system |= first;
                in_first_system = first;
            }
            Some("option") if in_first_system => {
                if words.next() != Some("compat_version") {
                    continue;
                }
                let value = words.collect::<Vec<&str>>().join(" ");
                return CompatVersion::parse(unquote(&value))
                    .map(Some)
                    .map_err(|e| format!("line {}: {e}", n + 1));
            }
            _ => {}
        }
    }
    Ok(None)
}

fn unquote(v: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> CompatVersion {
        CompatVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_and_judges() {
        assert_eq!(v("1.1"), CompatVersion { major: 1, minor: 1 });
        assert_eq!(v("2.0").to_string(), "2.0");
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "1.1.1",
            "a.b",
            "-1.0",
            "1.0 ",
            "9999999999.0",
        ] {
            assert!(CompatVersion::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(v("1.0").judge(v("1.0")), Break::Same);
        assert_eq!(v("1.0").judge(v("1.1")), Break::Minor);
        // A lower minor is a break too: the settings were written for the newer format.
        assert_eq!(v("1.1").judge(v("1.0")), Break::Minor);
        assert_eq!(v("1.1").judge(v("2.0")), Break::Major);
        assert_eq!(v("2.0").judge(v("1.1")), Break::Major);
    }

    fn read(text: &str) -> Result<Option<CompatVersion>, CompatError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("system");
        std::fs::write(&p, text).unwrap();
        read_declared(&p)
    }

    #[test]
    fn reads_the_first_uci_system_section() {
        let uci = "\nconfig system\n\toption hostname 'OpenWrt'\n\toption compat_version '1.1'\n\nconfig timeserver 'ntp'\n\toption compat_version '3.0'\n";
        assert_eq!(read(uci).unwrap(), Some(v("1.1")));
        let named = "config system 'main'\n\toption compat_version \"2.0\"\n";
        assert_eq!(read(named).unwrap(), Some(v("2.0")));
        // Only the first system section counts, and only its own options.
        let later = "config system\n\toption hostname x\nconfig timeserver ntp\n\toption compat_version '3.0'\nconfig system\n\toption compat_version '4.0'\n";
        assert_eq!(read(later).unwrap(), None);
        let bad = "config system\n\toption compat_version 'dsa'\n";
        let e = read(bad).unwrap_err();
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("dsa"),
            "{e}"
        );
    }

    #[test]
    fn reads_a_plain_file_and_a_missing_one() {
        assert_eq!(read("1.1\n").unwrap(), Some(v("1.1")));
        assert_eq!(read("  \n").unwrap(), None);
        assert!(read("one point one\n").is_err());
        assert_eq!(
            read_declared(Path::new("/nonexistent/compat")).unwrap(),
            None
        );
    }
}
