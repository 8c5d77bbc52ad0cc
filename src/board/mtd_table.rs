//! `/proc/mtd`: the flash partitions of the running kernel, by name. Partitions are found by
//! name, never by number: the numbering follows the device tree and changes between kernels.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtdPart {
    /// `mtd5`
    pub dev: String,
    pub name: String,
    pub size: u64,
    pub erase_size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MtdTableError {
    #[error("{path}: {problem}")]
    Read { path: PathBuf, problem: String },
    #[error("{path}:{line}: cannot parse {text:?} (expected `mtdN: SIZE ERASESIZE \"name\"`)")]
    Parse {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{path}: no partition named {name:?}")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: two partitions are named {name:?}")]
    Duplicate { path: PathBuf, name: String },
}

#[derive(Debug, Clone)]
pub struct MtdTable {
    pub source: PathBuf,
    pub parts: Vec<MtdPart>,
}

impl MtdTable {
    pub fn load(path: &Path) -> Result<MtdTable, MtdTableError> {
        let text = std::fs::read_to_string(path).map_err(|e| MtdTableError::Read {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<MtdTable, MtdTableError> {
        let mut parts = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if i == 0 && line.starts_with("dev:") || line.trim().is_empty() {
                continue;
            }
            let bad = || MtdTableError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                text: line.to_string(),
            };
            let (dev, rest) = line.split_once(':').ok_or_else(bad)?;
            let mut f = rest.split_whitespace();
            let hex = |s: Option<&str>| s.and_then(|s| u64::from_str_radix(s, 16).ok());
            let (Some(size), Some(erase_size)) = (hex(f.next()), hex(f.next())) else {
                return Err(bad());
            };
            let name = rest
                .split_once('"')
                .and_then(|(_, n)| n.strip_suffix('"'))
                .ok_or_else(bad)?;
            if !dev.starts_with("mtd") || dev[3..].parse::<u32>().is_err() {
                return Err(bad());
            }
            if parts.iter().any(|p: &MtdPart| p.name == name) {
                return Err(MtdTableError::Duplicate {
                    path: path.to_path_buf(),
                    name: name.into(),
                });
            }
            parts.push(MtdPart {
                dev: dev.into(),
                name: name.into(),
                size,
                erase_size,
            });
        }
        Ok(MtdTable {
            source: path.to_path_buf(),
            parts,
        })
    }

    pub fn by_name(&self, name: &str) -> Result<&MtdPart, MtdTableError> {
        self.parts
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| MtdTableError::Missing {
                path: self.source.clone(),
                name: name.into(),
            })
    }

    pub fn by_dev(&self, dev: &str) -> Option<&MtdPart> {
        self.parts.iter().find(|p| p.dev == dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRT32X: &str = r#"dev:    size   erasesize  name
mtd0: 00200000 00020000 "u-boot"
mtd1: 00020000 00020000 "u_env"
mtd2: 00040000 00020000 "s_env"
mtd3: 00040000 00020000 "unused_area"
mtd4: 00100000 00020000 "devinfo"
mtd5: 07b00000 00020000 "kernel1"
mtd6: 07500000 00020000 "rootfs1"
mtd7: 07b00000 00020000 "kernel2"
mtd8: 07500000 00020000 "rootfs2"
mtd9: 00800000 00020000 "BBT"
"#;

    #[test]
    fn wrt32x_table() {
        let t = MtdTable::parse(WRT32X, Path::new("/proc/mtd")).unwrap();
        assert_eq!(t.parts.len(), 10);
        let k2 = t.by_name("kernel2").unwrap();
        assert_eq!(
            (k2.dev.as_str(), k2.size, k2.erase_size),
            ("mtd7", 0x7b0_0000, 0x20000)
        );
        assert_eq!(t.by_dev("mtd2").unwrap().name, "s_env");
        let e = t.by_name("kernel3").unwrap_err().to_string();
        assert_eq!(e, "/proc/mtd: no partition named \"kernel3\"");
    }

    #[test]
    fn malformed_lines_are_named() {
        let e = MtdTable::parse("dev: x\nmtd0: 0020 \"u-boot\"\n", Path::new("/proc/mtd"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/proc/mtd:2: cannot parse"), "{e}");
        let e = MtdTable::parse(
            "mtd0: 1000 1000 \"a\"\nmtd1: 1000 1000 \"a\"\n",
            Path::new("/proc/mtd"),
        )
        .unwrap_err();
        assert!(matches!(e, MtdTableError::Duplicate { .. }));
    }
}
