//! Choosing the release to install from a verified index.

use super::{Release, VerifiedIndex};
use crate::version::Version;

/// What the device wants from the index.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub board: &'a str,
    pub channel: &'a str,
    pub running: &'a Version,
    pub pinned: Option<&'a Version>,
    pub denylist: &'a [Version],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Nothing to install.
    UpToDate { reason: String },
    /// Install this release.
    Install(Release),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("pinned version {version} is not in the index for board {board}")]
    PinnedMissing { version: Version, board: String },
    #[error("pinned version {0} was rolled back on this device and is denylisted; pin it again to retry it")]
    PinnedDenylisted(Version),
}

pub fn select(index: &VerifiedIndex, want: &Wanted<'_>) -> Result<Choice, SelectError> {
    let for_board = |r: &&Release| r.boards.iter().any(|b| b == want.board);
    if let Some(pin) = want.pinned {
        if pin == want.running {
            return Ok(Choice::UpToDate {
                reason: format!("running the pinned version {pin}"),
            });
        }
        if want.denylist.contains(pin) {
            return Err(SelectError::PinnedDenylisted(pin.clone()));
        }
        return index
            .releases()
            .iter()
            .filter(for_board)
            .find(|r| &r.version == pin)
            .map(|r| Choice::Install(r.clone()))
            .ok_or_else(|| SelectError::PinnedMissing {
                version: pin.clone(),
                board: want.board.to_string(),
            });
    }
    let newest = index
        .releases()
        .iter()
        .filter(for_board)
        .filter(|r| r.channels.iter().any(|c| c == want.channel))
        .filter(|r| &r.version > want.running)
        .filter(|r| !want.denylist.contains(&r.version))
        .max_by(|a, b| a.version.cmp(&b.version));
    Ok(match newest {
        Some(r) => Choice::Install(r.clone()),
        None => Choice::UpToDate {
            reason: format!(
                "no release newer than {} for board {} on channel {}",
                want.running, want.board, want.channel
            ),
        },
    })
}
