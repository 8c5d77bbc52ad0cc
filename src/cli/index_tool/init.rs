use super::{read_keys, write_file, ToolError};
use crate::index::root::{root_toml, TrustRoot};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Root file to create (install it on devices as the config's index.root)
    root: PathBuf,
    /// Public key allowed to sign the index (repeatable)
    #[arg(long = "index-key", required = true)]
    index_keys: Vec<PathBuf>,
    /// Index signatures required from distinct index keys
    #[arg(long, default_value_t = 1)]
    index_threshold: usize,
    /// Public key allowed to sign the next root (repeatable)
    #[arg(long = "root-key", required = true)]
    root_keys: Vec<PathBuf>,
    /// Root signatures required from distinct root keys
    #[arg(long, default_value_t = 1)]
    root_threshold: usize,
    #[arg(long, default_value_t = 1)]
    version: u64,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    if a.root.exists() {
        return Err(ToolError(format!("{} exists", a.root.display())));
    }
    let text = root_toml(
        a.version,
        &read_keys(&a.index_keys)?,
        a.index_threshold,
        &read_keys(&a.root_keys)?,
        a.root_threshold,
    );
    TrustRoot::parse(&text)?;
    write_file(&a.root, text.as_bytes())?;
    println!(
        "created trust root {} (version {})",
        a.root.display(),
        a.version
    );
    Ok(())
}
