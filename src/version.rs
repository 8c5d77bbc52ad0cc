//! Firmware versions: dotted numeric components ("1.2", "23.05.3"), compared numerically.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A firmware version. Missing trailing components compare as zero, so `1.1 == 1.1.0`.
/// Only the text is kept (checked when parsed): the components are read from it when
/// compared, so a version is one allocation (an index holds thousands).
#[derive(Debug, Clone)]
pub struct Version {
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
        let component_ok = |p: &str| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u64>().is_ok()
        };
        if !s.split('.').all(component_ok) {
            return Err(ParseVersionError(s.to_string()));
        }
        Ok(Version {
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
        // Each component was checked to be a u64 when the version was parsed.
        let num = |p: Option<&str>| p.map_or(0, |p| p.parse::<u64>().unwrap_or(0));
        let (mut a, mut b) = (self.text.split('.'), other.text.split('.'));
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (x, y) => match num(x).cmp(&num(y)) {
                    Ordering::Equal => continue,
                    o => return o,
                },
            }
        }
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
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a version string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Version, E> {
                s.parse().map_err(E::custom)
            }
        }
        // Parsed from the text where it lies: no copy in between.
        d.deserialize_str(Text)
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
