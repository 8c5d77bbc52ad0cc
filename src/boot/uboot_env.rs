//! The U-Boot environment format, as `fw_printenv`/`fw_setenv` and U-Boot itself read it.
//!
//! One copy: CRC32 (zlib polynomial, little-endian) over the data area, then (redundant
//! environments only) one flags byte, then `name=value\0` pairs ended by an empty string and
//! padding to the end of the area. Readers stop at the first empty string whatever the
//! padding is; writers CRC the whole data area.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvFormatError {
    #[error("environment area of {size} bytes is too small (minimum {min})")]
    TooSmall { size: usize, min: usize },
    #[error("bad CRC: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("no end marker (empty string) inside the environment area")]
    Unterminated,
    #[error("entry {0:?} has no '=' (not a name=value pair)")]
    NoEquals(String),
    #[error("entry is not UTF-8 text at byte {0}")]
    NotText(usize),
    #[error("variable name {0:?} is invalid (empty, or contains '=' or a NUL)")]
    BadName(String),
    #[error("value of {0} contains a NUL byte")]
    BadValue(String),
    #[error("variables need {needed} bytes but the environment area holds only {capacity}")]
    Overflow { needed: usize, capacity: usize },
}

/// Whether copies carry the flags byte of a redundant environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Single,
    Redundant,
}

impl Layout {
    fn header_len(self) -> usize {
        match self {
            Layout::Single => 4,
            Layout::Redundant => 5,
        }
    }
}

/// The decoded variables of one environment copy, sorted by name as U-Boot writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvVars(BTreeMap<String, String>);

impl EnvVars {
    /// The variables `pairs` names, each checked as [`EnvVars::set`] checks it.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<EnvVars, EnvFormatError> {
        let mut v = EnvVars::default();
        for (k, val) in pairs {
            v.set(k, val)?;
        }
        Ok(v)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn set(&mut self, name: &str, value: &str) -> Result<(), EnvFormatError> {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(EnvFormatError::BadName(name.to_string()));
        }
        if value.contains('\0') {
            return Err(EnvFormatError::BadValue(name.to_string()));
        }
        self.0.insert(name.to_string(), value.to_string());
        Ok(())
    }

    pub fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One decoded copy: its variables and, for a redundant layout, its flags byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvCopy {
    pub vars: EnvVars,
    pub flags: Option<u8>,
}

/// Decode one copy of `bytes.len()` bytes, checking its CRC.
pub fn decode(bytes: &[u8], layout: Layout) -> Result<EnvCopy, EnvFormatError> {
    let hl = layout.header_len();
    if bytes.len() < hl + 2 {
        return Err(EnvFormatError::TooSmall {
            size: bytes.len(),
            min: hl + 2,
        });
    }
    let stored = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let data = &bytes[hl..];
    let computed = crc32fast::hash(data);
    if stored != computed {
        return Err(EnvFormatError::BadCrc { stored, computed });
    }
    let flags = match layout {
        Layout::Single => None,
        Layout::Redundant => Some(bytes[4]),
    };
    let mut vars = EnvVars::default();
    let mut pos = 0;
    loop {
        let rest = &data[pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(EnvFormatError::Unterminated)?;
        if end == 0 {
            break;
        }
        let entry =
            std::str::from_utf8(&rest[..end]).map_err(|_| EnvFormatError::NotText(hl + pos))?;
        let (k, v) = entry
            .split_once('=')
            .ok_or_else(|| EnvFormatError::NoEquals(entry.to_string()))?;
        vars.0.insert(k.to_string(), v.to_string());
        pos += end + 1;
        if pos >= data.len() {
            return Err(EnvFormatError::Unterminated);
        }
    }
    Ok(EnvCopy { vars, flags })
}

/// Encode variables into a copy of exactly `size` bytes, padded with `pad`.
pub fn encode(
    vars: &EnvVars,
    layout: Layout,
    flags: u8,
    size: usize,
    pad: u8,
) -> Result<Vec<u8>, EnvFormatError> {
    let hl = layout.header_len();
    let mut data = Vec::with_capacity(size);
    for (k, v) in vars.iter() {
        data.extend_from_slice(k.as_bytes());
        data.push(b'=');
        data.extend_from_slice(v.as_bytes());
        data.push(0);
    }
    data.push(0);
    let capacity = size.saturating_sub(hl);
    if data.len() > capacity {
        return Err(EnvFormatError::Overflow {
            needed: data.len(),
            capacity,
        });
    }
    data.resize(capacity, pad);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&crc32fast::hash(&data).to_le_bytes());
    if layout == Layout::Redundant {
        out.push(flags);
    }
    out.extend_from_slice(&data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> EnvVars {
        EnvVars::from_pairs(pairs).unwrap()
    }

    #[test]
    fn round_trip_single_and_redundant() {
        let v = vars(&[
            ("bootcmd", "run ab_boot"),
            ("boot_slot", "A"),
            ("empty", ""),
        ]);
        for layout in [Layout::Single, Layout::Redundant] {
            let bytes = encode(&v, layout, 7, 0x400, 0xff).unwrap();
            assert_eq!(bytes.len(), 0x400);
            let copy = decode(&bytes, layout).unwrap();
            assert_eq!(copy.vars, v);
            assert_eq!(copy.flags, (layout == Layout::Redundant).then_some(7));
        }
    }

    #[test]
    fn known_crc_of_a_tiny_env() {
        // "a=1\0\0" padded with zeros to 16 data bytes: crc computed by zlib.crc32 in Python.
        let bytes = encode(&vars(&[("a", "1")]), Layout::Single, 0, 20, 0).unwrap();
        let mut data = b"a=1\0\0".to_vec();
        data.resize(16, 0);
        assert_eq!(&bytes[4..], &data[..]);
        assert_eq!(
            u32::from_le_bytes(bytes[0..4].try_into().unwrap()),
            crc32fast::hash(&data)
        );
    }

    #[test]
    fn bad_crc_and_stale_padding() {
        let v = vars(&[("x", "1")]);
        let mut bytes = encode(&v, Layout::Single, 0, 64, 0).unwrap();
        // Stale bytes after the end marker are fine when the CRC covers them.
        bytes[20] = b'z';
        let crc = crc32fast::hash(&bytes[4..]);
        bytes[0..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&bytes, Layout::Single).unwrap().vars, v);
        bytes[5] ^= 1;
        assert!(matches!(
            decode(&bytes, Layout::Single),
            Err(EnvFormatError::BadCrc { .. })
        ));
    }

    #[test]
    fn overflow_and_bad_names() {
        let v = vars(&[("name", "a long value that does not fit")]);
        assert!(matches!(
            encode(&v, Layout::Single, 0, 16, 0),
            Err(EnvFormatError::Overflow { .. })
        ));
        let mut v = EnvVars::default();
        assert!(v.set("a=b", "1").is_err());
        assert!(v.set("", "1").is_err());
        assert!(v.set("a", "x\0y").is_err());
    }
}
