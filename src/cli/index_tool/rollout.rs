use super::{edit_index, parse_secs, ToolError};
use crate::time::{parse_time, unix_now};
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
    /// A wave as DELAY:PERCENT, e.g. 1h:1 4h:5 1d:15 (repeatable; replaces the waves)
    #[arg(long = "wave", conflicts_with_all = ["halt", "resume"])]
    waves: Vec<String>,
    /// When the first delay starts counting (RFC 3339) [default: now]
    #[arg(long, requires = "waves")]
    start: Option<String>,
    /// Stop offering the release to devices that do not have it yet
    #[arg(long, conflicts_with = "resume")]
    halt: bool,
    /// Offer it again
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value = "90d")]
    expires_in: String,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    if a.halt || a.resume {
        return edit_index(&a.index, &a.expires_in, |d| {
            d.set_halted(&a.version, a.board.as_deref(), a.halt)
        });
    }
    if a.waves.is_empty() {
        return Err(ToolError(
            "give --wave DELAY:PERCENT (repeatable), --halt or --resume".into(),
        ));
    }
    let mut waves = Vec::new();
    for w in &a.waves {
        let (d, p) = w
            .split_once(':')
            .ok_or_else(|| ToolError(format!("wave {w:?} is not DELAY:PERCENT")))?;
        let pct: u8 = p
            .parse()
            .map_err(|_| ToolError(format!("wave {w:?}: {p:?} is not a percentage")))?;
        waves.push((parse_secs(d)?, pct));
    }
    let start = match &a.start {
        Some(s) => parse_time(s).map_err(ToolError)?,
        None => unix_now(),
    };
    edit_index(&a.index, &a.expires_in, |d| {
        d.set_rollout(&a.version, a.board.as_deref(), start, &waves)
    })
}
