use super::{parse_secs, write_file, ToolError};
use crate::index::build::IndexDraft;
use crate::time::unix_now;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index file to create
    index: PathBuf,
    /// Index version (must be higher than any version devices have seen)
    #[arg(long, default_value_t = 1)]
    version: u64,
    /// How long the index stays valid
    #[arg(long, default_value = "90d")]
    expires_in: String,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    if a.index.exists() {
        return Err(ToolError(format!("{} exists", a.index.display())));
    }
    let now = unix_now();
    let draft = IndexDraft::new(a.version, now, now + parse_secs(&a.expires_in)?);
    write_file(&a.index, draft.to_toml().as_bytes())?;
    println!("created {} (version {})", a.index.display(), a.version);
    Ok(())
}
