//! `fwguard-index image FILE`: what a bootloader finds at the start of a slot that holds
//! FILE. A slot holds the vendor's image as it is, from offset 0, so the file must start with
//! a boot image that bootloaders load (a uImage, a FIT, an ARM zImage) and be complete.

use super::ToolError;
use crate::bootimg::{self, Format};
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The firmware image as the slot will hold it
    image: PathBuf,
}

pub fn run(a: Args) -> Result<(), ToolError> {
    let name = a.image.display();
    let fail = |what: String| ToolError(format!("{name}: {what}"));
    let mut file = std::fs::File::open(&a.image).map_err(|e| fail(e.to_string()))?;
    let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    let mut head = Vec::new();
    (&mut file)
        .take(bootimg::HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|e| fail(e.to_string()))?;
    let path = &a.image;
    let b = bootimg::detect_with(&head, |at, len| {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::File::open(path).ok()?;
        f.seek(SeekFrom::Start(at)).ok()?;
        let mut out = vec![0u8; len];
        f.read_exact(&mut out).ok()?;
        Some(out)
    })
    .ok_or_else(|| {
        fail("starts with no uImage, FIT (with its images' data inside it) or zImage: a bootloader that loads the slot from offset 0 would not boot it, or fwguard cannot tell its extent (fwguard adds no header of its own: publish the image exactly as the slot must hold it)".into())
    })?;
    if b.size > len {
        return Err(fail(format!(
            "{} says it is {} bytes, but the file has {len}: truncated",
            b.format.as_str(),
            b.size
        )));
    }
    if b.format == Format::UImage {
        let mut img = head;
        let want = b.size as usize;
        (&mut file)
            .take((want - img.len().min(want)) as u64)
            .read_to_end(&mut img)
            .map_err(|e| fail(e.to_string()))?;
        if !bootimg::uimage_intact(&img[..want.min(img.len())]) {
            return Err(fail(
                "uImage data CRC does not match: `bootm` refuses it".into(),
            ));
        }
    }
    let built = b
        .build_time
        .map(|t| format!(", built {}", crate::time::format_time(t)))
        .unwrap_or_default();
    let rest = if len > b.size {
        format!(
            "; {} bytes follow it (a root filesystem, say)",
            len - b.size
        )
    } else {
        String::new()
    };
    println!("{name}: {}{built}{rest}", b.describe());
    Ok(())
}
