use super::{read_keys, write_file, ToolError};
use crate::index::root::{NewRoot, TrustRoot};
use std::path::PathBuf;

/// The keys and thresholds of a trust root (shared by `init` and `rotate-root`).
#[derive(Debug, clap::Args)]
pub struct RootKeys {
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
    pub root_threshold: usize,
    /// Public key allowed to sign halt.toml, and nothing else (repeatable; a fleet service
    /// holds it online): it can stop rollouts, never publish or change a release
    #[arg(long = "halt-key")]
    halt_keys: Vec<PathBuf>,
    /// Halt signatures required from distinct halt keys
    #[arg(long, default_value_t = 1)]
    halt_threshold: usize,
}

impl RootKeys {
    /// The root file text for `version` (resetting devices' time floor to `time_floor` when
    /// they rotate to it), checked as a device would parse it.
    pub fn root_text(&self, version: u64, time_floor: Option<u64>) -> Result<String, ToolError> {
        let text = NewRoot {
            version,
            index: &read_keys(&self.index_keys)?,
            index_threshold: self.index_threshold,
            root: &read_keys(&self.root_keys)?,
            root_threshold: self.root_threshold,
            time_floor,
            halt: &read_keys(&self.halt_keys)?,
            halt_threshold: self.halt_threshold,
        }
        .to_toml();
        TrustRoot::parse(&text)?;
        Ok(text)
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Root file to create (install it on devices as the config's index.root)
    root: PathBuf,
    #[command(flatten)]
    keys: RootKeys,
    #[arg(long, default_value_t = 1)]
    version: u64,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    if a.root.exists() {
        return Err(ToolError(format!("{} exists", a.root.display())));
    }
    write_file(&a.root, a.keys.root_text(a.version, None)?.as_bytes())?;
    println!(
        "created trust root {} (version {})",
        a.root.display(),
        a.version
    );
    Ok(())
}
