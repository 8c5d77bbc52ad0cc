//! Choosing the release to install from a verified index.

use super::rollout::{admitted, bucket};
use super::{Release, VerifiedIndex};
use crate::carry::{Break, CompatVersion};
use crate::version::Version;

/// What the device wants from the index.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub board: &'a str,
    pub channel: &'a str,
    /// The running release; None when the running firmware is unidentified (no release of
    /// the index): then every release of the channel is newer, and none with `min_from`.
    pub running: Option<&'a Version>,
    pub pinned: Option<&'a Version>,
    /// The owner pinned below the security floor on purpose (`--force-insecure`).
    pub force_insecure: bool,
    pub denylist: &'a [Version],
    /// Stable id of this device, for its rollout bucket.
    pub device_id: &'a str,
    /// The running firmware's configuration format (`compat_version`).
    pub compat: CompatVersion,
    /// The owner takes the new firmware's defaults (`--no-settings`): a release whose
    /// configuration format differs in its minor may be installed.
    pub no_settings: bool,
    /// What the vendor's fleet service halted (`halt.toml`, the root's halt keys).
    pub halts: Option<&'a super::halt::Halts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Nothing to install.
    UpToDate { reason: String },
    /// Install this release.
    Install(Box<Release>),
    /// Nothing to install on its own: the newest release is one only the owner can act on
    /// (its configuration format breaks with the running firmware's), for this reason.
    NeedsOwner { version: Version, reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("pinned version {version} is not in the index for board {board}")]
    PinnedMissing { version: String, board: String },
    #[error("pinned version {0} was rolled back on this device and is denylisted; pin it again to retry it")]
    PinnedDenylisted(String),
    #[error("version {version} was pulled by the vendor: {reason}")]
    Pulled { version: String, reason: String },
    #[error("version {version} is below the security floor {floor} for this board; use --force-insecure to install it anyway")]
    BelowFloor { version: String, floor: String },
    #[error("version {version} can only be installed from {min_from} or later; this device runs {running}")]
    NotFrom {
        version: String,
        min_from: String,
        running: String,
    },
    /// The release's configuration format breaks with the running firmware's.
    #[error("{0}")]
    Compat(String),
}

impl SelectError {
    /// The stable exit code: what the signed index does not vouch for (a version it does
    /// not list for this board, or one the vendor pulled) is refused as verification (6);
    /// what this device's rules hold back (rolled back here, below the floor, needing a
    /// stepping stone) as not allowed now (5).
    pub fn exit_code(&self) -> i32 {
        use crate::error::{EXIT_DISALLOWED, EXIT_VERIFICATION};
        match self {
            SelectError::PinnedMissing { .. } | SelectError::Pulled { .. } => EXIT_VERIFICATION,
            SelectError::PinnedDenylisted(_)
            | SelectError::BelowFloor { .. }
            | SelectError::NotFrom { .. }
            | SelectError::Compat(_) => EXIT_DISALLOWED,
        }
    }
}

impl Wanted<'_> {
    fn runs_at_least(&self, v: &Version) -> bool {
        self.running.is_some_and(|r| r >= v)
    }

    fn running_str(&self) -> String {
        match self.running {
            Some(v) => v.to_string(),
            None => "unidentified firmware".into(),
        }
    }

    /// Why `r` cannot go over the running firmware's configuration, if it cannot.
    fn compat_break(&self, r: &Release) -> Option<String> {
        let release = r.compat();
        let (v, device) = (&r.version, self.compat);
        let vendor = r
            .compat_message
            .as_ref()
            .map(|m| format!("; the vendor says: {m}"))
            .unwrap_or_default();
        match device.judge(release) {
            Break::Same => None,
            Break::Minor if self.no_settings => None,
            Break::Minor => Some(format!(
                "{v} cannot take this firmware's settings: its configuration format is {release}, the running firmware's is {device}{vendor}; `fwguard pin {v} --no-settings` or `fwguard update --no-settings` installs it on its own defaults (the owner's settings are not carried, and its health checks are judged on those defaults)"
            )),
            Break::Major => Some(format!(
                "{v} cannot be installed over this firmware: its configuration format is {release}, the running firmware's is {device} (another major version, which needs a factory-style install, not an update){vendor}"
            )),
        }
    }
}

/// Why an otherwise newer release is not offered to this device, if it is not.
fn excluded(r: &Release, want: &Wanted<'_>, now: u64) -> Option<String> {
    if let Some(why) = &r.pulled {
        return Some(format!("{} was pulled by the vendor: {why}", r.version));
    }
    if want.denylist.contains(&r.version) {
        return Some(format!("{} was rolled back on this device", r.version));
    }
    if let Some(min) = r.min_from.as_ref().filter(|m| !want.runs_at_least(m)) {
        return Some(format!(
            "{} needs {min} or later installed first",
            r.version
        ));
    }
    if let Some(why) = want
        .halts
        .and_then(|h| h.halting(&r.version, want.board, now))
    {
        return Some(format!(
            "{} is not offered to this device: the vendor halted it ({why})",
            r.version
        ));
    }
    if let Some(ro) = &r.rollout {
        if let Err(why) = admitted(ro, bucket(want.device_id, &r.version), now) {
            return Some(format!(
                "{} is not offered to this device yet: {why}",
                r.version
            ));
        }
    }
    None
}

pub fn select(index: &VerifiedIndex, want: &Wanted<'_>) -> Result<Choice, SelectError> {
    let for_board = |r: &&Release| r.boards.iter().any(|b| b == want.board);
    if let Some(pin) = want.pinned {
        if want.running == Some(pin) {
            return Ok(Choice::UpToDate {
                reason: format!("running the pinned version {pin}"),
            });
        }
        if want.denylist.contains(pin) {
            return Err(SelectError::PinnedDenylisted(pin.to_string()));
        }
        let r = index
            .releases()
            .iter()
            .filter(for_board)
            .find(|r| &r.version == pin)
            .ok_or_else(|| SelectError::PinnedMissing {
                version: pin.to_string(),
                board: want.board.to_string(),
            })?;
        if let Some(reason) = &r.pulled {
            return Err(SelectError::Pulled {
                version: pin.to_string(),
                reason: reason.clone(),
            });
        }
        if let Some(floor) = index.security_floor(want.board).filter(|f| pin < *f) {
            if !want.force_insecure {
                return Err(SelectError::BelowFloor {
                    version: pin.to_string(),
                    floor: floor.to_string(),
                });
            }
        }
        if let Some(min) = r.min_from.as_ref().filter(|m| !want.runs_at_least(m)) {
            return Err(SelectError::NotFrom {
                version: pin.to_string(),
                min_from: min.to_string(),
                running: want.running_str(),
            });
        }
        if let Some(why) = want.compat_break(r) {
            return Err(SelectError::Compat(why));
        }
        // An explicit pin is the owner's choice: rollout waves do not hold it back.
        return Ok(Choice::Install(Box::new(r.clone())));
    }
    let now = index.trusted_now();
    let mut newer: Vec<&Release> = index
        .releases()
        .iter()
        .filter(for_board)
        .filter(|r| r.channels.iter().any(|c| c == want.channel))
        .filter(|r| want.running.is_none_or(|v| &r.version > v))
        .collect();
    newer.sort_by(|a, b| b.version.cmp(&a.version));
    let mut skipped = Vec::new();
    // The newest release held back only by its configuration format is the owner's to
    // decide: one the owner can install (`--no-settings`) before one nobody can.
    let mut for_owner: Option<(bool, Version, String)> = None;
    for r in newer {
        match excluded(r, want, now) {
            None => match want.compat_break(r) {
                None => return Ok(Choice::Install(Box::new(r.clone()))),
                Some(why) => {
                    let actionable = want.compat.judge(r.compat()) == Break::Minor;
                    if for_owner.as_ref().is_none_or(|(a, ..)| actionable && !a) {
                        for_owner = Some((actionable, r.version.clone(), why.clone()));
                    }
                    skipped.push(why);
                }
            },
            Some(why) => skipped.push(why),
        }
    }
    if let Some((_, version, reason)) = for_owner {
        return Ok(Choice::NeedsOwner { version, reason });
    }
    let mut reason = match want.running {
        Some(v) => format!(
            "no release newer than {v} for board {} on channel {}",
            want.board, want.channel
        ),
        None => format!(
            "no release for board {} on channel {} (the running firmware is unidentified)",
            want.board, want.channel
        ),
    };
    if !skipped.is_empty() {
        reason = format!("{reason} is available: {}", skipped.join("; "));
    }
    Ok(Choice::UpToDate { reason })
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
