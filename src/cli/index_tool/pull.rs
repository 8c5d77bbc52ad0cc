use super::{edit_index, ToolError};
use crate::version::Version;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    index: PathBuf,
    #[arg(long)]
    version: Version,
    /// Only this board's entry of the version [default: every board's]
    #[arg(long)]
    board: Option<String>,
    /// Why it was pulled (devices show it to their owner)
    #[arg(long)]
    reason: String,
    #[arg(long, default_value = "90d")]
    expires_in: String,
}

#[derive(Debug, clap::Args)]
pub struct UnpullArgs {
    index: PathBuf,
    #[arg(long)]
    version: Version,
    /// Only this board's entry of the version [default: every board's]
    #[arg(long)]
    board: Option<String>,
    #[arg(long, default_value = "90d")]
    expires_in: String,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    edit_index(&a.index, &a.expires_in, |d| {
        d.set_pulled(&a.version, a.board.as_deref(), Some(a.reason.clone()))
    })
}

pub fn run_unpull(a: UnpullArgs) -> Result<(), ToolError> {
    edit_index(&a.index, &a.expires_in, |d| {
        d.set_pulled(&a.version, a.board.as_deref(), None)
    })
}
