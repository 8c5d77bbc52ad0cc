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
    /// Reset the time floor of devices that accept this root to TIME (RFC 3339, or "now"):
    /// recovery after an index was signed with an `issued_at` in the future. Never below a
    /// device's running firmware's build time. Without it devices keep their floor.
    #[arg(long, value_name = "TIME", value_parser = parse_floor)]
    reset_time_floor: Option<u64>,
}

fn parse_floor(s: &str) -> Result<u64, String> {
    match s {
        "now" => Ok(crate::time::unix_now()),
        _ => crate::time::parse_time(s),
    }
}

pub fn run(a: Args) -> Result<(), ToolError> {
    let current = TrustRoot::parse(&read_text(&a.current)?)
        .map_err(|e| ToolError(format!("{}: {e}", a.current.display())))?;
    let next = current.version + 1;
    let text = a.keys.root_text(next, a.reset_time_floor)?;
    let dir = a.dir.join("root");
    std::fs::create_dir_all(&dir).map_err(|e| ToolError(format!("{}: {e}", dir.display())))?;
    let out = dir.join(format!("{next}.root.toml"));
    write_file(&out, text.as_bytes())?;
    if let Some(at) = a.reset_time_floor {
        println!(
            "devices that accept root version {next} reset their time floor to {}: publish no index issued before it",
            crate::time::format_time(at)
        );
    }
    println!(
        "wrote {}; sign it with {} of the current root keys and {} of its own (`fwguard-index sign --append`)",
        out.display(),
        current.root.threshold,
        a.keys.root_threshold
    );
    Ok(())
}
