//! Installing a release: invalidate the inactive slot, stream the image into it while
//! hashing, read it back and verify, and only then arm the trial boot in one env write.

use super::container::transfer_failed;
use super::update::{expected, By};
use super::{Action, Agent};
use crate::error::{Error, Result};
use crate::fetch::resolve;
use crate::flash::{self, Checkpoint, FlashError, VerifiedSlot};
use crate::index::Release;
use crate::slot::Slot;
use crate::state::{check_records, Disallowed, Event, Note, Partial, PersistedState, UpdateState};

/// Checkpoints (state writes) a transfer of the boot image makes at most, evenly spaced.
const CHECKPOINTS: u64 = 2;

/// The bytes an install of `r` writes: its parts and its boot image.
fn total_size(r: &Release) -> u64 {
    r.size + r.parts.iter().map(|p| p.size).sum::<u64>()
}

fn partial(r: &Release, target: Slot, cp: &Checkpoint) -> Partial {
    Partial {
        version: r.version.clone(),
        sha256: hex::encode(r.sha256),
        target,
        written: cp.written,
        head: hex::encode(&cp.head),
    }
}

impl Agent {
    /// Run the health checks on the running firmware before installing: an update does not
    /// start while a required group fails (unless the owner forces it), and the groups that
    /// pass now are the ones the new firmware must pass.
    pub(super) async fn take_baseline(
        &self,
        st: &mut PersistedState,
        release: &Release,
        by: By,
    ) -> Result<()> {
        let (report, verdict) = self.health_round("baseline", None).await;
        let forced = by == By::Owner { force: true };
        if !verdict.passed() && !forced {
            return Err(Error::Baseline {
                version: release.version.clone(),
                failing: verdict.failing.join("; "),
            });
        }
        let detail = if verdict.passed() {
            "health checks on the running firmware pass".to_string()
        } else {
            format!(
                "forced by the owner although failing: {}",
                verdict.failing.join("; ")
            )
        };
        let facts = self.facts(st);
        st.note(
            Note::Baseline {
                version: release.version.clone(),
                passing: self.settings.health.passing(&report),
                checks: check_records(&report.results),
                detail,
                by_owner: matches!(by, By::Owner { .. }),
            },
            &facts,
        );
        Ok(())
    }

    /// Write `release` into the slot that is not running, and verify it.
    pub(super) async fn install(
        &self,
        st: &mut PersistedState,
        release: &Release,
        booted: Slot,
        base_url: String,
    ) -> Result<VerifiedSlot> {
        let target = !booted;
        if st.known_good == Some(target) {
            return Err(FlashError::Protected {
                slot: target,
                why: "the last known-good slot",
            }
            .into());
        }
        // A checkpoint of an earlier, interrupted download of this release into this slot.
        let resume_from = st
            .partial
            .clone()
            .filter(|p| {
                p.target == target
                    && p.version == release.version
                    && p.sha256 == hex::encode(release.sha256)
            })
            .and_then(|p| {
                Some(Checkpoint {
                    written: p.written,
                    head: hex::decode(p.head).ok()?,
                })
            });
        // Every source streamed wrong images for this release too often: refused before the
        // slot is invalidated (a hostile mirror cannot keep it invalid forever).
        let sha = hex::encode(release.sha256);
        let given_up = release
            .urls
            .iter()
            .all(|u| resolve(&base_url, u).is_ok_and(|u| st.source_given_up(&sha, u.as_str())));
        if given_up {
            return Err(Error::Refused(format!(
                "not installing {}: each of its sources streamed an image other than the signed one {} times; not trying them again (the vendor must fix its mirrors, or publish the release again)",
                release.version,
                crate::state::MAX_BAD_STREAMS
            )));
        }
        // Persist the intent before the slot is touched, with the owner's word on the settings.
        let mut rec = crate::state::ReleaseRef::from(release);
        rec.own_defaults = self.on_own_defaults_for(st, &release.version);
        st.apply(
            Event::Begin {
                release: Box::new(rec),
                target,
            },
            &self.facts(st),
        )?;
        self.save(st)?;
        crate::failpoint::hit("install-begun");
        tracing::info!("installing {} into slot {target}", release.version);
        self.report_now(st).await;

        match self
            .write_and_verify(st, release, target, &base_url, resume_from)
            .await
        {
            Ok(verified) => {
                st.apply(Event::Verified, &self.facts(st))?;
                self.save(st)?;
                crate::failpoint::hit("install-verified");
                Ok(verified)
            }
            Err(e) => {
                // A transfer that broke off keeps its checkpoint; anything that failed
                // verification starts over.
                let facts = self.facts(st);
                if !matches!(&e, Error::Fetch(f) if !f.is_verification()) {
                    st.note(Note::Checkpoint { partial: None }, &facts);
                }
                st.apply(Event::Failed { why: e.to_string() }, &facts)?;
                self.save(st)?;
                Err(e)
            }
        }
    }

    /// Stream the release from its mirrors into `target` (continuing from `resume_from`
    /// when the slot allows), checkpointing as it goes, then read it back and verify.
    async fn write_and_verify(
        &self,
        st: &mut PersistedState,
        release: &Release,
        target: Slot,
        base_url: &str,
        mut resume_from: Option<Checkpoint>,
    ) -> Result<VerifiedSlot> {
        if release.boot.is_some() {
            return self.write_container(st, release, target, base_url).await;
        }
        let dev = self.board.slot(target);
        let exp = expected(release);
        // The parts come first, the boot image last: its head is invalidated before any part
        // is written and written last of all, so until every part and the boot image are in
        // place the slot does not boot.
        let mut begun = None;
        let mut done = 0;
        if !release.parts.is_empty() {
            begun = Some(flash::begin(dev, &exp)?);
            for part in &release.parts {
                self.write_part(st, release, part, target, base_url, done)
                    .await?;
                done += part.size;
            }
        }
        // Each checkpoint is a write of the state file (on flash): `CHECKPOINTS` of them,
        // at fixed points of the image (its thirds, none closer than 64 KiB), whatever the
        // chunks and however often the transfer resumes. A power cut loses at most a third
        // of the download.
        let step = release.size.div_ceil(CHECKPOINTS + 1).max(64 * 1024);
        // The furthest point saved in this install: a mirror that starts over from byte 0
        // (its checkpoint unusable) saves no point again.
        let mut saved_to = 0;
        let mut errors = Vec::new();
        let sha = hex::encode(release.sha256);
        for url in &release.urls {
            let url = match resolve(base_url, url) {
                Ok(u) => u,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            if st.source_given_up(&sha, url.as_str()) {
                errors.push(format!(
                    "{url}: skipped, it streamed a wrong image {} times",
                    crate::state::MAX_BAD_STREAMS
                ));
                continue;
            }
            let resumed = match &resume_from {
                Some(cp) => flash::resume(dev, &exp, cp)?,
                None => None,
            };
            let mut writer = match resumed {
                Some(w) => {
                    tracing::info!(
                        "resuming the download of {} at byte {} of {}",
                        release.version,
                        w.written(),
                        release.size
                    );
                    w
                }
                None => match begun.take() {
                    Some(w) => w,
                    None => flash::begin(dev, &exp)?,
                },
            };
            let start = writer.written();
            let total = total_size(release);
            let progress = |at: u64| {
                if let Some(p) = &self.progress {
                    p(&release.version, done + at, total)
                }
            };
            progress(start);
            let half = release.size / 2;
            // The points are the same for a resumed transfer: the whole install makes at
            // most `CHECKPOINTS` of them.
            let mut next_cp = (start.max(saved_to) / step + 1) * step;
            let got = self
                .fetcher
                .fetch_from(
                    &url,
                    start,
                    release.size - start,
                    &mut |mut chunk: &[u8]| {
                        // A chunk is written in pieces that end at the checkpoints: they fall at
                        // fixed points however the bytes arrive (a busy reader gets large chunks).
                        while !chunk.is_empty() {
                            let before = writer.written();
                            let room = match next_cp.checked_sub(before) {
                                Some(r) if r > 0 => r.min(chunk.len() as u64) as usize,
                                _ => chunk.len(),
                            };
                            let (piece, rest) = chunk.split_at(room);
                            writer.write(piece)?;
                            chunk = rest;
                            let now = writer.written();
                            progress(now);
                            if before < half && now >= half {
                                crate::failpoint::hit("install-mid-write");
                            }
                            if now >= next_cp && now < release.size {
                                saved_to = next_cp;
                                next_cp += step;
                                if let Some(cp) = writer.checkpoint()? {
                                    let partial = Some(partial(release, target, &cp));
                                    st.note(Note::Checkpoint { partial }, &self.facts(st));
                                    self.save(st)?;
                                    crate::failpoint::hit("install-checkpoint");
                                }
                            }
                        }
                        Ok::<(), Error>(())
                    },
                )
                .await;
            if let Err(e) = got {
                errors.push(transfer_failed(st, &sha, url.as_str(), e)?);
                // The next mirror (or the next attempt) continues from here.
                if let Some(cp) = writer.checkpoint()? {
                    let partial = Some(partial(release, target, &cp));
                    st.note(Note::Checkpoint { partial }, &self.facts(st));
                    resume_from = Some(cp);
                }
                continue;
            }
            let written = match writer.finish(&exp) {
                Ok(w) => w,
                Err(e) => {
                    // The stream was not the signed image: this source's fault.
                    if matches!(e, FlashError::Verify { .. }) {
                        st.note_bad_source(&sha, url.as_str());
                    }
                    return Err(e.into());
                }
            };
            crate::failpoint::hit("install-written");
            let verified = written.verify(dev, &exp)?;
            self.check_extents_written(st, release, target, url.as_str())?;
            return Ok(verified);
        }
        Err(crate::fetch::FetchError::AllMirrorsFailed {
            version: release.version.to_string(),
            errors: errors.join("; "),
        }
        .into())
    }

    /// The extents a later check of the slot compares must hold on the image as written.
    /// When they do not, the index is wrong about its own image: counted against the source
    /// like a wrong stream, so the release is refused before the slot is written once more
    /// after a few tries.
    pub(super) fn check_extents_written(
        &self,
        st: &mut PersistedState,
        release: &Release,
        target: Slot,
        url: &str,
    ) -> Result<()> {
        if release.verify.is_empty() {
            return Ok(());
        }
        // The parts were read back as they were written: only the extents are new here.
        let extents_only = crate::state::ReleaseRef {
            parts: Vec::new(),
            ..release.into()
        };
        self.verify_release(target, &extents_only)
            .map(|_| ())
            .map_err(|e| {
                st.note_bad_source(&hex::encode(release.sha256), url);
                Error::Refused(format!(
                    "the signed index's verify extents for {} do not match its image: {e}",
                    release.version
                ))
            })
    }

    /// Arm the verified slot for a trial boot in one env write, then reboot.
    pub(super) async fn arm_and_reboot(
        &self,
        st: &mut PersistedState,
        verified: &VerifiedSlot,
        booted: Slot,
    ) -> Result<Action> {
        let version = match &st.update {
            UpdateState::Staged { release, .. } => release.version.clone(),
            other => {
                return Err(Disallowed {
                    event: "arm a trial boot",
                    state: other.name(),
                }
                .into())
            }
        };
        if self.board.bootloader.carries() {
            // The arm's id, carried with it, persisted with `Armed`.
            let id = crate::state::Carried::new_arm_id();
            st.note(Note::CarriedArm { id }, &self.facts(st));
        }
        st.apply(Event::Arm { previous: booted }, &self.facts(st))?;
        self.save(st)?;
        crate::failpoint::hit("arm-persisted");
        let armed = self
            .carry_settings(st, verified.slot(), booted)
            .and_then(|()| {
                match self.carry_arm(st) {
                    Some(c) => self
                        .board
                        .bootloader
                        .arm_trial_carrying(verified, booted, &c),
                    None => self.board.bootloader.arm_trial(verified, booted),
                }
                .map_err(Error::from)
            });
        if let Err(e) = armed {
            let facts = self.facts(st);
            st.apply(Event::ArmFailed { why: e.to_string() }, &facts)?;
            self.save(st)?;
            return Err(e);
        }
        crate::failpoint::hit("arm-env-written");
        // The receiver learns of the trial before it boots: a firmware that never runs far
        // enough to report is then counted by its silence.
        self.report_now(st).await;
        self.reboot(format!(
            "trial boot of {version} in slot {}",
            verified.slot()
        ))
    }
}
