//! The trust root: which keys may sign the index (and how many must), and which keys may
//! sign the next root. A device starts from the root installed with it; a new root is
//! accepted only with version + 1, signed by a threshold of the current root's root keys
//! *and* a threshold of its own, so a vendor can replace compromised or lost index keys (and
//! recover from a fast-forwarded index version) without reflashing devices.
//!
//! ```toml
//! format = 1
//! version = 2
//! index_threshold = 2
//! index_keys = ["RW...", "RW...", "RW..."]
//! root_threshold = 1
//! root_keys = ["RW..."]
//! time_floor = "2026-12-01T00:00:00Z"   # optional
//! halt_threshold = 1                     # optional: the halt-only role (`halt.rs`)
//! halt_keys = ["RW..."]
//! ```
//!
//! A halt key signs only `halt.toml`, which can only stop rollouts: it is never an index or a
//! root key (a root listing one key in two roles is refused), so a stolen halt key can stop
//! updates and nothing else, and the next root revokes it.
//!
//! `time_floor` recovers from a fast-forwarded *time* (an index signed with an `issued_at`
//! far in the future, which raised every device's time floor there): when a root carrying it
//! is accepted by rotation, the device's time floor becomes that time (never below the
//! running firmware's build time). A rotation without it keeps the floor. A root installed
//! with the device never changes the floor.

use super::sign::PublicKey;
use super::{IndexError, TrustPolicy};
use crate::time::{format_time, parse_time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub const ROOT_FORMAT: u32 = 1;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RootDoc {
    pub format: u32,
    pub version: u64,
    pub index_threshold: usize,
    pub index_keys: Vec<String>,
    pub root_threshold: usize,
    pub root_keys: Vec<String>,
    /// RFC 3339: the time floor a device takes when it accepts this root by rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_floor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_threshold: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub halt_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRoot {
    pub version: u64,
    pub index: TrustPolicy,
    pub root: TrustPolicy,
    /// The time floor (unix seconds) a device resets to when it accepts this root by
    /// rotation; None: the floor is kept.
    pub time_floor: Option<u64>,
    /// The keys that may sign `halt.toml` (None: this root has no halt role).
    pub halt: Option<TrustPolicy>,
    /// The root file's exact text (kept so a rotated root can be persisted as it was signed).
    text: Option<String>,
}

fn bad(problem: impl Into<String>) -> IndexError {
    IndexError::Root(problem.into())
}

fn policy(role: &str, keys: &[String], threshold: usize) -> Result<TrustPolicy, IndexError> {
    let keys = keys
        .iter()
        .enumerate()
        .map(|(i, k)| PublicKey::parse(k).map_err(|e| bad(format!("{role}_keys[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let distinct: BTreeSet<[u8; 32]> = keys.iter().map(|k| k.key_bytes()).collect();
    if distinct.len() != keys.len() {
        return Err(bad(format!(
            "{role}_keys lists the same key twice, which would let one key count twice"
        )));
    }
    if threshold == 0 || threshold > keys.len() {
        return Err(bad(format!(
            "{role}_threshold {threshold} must be between 1 and the number of {role} keys ({})",
            keys.len()
        )));
    }
    Ok(TrustPolicy { keys, threshold })
}

impl TrustRoot {
    /// A root made of fixed index keys (`index.trusted_keys` in the config): version 0, and
    /// no root keys, so it can never rotate.
    pub fn fixed(index: TrustPolicy) -> TrustRoot {
        TrustRoot {
            version: 0,
            index,
            root: TrustPolicy {
                keys: Vec::new(),
                threshold: 1,
            },
            time_floor: None,
            halt: None,
            text: None,
        }
    }

    /// Parse a root the device already trusts (installed with it, or accepted by rotation).
    pub fn parse(text: &str) -> Result<TrustRoot, IndexError> {
        let doc: RootDoc = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if doc.format != ROOT_FORMAT {
            return Err(bad(format!(
                "format {} is not supported (this fwguard reads {ROOT_FORMAT})",
                doc.format
            )));
        }
        let index = policy("index", &doc.index_keys, doc.index_threshold)?;
        let root = policy("root", &doc.root_keys, doc.root_threshold)?;
        let halt = match (doc.halt_keys.is_empty(), doc.halt_threshold) {
            (true, None) => None,
            (true, Some(_)) => return Err(bad("halt_threshold is set but halt_keys is empty")),
            (false, t) => Some(policy("halt", &doc.halt_keys, t.unwrap_or(1))?),
        };
        if let Some(h) = &halt {
            for (i, k) in h.keys.iter().enumerate() {
                let same = |p: &TrustPolicy| p.keys.iter().any(|o| o.key_bytes() == k.key_bytes());
                if let Some(role) = [("index", &index), ("root", &root)]
                    .into_iter()
                    .find_map(|(r, p)| same(p).then_some(r))
                {
                    return Err(bad(format!(
                        "halt_keys[{i}] is also one of the {role} keys: a halt key must be able to halt and nothing else"
                    )));
                }
            }
        }
        Ok(TrustRoot {
            version: doc.version,
            index,
            root,
            halt,
            time_floor: doc
                .time_floor
                .as_deref()
                .map(parse_time)
                .transpose()
                .map_err(|e| bad(format!("time_floor: {e}")))?,
            text: Some(text.to_string()),
        })
    }

    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// Accept the next root: signed by this root's root keys (checked before parsing), then
    /// by its own root keys, with exactly the next version.
    pub fn rotate(&self, bytes: &[u8], signatures: &[u8]) -> Result<TrustRoot, IndexError> {
        let next = self.version + 1;
        if self.root.keys.is_empty() {
            return Err(bad(
                "this device trusts fixed index keys, not a root with root keys: it cannot rotate",
            ));
        }
        self.root.verify(
            &format!("root version {next} (by root version {})", self.version),
            bytes,
            signatures,
        )?;
        let text = std::str::from_utf8(bytes).map_err(|_| bad("root is not UTF-8"))?;
        let new = TrustRoot::parse(text)?;
        new.root.verify(
            &format!("root version {next} (by its own root keys)"),
            bytes,
            signatures,
        )?;
        if new.version != next {
            return Err(IndexError::RootVersion {
                got: new.version,
                current: self.version,
            });
        }
        Ok(new)
    }
}

/// A root file to write (vendor side).
#[derive(Debug, Clone)]
pub struct NewRoot<'a> {
    pub version: u64,
    pub index: &'a [PublicKey],
    pub index_threshold: usize,
    pub root: &'a [PublicKey],
    pub root_threshold: usize,
    /// Reset the time floor of devices that rotate to this root to this time (unix seconds).
    pub time_floor: Option<u64>,
    /// The halt-only role: its keys (none: no halt role) and threshold.
    pub halt: &'a [PublicKey],
    pub halt_threshold: usize,
}

impl NewRoot<'_> {
    pub fn to_toml(&self) -> String {
        let doc = RootDoc {
            format: ROOT_FORMAT,
            version: self.version,
            index_threshold: self.index_threshold,
            index_keys: self.index.iter().map(PublicKey::to_base64).collect(),
            root_threshold: self.root_threshold,
            root_keys: self.root.iter().map(PublicKey::to_base64).collect(),
            time_floor: self.time_floor.map(format_time),
            halt_threshold: (!self.halt.is_empty()).then_some(self.halt_threshold),
            halt_keys: self.halt.iter().map(PublicKey::to_base64).collect(),
        };
        toml::to_string(&doc).expect("root serialises")
    }
}

/// Write a root file that keeps devices' time floor (vendor side).
pub fn root_toml(
    version: u64,
    index: &[PublicKey],
    index_threshold: usize,
    root: &[PublicKey],
    root_threshold: usize,
) -> String {
    NewRoot {
        version,
        index,
        index_threshold,
        root,
        root_threshold,
        time_floor: None,
        halt: &[],
        halt_threshold: 1,
    }
    .to_toml()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::sign::SecretKey;

    fn new_root(time_floor: Option<u64>) -> String {
        let k = [SecretKey::generate().unwrap().public()];
        NewRoot {
            version: 2,
            index: &k,
            index_threshold: 1,
            root: &k,
            root_threshold: 1,
            time_floor,
            halt: &[],
            halt_threshold: 1,
        }
        .to_toml()
    }

    #[test]
    fn a_root_without_a_time_floor_keeps_the_floor() {
        let text = new_root(None);
        assert!(!text.contains("time_floor"), "{text}");
        assert_eq!(TrustRoot::parse(&text).unwrap().time_floor, None);
    }

    #[test]
    fn a_root_with_a_time_floor_carries_it_in_rfc3339() {
        let text = new_root(Some(1_796_083_200));
        assert!(
            text.contains("time_floor = \"2026-12-01T00:00:00Z\""),
            "{text}"
        );
        assert_eq!(
            TrustRoot::parse(&text).unwrap().time_floor,
            Some(1_796_083_200)
        );
    }

    #[test]
    fn a_time_floor_that_is_not_a_time_is_refused_naming_the_field() {
        let text = new_root(None) + "time_floor = \"soon\"\n";
        let err = TrustRoot::parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("time_floor: \"soon\" is not an RFC 3339"),
            "{err}"
        );
    }

    fn root_with_halt(halt: &[PublicKey], threshold: usize) -> String {
        let (ix, rt) = (
            [SecretKey::generate().unwrap().public()],
            [SecretKey::generate().unwrap().public()],
        );
        NewRoot {
            version: 2,
            index: &ix,
            index_threshold: 1,
            root: &rt,
            root_threshold: 1,
            time_floor: None,
            halt,
            halt_threshold: threshold,
        }
        .to_toml()
    }

    #[test]
    fn the_halt_role_is_optional_and_its_keys_may_have_no_other_role() {
        assert_eq!(TrustRoot::parse(&new_root(None)).unwrap().halt, None);
        let h = [
            SecretKey::generate().unwrap().public(),
            SecretKey::generate().unwrap().public(),
        ];
        let root = TrustRoot::parse(&root_with_halt(&h, 2)).unwrap();
        let halt = root.halt.expect("a halt role");
        assert_eq!((halt.keys.len(), halt.threshold), (2, 2));
        let err = TrustRoot::parse(&root_with_halt(&h, 3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("halt_threshold 3"), "{err}");
        // A key that is an index key (or a root key) and a halt key could do more than halt.
        let text = root_with_halt(&h, 1);
        let doc: RootDoc = toml::from_str(&text).unwrap();
        for role in ["index", "root"] {
            let mut d: RootDoc = toml::from_str(&text).unwrap();
            match role {
                "index" => d.halt_keys.push(doc.index_keys[0].clone()),
                _ => d.halt_keys.push(doc.root_keys[0].clone()),
            }
            let err = TrustRoot::parse(&toml::to_string(&d).unwrap())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("halt_keys[2] is also one of the {role} keys")),
                "{err}"
            );
        }
        let err = TrustRoot::parse(&(new_root(None) + "halt_threshold = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("halt_keys is empty"), "{err}");
    }
}
