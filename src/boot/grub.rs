//! GRUB environment block (`grubenv`) for x86 routers and appliances: the A/B variables
//! ([`AbVars`]) kept where GRUB's `load_env` / `save_env` read and write them, acted on by the
//! script in `packaging/grub/ab-boot.cfg`.
//!
//! The format, as `grub-editenv` writes it: a file of fixed size (1024 bytes by default)
//! starting `# GRUB Environment Block\n`, then `name=value\n` lines (a backslash escapes a
//! backslash or newline inside a value), the rest filled with `#`. A file that does not
//! start with the signature is refused, never overwritten. A change is written to a temporary
//! file of the same size, synced, renamed over the block and the directory synced, then read
//! back.

use super::ab_vars::{AbVars, VarStore};
use super::uboot_env::EnvVars;
use super::BootError;
use std::path::{Path, PathBuf};

pub const SIGNATURE: &[u8] = b"# GRUB Environment Block\n";
/// The size grub-editenv creates.
pub const DEFAULT_SIZE: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrubEnvError {
    #[error(
        "not a GRUB environment block (it does not start with {:?})",
        String::from_utf8_lossy(SIGNATURE)
    )]
    NoSignature,
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("the variables need {need} bytes; the block holds {size}")]
    TooBig { need: usize, size: usize },
}

/// Decode a block.
pub fn decode(bytes: &[u8]) -> Result<EnvVars, GrubEnvError> {
    let body = bytes
        .strip_prefix(SIGNATURE)
        .ok_or(GrubEnvError::NoSignature)?;
    let mut vars = EnvVars::default();
    let mut line_no = 1;
    let mut rest = body;
    while let Some(&first) = rest.first() {
        line_no += 1;
        if first == b'#' {
            // Padding (or a comment line): skip to the end of the line.
            match rest.iter().position(|&b| b == b'\n') {
                Some(n) => rest = &rest[n + 1..],
                None => break,
            }
            continue;
        }
        // A line ends at an unescaped newline.
        let mut line = Vec::new();
        let mut i = 0;
        let mut ended = false;
        while i < rest.len() {
            match rest[i] {
                b'\\' if i + 1 < rest.len() => {
                    line.push(rest[i + 1]);
                    i += 2;
                }
                b'\n' => {
                    i += 1;
                    ended = true;
                    break;
                }
                b => {
                    line.push(b);
                    i += 1;
                }
            }
        }
        let bad = |problem: &str| GrubEnvError::Line {
            line: line_no,
            problem: problem.into(),
        };
        if !ended {
            return Err(bad("not terminated by a newline (a torn write?)"));
        }
        rest = &rest[i..];
        let text = String::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| bad("expected name=value"))?;
        vars.set(name, value).map_err(|e| bad(&e.to_string()))?;
    }
    Ok(vars)
}

/// Encode `vars` into a block of `size` bytes.
pub fn encode(vars: &EnvVars, size: usize) -> Result<Vec<u8>, GrubEnvError> {
    let mut out = SIGNATURE.to_vec();
    for (name, value) in vars.iter() {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        for &b in value.as_bytes() {
            if b == b'\\' || b == b'\n' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'\n');
    }
    if out.len() > size {
        return Err(GrubEnvError::TooBig {
            need: out.len(),
            size,
        });
    }
    out.resize(size, b'#');
    Ok(out)
}

/// A `grubenv` file.
pub struct GrubEnv {
    path: PathBuf,
}

impl GrubEnv {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        GrubEnv { path: path.into() }
    }

    fn io(&self, source: std::io::Error) -> BootError {
        BootError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn bad(&self, e: GrubEnvError) -> BootError {
        BootError::Grub {
            path: self.path.clone(),
            source: e,
        }
    }

    fn read_block(&self) -> Result<(EnvVars, usize), BootError> {
        let bytes = std::fs::read(&self.path).map_err(|e| self.io(e))?;
        Ok((decode(&bytes).map_err(|e| self.bad(e))?, bytes.len()))
    }

    /// Replace the block atomically with `vars`, keeping its size.
    fn write_block(&self, vars: &EnvVars, size: usize) -> Result<(), BootError> {
        let bytes = encode(vars, size).map_err(|e| self.bad(e))?;
        crate::fsutil::write_atomic(&self.path, &bytes).map_err(|e| self.io(e))?;
        let (back, _) = self.read_block()?;
        if &back != vars {
            return Err(BootError::ReadBack {
                path: self.path.clone(),
                detail: "variables differ from what was written".into(),
            });
        }
        Ok(())
    }
}

impl VarStore for GrubEnv {
    fn describe(&self) -> String {
        format!("GRUB environment block {}", self.path.display())
    }

    fn location(&self) -> &Path {
        &self.path
    }

    fn read_vars(&self) -> Result<EnvVars, BootError> {
        Ok(self.read_block()?.0)
    }

    fn change_vars(
        &self,
        f: &mut dyn FnMut(&mut EnvVars) -> Result<(), BootError>,
    ) -> Result<bool, BootError> {
        let (current, size) = self.read_block()?;
        let mut vars = current.clone();
        f(&mut vars)?;
        if vars == current {
            return Ok(false);
        }
        self.write_block(&vars, size)?;
        Ok(true)
    }
}

/// The A/B backend on a GRUB environment block.
pub fn grub_ab(path: impl Into<PathBuf>) -> AbVars {
    AbVars::on(Box::new(GrubEnv::new(path)))
}

/// Create a fresh block of the default size holding `vars` (first install, tests).
pub fn create(path: &Path, vars: &EnvVars) -> Result<(), BootError> {
    let env = GrubEnv::new(path);
    let bytes = encode(vars, DEFAULT_SIZE).map_err(|e| env.bad(e))?;
    std::fs::write(path, bytes).map_err(|e| env.io(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> EnvVars {
        EnvVars::from_pairs(pairs).unwrap()
    }

    #[test]
    fn round_trip_with_escapes_and_padding() {
        let v = vars(&[("boot_slot", "B"), ("odd", "a\\b")]);
        let block = encode(&v, DEFAULT_SIZE).unwrap();
        assert_eq!(block.len(), DEFAULT_SIZE);
        assert!(block.starts_with(b"# GRUB Environment Block\nboot_slot=B\nodd=a\\\\b\n###"));
        assert_eq!(decode(&block).unwrap(), v);
    }

    #[test]
    fn refusals() {
        assert_eq!(decode(b"garbage"), Err(GrubEnvError::NoSignature));
        let torn = b"# GRUB Environment Block\nboot_slot=B";
        assert!(matches!(
            decode(torn),
            Err(GrubEnvError::Line { line: 2, .. })
        ));
        let big = vars(&[("x", &"y".repeat(2000))]);
        assert!(matches!(
            encode(&big, DEFAULT_SIZE),
            Err(GrubEnvError::TooBig { .. })
        ));
    }
}
