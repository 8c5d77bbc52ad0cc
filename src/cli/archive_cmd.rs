//! `fwguard archive ...`: the archive of known-good images (`[archive] dir`).

use crate::agent::{Agent, ArchivedImage};
use crate::error::{Error, EXIT_OK, EXIT_VERIFICATION};
use crate::version::Version;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// List the archived images, each verified against the signed index kept with it
    /// (exit 6 when one does not verify)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Reinstall VERSION from the archive and boot it on trial, pinned: verified against
    /// the signed index kept with it, no download needed
    Install {
        version: Version,
        /// Allow a version below the vendor's security floor (logged as a warning)
        #[arg(long)]
        force_insecure: bool,
        /// Install even while a required health check fails on the running firmware
        #[arg(long)]
        force: bool,
    },
}

fn line(i: &ArchivedImage) -> String {
    let mut s = format!("{:<10}", i.version.as_str());
    match (&i.problem, i.size, &i.index_issued_at) {
        (None, Some(size), Some(issued)) => {
            s += &format!(
                " verified  {size} bytes  signed index version {} of {issued}",
                i.index_version.unwrap_or_default()
            );
        }
        (problem, _, _) => {
            s += &format!(" FAILED    {}", problem.as_deref().unwrap_or("unreadable"));
        }
    }
    if i.running {
        s += "  (running)";
    }
    if let Some(floor) = &i.below_floor {
        s += &format!("  (below the security floor {floor})");
    }
    if let Some(why) = &i.withdrawn {
        s += &format!("  (withdrawn by the vendor: {why})");
    }
    s
}

pub fn run(agent: Agent, rt: &super::Runtime, cmd: ArchiveCommand) -> Result<i32, Error> {
    match cmd {
        ArchiveCommand::List { json } => {
            let images = agent.archive_list()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&images).expect("list serialises")
                );
            } else if images.is_empty() {
                println!("no images archived yet");
            } else {
                for i in &images {
                    println!("{}", line(i));
                }
            }
            if images.iter().any(|i| i.problem.is_some()) {
                return Ok(EXIT_VERIFICATION);
            }
        }
        ArchiveCommand::Install {
            version,
            force_insecure,
            force,
        } => super::report(rt.block_on(agent.archive_install(version, force_insecure, force))?),
    }
    Ok(EXIT_OK)
}
