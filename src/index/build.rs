//! Vendor side: writing and signing an index (used by `fwguard-index` and the demo).

use super::doc::check_rollout;
use super::part::{Part, RangeDoc};
use super::sign::SecretKey;
use super::{check_release, IndexDoc, IndexMeta, ReleaseDoc, RolloutDoc, WaveDoc, FORMAT};
use crate::time::format_time;
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
    /// Its configuration format version, and the vendor's message for owners whose
    /// firmware cannot take it (OpenWrt's `compat_version` and `compat_message`).
    pub compat_version: Option<crate::carry::CompatVersion>,
    pub compat_message: Option<String>,
    /// A container's boot range (see `Release::boot`).
    pub boot: Option<super::part::BootRange>,
    /// Parts besides the boot image.
    pub parts: Vec<Part>,
    /// How a slot holding it is checked once it has run, when not by the whole image.
    pub verify: Vec<super::extent::Extent>,
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
        let (size, sha256) = hash_file(image)?;
        Ok(NewRelease::new(
            version, boards, channels, urls, size, sha256,
        ))
    }

    /// A release of one image of `size` bytes and hash `sha256`, nothing else set.
    pub fn new(
        version: Version,
        boards: Vec<String>,
        channels: Vec<String>,
        urls: Vec<String>,
        size: u64,
        sha256: [u8; 32],
    ) -> NewRelease {
        NewRelease {
            version,
            boards,
            channels,
            urls,
            size,
            sha256,
            min_from: None,
            compat_version: None,
            compat_message: None,
            boot: None,
            parts: Vec::new(),
            verify: Vec::new(),
        }
    }
}

/// A part for target `target`, its size and sha256 read from `file`.
pub fn part_from_file(
    name: String,
    target: String,
    urls: Vec<String>,
    file: &Path,
) -> std::io::Result<Part> {
    let (size, sha256) = hash_file(file)?;
    Ok(Part {
        name,
        target,
        urls,
        offset: None,
        size,
        sha256,
    })
}

/// A file's size and SHA-256.
fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path)?;
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
    Ok((size, hasher.finalize().into()))
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
            sha256: super::doc::HexSha::Digest(r.sha256),
            min_from: r.min_from,
            pulled: None,
            rollout: None,
            compat_version: r.compat_version,
            compat_message: r.compat_message,
            boot: r.boot.as_ref().map(|b| RangeDoc::from(b).table()),
            parts: r.parts.iter().map(|p| RangeDoc::from(p).table()).collect(),
            verify: r.verify.iter().map(|e| RangeDoc::from(e).table()).collect(),
        };
        check_release(doc.clone())?;
        self.doc.releases.push(doc);
        Ok(())
    }

    /// Apply `change` to the entries of `version`: every board's, or only `board`'s (an
    /// entry that lists `board` among others is split first, so the others stay as they
    /// were). All or nothing: on an error the draft is left as it was. Returns one line per
    /// board of each entry, saying what changed or why it was left as it was; it is an
    /// error when nothing changed.
    fn edit_entries(
        &mut self,
        version: &Version,
        board: Option<&str>,
        mut change: impl FnMut(&mut ReleaseDoc) -> Edit,
    ) -> Result<Vec<String>, String> {
        let mut releases = self.doc.releases.clone();
        let mut picked: Vec<usize> = (0..releases.len())
            .filter(|&i| &releases[i].version == version)
            .collect();
        if picked.is_empty() {
            return Err(format!("the index has no release {version}"));
        }
        if let Some(board) = board {
            let i = *picked
                .iter()
                .find(|&&i| releases[i].boards.iter().any(|b| b == board))
                .ok_or_else(|| {
                    let boards: Vec<&str> = picked
                        .iter()
                        .flat_map(|&i| releases[i].boards.iter().map(String::as_str))
                        .collect();
                    format!(
                        "release {version} has no entry for board {board:?} (its boards: {})",
                        boards.join(", ")
                    )
                })?;
            if releases[i].boards.len() > 1 {
                releases[i].boards.retain(|b| b != board);
                let mut own = releases[i].clone();
                own.boards = vec![board.to_string()];
                releases.insert(i + 1, own);
                picked = vec![i + 1];
            } else {
                picked = vec![i];
            }
        }
        let mut lines = Vec::new();
        let mut changed = false;
        for i in picked {
            let line = match change(&mut releases[i]) {
                Edit::Changed(what) => {
                    changed = true;
                    what
                }
                Edit::Unchanged(why) => format!("left as it was ({why})"),
            };
            for b in &releases[i].boards {
                lines.push(format!("{version} for board {b}: {line}"));
            }
        }
        if !changed {
            return Err(format!("nothing to change: {}", lines.join("; ")));
        }
        self.doc.releases = releases;
        Ok(lines)
    }

    /// Withdraw a release (`Some(reason)`) or put it back (`None`), for every board or one.
    pub fn set_pulled(
        &mut self,
        version: &Version,
        board: Option<&str>,
        reason: Option<String>,
    ) -> Result<Vec<String>, String> {
        if reason.as_deref() == Some("") {
            return Err("a pulled release needs a reason".into());
        }
        self.edit_entries(version, board, |r| match (&r.pulled, &reason) {
            (Some(old), Some(new)) if old == new => Edit::Unchanged("already pulled".into()),
            (None, None) => Edit::Unchanged("not pulled".into()),
            (_, Some(new)) => {
                r.pulled = Some(new.clone());
                Edit::Changed(format!("pulled ({new})"))
            }
            (Some(_), None) => {
                r.pulled = None;
                Edit::Changed("offered again".into())
            }
        })
    }

    /// Set a staged rollout: `waves` are (delay after `start`, percent of devices).
    pub fn set_rollout(
        &mut self,
        version: &Version,
        board: Option<&str>,
        start: u64,
        waves: &[(u64, u8)],
    ) -> Result<Vec<String>, String> {
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
        self.edit_entries(version, board, |r| {
            r.rollout = Some(doc.clone());
            Edit::Changed(format!("rollout set in {} wave(s)", waves.len()))
        })
    }

    /// Halt (`true`) or resume (`false`) a release's rollout, for every board or one.
    pub fn set_halted(
        &mut self,
        version: &Version,
        board: Option<&str>,
        halted: bool,
    ) -> Result<Vec<String>, String> {
        let verb = if halted { "halted" } else { "resumed" };
        self.edit_entries(version, board, |r| match r.rollout.as_mut() {
            None => Edit::Unchanged("no rollout".into()),
            Some(ro) if ro.halted == halted => Edit::Unchanged(format!("rollout already {verb}")),
            Some(ro) => {
                ro.halted = halted;
                Edit::Changed(format!("rollout {verb}"))
            }
        })
    }

    /// Whether a release of the index lists `board`.
    pub fn has_board(&self, board: &str) -> bool {
        self.doc
            .releases
            .iter()
            .any(|r| r.boards.iter().any(|b| b == board))
    }

    /// Set (`Some`) or clear (`None`) the security floor of `board`; returns the one it had.
    pub fn set_security_floor(&mut self, board: &str, floor: Option<Version>) -> Option<Version> {
        match floor {
            Some(v) => self.doc.index.security_floor.insert(board.to_string(), v),
            None => self.doc.index.security_floor.remove(board),
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(&self.doc).expect("index document serialises")
    }
}

/// What an edit did to one entry.
enum Edit {
    Changed(String),
    Unchanged(String),
}

/// Sign the exact bytes of an index file; returns the signature file text.
pub fn sign_bytes(key: &SecretKey, bytes: &[u8], key_name: &str) -> String {
    key.sign(bytes).to_file(&format!("verify with {key_name}"))
}
