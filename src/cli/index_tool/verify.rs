//! Check a published index exactly as a device would: from the trust root it has (or fixed
//! keys), through every root rotation published in DIR/root/, to the index's signatures,
//! format and freshness, and the halt file's (DIR/halt.toml) against the root's halt keys.

use super::{read_keys, read_text};
use crate::index::root::TrustRoot;
use crate::index::{TrustPolicy, UntrustedIndex};
use crate::time::{format_time, unix_now};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The published directory (index.toml, index.toml.sig, root/), or the index file
    path: PathBuf,
    /// The trust root devices were installed with
    #[arg(long, conflicts_with = "public", required_unless_present = "public")]
    root: Option<PathBuf>,
    /// Or: a trusted public key file (repeatable)
    #[arg(long = "public", short = 'p')]
    public: Vec<PathBuf>,
    /// With --public: signatures required from distinct keys
    #[arg(long, default_value_t = 1)]
    threshold: usize,
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn check(a: &Args) -> Result<String, String> {
    let (dir, index) = if a.path.is_dir() {
        (a.path.clone(), a.path.join("index.toml"))
    } else {
        (
            a.path.parent().map(Path::to_path_buf).unwrap_or_default(),
            a.path.clone(),
        )
    };
    let mut root = match &a.root {
        Some(p) => TrustRoot::parse(&read_text(p).map_err(|e| e.0)?)
            .map_err(|e| format!("{}: {e}", p.display()))?,
        None => TrustRoot::fixed(TrustPolicy {
            keys: read_keys(&a.public).map_err(|e| e.0)?,
            threshold: a.threshold,
        }),
    };
    let mut notes = Vec::new();
    while !root.root.keys.is_empty() {
        let next = dir.join(format!("root/{}.root.toml", root.version + 1));
        if !next.exists() {
            break;
        }
        let sig = PathBuf::from(format!("{}.sig", next.display()));
        root = root
            .rotate(&read(&next)?, &read(&sig)?)
            .map_err(|e| format!("{}: {e}", next.display()))?;
        notes.push(format!("root rotated to version {}", root.version));
        if let Some(at) = root.time_floor {
            notes.push(format!(
                "root version {} resets devices' time floor to {}",
                root.version,
                format_time(at)
            ));
        }
    }
    let sig = PathBuf::from(format!("{}.sig", index.display()));
    let ix = UntrustedIndex {
        bytes: read(&index)?,
        signatures: read(&sig)?,
    }
    .verify(&root.index, None, unix_now(), 0)
    .map_err(|e| e.to_string())?;
    notes.push(format!(
        "index version {}, {} release(s), signed by {}, expires {}",
        ix.version(),
        ix.releases().len(),
        ix.signers()
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        format_time(ix.expires())
    ));
    let halt = dir.join(crate::index::halt::HALT_FILE);
    match (&root.halt, halt.exists()) {
        (Some(keys), true) => {
            let sig = PathBuf::from(format!("{}.sig", halt.display()));
            let h = crate::index::halt::UntrustedHalt {
                bytes: read(&halt)?,
                signatures: read(&sig)?,
            }
            .verify(keys, root.version, None, unix_now())
            .map_err(|e| format!("{}: {e}", halt.display()))?;
            let halted: Vec<String> = h.entries.iter().map(|e| e.release.to_string()).collect();
            notes.push(format!(
                "halt version {} halts {}, expires {}",
                h.version,
                match halted.is_empty() {
                    true => "no release".to_string(),
                    false => halted.join(", "),
                },
                format_time(h.expires)
            ));
        }
        (None, true) => notes.push(format!(
            "{} is ignored: the trust root has no halt keys",
            halt.display()
        )),
        (_, false) => {}
    }
    Ok(notes.join("; "))
}

pub fn run(a: Args) -> i32 {
    match check(&a) {
        Ok(what) => {
            println!("OK: {what}");
            0
        }
        Err(e) => {
            eprintln!("fwguard-index: REFUSED: {e}");
            crate::error::EXIT_VERIFICATION
        }
    }
}
