//! The archive of known-good images (`[archive] dir`): the signed index a release was
//! installed from is kept on the archive's storage; once the release is known-good, the
//! daemon copies its image out of the slot next to that index. `fwguard archive install`
//! puts one back after the vendor has pulled it, verified against the kept signed index
//! (signatures against the trust root in force, board, size and hash) and today's security
//! floor. Archiving never writes the state.

use super::check::MAX_SIG_BYTES;
use super::offline::hash_reader;
use super::source::Source;
use super::{Action, Agent, By, UpdateMode};
use crate::archive_dir::{part_file, Archive, ArchiveError, Limits, NewEntry, IMAGE};
use crate::config::ConfigError;
use crate::error::{Error, Result};
use crate::flash::{self, FlashError, SlotDevice};
use crate::index::{IndexError, Release, UntrustedIndex, VerifiedIndex};
use crate::slot::Slot;
use crate::state::{part_records, PartRecord, PersistedState, SlotRecord, UpdateState};
use crate::time::format_time;
use crate::version::Version;
use serde::Serialize;
use std::path::PathBuf;

/// One archived image, as `fwguard archive list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ArchivedImage {
    pub version: Version,
    pub path: PathBuf,
    /// What is wrong with the entry; None when it verified.
    pub problem: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// The kept signed index: its version and when it was issued.
    pub index_version: Option<u64>,
    pub index_issued_at: Option<String>,
    pub running: bool,
    /// The security floor it is below, if any (installing it needs `--force-insecure`).
    pub below_floor: Option<Version>,
    /// The vendor withdrew it since (the newest index accepted says why).
    pub withdrawn: Option<String>,
}

/// An archived entry that verified.
pub(super) struct Opened {
    pub index: VerifiedIndex,
    pub release: Release,
    pub image: PathBuf,
    /// Each part's file, in the release's order.
    pub parts: Vec<PathBuf>,
}

fn mismatch(rec: &SlotRecord, r: &Release) -> Option<String> {
    let boot = r.boot_image();
    if hex::encode(boot.sha256) != rec.sha256 || boot.size != rec.size {
        return Some(format!(
            "the kept signed index lists {} with another image (sha256 {}, {} bytes) than the slot holds",
            r.version,
            hex::encode(boot.sha256),
            boot.size
        ));
    }
    if part_records(r) != rec.parts {
        return Some(format!(
            "the kept signed index lists {} with other parts than the slot holds",
            r.version
        ));
    }
    None
}

/// Check an archived file (`what`: the image, a part) against the size and hash the kept
/// index gives, its size first (a file of another size is not read: it could be any size).
fn check_file(
    a: &Archive,
    version: &Version,
    name: &str,
    what: &str,
    size: u64,
    sha256: &[u8; 32],
) -> Result<PathBuf> {
    let path = a.entry_dir(version).join(name);
    if let Ok(len) = a.file_len(version, name) {
        if len != size {
            return Err(ArchiveError::Mismatch {
                path,
                problem: format!(
                    "{len} bytes; the signed index kept with it says {size} bytes for {what}"
                ),
            }
            .into());
        }
    }
    let got = hash_reader(&path, a.open_file(version, name)?)?;
    if got.size != size || &got.sha256 != sha256 {
        return Err(ArchiveError::Mismatch {
            path,
            problem: format!(
                "{} bytes with sha256 {}; the signed index kept with it says {size} bytes with sha256 {} for {what}",
                got.size,
                hex::encode(got.sha256),
                hex::encode(sha256)
            ),
        }
        .into());
    }
    Ok(path)
}

impl Agent {
    pub(super) fn archive_store(&self) -> Result<Archive> {
        match &self.settings.archive {
            Some(a) => Ok(Archive::new(&a.dir)),
            None => Err(Error::Config(ConfigError::Invalid {
                path: self.settings.path.clone(),
                key: "archive.dir".into(),
                problem: "not set: no archive of known-good images is configured".into(),
            })),
        }
    }

    fn archive_limits(&self) -> Limits {
        Limits {
            index: self.settings.index.max_index_bytes,
            signatures: MAX_SIG_BYTES,
        }
    }

    /// The release a kept index vouches for as `version` on this board, its signatures
    /// checked against the trust root in force.
    fn archived_release(
        &self,
        st: &PersistedState,
        signed: UntrustedIndex,
        version: &Version,
    ) -> Result<(VerifiedIndex, Release)> {
        let root = self.trust_root(st)?;
        let index = signed.verify_archived(&root.index)?;
        let release = index
            .releases()
            .iter()
            .find(|r| &r.version == version && r.boards.iter().any(|b| b == &self.board.id))
            .cloned()
            .ok_or_else(|| IndexError::NotListed {
                version: version.to_string(),
                board: self.board.id.clone(),
            })?;
        Ok((index, release))
    }

    /// Verify the entry for `version`: its kept index, then its image's size and hash.
    pub(super) fn open_archived(
        &self,
        a: &Archive,
        st: &PersistedState,
        version: &Version,
    ) -> Result<Opened> {
        let signed = a.entry_index(version, self.archive_limits())?;
        let (index, release) = self.archived_release(st, signed, version)?;
        // What the slot held: the boot image (of a container, its range), and each part.
        let boot = release.boot_image();
        let image = check_file(a, version, IMAGE, "its image", boot.size, &boot.sha256)?;
        let parts = release
            .parts
            .iter()
            .map(|p| {
                let what = format!("its part {:?}", p.name);
                check_file(a, version, &part_file(&p.name), &what, p.size, &p.sha256)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Opened {
            index,
            release,
            image,
            parts,
        })
    }

    /// The security floor in force for this board: the newest accepted index's, or a
    /// higher one in `kept`.
    pub(super) fn floor_now(
        &self,
        st: &PersistedState,
        kept: Option<&VerifiedIndex>,
    ) -> Option<Version> {
        let today = st
            .last_index
            .as_ref()
            .and_then(|l| l.security_floor.clone());
        let then = kept.and_then(|i| i.security_floor(&self.board.id).cloned());
        today.max(then)
    }

    /// `fwguard archive list`: every entry, each verified (read-only; no lock taken).
    pub fn archive_list(&self) -> Result<Vec<ArchivedImage>> {
        let a = self.archive_store()?;
        let st = self.load()?;
        let running = self.booted().ok().and_then(|b| Agent::version_in(&st, b));
        let pulled = st
            .last_index
            .as_ref()
            .map(|l| l.pulled.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for v in a.versions()? {
            let opened = self.open_archived(&a, &st, &v);
            let index = opened.as_ref().ok().map(|o| &o.index);
            out.push(ArchivedImage {
                running: running.as_ref() == Some(&v),
                below_floor: self.floor_now(&st, index).filter(|f| &v < f),
                withdrawn: pulled.get(v.as_str()).cloned(),
                path: a.entry_dir(&v),
                problem: opened.as_ref().err().map(|e| e.to_string()),
                size: opened.as_ref().ok().map(|o| o.release.boot_image().size),
                sha256: opened
                    .as_ref()
                    .ok()
                    .map(|o| hex::encode(o.release.boot_image().sha256)),
                index_version: index.map(|i| i.version()),
                index_issued_at: index.map(|i| format_time(i.issued_at())),
                version: v,
            });
        }
        Ok(out)
    }

    /// `fwguard archive install VERSION`: reinstall an archived image into the inactive slot
    /// and boot it on trial, pinned (the channel would otherwise replace it). Refused, with
    /// nothing written, unless its kept index verifies against the trust root in force and
    /// lists it for this board with the archived image's size and hash, and unless it is at
    /// or above today's security floor (`force_insecure` overrides, logged).
    pub async fn archive_install(
        &self,
        version: Version,
        force_insecure: bool,
        force: bool,
    ) -> Result<Action> {
        // Refused before anything else when no archive is configured.
        self.archive_store()?;
        let source = Source::Archive {
            version,
            force_insecure,
        };
        self.update_from(UpdateMode::Install, By::Owner { force }, &source)
            .await
    }

    /// At install time: keep the signed index `release` comes from on the archive's storage
    /// until its image can be archived. Never fails the install.
    pub(super) fn archive_keep_index(&self, index: &VerifiedIndex, release: &Release) {
        let Some(cfg) = &self.settings.archive else {
            return;
        };
        match Archive::new(&cfg.dir).keep_index(&release.version, index.signed()) {
            Ok(true) => tracing::debug!("archive: kept the signed index for {}", release.version),
            Ok(false) => {}
            Err(e) => tracing::warn!("{e}; {} will not be archived", release.version),
        }
    }

    /// After an index is verified: when it lists a known-good slot's image (same size and
    /// hash) that the archive holds no copy or kept index of, keep it for that image (the
    /// firmware the device came with has no other chance).
    pub(super) fn archive_note(&self, index: &VerifiedIndex, st: &PersistedState) {
        let Some(cfg) = &self.settings.archive else {
            return;
        };
        let a = Archive::new(&cfg.dir);
        for slot in [Slot::A, Slot::B] {
            let Some(rec) = st.slot(slot).filter(|r| r.good) else {
                continue;
            };
            if a.holds(&rec.version, rec.size)
                || a.incoming_index(&rec.version, self.archive_limits())
                    .is_some()
            {
                continue;
            }
            let listed = index.releases().iter().find(|r| {
                r.version == rec.version
                    && r.boards.iter().any(|b| b == &self.board.id)
                    && mismatch(rec, r).is_none()
            });
            if let Some(r) = listed {
                self.archive_keep_index(index, r);
            }
        }
    }

    /// The daemon, between rounds: copy each known-good slot's image whose signed index is
    /// kept into the archive, prune it to `keep`, drop kept indexes no slot needs. Logs
    /// what fails and carries on; skipped while anything else holds the state lock.
    pub(super) async fn archive_known_good(&self) {
        if self.settings.archive.is_none() {
            return;
        }
        if let Err(e) = self.try_archive().await {
            tracing::warn!("archive: {e}");
        }
    }

    async fn try_archive(&self) -> Result<()> {
        let cfg = self
            .settings
            .archive
            .as_ref()
            .expect("checked by the caller");
        let a = Archive::new(&cfg.dir);
        let _lock = match self.lock() {
            Err(Error::InUse { .. }) => return Ok(()),
            other => other?,
        };
        let st = self.load()?;
        if !matches!(st.update, UpdateState::Idle | UpdateState::Staged { .. }) {
            return Ok(());
        }
        let records: Vec<(Slot, &SlotRecord)> = [Slot::A, Slot::B]
            .into_iter()
            .filter_map(|s| Some((s, st.slot(s)?)))
            .collect();
        let todo: Vec<_> = records
            .iter()
            .filter(|(_, r)| r.good && !a.holds(&r.version, r.size))
            // A firmware checked by extents changed its own bytes when it ran: the slot no
            // longer holds the signed image to copy.
            .filter(|(_, r)| r.verify.is_empty())
            .filter_map(|(s, r)| {
                Some((*s, *r, a.incoming_index(&r.version, self.archive_limits())?))
            })
            .collect();
        if !todo.is_empty() {
            a.clean_leftovers()?;
        }
        // Only what the prune afterwards would keep is copied.
        let running = self.booted().ok().and_then(|b| Agent::version_in(&st, b));
        let adding: Vec<Version> = todo.iter().map(|(_, r, _)| r.version.clone()).collect();
        let stay = a.survivors(&adding, cfg.keep, running.as_ref())?;
        let mut stored = false;
        let notifier = super::notify::Notifier::from_env();
        for (slot, rec, signed) in todo {
            let v = &rec.version;
            if !stay.contains(v) {
                tracing::debug!(
                    "archive: not copying {v}: keeping {}, it would be pruned at once",
                    cfg.keep
                );
                continue;
            }
            let problem = match self.archived_release(&st, signed.clone(), v) {
                Ok((_, r)) => mismatch(rec, &r),
                Err(e) => Some(e.to_string()),
            };
            if let Some(problem) = problem {
                tracing::warn!("archive: not archiving {v}: {problem}");
                a.drop_incoming(v)?;
                continue;
            }
            notifier.notify(&format!("STATUS=archiving {v} from slot {slot}"));
            let parts = rec
                .parts
                .iter()
                .map(|p| Ok((p, self.target_of(slot, p)?)))
                .collect::<Result<Vec<_>>>()?;
            let copied = copy_slot(self.board.slot(slot), rec, &parts, a.begin(v, &signed)?).await;
            notifier.notify(&format!("STATUS=archive copy of {v} ended"));
            copied?;
            tracing::info!("archived {v} (from slot {slot}) in {}", a.dir().display());
            a.drop_incoming(v)?;
            stored = true;
        }
        if stored {
            for v in a.prune(cfg.keep, running.as_ref())? {
                tracing::info!("archive: removed {v} (keeping {})", cfg.keep);
            }
        }
        for v in a.incoming_versions() {
            if records.iter().all(|(_, r)| r.version != v) {
                a.drop_incoming(&v)?;
            }
        }
        Ok(())
    }
}

/// How much of a copy goes to the storage before it is synced (see [`copy_slot`]).
const SYNC_EVERY: u64 = 4 << 20;

/// Copy a known-good slot's image into a new archive entry and finish it if the copy
/// hashes to the slot's record. Other tasks of the daemon run between pieces (a long copy
/// to slow USB storage must not starve the systemd watchdog feeder), and the image is
/// synced every few MiB, so no single sync waits on the whole image.
async fn copy_slot(
    dev: &dyn SlotDevice,
    rec: &SlotRecord,
    parts: &[(&PartRecord, &dyn SlotDevice)],
    mut entry: NewEntry,
) -> Result<()> {
    if !copy_extent(dev, rec.size, &rec.sha256, &mut entry).await? {
        return Err(FlashError::Verify {
            slot: dev.slot(),
            what: format!(
                "its first {} bytes no longer hash to {}'s sha256",
                rec.size, rec.version
            ),
        }
        .into());
    }
    for (p, target) in parts {
        entry.next_file(&part_file(&p.name))?;
        if !copy_extent(*target, p.size, &p.sha256, &mut entry).await? {
            return Err(FlashError::Verify {
                slot: dev.slot(),
                what: format!(
                    "part {:?}: the first {} bytes of target {} no longer hash to its sha256",
                    p.name, p.size, p.target
                ),
            }
            .into());
        }
    }
    entry.finish()?;
    Ok(())
}

/// Copy the first `size` bytes of `dev` into the entry's current file; whether they hash
/// to `sha256`.
async fn copy_extent(
    dev: &dyn SlotDevice,
    size: u64,
    sha256: &str,
    entry: &mut NewEntry,
) -> Result<bool> {
    let mut copy = flash::PrefixCopy::new(dev, size)?;
    let mut synced = 0;
    while let Some(piece) = copy.next_piece()? {
        entry.write(piece)?;
        if copy.done() - synced >= SYNC_EVERY {
            entry.sync()?;
            synced = copy.done();
        }
        tokio::task::yield_now().await;
    }
    Ok(hex::encode(copy.finish()?) == sha256)
}
