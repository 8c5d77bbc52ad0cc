//! `fw_env.config`: where a board keeps its U-Boot environment, in the syntax the U-Boot
//! tools (`fw_printenv`, `fw_setenv`) read, so fwguard uses the file the board already has.
//!
//! One line per copy: `DEVICE OFFSET ENV-SIZE [SECTOR-SIZE [SECTORS]]`, numbers in decimal or
//! `0x` hex; `#` starts a comment. One line is a single environment, two lines a redundant
//! one (each copy carries a flags byte).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}:{line}: {problem}")]
pub struct FwEnvError {
    pub path: PathBuf,
    /// 1-based line number; 0 for the file as a whole.
    pub line: usize,
    pub problem: String,
}

/// One copy of the environment, as one line of the file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvDevice {
    pub device: PathBuf,
    pub offset: u64,
    pub size: usize,
    /// The erase unit of the device (flash); for files and block devices it may be omitted.
    pub sector_size: Option<u64>,
    pub sectors: Option<u64>,
    /// Line of the file it came from, for messages that name it.
    pub line: usize,
}

/// The parsed file: one copy (single environment) or two (redundant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwEnvConfig {
    pub source: PathBuf,
    pub copies: Vec<EnvDevice>,
}

/// The smallest environment that holds a CRC, a flags byte and an end marker.
const MIN_ENV_SIZE: usize = 8;

/// A number as the U-Boot tools write them: decimal, or hex with `0x`.
pub(crate) fn number(field: &str) -> Option<u64> {
    match field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => field.parse().ok(),
    }
}

impl FwEnvConfig {
    pub fn load(path: &Path) -> Result<FwEnvConfig, FwEnvError> {
        let text = std::fs::read_to_string(path).map_err(|e| FwEnvError {
            path: path.to_path_buf(),
            line: 0,
            problem: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<FwEnvConfig, FwEnvError> {
        let err = |line: usize, problem: String| FwEnvError {
            path: path.to_path_buf(),
            line,
            problem,
        };
        let mut copies = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> = content.split_whitespace().collect();
            if !(3..=5).contains(&fields.len()) {
                return Err(err(
                    line,
                    format!(
                        "{} fields; expected DEVICE OFFSET ENV-SIZE [SECTOR-SIZE [SECTORS]]",
                        fields.len()
                    ),
                ));
            }
            let num = |idx: usize, what: &str| {
                number(fields[idx])
                    .ok_or_else(|| err(line, format!("{what} {:?} is not a number", fields[idx])))
            };
            let offset = num(1, "offset")?;
            let size = num(2, "environment size")?;
            if size < MIN_ENV_SIZE as u64 || size > (64 << 20) {
                return Err(err(
                    line,
                    format!(
                        "environment size {size} is out of range ({MIN_ENV_SIZE} bytes to 64 MiB)"
                    ),
                ));
            }
            let sector_size = if fields.len() > 3 {
                Some(num(3, "sector size")?)
            } else {
                None
            };
            let sectors = if fields.len() > 4 {
                Some(num(4, "sector count")?)
            } else {
                None
            };
            // What the copy occupies: its sectors, or (none given) the environment itself.
            let span = match sector_size {
                Some(0) => return Err(err(line, "sector size 0".into())),
                Some(s) => {
                    let n = sectors.unwrap_or(1).max(1);
                    let span = s.checked_mul(n).ok_or_else(|| {
                        err(line, format!("{n} sectors of {s:#x} bytes exceed 64 bits"))
                    })?;
                    if span < size {
                        return Err(err(
                            line,
                            format!("the environment ({size} bytes) does not fit in {span} bytes of sectors"),
                        ));
                    }
                    span
                }
                None => size,
            };
            if offset.checked_add(span).is_none() {
                return Err(err(
                    line,
                    format!("the copy at {offset:#x} ({span:#x} bytes) ends past 64 bits"),
                ));
            }
            copies.push(EnvDevice {
                device: PathBuf::from(fields[0]),
                offset,
                size: size as usize,
                sector_size,
                sectors,
                line,
            });
        }
        match copies.len() {
            1 => {}
            2 => {
                if copies[0].size != copies[1].size {
                    return Err(err(
                        copies[1].line,
                        format!(
                            "the two copies of a redundant environment differ in size ({} and {})",
                            copies[0].size, copies[1].size
                        ),
                    ));
                }
                let (a, b) = (&copies[0], &copies[1]);
                if a.device == b.device
                    && a.offset < b.offset + b.size as u64
                    && b.offset < a.offset + a.size as u64
                {
                    return Err(err(b.line, "the two copies overlap".into()));
                }
            }
            0 => {
                return Err(err(
                    0,
                    "no environment line (DEVICE OFFSET ENV-SIZE ...)".into(),
                ))
            }
            n => {
                return Err(err(
                    copies[2].line,
                    format!("{n} environment lines; at most two (a redundant pair)"),
                ))
            }
        }
        Ok(FwEnvConfig {
            source: path.to_path_buf(),
            copies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FwEnvConfig, FwEnvError> {
        FwEnvConfig::parse(text, Path::new("/etc/fw_env.config"))
    }

    #[test]
    fn single_and_redundant_lines() {
        let c =
            parse("# MTD device  offset  size  sector\n/dev/mtd1 0x0 0x20000 0x20000\n").unwrap();
        assert_eq!(c.copies.len(), 1);
        assert_eq!(c.copies[0].size, 0x20000);
        assert_eq!(c.copies[0].sector_size, Some(0x20000));
        assert_eq!(c.copies[0].line, 2);
        let c =
            parse("/dev/mmcblk0 0x100000 16384\n/dev/mmcblk0 0x104000 0x4000 # copy 2\n").unwrap();
        assert_eq!(c.copies.len(), 2);
        assert_eq!((c.copies[1].offset, c.copies[1].size), (0x104000, 0x4000));
        assert_eq!(c.copies[1].sector_size, None);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse("\n/dev/mtd1 0x0\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string().starts_with("/etc/fw_env.config:2: 2 fields"),
            "{e}"
        );
        let e = parse("/dev/mtd1 0x0 0x2000z\n").unwrap_err();
        assert!(e.problem.contains("\"0x2000z\" is not a number"), "{e}");
        let e = parse("/dev/mtd1 0 0x20000 0x10000\n").unwrap_err();
        assert!(e.problem.contains("does not fit"), "{e}");
        let e = parse("/dev/a 0 0x4000\n/dev/a 0x2000 0x4000\n").unwrap_err();
        assert_eq!((e.line, e.problem.as_str()), (2, "the two copies overlap"));
        let e = parse("/dev/a 0 0x4000\n/dev/b 0 0x2000\n").unwrap_err();
        assert!(e.problem.contains("differ in size"), "{e}");
        let e = parse("# nothing\n").unwrap_err();
        assert_eq!(e.line, 0);
        let e = parse("/a 0 64\n/b 0 64\n/c 0 64\n").unwrap_err();
        assert_eq!(e.line, 3);
    }

    #[test]
    fn extents_past_64_bits_are_refused_not_overflowed() {
        // These overflowed (a panic with overflow checks, a wrapped span or overlap test
        // without); found while writing the fw_env_config fuzz target.
        let e = parse("/dev/mtd1 0 0x4000 0x8000000000000000 2\n").unwrap_err();
        assert!(e.problem.contains("exceed 64 bits"), "{e}");
        let e = parse("/dev/a 0 0x4000\n/dev/a 0xffffffffffffffff 0x4000\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("ends past 64 bits"), "{e}");
        let e = parse("/dev/a 0xffffffffffff0000 0x4000 0x10000 1\n").unwrap_err();
        assert!(e.problem.contains("ends past 64 bits"), "{e}");
        // Its end must be a 64-bit offset too.
        assert!(parse("/dev/a 0xffffffffffffc000 0x4000\n").is_err());
        let c = parse("/dev/a 0xffffffffffffbfff 0x4000\n").unwrap();
        assert_eq!(c.copies[0].offset, 0xffff_ffff_ffff_bfff);
    }
}
