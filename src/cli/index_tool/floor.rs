use super::{edit_index, ToolError};
use crate::version::Version;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    index: PathBuf,
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
        d.set_security_floor(&a.board, a.version.clone());
        Ok(match &a.version {
            Some(v) => format!("security floor of {} set to {v}", a.board),
            None => format!("security floor of {} cleared", a.board),
        })
    })
}
