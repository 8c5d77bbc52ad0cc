//! Firmware versions: dotted numeric components ("1.2", "23.05.3"), compared numerically.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A firmware version. Missing trailing components compare as zero, so `1.1 == 1.1.0`.
#[derive(Debug, Clone)]
pub struct Version {
    parts: Vec<u64>,
    text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid version {0:?}: expected dotted numbers such as 1.2 or 23.05.3")]
pub struct ParseVersionError(pub String);

impl FromStr for Version {
    type Err = ParseVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 64 {
            return Err(ParseVersionError(s.to_string()));
        }
        let parts = s
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseVersionError(s.to_string()));
                }
                p.parse::<u64>()
                    .map_err(|_| ParseVersionError(s.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Version {
            parts,
            text: s.to_string(),
        })
    }
}

impl Version {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            let a = self.parts.get(i).copied().unwrap_or(0);
            let b = other.parts.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn numeric_ordering() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("23.05.3") > v("23.05"));
        assert_eq!(v("1.1"), v("1.1.0"));
        assert!(v("2") > v("1.99.99"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "1..2", "1.a", "v1.2", "1.2-rc1", " 1"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }
}
