//! Where an install comes from. Every install (the daemon's or the owner's update, an
//! offline install from a directory or an image file, an archive install) names a
//! [`Source`]; resolving it yields the release to install and where its bytes are, and the
//! one install path (`update.rs`) does the rest. The rules of a pin (which release a pinned
//! version is, and what the pin records) are here once, for `pin`, image files and the
//! archive alike.

use super::offline::{file_url, ImageFile};
use super::{Action, Agent};
use crate::error::{Error, Result};
use crate::index::select::Choice;
use crate::index::{Release, VerifiedIndex};
use crate::slot::Slot;
use crate::state::{Note, PersistedState};
use crate::version::Version;

/// Where an install's release and its signed index come from.
pub(super) enum Source {
    /// The channel's choice from the index at `url` (the configured one, or an offline
    /// copy of it).
    Index { url: String },
    /// The release an image file is, by its hash, in the signed index at `index_url`; its
    /// bytes come from the file.
    Image { index_url: String, image: ImageFile },
    /// An archived image, verified against the signed index kept next to it; installing it
    /// pins it.
    Archive {
        version: Version,
        force_insecure: bool,
    },
}

/// What a source resolves to.
pub(super) enum Resolved {
    UpToDate(String),
    /// Only the owner can decide on the newest release, for this reason.
    NeedsOwner {
        version: Version,
        reason: String,
    },
    Install(Box<Candidate>),
}

/// A release to install, everything about it checked that can be known before writing.
pub(super) struct Candidate {
    pub release: Release,
    /// What the release's image URLs are relative to.
    pub base_url: String,
    /// The signed index it was chosen from, kept in the archive at install time (None when
    /// it comes from the archive already).
    pub keep_index: Option<VerifiedIndex>,
    /// The pin recorded in the state write that arms the trial.
    pub pin: Option<Note>,
}

/// Who pins: the owner by hand, or an archive install (the channel would replace what it
/// installs).
pub(super) enum PinBy {
    Owner,
    Archive {
        /// Where it was reinstalled from.
        from: String,
        /// Why the vendor withdrew it, if it did.
        withdrawn: Option<String>,
    },
}

impl Agent {
    /// Resolve `source` against the persisted state `st` and the running slot; an index
    /// accepted on the way is persisted (with the running firmware identified by it).
    pub(super) async fn resolve(
        &self,
        st: &mut PersistedState,
        booted: Slot,
        source: &Source,
    ) -> Result<Resolved> {
        let (url, image) = match source {
            Source::Archive {
                version,
                force_insecure,
            } => return self.archive_candidate(st, booted, version, *force_insecure),
            Source::Index { url } => (url, None),
            Source::Image { index_url, image } => (index_url, Some(image)),
        };
        let index = self.fetch_verified(st, booted, url).await?;
        let running = Agent::version_in(st, booted);
        let choice = match image {
            None => self.choose(&index, st, running.as_ref())?,
            Some(image) => self.choose_image(&index, st, running.as_ref(), image)?,
        };
        Ok(match choice {
            Choice::UpToDate { reason } => Resolved::UpToDate(reason),
            Choice::NeedsOwner { version, reason } => Resolved::NeedsOwner { version, reason },
            Choice::Install(release) => Resolved::Install(Box::new(Candidate {
                release: *release,
                base_url: url.clone(),
                keep_index: Some(index),
                pin: None,
            })),
        })
    }

    /// Fetch and verify the index at `url`, identify the running firmware by it if the
    /// state does not know it yet, and persist what that changes in the state.
    pub(super) async fn fetch_verified(
        &self,
        st: &mut PersistedState,
        booted: Slot,
        url: &str,
    ) -> Result<VerifiedIndex> {
        let build_time = self.build_time(booted);
        let (index, mut changed) = self.fetch_index_from(st, build_time, url).await?;
        changed |= self.identify(st, &index, booted)?;
        self.archive_note(&index, st);
        if changed {
            self.save(st)?;
        }
        Ok(index)
    }

    /// The release `version` is with the rules of a pin (listed for this board, not pulled,
    /// not below the security floor unless `force_insecure`; a denylisted one is tried
    /// again), or up to date when it is running.
    pub(super) fn choose_pinned(
        &self,
        index: &VerifiedIndex,
        st: &PersistedState,
        running: Option<&Version>,
        version: &Version,
        force_insecure: bool,
    ) -> Result<Choice> {
        let probe = st.as_pinned(version, force_insecure, self.owner_defaults);
        self.choose(index, &probe, running)
    }

    /// The pin of `version` as recorded: below the security floor `below_floor` only with
    /// `force_insecure`, which is logged and written into the history.
    pub(super) fn pin_note(
        &self,
        version: &Version,
        below_floor: Option<&Version>,
        force_insecure: bool,
        by: PinBy,
    ) -> Result<Note> {
        let insecure = match below_floor {
            Some(floor) if !force_insecure => {
                return Err(Error::Refused(format!(
                    "{version} is below the security floor {floor}; `--force-insecure` installs it anyway"
                )))
            }
            Some(floor) => {
                tracing::warn!(
                    "pinning {version}, below the security floor {floor}, as the owner forced it"
                );
                format!("BELOW THE SECURITY FLOOR {floor} (--force-insecure)")
            }
            None => String::new(),
        };
        let (detail, from_archive) = match by {
            PinBy::Owner if insecure.is_empty() => ("pinned by the owner".to_string(), false),
            PinBy::Owner => (format!("pinned by the owner {insecure}"), false),
            PinBy::Archive { from, withdrawn } => {
                let insecure = if insecure.is_empty() {
                    insecure
                } else {
                    format!(", {insecure}")
                };
                let withdrawn = withdrawn
                    .map(|why| format!("; the vendor withdrew it: {why}"))
                    .unwrap_or_default();
                (
                    format!("{from}{insecure}{withdrawn}; pinned (`fwguard unpin` follows the channel again)"),
                    true,
                )
            }
        };
        let detail = if self.owner_defaults {
            format!("{detail}; on its own defaults (--no-settings: the owner's settings are not carried)")
        } else {
            detail
        };
        Ok(Note::Pinned {
            version: version.clone(),
            insecure: below_floor.is_some(),
            no_settings: self.owner_defaults,
            detail,
            from_archive,
        })
    }

    /// Pin `version`: install exactly it (downgrade included) and stay there. The index must
    /// list it for this board. Pinning a release that was rolled back clears it from the
    /// denylist, so it is tried once more. Below the security floor only with
    /// `force_insecure`, which is logged. Records the pin; the next update installs it.
    pub async fn pin(&self, version: Version, force_insecure: bool) -> Result<Action> {
        let mut change = self.begin_change()?;
        let st = &mut change.st;
        let index = self
            .fetch_verified(st, change.booted, &self.settings.index.url)
            .await?;
        let running = Agent::version_in(st, change.booted);
        let choice = self.choose_pinned(&index, st, running.as_ref(), &version, force_insecure)?;
        let floor = index
            .security_floor(&self.board.id)
            .filter(|f| &version < *f);
        let note = self.pin_note(&version, floor, force_insecure, PinBy::Owner)?;
        let facts = self.facts(st);
        st.note(note, &facts);
        self.save(st)?;
        Ok(Action::Done(match choice {
            Choice::UpToDate { .. } => format!("pinned {version}; it is already running"),
            Choice::Install(_) if self.owner_defaults => format!(
                "pinned {version} on its own defaults; `fwguard update` (or the daemon) installs it without the owner's settings"
            ),
            Choice::Install(_) => {
                format!("pinned {version}; `fwguard update` (or the daemon) installs it")
            }
            // A pin chooses its release or fails: it is never left to the owner again.
            Choice::NeedsOwner { reason, .. } => return Err(Error::Refused(reason)),
        }))
    }

    /// An archive entry as a candidate: verified against its kept index, at or above
    /// today's security floor (unless forced), pinned when installed.
    fn archive_candidate(
        &self,
        st: &PersistedState,
        booted: Slot,
        version: &Version,
        force_insecure: bool,
    ) -> Result<Resolved> {
        if Agent::version_in(st, booted).as_ref() == Some(version) {
            return Ok(Resolved::UpToDate(format!("{version} is running already")));
        }
        let a = self.archive_store()?;
        let opened = self.open_archived(&a, st, version)?;
        let floor = self.floor_now(st, Some(&opened.index));
        let floor = floor.as_ref().filter(|f| version < *f);
        let by = PinBy::Archive {
            from: format!("reinstalled from the archive {}", a.dir().display()),
            withdrawn: st
                .last_index
                .as_ref()
                .and_then(|l| l.pulled.get(version.as_str()).cloned()),
        };
        let pin = self.pin_note(version, floor, force_insecure, by)?;
        // The archive keeps what the slot held: the boot image and each part as files of
        // their own (a container's ranges too).
        let mut release = opened.release;
        let boot = release.boot_image();
        (release.size, release.sha256, release.boot) = (boot.size, boot.sha256, None);
        release.urls = vec![file_url(&opened.image)?];
        for (p, file) in release.parts.iter_mut().zip(&opened.parts) {
            (p.urls, p.offset) = (vec![file_url(file)?], None);
        }
        Ok(Resolved::Install(Box::new(Candidate {
            release,
            base_url: file_url(&a.entry_dir(version))?,
            keep_index: None,
            pin: Some(pin),
        })))
    }
}
