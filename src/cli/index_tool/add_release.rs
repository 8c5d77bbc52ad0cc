use super::{edit_index, ToolError};
use crate::carry::CompatVersion;
use crate::index::build::{part_from_file, NewRelease};
use crate::index::factory::linksys_factory_extents;
use crate::index::part::Part;
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
    /// A further part of the release, besides the image, as NAME:TARGET:FILE (repeatable; in
    /// the order they are written). Its URL: images/<file name>, unless --part-url gives one
    #[arg(long = "part", value_name = "NAME:TARGET:FILE")]
    parts: Vec<String>,
    /// A part's download URL, as NAME=URL (repeatable; tried in order)
    #[arg(long = "part-url", value_name = "NAME=URL")]
    part_urls: Vec<String>,
    /// The image is a Linksys factory image for this model (its `.LINKSYS.` footer must name
    /// it): a slot holding it is then checked by its kernel and its UBI root volume, which
    /// survive the firmware's first boot, instead of by the whole image
    #[arg(long, value_name = "MODEL", requires = "kernel_size")]
    linksys_factory: Option<String>,
    /// With --linksys-factory: the kernel's size in the image (the board's KERNEL_SIZE,
    /// 6MiB on the WRT32X), where the UBI image starts
    #[arg(long, value_parser = parse_size, requires = "linksys_factory")]
    kernel_size: Option<u64>,
    /// With --linksys-factory: the flash's erase block size the UBI image was made for
    #[arg(long, value_parser = parse_size, default_value = "128KiB")]
    peb_size: u64,
    /// The image is an OpenWrt sysupgrade image: its kernel becomes the boot image and its
    /// root a part for --root-target, both ranges of the file (the device streams the file
    /// and parses none of it)
    #[arg(long, conflicts_with_all = ["linksys_factory", "parts"])]
    sysupgrade: bool,
    /// With --sysupgrade: the target the root goes to
    #[arg(long, default_value = "rootfs", requires = "sysupgrade")]
    root_target: String,
    /// With --sysupgrade: a device name its metadata's supported_devices must list
    #[arg(long, requires = "sysupgrade")]
    supported_device: Option<String>,
    /// The lowest running version this release may be installed from
    #[arg(long)]
    min_from: Option<Version>,
    /// The version of its configuration format, MAJOR.MINOR (OpenWrt's compat_version;
    /// devices take a release of another minor only on the owner's word, of another major
    /// never). With --sysupgrade: the image's metadata gives it, and this must agree
    #[arg(long, value_parser = CompatVersion::parse)]
    compat_version: Option<CompatVersion>,
    /// What an owner whose firmware cannot take it is told (OpenWrt's compat_message; with
    /// --sysupgrade the image's metadata may give it)
    #[arg(long)]
    compat_message: Option<String>,
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
        a.urls.clone()
    };
    let mut rel = NewRelease::from_image(
        a.version.clone(),
        a.boards.clone(),
        a.channels.clone(),
        urls,
        &a.image,
    )
    .map_err(|e| ToolError(format!("{}: {e}", a.image.display())))?;
    rel.min_from = a.min_from.clone();
    rel.compat_version = a.compat_version;
    rel.compat_message = a.compat_message.clone();
    rel.parts = parts(&a.parts, &a.part_urls)?;
    let mut notes = Vec::new();
    if a.sysupgrade {
        notes = sysupgrade(&mut rel, &a)?;
    }
    if let (Some(model), Some(kernel_size)) = (&a.linksys_factory, a.kernel_size) {
        rel.verify = linksys_factory_extents(&a.image, Some(model), kernel_size, a.peb_size)
            .map_err(ToolError)?;
    }
    let (size, sha) = (rel.size, hex::encode(rel.sha256));
    let mut lines = vec![format!("added {} ({size} bytes, sha256 {sha})", a.version)];
    lines.extend(notes);
    for e in &rel.verify {
        lines.push(format!(
            "  checked by {}: {} bytes{} at {:#x}, sha256 {}",
            e.name,
            e.size,
            e.ubi
                .as_ref()
                .map(|u| format!(" of UBI volume {} in the UBI image", u.volume))
                .unwrap_or_default(),
            e.offset,
            hex::encode(e.sha256)
        ));
    }
    for p in &rel.parts {
        lines.push(format!(
            "  part {} for target {}: {} bytes, sha256 {}",
            p.name,
            p.target,
            p.size,
            hex::encode(p.sha256)
        ));
    }
    edit_index(&a.index, &a.expires_in, |d| {
        d.add_release(rel)?;
        Ok(lines)
    })
}

/// The parts given as NAME:TARGET:FILE, each with its URLs from NAME=URL.
fn parts(specs: &[String], urls: &[String]) -> Result<Vec<Part>, ToolError> {
    let mut by_name: Vec<(&str, &str)> = Vec::new();
    for u in urls {
        let (name, url) = u
            .split_once('=')
            .ok_or_else(|| ToolError(format!("--part-url {u:?}: expected NAME=URL")))?;
        if !specs.iter().any(|s| s.split(':').next() == Some(name)) {
            return Err(ToolError(format!(
                "--part-url {u:?}: no --part is named {name:?}"
            )));
        }
        by_name.push((name, url));
    }
    specs
        .iter()
        .map(|spec| {
            let mut it = spec.splitn(3, ':');
            let (Some(name), Some(target), Some(file)) = (it.next(), it.next(), it.next()) else {
                return Err(ToolError(format!(
                    "--part {spec:?}: expected NAME:TARGET:FILE"
                )));
            };
            let file = std::path::Path::new(file);
            let mut part_urls: Vec<String> = by_name
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, u)| u.to_string())
                .collect();
            if part_urls.is_empty() {
                let base = file
                    .file_name()
                    .ok_or_else(|| ToolError(format!("--part {spec:?}: no file name")))?;
                part_urls.push(format!("images/{}", base.to_string_lossy()));
            }
            part_from_file(name.into(), target.into(), part_urls, file)
                .map_err(|e| ToolError(format!("--part {spec:?}: {}: {e}", file.display())))
        })
        .collect()
}

/// A size: bytes, `0x` hex, or with a KiB / MiB suffix.
fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix("KiB") {
        (n, 1024)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, 1024 * 1024)
    } else {
        (s, 1)
    };
    let v = match num.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => num.parse(),
    }
    .map_err(|_| format!("{s:?} is not a size (bytes, 0x hex, or with KiB or MiB)"))?;
    v.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Fill `rel` from the sysupgrade image it was made from; lines saying what it holds.
fn sysupgrade(rel: &mut NewRelease, a: &Args) -> Result<Vec<String>, ToolError> {
    let s = crate::index::sysupgrade::read(&a.image).map_err(ToolError)?;
    let bytes =
        std::fs::read(&a.image).map_err(|e| ToolError(format!("{}: {e}", a.image.display())))?;
    let mut lines = vec![format!(
        "  sysupgrade image for board {}: kernel {} bytes at {}, root {} bytes at {}",
        s.board, s.kernel.1, s.kernel.0, s.root.1, s.root.0
    )];
    match (&s.metadata, &a.supported_device) {
        (Some(m), Some(d)) if !m.supported_devices.iter().any(|x| x == d) => {
            return Err(ToolError(format!(
                "{}: its metadata does not list {d:?} in supported_devices ({})",
                a.image.display(),
                m.supported_devices.join(", ")
            )))
        }
        (None, Some(d)) => {
            return Err(ToolError(format!(
                "{}: no fwtool metadata, so nothing says it supports {d:?}",
                a.image.display()
            )))
        }
        _ => {}
    }
    if let Some(m) = &s.metadata {
        if let Some(c) = &m.compat_version {
            let c = CompatVersion::parse(c)
                .map_err(|e| ToolError(format!("{}: its metadata's {e}", a.image.display())))?;
            match rel.compat_version {
                Some(given) if given != c => {
                    return Err(ToolError(format!(
                        "--compat-version {given} disagrees with the image's metadata ({c})"
                    )))
                }
                _ => rel.compat_version = Some(c),
            }
        }
        if rel.compat_message.is_none() {
            rel.compat_message = m.compat_message.clone();
        }
        lines.push(format!(
            "  metadata: version {}, compat_version {}, supported_devices {}",
            m.version
                .as_ref()
                .and_then(|v| v.version.as_deref())
                .unwrap_or("?"),
            m.compat_version.as_deref().unwrap_or("1.0"),
            m.supported_devices.join(", ")
        ));
    }
    crate::index::sysupgrade::fill(rel, &s, &bytes, &a.root_target);
    Ok(lines)
}
