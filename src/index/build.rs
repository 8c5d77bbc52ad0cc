//! Vendor side: writing and signing an index (used by `fwguard-index` and the demo).

use super::doc::check_rollout;
use super::sign::SecretKey;
use super::{
    check_release, format_time, IndexDoc, IndexMeta, ReleaseDoc, RolloutDoc, WaveDoc, FORMAT,
};
use crate::version::Version;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// An index being edited by the vendor.
#[derive(Debug)]
pub struct IndexDraft {
    doc: IndexDoc,
}

/// One release to add.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub version: Version,
    pub boards: Vec<String>,
    pub channels: Vec<String>,
    pub urls: Vec<String>,
    pub size: u64,
    pub sha256: [u8; 32],
    /// The lowest running version it may be installed from.
    pub min_from: Option<Version>,
}

impl NewRelease {
    /// Fill size and sha256 by reading the image file.
    pub fn from_image(
        version: Version,
        boards: Vec<String>,
        channels: Vec<String>,
        urls: Vec<String>,
        image: &Path,
    ) -> std::io::Result<NewRelease> {
        let mut f = std::fs::File::open(image)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(NewRelease {
            version,
            boards,
            channels,
            urls,
            size,
            sha256: hasher.finalize().into(),
            min_from: None,
        })
    }
}

impl IndexDraft {
    pub fn new(version: u64, issued_at: u64, expires: u64) -> IndexDraft {
        IndexDraft {
            doc: IndexDoc {
                index: IndexMeta {
                    format: FORMAT,
                    version,
                    issued_at: format_time(issued_at),
                    expires: format_time(expires),
                    security_floor: Default::default(),
                },
                releases: Vec::new(),
            },
        }
    }

    /// Read an index file the vendor wrote earlier.
    pub fn parse(text: &str) -> Result<IndexDraft, String> {
        let doc: IndexDoc = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, r) in doc.releases.iter().enumerate() {
            check_release(r.clone()).map_err(|e| format!("release #{}: {e}", i + 1))?;
        }
        Ok(IndexDraft { doc })
    }

    pub fn version(&self) -> u64 {
        self.doc.index.version
    }

    /// Bump the index version and its times (every published change needs a new version).
    pub fn bump(&mut self, issued_at: u64, expires: u64) {
        self.doc.index.version += 1;
        self.doc.index.issued_at = format_time(issued_at);
        self.doc.index.expires = format_time(expires);
    }

    pub fn add_release(&mut self, r: NewRelease) -> Result<(), String> {
        if self
            .doc
            .releases
            .iter()
            .any(|x| x.version == r.version && x.boards.iter().any(|b| r.boards.contains(b)))
        {
            return Err(format!(
                "release {} already exists for one of these boards",
                r.version
            ));
        }
        let doc = ReleaseDoc {
            version: r.version,
            boards: r.boards,
            channels: r.channels,
            urls: r.urls,
            size: r.size,
            sha256: hex::encode(r.sha256),
            min_from: r.min_from,
            pulled: None,
            rollout: None,
        };
        check_release(doc.clone())?;
        self.doc.releases.push(doc);
        Ok(())
    }

    fn release_mut(&mut self, version: &Version) -> Result<&mut ReleaseDoc, String> {
        self.doc
            .releases
            .iter_mut()
            .find(|r| &r.version == version)
            .ok_or_else(|| format!("the index has no release {version}"))
    }

    /// Withdraw a release (`Some(reason)`) or put it back (`None`).
    pub fn set_pulled(&mut self, version: &Version, reason: Option<String>) -> Result<(), String> {
        if reason.as_deref() == Some("") {
            return Err("a pulled release needs a reason".into());
        }
        self.release_mut(version)?.pulled = reason;
        Ok(())
    }

    /// Set a staged rollout: `waves` are (delay after `start`, percent of devices).
    pub fn set_rollout(
        &mut self,
        version: &Version,
        start: u64,
        waves: &[(u64, u8)],
    ) -> Result<(), String> {
        let doc = RolloutDoc {
            start: format_time(start),
            waves: waves
                .iter()
                .map(|(after, percent)| WaveDoc {
                    after: format!("{after}s"),
                    percent: *percent,
                })
                .collect(),
            halted: false,
        };
        check_rollout(&doc)?;
        self.release_mut(version)?.rollout = Some(doc);
        Ok(())
    }

    /// Halt (`true`) or resume (`false`) a release's rollout.
    pub fn set_halted(&mut self, version: &Version, halted: bool) -> Result<(), String> {
        let r = self.release_mut(version)?;
        let ro = r
            .rollout
            .as_mut()
            .ok_or_else(|| format!("release {} has no rollout", r.version))?;
        ro.halted = halted;
        Ok(())
    }

    /// Set (`Some`) or clear (`None`) the security floor of `board`.
    pub fn set_security_floor(&mut self, board: &str, floor: Option<Version>) {
        match floor {
            Some(v) => self.doc.index.security_floor.insert(board.to_string(), v),
            None => self.doc.index.security_floor.remove(board),
        };
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(&self.doc).expect("index document serialises")
    }
}

/// Sign the exact bytes of an index file; returns the signature file text.
pub fn sign_bytes(key: &SecretKey, bytes: &[u8], key_name: &str) -> String {
    key.sign(bytes).to_file(&format!("verify with {key_name}"))
}
