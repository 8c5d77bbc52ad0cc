//! `fwguard-index halt`: halt or resume a release in `halt.toml`, to be signed with a halt
//! key (the trust root's halt-only role). Each edit writes the next version.

use super::{parse_secs, read_text, write_file, ToolError};
use crate::index::halt::HaltDraft;
use crate::version::Version;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The halt file next to the index (DIR/halt.toml); created if missing
    file: PathBuf,
    /// The release to halt
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    release: Option<Version>,
    /// Only for this board (repeatable) [default: every board]
    #[arg(long = "board", requires = "release")]
    boards: Vec<String>,
    /// Why, for the devices' owners and the vendor's records
    #[arg(long, requires = "release")]
    reason: Option<String>,
    /// Lift every halt of this release
    #[arg(long, value_name = "RELEASE")]
    resume: Option<Version>,
    /// How long devices honour this file unless a newer one is signed; a fleet service signs
    /// again before that
    #[arg(long, default_value = "7d")]
    expires_in: String,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    let mut draft = match a.file.exists() {
        true => HaltDraft::parse(&read_text(&a.file)?)
            .map_err(|e| ToolError(format!("{}: {e}", a.file.display())))?,
        false => HaltDraft::default(),
    };
    let line = match (a.release, a.resume) {
        (Some(v), _) => {
            let reason = a.reason.unwrap_or_else(|| "halted by the vendor".into());
            let on = match a.boards.is_empty() {
                true => "every board".to_string(),
                false => a.boards.join(", "),
            };
            let line = format!("halted {v} on {on}: {reason}");
            draft.halt(v, a.boards, reason);
            line
        }
        (None, Some(v)) => match draft.resume(&v) {
            true => format!("resumed {v}"),
            false => {
                return Err(ToolError(format!(
                    "{v} is not halted in {}",
                    a.file.display()
                )))
            }
        },
        (None, None) => return Err(ToolError("give --release or --resume".into())),
    };
    let now = crate::time::unix_now();
    let text = draft.next_toml(now, now + parse_secs(&a.expires_in)?);
    write_file(&a.file, text.as_bytes())?;
    println!("{line}");
    println!(
        "{} version is now {}; sign it with a halt key (`fwguard-index sign {} -s HALT.sec`)",
        a.file.display(),
        draft.version,
        a.file.display()
    );
    Ok(())
}
