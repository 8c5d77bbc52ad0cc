use super::{edit_index, ToolError};
use crate::version::Version;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    index: PathBuf,
    /// The board whose floor to set (a floor is per board id)
    #[arg(long)]
    board: String,
    /// The lowest version devices of this board may run or be pinned to
    #[arg(long, required_unless_present = "clear")]
    version: Option<Version>,
    #[arg(long, conflicts_with = "version")]
    clear: bool,
    #[arg(long, default_value = "90d")]
    expires_in: String,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    edit_index(&a.index, &a.expires_in, |d| {
        let board = &a.board;
        // A floor for a board no release is for is a typo, or strands its devices below it.
        if a.version.is_some() && !d.has_board(board) {
            return Err(format!("no release of the index is for board {board:?}"));
        }
        let line = match (d.set_security_floor(board, a.version.clone()), &a.version) {
            (None, None) => return Err(format!("board {board:?} has no security floor to clear")),
            (Some(old), Some(new)) if &old == new => {
                return Err(format!(
                    "the security floor of board {board} is already {new}"
                ))
            }
            (Some(old), None) => format!("security floor of board {board}: {old} cleared"),
            (None, Some(new)) => format!("security floor of board {board}: set to {new}"),
            (Some(old), Some(new)) => format!("security floor of board {board}: {old} -> {new}"),
        };
        Ok(vec![line])
    })
}
