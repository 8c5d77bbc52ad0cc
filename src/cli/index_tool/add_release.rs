use super::{edit_index, ToolError};
use crate::index::build::NewRelease;
use crate::version::Version;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index file to change
    index: PathBuf,
    /// Firmware version of the release
    #[arg(long)]
    version: Version,
    /// Board id the image is for (repeatable)
    #[arg(long = "board", required = true)]
    boards: Vec<String>,
    /// Channel the release is in (repeatable)
    #[arg(long = "channel", default_value = "stable")]
    channels: Vec<String>,
    /// The image file (read to fill size and sha256)
    #[arg(long)]
    image: PathBuf,
    /// Download URL, absolute or relative to the index (repeatable; tried in order).
    /// Default: images/<image file name>
    #[arg(long = "url")]
    urls: Vec<String>,
    /// The lowest running version this release may be installed from
    #[arg(long)]
    min_from: Option<Version>,
    /// How long the re-signed index stays valid
    #[arg(long, default_value = "90d")]
    expires_in: String,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    let urls = if a.urls.is_empty() {
        let name = a
            .image
            .file_name()
            .ok_or_else(|| ToolError("image path has no file name".into()))?;
        vec![format!("images/{}", name.to_string_lossy())]
    } else {
        a.urls
    };
    let mut rel = NewRelease::from_image(a.version.clone(), a.boards, a.channels, urls, &a.image)
        .map_err(|e| ToolError(format!("{}: {e}", a.image.display())))?;
    rel.min_from = a.min_from;
    let (size, sha) = (rel.size, hex::encode(rel.sha256));
    edit_index(&a.index, &a.expires_in, |d| {
        d.add_release(rel)?;
        Ok(vec![format!(
            "added {} ({size} bytes, sha256 {sha})",
            a.version
        )])
    })
}
