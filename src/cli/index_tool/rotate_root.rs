use super::init::RootKeys;
use super::{read_text, write_file, ToolError};
use crate::index::root::TrustRoot;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The published directory (the next root goes to DIR/root/<version>.root.toml)
    dir: PathBuf,
    /// The root devices trust now (the newest published one)
    #[arg(long)]
    current: PathBuf,
    #[command(flatten)]
    keys: RootKeys,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    let current = TrustRoot::parse(&read_text(&a.current)?)
        .map_err(|e| ToolError(format!("{}: {e}", a.current.display())))?;
    let next = current.version + 1;
    let text = a.keys.root_text(next)?;
    let dir = a.dir.join("root");
    std::fs::create_dir_all(&dir).map_err(|e| ToolError(format!("{}: {e}", dir.display())))?;
    let out = dir.join(format!("{next}.root.toml"));
    write_file(&out, text.as_bytes())?;
    println!(
        "wrote {}; sign it with {} of the current root keys and {} of its own (`fwguard-index sign --append`)",
        out.display(),
        current.root.threshold,
        a.keys.root_threshold
    );
    Ok(())
}
