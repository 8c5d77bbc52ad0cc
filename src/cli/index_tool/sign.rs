use super::{read_text, write_file, ToolError};
use crate::index::build::sign_bytes;
use crate::index::sign::SecretKey;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index file to sign (its exact bytes are signed)
    index: PathBuf,
    /// Secret key file
    #[arg(long, short = 's')]
    secret: PathBuf,
    /// Add to the signatures already in INDEX.sig (several signers) instead of replacing them
    #[arg(long)]
    append: bool,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    let key = SecretKey::parse(&read_text(&a.secret)?)
        .map_err(|e| ToolError(format!("{}: {e}", a.secret.display())))?;
    let bytes =
        std::fs::read(&a.index).map_err(|e| ToolError(format!("{}: {e}", a.index.display())))?;
    let sig_path = PathBuf::from(format!("{}.sig", a.index.display()));
    let mut out = if a.append && sig_path.exists() {
        read_text(&sig_path)?
    } else {
        String::new()
    };
    out.push_str(&sign_bytes(
        &key,
        &bytes,
        &a.secret.with_extension("pub").display().to_string(),
    ));
    write_file(&sig_path, out.as_bytes())?;
    println!(
        "signed {} with key {} -> {}",
        a.index.display(),
        key.id,
        sig_path.display()
    );
    Ok(())
}
