//! What each slot holds. A slot holds the vendor's bytes and nothing of fwguard's, so what
//! is in it is known from fwguard's own records: a release it installed, a release of the
//! signed index that the slot matched byte for byte (adopted), or firmware that is neither
//! (unidentified), kept as known-good and checked again only by its boot image.

use super::Agent;
use crate::bootimg::{self, BootImage};
use crate::error::{Error, Result};
use crate::flash::{self, Expected, SlotDevice, VerifiedSlot};
use crate::index::VerifiedIndex;
use crate::slot::Slot;
use crate::state::{
    extent_records, part_records, BootImageRecord, ExtentRecord, Note, Origin, PartRecord,
    PersistedState, ReleaseRef, SlotRecord, Unidentified, UpdateState,
};
use crate::version::Version;
use sha2::{Digest, Sha256};
use std::io::Read;

impl Agent {
    /// The running slot.
    pub fn booted(&self) -> Result<Slot> {
        Ok(self.board.platform.booted_slot()?)
    }

    /// The release in `slot` as fwguard's records say; None when it is unidentified or not
    /// known.
    pub fn version_in(st: &PersistedState, slot: Slot) -> Option<Version> {
        st.slot(slot).map(|r| r.version.clone())
    }

    /// The boot image at the start of `slot`, as its own header says.
    pub fn boot_image(&self, slot: Slot) -> Result<Option<BootImage>> {
        let dev = self.board.slot(slot);
        let head = flash::read_head(dev, bootimg::HEAD)?;
        Ok(bootimg::detect_with(&head, |at, len| read_at(dev, at, len)))
    }

    /// When the firmware in `slot` was built, where its boot image says (a uImage's or a
    /// FIT's timestamp); 0 when it does not. Read for unidentified firmware too: on a fresh
    /// router with its clock in 1970 it is what keeps an old signed index from being
    /// replayed before the first index raised the floor (the firmware is the owner's own:
    /// a timestamp it carries is trusted as the firmware is).
    pub fn build_time(&self, slot: Slot) -> u64 {
        self.boot_image(slot)
            .ok()
            .flatten()
            .and_then(|b| b.build_time)
            .unwrap_or(0)
    }

    /// What a check of `slot` compares it with: the recorded release's extent and hash, or an
    /// unidentified firmware's boot image.
    pub(super) fn expected_in(&self, st: &PersistedState, slot: Slot) -> Result<Expected> {
        let (size, hash) = match (st.slot(slot), st.unidentified_in(slot)) {
            (Some(rec), _) => (rec.size, rec.sha256.as_str()),
            (None, Some(u)) => match &u.boot_image {
                Some(b) => (b.size, b.sha256.as_str()),
                None => {
                    return Err(Error::Refused(format!(
                        "slot {slot} holds unidentified firmware without a boot image fwguard can read: fwguard cannot check it, so it never switches to it (the bootloader's own fallback still can)"
                    )))
                }
            },
            (None, None) => {
                return Err(Error::Refused(format!(
                    "slot {slot} holds no image fwguard has verified"
                )))
            }
        };
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(hash, &mut sha256).map_err(|_| {
            Error::Refused(format!("state records a malformed hash for slot {slot}"))
        })?;
        Ok(Expected { size, sha256 })
    }

    /// Hash a slot against what the state recorded for it: its boot image, then each part
    /// in its target.
    pub(super) fn verify_recorded(&self, st: &PersistedState, slot: Slot) -> Result<VerifiedSlot> {
        let exp = self.expected_in(st, slot)?;
        match st.slot(slot) {
            Some(rec) => self.verify_holds(slot, &exp, &rec.verify, &rec.parts),
            None => Ok(flash::verify_existing(self.board.slot(slot), &exp)?),
        }
    }

    /// Whether `slot` holds `release` (before or after its firmware ran).
    pub(super) fn verify_release(&self, slot: Slot, release: &ReleaseRef) -> Result<VerifiedSlot> {
        // What the slot holds: the file, or a container's boot range.
        let (size, hash) = release.boot_image();
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(hash, &mut sha256)
            .map_err(|_| Error::Refused(format!("a malformed hash for {}", release.version)))?;
        let exp = Expected { size, sha256 };
        self.verify_holds(slot, &exp, &release.verify, &release.parts)
    }

    /// Whether `slot` holds `release` exactly as written (it has not run since): its whole
    /// boot image, then its parts, whatever extents it has for later.
    pub(super) fn verify_written(&self, slot: Slot, release: &ReleaseRef) -> Result<VerifiedSlot> {
        let plain = ReleaseRef {
            verify: Vec::new(),
            ..release.clone()
        };
        self.verify_release(slot, &plain)
    }

    /// Check `slot` against a release: its boot device by the extents when it has them,
    /// else by the whole image `exp`; then each part in its target.
    fn verify_holds(
        &self,
        slot: Slot,
        exp: &Expected,
        extents: &[ExtentRecord],
        parts: &[PartRecord],
    ) -> Result<VerifiedSlot> {
        let dev = self.board.slot(slot);
        let verified = if extents.is_empty() {
            flash::verify_existing(dev, exp)?
        } else {
            let checks = extents
                .iter()
                .map(|e| e.check())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    Error::Refused(format!("state records a malformed extent for slot {slot}"))
                })?;
            flash::extent::verify_extents(dev, exp, &checks)?
        };
        self.verify_parts(slot, parts)?;
        Ok(verified)
    }

    /// Where part `p` of slot `slot` is, or why there is no such place.
    pub(super) fn target_of(&self, slot: Slot, p: &PartRecord) -> Result<&dyn SlotDevice> {
        self.board.target(&p.target, slot).ok_or_else(|| {
            Error::Refused(format!(
                "part {:?} goes to target {:?}, which [board] does not configure (configured: {})",
                p.name,
                p.target,
                match self.board.target_names() {
                    n if n.is_empty() => "none".to_string(),
                    n => n.join(", "),
                }
            ))
        })
    }

    /// Hash each part in its target of `slot` against its record.
    pub(super) fn verify_parts(&self, slot: Slot, parts: &[PartRecord]) -> Result<()> {
        for p in parts {
            let dev = self.target_of(slot, p)?;
            let exp = p.expected().ok_or_else(|| {
                Error::Refused(format!(
                    "state records a malformed hash for part {:?}",
                    p.name
                ))
            })?;
            flash::verify_existing(dev, &exp).map_err(|e| match e {
                flash::FlashError::Verify { slot, what } => flash::FlashError::Verify {
                    slot,
                    what: format!(
                        "part {:?} in target {} ({}): {what}",
                        p.name,
                        p.target,
                        dev.describe()
                    ),
                },
                e => e,
            })?;
        }
        Ok(())
    }

    /// Record the running committed firmware as known-good, if it is not on record as such:
    /// a release fwguard recorded in this slot is confirmed by its hash; anything else is
    /// unidentified until an index check identifies it ([`Agent::identify`]). No network.
    pub(super) fn adopt(&self, st: &mut PersistedState, booted: Slot) -> Result<bool> {
        if st.known_good == Some(booted)
            && (st.slot(booted).is_some_and(|r| r.good) || st.unidentified_in(booted).is_some())
        {
            return Ok(false);
        }
        if let Some(rec) = st.slot(booted).cloned() {
            if self.verify_recorded(st, booted).is_ok() {
                let detail = format!(
                    "running committed firmware {} recorded as known-good (its hash matches fwguard's record)",
                    rec.version
                );
                let record = SlotRecord { good: true, ..rec };
                let facts = self.facts(st);
                st.note(
                    Note::Adopted {
                        slot: booted,
                        record,
                        detail,
                    },
                    &facts,
                );
                return Ok(true);
            }
        }
        let unidentified = Unidentified {
            slot: booted,
            boot_image: self.boot_image_record(booted)?,
            index_version: None,
        };
        let facts = self.facts(st);
        st.note(Note::Unidentified { unidentified }, &facts);
        Ok(true)
    }

    /// The boot image of `slot` with the hash of its extent.
    fn boot_image_record(&self, slot: Slot) -> Result<Option<BootImageRecord>> {
        let Some(b) = self.boot_image(slot)? else {
            return Ok(None);
        };
        let dev = self.board.slot(slot);
        if b.size > dev.capacity()? {
            return Ok(None);
        }
        Ok(Some(BootImageRecord {
            describe: b.describe(),
            size: b.size,
            sha256: hex::encode(flash::hash_prefix(dev, b.size)?),
        }))
    }

    /// Identify the running firmware by the signed index: when the state holds no release
    /// for the running slot (stock firmware, or a state that was lost), the slot is compared
    /// with every release the index lists for this board, over each release's extent, in
    /// one read. A match is adopted as known-good; no match leaves it unidentified (compared
    /// again with the next index version). Returns whether the state changed.
    pub(super) fn identify(
        &self,
        st: &mut PersistedState,
        index: &VerifiedIndex,
        booted: Slot,
    ) -> Result<bool> {
        if st.update != UpdateState::Idle || st.slot(booted).is_some() {
            return Ok(false);
        }
        // A trial armed (explained or not) is no firmware to adopt as known-good; nor is
        // anything while the env cannot be read to tell.
        if self.board.bootloader.read_state().map_or(true, |b| b.trial) {
            return Ok(false);
        }
        if st
            .unidentified_in(booted)
            .is_some_and(|u| u.index_version == Some(index.version()))
        {
            return Ok(false);
        }
        let dev = self.board.slot(booted);
        let capacity = dev.capacity()?;
        let (by_extents, whole): (Vec<_>, Vec<_>) = index
            .releases()
            .iter()
            .filter(|r| {
                r.boards.iter().any(|b| b == &self.board.id) && r.boot_image().size <= capacity
            })
            .partition(|r| !r.verify.is_empty());
        let sizes: Vec<u64> = whole.iter().map(|r| r.boot_image().size).collect();
        let hashes = hash_prefixes(dev, &sizes)?;
        // The boot image matches (whole, or by its extents, which a firmware that ran
        // still matches), and so does every part in its target.
        let found = whole
            .iter()
            .zip(&hashes)
            .filter(|(r, h)| **h == Some(r.boot_image().sha256))
            .map(|(r, _)| *r)
            .find(|r| self.verify_parts(booted, &part_records(r)).is_ok())
            .or_else(|| {
                by_extents
                    .iter()
                    .find(|r| self.verify_release(booted, &ReleaseRef::from(**r)).is_ok())
                    .copied()
            });
        let facts = self.facts(st);
        match found {
            Some(r) => {
                let parts = match r.parts.len() {
                    0 => String::new(),
                    n => format!(", and so do its {n} other part(s) in their targets"),
                };
                let how = match r.verify.len() {
                    0 => format!(
                        "its first {} bytes match the signed hash",
                        r.boot_image().size
                    ),
                    n => {
                        format!("its {n} signed extents match (its raw bytes change once it runs)")
                    }
                };
                let detail = format!(
                    "running firmware identified as release {} of the signed index (version {}): {how}{parts}; recorded as known-good",
                    r.version,
                    index.version(),
                );
                let record = SlotRecord {
                    version: r.version.clone(),
                    size: r.boot_image().size,
                    sha256: hex::encode(r.boot_image().sha256),
                    good: true,
                    origin: Origin::Adopted,
                    parts: part_records(r),
                    verify: extent_records(r),
                };
                tracing::info!("{detail}");
                st.note(
                    Note::Adopted {
                        slot: booted,
                        record,
                        detail,
                    },
                    &facts,
                );
            }
            None => {
                let boot_image = match st.unidentified_in(booted) {
                    Some(u) => u.boot_image.clone(),
                    None => self.boot_image_record(booted)?,
                };
                let unidentified = Unidentified {
                    slot: booted,
                    boot_image,
                    index_version: Some(index.version()),
                };
                st.note(Note::Unidentified { unidentified }, &facts);
            }
        }
        Ok(true)
    }
}

/// `len` bytes of a slot from `at` (a slot is read in order from its start).
fn read_at(dev: &dyn flash::SlotDevice, at: u64, len: usize) -> Option<Vec<u8>> {
    let mut r = dev.reader().ok()?.take(at + len as u64);
    std::io::copy(&mut (&mut r).take(at), &mut std::io::sink()).ok()?;
    let mut out = Vec::with_capacity(len);
    r.read_to_end(&mut out).ok()?;
    Some(out)
}

/// The SHA-256 of each of the first `sizes[i]` bytes of a slot, in one read up to the
/// largest; None for a size past the slot's end.
fn hash_prefixes(dev: &dyn flash::SlotDevice, sizes: &[u64]) -> Result<Vec<Option<[u8; 32]>>> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| sizes[i]);
    let mut out = vec![None; sizes.len()];
    let Some(&last) = order.last() else {
        return Ok(out);
    };
    let mut reader = dev.reader()?.take(sizes[last]);
    let mut hasher = Sha256::new();
    let mut at = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    for i in order {
        while at < sizes[i] {
            let want = ((sizes[i] - at) as usize).min(buf.len());
            let n =
                reader
                    .read(&mut buf[..want])
                    .map_err(|source| crate::flash::FlashError::Io {
                        slot: dev.slot(),
                        device: dev.describe(),
                        op: "read to identify the firmware",
                        source,
                    })?;
            if n == 0 {
                return Ok(out);
            }
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        out[i] = Some(hasher.clone().finalize().into());
    }
    Ok(out)
}
