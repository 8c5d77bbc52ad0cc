//! Offline install (`fwguard install PATH`): from a directory or USB stick holding a copy of
//! the vendor's signed index and its images, or from one image file with the signed index
//! next to it (or given). The same checks as online: the index's signatures, freshness and
//! replay protection, the board, the security floor, pulled releases, the image's size and
//! hash while it streams and again read back, and its header.

use super::source::Source;
use super::{Action, Agent, By, UpdateMode};
use crate::error::{Error, Result};
use crate::index::select::Choice;
use crate::index::VerifiedIndex;
use crate::state::PersistedState;
use crate::version::Version;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// An image file to install, identified in the signed index by its hash.
pub(super) struct ImageFile {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// The `file://` URL of `path`, made absolute but not resolved: a symbolic link anywhere in
/// it is then refused when the file is read.
pub(super) fn file_url(path: &Path) -> Result<String> {
    let abs = std::path::absolute(path).map_err(|source| Error::Medium {
        path: path.to_path_buf(),
        source,
    })?;
    // `.` and `..` resolved by name, not by following anything.
    let mut clean = std::path::PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let abs = clean;
    reqwest::Url::from_file_path(&abs)
        .map(|u| u.to_string())
        .map_err(|_| Error::Refused(format!("{}: not a usable path", abs.display())))
}

impl Agent {
    /// `fwguard install PATH [--index INDEX]`: PATH is a directory holding `index.toml`
    /// (with `index.toml.sig`) and the images it names, an index file, or an image file
    /// (then the index is INDEX, or `index.toml` beside the image).
    pub async fn install_offline(
        &self,
        path: &Path,
        index: Option<&Path>,
        mode: UpdateMode,
        force: bool,
    ) -> Result<Action> {
        let meta = std::fs::symlink_metadata(path).map_err(|source| Error::Medium {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.file_type().is_symlink() {
            return Err(Error::Refused(format!(
                "{} is a symbolic link; fwguard installs nothing through one: give the real path",
                path.display()
            )));
        }
        let (index_path, image) = if meta.is_dir() {
            (
                index
                    .map(Path::to_path_buf)
                    .unwrap_or(path.join("index.toml")),
                None,
            )
        } else if index.is_none() && path.extension().is_some_and(|e| e == "toml") {
            (path.to_path_buf(), None)
        } else {
            let beside = path.parent().unwrap_or(Path::new(".")).join("index.toml");
            (
                index.map(Path::to_path_buf).unwrap_or(beside),
                Some(hash_file(path)?),
            )
        };
        let index_url = file_url(&index_path)?;
        let source = match image {
            None => Source::Index { url: index_url },
            Some(image) => Source::Image { index_url, image },
        };
        self.update_from(mode, By::Owner { force }, &source).await
    }

    /// The release an image file is, by its hash among this board's releases, with the
    /// checks a pin of that version gets (not pulled, not below the floor); its bytes then
    /// come from the file. Everything that can be known before writing is checked here:
    /// an image of another board, or one whose version this board's index entry gives
    /// other bytes, is refused with nothing written.
    pub(super) fn choose_image(
        &self,
        index: &VerifiedIndex,
        st: &PersistedState,
        running: Option<&Version>,
        image: &ImageFile,
    ) -> Result<Choice> {
        let board = &self.board.id;
        let same = |r: &&crate::index::Release| r.sha256 == image.sha256 && r.size == image.size;
        let for_board = |r: &&crate::index::Release| r.boards.iter().any(|b| b == board);
        let Some(release) = index.releases().iter().filter(for_board).find(same) else {
            let elsewhere = index.releases().iter().find(same);
            return Err(Error::NotInIndex(match elsewhere {
                Some(r) => format!(
                    "{} is release {} for board {}, not for this board ({board}); nothing was written",
                    image.path.display(),
                    r.version,
                    r.boards.join(", ")
                ),
                None => format!(
                    "{} (sha256 {}) is not a release in the signed index",
                    image.path.display(),
                    hex::encode(image.sha256)
                ),
            }));
        };
        Ok(
            match self.choose_pinned(index, st, running, &release.version, false)? {
                Choice::Install(mut r) => {
                    if !same(&&*r) {
                        return Err(Error::NotInIndex(format!(
                        "the signed index lists {} for this board ({board}) with another image than {}; nothing was written",
                        r.version,
                        image.path.display()
                    )));
                    }
                    r.urls = vec![file_url(&image.path)?];
                    // A container's parts are in the file; others are files of their own.
                    for p in r.parts.iter_mut().filter(|p| p.offset.is_none()) {
                        p.urls = vec![file_url(&part_beside(&image.path, &r.version, p)?)?];
                    }
                    Choice::Install(r)
                }
                up_to_date => up_to_date,
            },
        )
    }
}

/// Where an image file's part is: the file next to the image named as the part's first
/// source names it (the vendor publishes a release's files side by side).
fn part_beside(
    image: &Path,
    version: &Version,
    p: &crate::index::part::Part,
) -> Result<std::path::PathBuf> {
    let name = p
        .urls
        .first()
        .map(|u| u.split(['?', '#']).next().unwrap_or(u))
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..");
    let path = name.and_then(|n| Some(image.parent()?.join(n)));
    match path {
        Some(path) if path.is_file() => Ok(path),
        _ => Err(Error::Refused(format!(
            "{version} is a release of several parts, and its part {:?} ({}) is not next to {}: put the release's files side by side, or install from the release's directory with its index; nothing was written",
            p.name,
            name.unwrap_or("a file"),
            image.display()
        ))),
    }
}

pub(super) fn hash_file(path: &Path) -> Result<ImageFile> {
    let err = |source| Error::Medium {
        path: path.to_path_buf(),
        source,
    };
    hash_reader(path, std::fs::File::open(path).map_err(err)?)
}

/// Hash an image opened already (as `path`).
pub(super) fn hash_reader(path: &Path, mut f: impl std::io::Read) -> Result<ImageFile> {
    let err = |source| Error::Medium {
        path: path.to_path_buf(),
        source,
    };
    let mut h = Sha256::new();
    let size = std::io::copy(&mut f, &mut h).map_err(err)?;
    Ok(ImageFile {
        path: path.to_path_buf(),
        size,
        sha256: h.finalize().into(),
    })
}
