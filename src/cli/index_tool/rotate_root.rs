use super::{read_keys, read_text, write_file, ToolError};
use crate::index::root::{root_toml, TrustRoot};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The published directory (the next root goes to DIR/root/<version>.root.toml)
    dir: PathBuf,
    /// The root devices trust now (the newest published one)
    #[arg(long)]
    current: PathBuf,
    #[arg(long = "index-key", required = true)]
    index_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    index_threshold: usize,
    #[arg(long = "root-key", required = true)]
    root_keys: Vec<PathBuf>,
    #[arg(long, default_value_t = 1)]
    root_threshold: usize,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    let current = TrustRoot::parse(&read_text(&a.current)?)
        .map_err(|e| ToolError(format!("{}: {e}", a.current.display())))?;
    let next = current.version + 1;
    let text = root_toml(
        next,
        &read_keys(&a.index_keys)?,
        a.index_threshold,
        &read_keys(&a.root_keys)?,
        a.root_threshold,
    );
    TrustRoot::parse(&text)?;
    let dir = a.dir.join("root");
    std::fs::create_dir_all(&dir).map_err(|e| ToolError(format!("{}: {e}", dir.display())))?;
    let out = dir.join(format!("{next}.root.toml"));
    write_file(&out, text.as_bytes())?;
    println!(
        "wrote {}; sign it with {} of the current root keys and {} of its own (`fwguard-index sign --append`)",
        out.display(),
        current.root.threshold,
        a.root_threshold
    );
    Ok(())
}
