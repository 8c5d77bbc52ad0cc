//! The archive of known-good images, in a directory the owner gives (USB storage, a spare
//! partition):
//!
//! ```text
//! <dir>/<version>/index.toml       the signed index the image was installed from
//! <dir>/<version>/index.toml.sig   its detached signatures, as fetched
//! <dir>/<version>/image.bin        the image, copied from the slot it was committed in
//! <dir>/.incoming/<version>/       the signed index of a release not archived yet
//! ```
//!
//! An entry is assembled in `<dir>/.tmp-<version>` and renamed into place, so a power cut
//! leaves a complete entry or none. Nothing here is trusted when read back: the agent
//! verifies the index's signatures against the trust root in force and the image's hash
//! against the entry before it lists or installs anything.

use crate::index::UntrustedIndex;
use crate::safedir::{Kind, SafeDir};
use crate::version::Version;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const INDEX: &str = "index.toml";
pub const SIGNATURES: &str = "index.toml.sig";
pub const IMAGE: &str = "image.bin";

/// The file of a release's part `name` in an entry (part names are `a-z 0-9 _ -`).
pub fn part_file(name: &str) -> String {
    format!("part-{name}.bin")
}
const INCOMING: &str = ".incoming";
const TEMP_PREFIX: &str = ".tmp-";
const OLD_PREFIX: &str = ".old-";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive: {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive: no image of version {version} is kept in {dir}")]
    Missing { version: Version, dir: PathBuf },
    #[error("archive: {path} is larger than the {max} bytes allowed")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("archive: {path}: {problem}")]
    Mismatch { path: PathBuf, problem: String },
}

impl ArchiveError {
    /// The archive's contents disagree with the signed index kept with them.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            ArchiveError::Mismatch { .. } | ArchiveError::TooLarge { .. }
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read at most `max` bytes of the file `name` in `dir`, refusing a longer file.
fn read_bounded(dir: &SafeDir, name: &str, max: u64) -> Result<Vec<u8>, ArchiveError> {
    let path = dir.path().join(name);
    let f = dir.open(name).map_err(io(&path))?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).map_err(io(&path))?;
    if bytes.len() as u64 > max {
        return Err(ArchiveError::TooLarge { path, max });
    }
    Ok(bytes)
}

/// Bounds for the signed index files read back from the archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub index: u64,
    pub signatures: u64,
}

/// The archive. Everything in it is reached through [`SafeDir`]: a symlink planted on the
/// storage (the root itself, `.incoming`, an entry, a file) is never followed, so nothing
/// outside the archive is read, written or removed through one.
#[derive(Debug, Clone)]
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    pub fn new(dir: impl Into<PathBuf>) -> Archive {
        Archive { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The archive's directory, opened (refused when it is a symlink or not mounted).
    fn root(&self) -> Result<SafeDir, ArchiveError> {
        SafeDir::open_root(&self.dir).map_err(io(&self.dir))
    }

    pub fn entry_dir(&self, v: &Version) -> PathBuf {
        self.dir.join(v.as_str())
    }

    pub fn image_path(&self, v: &Version) -> PathBuf {
        self.entry_dir(v).join(IMAGE)
    }

    /// The entry of `v`, if it is a real directory.
    fn entry(&self, v: &Version) -> Result<SafeDir, ArchiveError> {
        let root = self.root()?;
        match root.kind(v.as_str()).map_err(io(&self.dir))? {
            Some(Kind::Dir) => root.dir(v.as_str()).map_err(io(&self.entry_dir(v))),
            _ => Err(ArchiveError::Missing {
                version: v.clone(),
                dir: self.dir.clone(),
            }),
        }
    }

    /// The size of the image kept for `v` (a link there is refused).
    pub fn image_len(&self, v: &Version) -> Result<u64, ArchiveError> {
        self.file_len(v, IMAGE)
    }

    /// The image kept for `v`, opened for reading (a link there is refused).
    pub fn open_image(&self, v: &Version) -> Result<File, ArchiveError> {
        self.open_file(v, IMAGE)
    }

    /// The size of file `name` of the entry for `v` (a link there is refused).
    pub fn file_len(&self, v: &Version, name: &str) -> Result<u64, ArchiveError> {
        self.entry(v)?
            .file_len(name)
            .map_err(io(&self.entry_dir(v).join(name)))
    }

    /// File `name` of the entry for `v`, opened for reading (a link there is refused).
    pub fn open_file(&self, v: &Version, name: &str) -> Result<File, ArchiveError> {
        self.entry(v)?
            .open(name)
            .map_err(io(&self.entry_dir(v).join(name)))
    }

    /// The versions with an entry, lowest first (a directory named as a version).
    pub fn versions(&self) -> Result<Vec<Version>, ArchiveError> {
        let mut out: Vec<Version> = self
            .root()?
            .entries()
            .map_err(io(&self.dir))?
            .into_iter()
            .filter(|(_, k)| *k == Kind::Dir)
            .filter_map(|(name, _)| name.parse().ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Whether an entry for `v` holds an image of `size` bytes (its contents are checked
    /// when it is listed or installed).
    pub fn holds(&self, v: &Version, size: u64) -> bool {
        self.image_len(v).is_ok_and(|len| len == size)
    }

    fn read_signed(&self, dir: &SafeDir, limits: Limits) -> Result<UntrustedIndex, ArchiveError> {
        Ok(UntrustedIndex {
            bytes: read_bounded(dir, INDEX, limits.index)?,
            signatures: read_bounded(dir, SIGNATURES, limits.signatures)?,
        })
    }

    /// The signed index kept with the entry for `v` (not verified here).
    pub fn entry_index(&self, v: &Version, limits: Limits) -> Result<UntrustedIndex, ArchiveError> {
        self.read_signed(&self.entry(v)?, limits)
    }

    fn incoming(&self, v: &Version) -> Option<SafeDir> {
        self.root().ok()?.dir(INCOMING).ok()?.dir(v.as_str()).ok()
    }

    /// The signed index kept for `v` before its image was archived, if any.
    pub fn incoming_index(&self, v: &Version, limits: Limits) -> Option<UntrustedIndex> {
        self.read_signed(&self.incoming(v)?, limits).ok()
    }

    /// Keep the signed index a release of version `v` is installed from, until its image is
    /// archived. Writes nothing when the same bytes are kept already; returns whether it
    /// wrote.
    pub fn keep_index(&self, v: &Version, signed: &UntrustedIndex) -> Result<bool, ArchiveError> {
        let unbounded = Limits {
            index: signed.bytes.len() as u64,
            signatures: signed.signatures.len() as u64,
        };
        if self
            .incoming(v)
            .and_then(|d| self.read_signed(&d, unbounded).ok())
            .is_some_and(|kept| kept.bytes == signed.bytes && kept.signatures == signed.signatures)
        {
            return Ok(false);
        }
        // The archive's storage not mounted (or its root a link): nothing is created.
        let root = self.root()?;
        let at = self.dir.join(INCOMING).join(v.as_str());
        let dir = root
            .create_dir(INCOMING)
            .and_then(|d| d.create_dir(v.as_str()))
            .map_err(io(&at))?;
        // The signatures go second: a kept index is whole only once both are in place, and
        // a mismatched pair fails verification (it is then kept again).
        dir.write_atomic(INDEX, &signed.bytes).map_err(io(&at))?;
        dir.write_atomic(SIGNATURES, &signed.signatures)
            .map_err(io(&at))?;
        Ok(true)
    }

    /// Forget the kept index of `v`.
    pub fn drop_incoming(&self, v: &Version) -> Result<(), ArchiveError> {
        let at = self.dir.join(INCOMING);
        let root = self.root()?;
        match root.kind(INCOMING).map_err(io(&at))? {
            Some(Kind::Dir) => root
                .dir(INCOMING)
                .and_then(|d| d.remove_all(v.as_str()))
                .map_err(io(&at)),
            // A planted link (or anything else) named .incoming goes, not what it points at.
            Some(_) => root.remove_all(INCOMING).map_err(io(&at)),
            None => Ok(()),
        }
    }

    /// The versions with a kept index.
    pub fn incoming_versions(&self) -> Vec<Version> {
        let Some(dir) = self.root().ok().and_then(|r| r.dir(INCOMING).ok()) else {
            return Vec::new();
        };
        dir.entries()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, k)| *k == Kind::Dir)
            .filter_map(|(name, _)| name.parse().ok())
            .collect()
    }

    /// Remove what a power cut left of an entry being assembled or replaced.
    pub fn clean_leftovers(&self) -> Result<(), ArchiveError> {
        let root = self.root()?;
        for (name, _) in root.entries().map_err(io(&self.dir))? {
            if name.starts_with(TEMP_PREFIX) || name.starts_with(OLD_PREFIX) {
                let p = self.dir.join(&name);
                tracing::info!(
                    "archive: removing {}, left by an interrupted copy",
                    p.display()
                );
                root.remove_all(&name).map_err(io(&p))?;
            }
        }
        Ok(())
    }

    /// Begin the entry for `v`: the signed index, synced, in a temporary directory, and
    /// an empty image file there for the caller to fill; [`NewEntry::finish`] puts it in
    /// place. An entry never finished is a leftover that [`Archive::clean_leftovers`]
    /// removes.
    pub fn begin(&self, v: &Version, signed: &UntrustedIndex) -> Result<NewEntry, ArchiveError> {
        let root = self.root()?;
        let tmp_name = format!("{TEMP_PREFIX}{v}");
        let at = self.dir.join(&tmp_name);
        root.remove_all(&tmp_name).map_err(io(&at))?;
        let tmp = root.create_dir(&tmp_name).map_err(io(&at))?;
        for (name, bytes) in [(INDEX, &signed.bytes), (SIGNATURES, &signed.signatures)] {
            tmp.write_synced(name, bytes).map_err(io(&at.join(name)))?;
        }
        let image = tmp.create_new(IMAGE).map_err(io(&at.join(IMAGE)))?;
        Ok(NewEntry {
            root,
            dir: self.dir.clone(),
            version: v.clone(),
            tmp_name,
            tmp,
            file: image,
            file_name: IMAGE.to_string(),
        })
    }

    /// The versions a prune to `keep` would leave if `adding` were archived too (so that an
    /// image about to be pruned again is not copied at all).
    pub fn survivors(
        &self,
        adding: &[Version],
        keep: usize,
        running: Option<&Version>,
    ) -> Result<Vec<Version>, ArchiveError> {
        let mut all = self.versions()?;
        all.extend_from_slice(adding);
        Ok(kept(all, keep, running))
    }

    /// Keep at most `keep` entries: `running` (when archived) and the highest versions.
    /// Returns the versions removed.
    pub fn prune(
        &self,
        keep: usize,
        running: Option<&Version>,
    ) -> Result<Vec<Version>, ArchiveError> {
        let versions = self.versions()?;
        let stay = kept(versions.clone(), keep, running);
        let root = self.root()?;
        let mut removed = Vec::new();
        for v in versions.into_iter().rev().filter(|v| !stay.contains(v)) {
            root.remove_all(v.as_str())
                .map_err(io(&self.entry_dir(&v)))?;
            removed.push(v);
        }
        if !removed.is_empty() {
            root.sync().map_err(io(&self.dir))?;
        }
        Ok(removed)
    }
}

/// Which of `versions` a prune to `keep` leaves: `running` if among them, then the highest.
fn kept(mut versions: Vec<Version>, keep: usize, running: Option<&Version>) -> Vec<Version> {
    versions.sort();
    versions.dedup();
    let mut stay: Vec<Version> = running
        .filter(|r| versions.contains(r))
        .cloned()
        .into_iter()
        .collect();
    for v in versions.into_iter().rev() {
        if stay.len() >= keep {
            break;
        }
        if !stay.contains(&v) {
            stay.push(v);
        }
    }
    stay
}

/// An archive entry being assembled (see [`Archive::begin`]).
pub struct NewEntry {
    root: SafeDir,
    dir: PathBuf,
    version: Version,
    tmp_name: String,
    tmp: SafeDir,
    /// The file being written: the image, then each part's.
    file: File,
    file_name: String,
}

impl NewEntry {
    /// Append to the file being written (the image, until [`NewEntry::next_file`]).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        let path = self.tmp.path().join(&self.file_name);
        self.file.write_all(bytes).map_err(io(&path))
    }

    /// Flush what was written so far to the storage (so that the final sync of a large
    /// image does not wait on all of it at once).
    pub fn sync(&mut self) -> Result<(), ArchiveError> {
        let path = self.tmp.path().join(&self.file_name);
        self.file.sync_data().map_err(io(&path))
    }

    /// Sync the file written so far and go on with a new one, `name` (a part's).
    pub fn next_file(&mut self, name: &str) -> Result<(), ArchiveError> {
        let path = self.tmp.path().join(&self.file_name);
        self.file.sync_all().map_err(io(&path))?;
        let next = self.tmp.path().join(name);
        self.file = self.tmp.create_new(name).map_err(io(&next))?;
        self.file_name = name.to_string();
        Ok(())
    }

    /// Sync the last file and rename the entry into place, replacing an older entry for
    /// the same version.
    pub fn finish(self) -> Result<(), ArchiveError> {
        let last = self.tmp.path().join(&self.file_name);
        self.file.sync_all().map_err(io(&last))?;
        drop(self.file);
        self.tmp.sync().map_err(io(self.tmp.path()))?;
        crate::failpoint::hit("archive-copied");
        let v = self.version.as_str();
        let dest = self.dir.join(v);
        let old = format!("{OLD_PREFIX}{v}");
        let replacing = self.root.kind(v).map_err(io(&dest))?.is_some();
        if replacing {
            self.root.rename(v, &old).map_err(io(&dest))?;
        }
        self.root.rename(&self.tmp_name, v).map_err(io(&dest))?;
        self.root.sync().map_err(io(&self.dir))?;
        if replacing {
            self.root
                .remove_all(&old)
                .map_err(io(&self.dir.join(&old)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "archive_dir_tests.rs"]
mod tests;
