//! `fwguard-index`: the vendor's tool for keys and signed indexes. Never needed on a router.
//! Its output is a directory of static files any web server, CDN or object store can serve.

mod add_release;
mod floor;
mod halt;
mod image;
mod init;
mod keygen;
mod new;
mod pull;
mod rollout;
mod rotate_root;
mod sign;
mod verify;

use clap::{Parser, Subcommand};
use std::path::Path;

#[derive(Debug, Parser)]
#[command(
    name = "fwguard-index",
    version,
    about = "Create keys and signed firmware indexes for fwguard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a signing key pair (signify/usign format, unencrypted)
    Keygen(keygen::Args),
    /// Start a new, empty index
    New(new::Args),
    /// Create a trust root: the keys that sign the index and the keys that sign the next root
    Init(init::Args),
    /// Check that an image starts with what bootloaders boot (uImage, FIT, zImage) and is whole
    Image(image::Args),
    /// Add a release, reading the image to fill its size and sha256
    AddRelease(Box<add_release::Args>),
    /// Withdraw a release (devices never install it; devices running it are told)
    Pull(pull::Args),
    /// Put a pulled release back
    Unpull(pull::UnpullArgs),
    /// Stage a release's rollout in waves, or halt / resume it
    Rollout(rollout::Args),
    /// Set or clear a board's security floor
    Floor(floor::Args),
    /// Halt or resume a release in halt.toml (signed by a halt key, which can do nothing else)
    Halt(halt::Args),
    /// Write the next trust root, to be signed by the current root keys and its own
    RotateRoot(rotate_root::Args),
    /// Sign an index's exact bytes
    Sign(sign::Args),
    /// Check an index as a device would, and say why it fails
    Verify(verify::Args),
}

/// A failure of the vendor tool: what went wrong, with its path.
#[derive(Debug)]
pub struct ToolError(pub String);

impl<E: std::fmt::Display> From<E> for ToolError {
    fn from(e: E) -> Self {
        ToolError(e.to_string())
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, ToolError> {
    std::fs::read_to_string(path).map_err(|e| ToolError(format!("{}: {e}", path.display())))
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ToolError> {
    std::fs::write(path, bytes).map_err(|e| ToolError(format!("{}: {e}", path.display())))
}

/// Seconds from a duration such as "90d".
pub(crate) fn parse_secs(s: &str) -> Result<u64, ToolError> {
    humantime::parse_duration(s)
        .map(|d| d.as_secs())
        .map_err(|e| ToolError(format!("{s:?} is not a duration such as 90d: {e}")))
}

/// Load an index, apply `edit`, bump its version and times, write it back. `edit` returns
/// what it changed, a line each (printed).
pub(crate) fn edit_index(
    path: &Path,
    expires_in: &str,
    edit: impl FnOnce(&mut crate::index::build::IndexDraft) -> Result<Vec<String>, String>,
) -> Result<(), ToolError> {
    let mut draft = crate::index::build::IndexDraft::parse(&read_text(path)?)
        .map_err(|e| ToolError(format!("{}: {e}", path.display())))?;
    let lines = edit(&mut draft).map_err(ToolError)?;
    let now = crate::time::unix_now();
    draft.bump(now, now + parse_secs(expires_in)?);
    write_file(path, draft.to_toml().as_bytes())?;
    for line in lines {
        println!("{line}");
    }
    println!("index version is now {}; sign it again", draft.version());
    Ok(())
}

/// Public keys from key files.
pub(crate) fn read_keys(
    paths: &[std::path::PathBuf],
) -> Result<Vec<crate::index::sign::PublicKey>, ToolError> {
    paths
        .iter()
        .map(|p| {
            crate::index::sign::PublicKey::parse(&read_text(p)?)
                .map_err(|e| ToolError(format!("{}: {e}", p.display())))
        })
        .collect()
}

/// Run the tool; returns the exit code (0 ok, 1 failure, 6 verification refused).
pub fn main() -> i32 {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::New(a) => new::run(a),
        Command::Init(a) => init::run(a),
        Command::Image(a) => image::run(a),
        Command::AddRelease(a) => add_release::run(*a),
        Command::Pull(a) => pull::run(a),
        Command::Unpull(a) => pull::run_unpull(a),
        Command::Rollout(a) => rollout::run(a),
        Command::Floor(a) => floor::run(a),
        Command::Halt(a) => halt::run(a),
        Command::RotateRoot(a) => rotate_root::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Verify(a) => return verify::run(a),
    };
    match r {
        Ok(()) => 0,
        Err(ToolError(msg)) => {
            eprintln!("fwguard-index: error: {msg}");
            1
        }
    }
}
