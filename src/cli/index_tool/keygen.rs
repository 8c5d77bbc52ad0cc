use super::{write_file, ToolError};
use crate::index::sign::SecretKey;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Secret key file to create
    #[arg(long, short = 's')]
    secret: PathBuf,
    /// Public key file to create
    #[arg(long, short = 'p')]
    public: PathBuf,
    /// Comment stored in the key files
    #[arg(long, default_value = "fwguard index key")]
    comment: String,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    for p in [&a.secret, &a.public] {
        if p.exists() {
            return Err(ToolError(format!(
                "{} exists; refusing to overwrite a key",
                p.display()
            )));
        }
    }
    let key = SecretKey::generate()?;
    write_file(
        &a.secret,
        key.to_file(&format!("{} secret key", a.comment)).as_bytes(),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&a.secret, std::fs::Permissions::from_mode(0o600))?;
    write_file(
        &a.public,
        key.public()
            .to_file(&format!("{} public key", a.comment))
            .as_bytes(),
    )?;
    println!(
        "key id {}; trusted_keys entry: \"{}\"",
        key.id,
        key.public().to_base64()
    );
    Ok(())
}
