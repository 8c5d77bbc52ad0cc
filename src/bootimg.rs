//! What a bootloader finds at the start of a slot: the vendor's own boot image formats, read
//! from their headers. fwguard adds nothing to a slot; what a release is comes from the
//! signed index. These headers serve where no index can: to tell how long the boot image of
//! firmware that fwguard never installed is (so it can be recorded and checked again later),
//! and when the running firmware was built (a lower bound for the clock of a router without
//! a real-time clock).
//!
//! - legacy **uImage** (`mkimage -A arm -T kernel ...`, booted with `bootm`): a 64-byte
//!   big-endian header, magic `0x27051956`, a CRC-32 of the header and one of the data, the
//!   data size, the creation time;
//! - **FIT** (`mkimage -f`, booted with `bootm`): a flattened device tree, magic
//!   `0xd00dfeed`, its total size in the header and `/timestamp` among the root's properties;
//! - ARM **zImage** (booted with `bootz`, as stock Linksys U-Boot does): magic `0x016f2818`
//!   at offset 0x24, the start and end addresses of the image at 0x28 and 0x2c.

/// Bytes of a slot's start that [`detect`] needs to see (a FIT's root properties included).
pub const HEAD: usize = 4096;

const UIMAGE_MAGIC: u32 = 0x2705_1956;
const UIMAGE_HEADER: usize = 64;
const FDT_MAGIC: u32 = 0xd00d_feed;
const ZIMAGE_MAGIC: u32 = 0x016f_2818;
/// No router kernel or FIT is larger than this; a header that says otherwise is not one.
const MAX_IMAGE: u64 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    UImage,
    Fit,
    ZImage,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::UImage => "uImage",
            Format::Fit => "FIT",
            Format::ZImage => "zImage",
        }
    }
}

/// A boot image found at the start of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImage {
    pub format: Format,
    /// Bytes from the start of the slot that the image covers (its header included).
    pub size: u64,
    /// When it was built (seconds since the Unix epoch), where the format says.
    pub build_time: Option<u64>,
    /// Its name or description, where the format has one.
    pub name: Option<String>,
}

impl BootImage {
    /// For people: `uImage "OpenWrt Linux-6.6" (2621504 bytes)`.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("{} {n:?} ({} bytes)", self.format.as_str(), self.size),
            None => format!("{} ({} bytes)", self.format.as_str(), self.size),
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The boot image at the start of `head` (the first [`HEAD`] bytes of a slot), if its
/// header is one of the formats above and consistent (a uImage's header CRC matches, sizes
/// are plausible). Erased (0xff) or zeroed flash is none.
pub fn detect(head: &[u8]) -> Option<BootImage> {
    detect_with(head, |_, _| None)
}

/// [`detect`], with `read(offset, len)` for what a FIT keeps past the head: the strings
/// block that names its properties, which `mkimage` puts after the (large) structure block.
pub fn detect_with(head: &[u8], read: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<BootImage> {
    uimage(head)
        .or_else(|| fit(head, read))
        .or_else(|| zimage(head))
}

fn text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let s = String::from_utf8_lossy(&bytes[..end]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn uimage(head: &[u8]) -> Option<BootImage> {
    if be32(head, 0)? != UIMAGE_MAGIC || head.len() < UIMAGE_HEADER {
        return None;
    }
    let mut h = head[..UIMAGE_HEADER].to_vec();
    let hcrc = be32(&h, 4)?;
    h[4..8].fill(0);
    if crc32fast::hash(&h) != hcrc {
        return None;
    }
    let data = u64::from(be32(head, 12)?);
    let size = UIMAGE_HEADER as u64 + data;
    (size <= MAX_IMAGE).then(|| BootImage {
        format: Format::UImage,
        size,
        build_time: Some(u64::from(be32(head, 8).unwrap_or(0))).filter(|&t| t > 0),
        name: text(&head[32..64]),
    })
}

/// Whether a whole uImage (header and data) checks as `bootm` checks it: the header CRC
/// and the CRC-32 of the data.
pub fn uimage_intact(img: &[u8]) -> bool {
    let Some(b) = uimage(img) else {
        return false;
    };
    let Some(data) = img.get(UIMAGE_HEADER..b.size as usize) else {
        return false;
    };
    be32(img, 24) == Some(crc32fast::hash(data))
}

/// Most bytes of a FIT's strings block read (it names properties: a few hundred bytes).
const MAX_STRINGS: usize = 64 * 1024;

fn fit(head: &[u8], read: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<BootImage> {
    if be32(head, 0)? != FDT_MAGIC {
        return None;
    }
    let size = u64::from(be32(head, 4)?);
    if !(40..=MAX_IMAGE).contains(&size) {
        return None;
    }
    let (o, l) = (be32(head, 12)? as usize, be32(head, 32)? as usize);
    if l > MAX_STRINGS || o.saturating_add(l) as u64 > size {
        return None;
    }
    let strings = match head.get(o..o + l) {
        Some(s) => s.to_vec(),
        None => read(o as u64, l).filter(|s| s.len() == l)?,
    };
    // A FIT made with `mkimage -E` keeps its images' data after the tree (properties
    // `data-offset` / `data-position`): `totalsize` does not cover them, so its extent is not
    // known from the header; such a FIT is no boot image fwguard can size.
    let has = |n: &[u8]| strings.split(|&b| b == 0).any(|s| s == n);
    if has(b"data-offset") || has(b"data-position") {
        return None;
    }
    let root = fdt_root_props(head, &strings);
    let prop = |name: &str| root.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    Some(BootImage {
        format: Format::Fit,
        size,
        build_time: prop("timestamp")
            .and_then(|v| be32(&v, 0))
            .map(u64::from)
            .filter(|&t| t > 0),
        name: prop("description").and_then(|v| text(&v)),
    })
}

/// The root node's properties of the device tree in `head`, as far as `head` holds them
/// (they come before the first child node).
fn fdt_root_props(head: &[u8], strings: &[u8]) -> Vec<(String, Vec<u8>)> {
    const BEGIN_NODE: u32 = 1;
    const PROP: u32 = 3;
    const NOP: u32 = 4;
    let mut out = Vec::new();
    let Some(st) = be32(head, 8) else {
        return out;
    };
    let mut at = st as usize;
    let align = |n: usize| (n + 3) & !3;
    // The root node's own BEGIN_NODE and (empty) name.
    if be32(head, at) != Some(BEGIN_NODE) {
        return out;
    }
    at += 4;
    let Some(name_len) = head.get(at..).and_then(|r| r.iter().position(|&b| b == 0)) else {
        return out;
    };
    at = align(at + name_len + 1);
    loop {
        match be32(head, at) {
            Some(NOP) => at += 4,
            Some(PROP) => {
                let (Some(len), Some(nameoff)) = (be32(head, at + 4), be32(head, at + 8)) else {
                    return out;
                };
                let value = at + 12;
                let Some(v) = head.get(value..value + len as usize) else {
                    return out;
                };
                let name = strings
                    .get(nameoff as usize..)
                    .and_then(|s| text(&s[..s.iter().position(|&b| b == 0).unwrap_or(0)]));
                if let Some(name) = name {
                    out.push((name, v.to_vec()));
                }
                at = align(value + len as usize);
            }
            _ => return out,
        }
    }
}

fn zimage(head: &[u8]) -> Option<BootImage> {
    if le32(head, 0x24)? != ZIMAGE_MAGIC {
        return None;
    }
    let (start, end) = (le32(head, 0x28)?, le32(head, 0x2c)?);
    let size = u64::from(end.checked_sub(start)?);
    (0x30..=MAX_IMAGE).contains(&size).then_some(BootImage {
        format: Format::ZImage,
        size,
        build_time: None,
        name: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uimage_of(data: &[u8], time: u32, name: &str) -> Vec<u8> {
        let mut h = vec![0u8; UIMAGE_HEADER];
        h[0..4].copy_from_slice(&UIMAGE_MAGIC.to_be_bytes());
        h[8..12].copy_from_slice(&time.to_be_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
        h[24..28].copy_from_slice(&crc32fast::hash(data).to_be_bytes());
        h[32..32 + name.len()].copy_from_slice(name.as_bytes());
        let crc = crc32fast::hash(&h);
        h[4..8].copy_from_slice(&crc.to_be_bytes());
        h.extend_from_slice(data);
        h
    }

    #[test]
    fn a_uimage_is_read_and_checked() {
        let img = uimage_of(b"kernel bytes", 1_793_491_200, "Linux 6.6");
        let b = detect(&img).unwrap();
        assert_eq!(b.format, Format::UImage);
        assert_eq!(b.size, img.len() as u64);
        assert_eq!(b.build_time, Some(1_793_491_200));
        assert_eq!(b.name.as_deref(), Some("Linux 6.6"));
        assert!(uimage_intact(&img));
        let mut bad = img.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(!uimage_intact(&bad), "a data CRC mismatch is caught");
        assert!(detect(&bad).is_some(), "the header alone still reads");
        bad[40] ^= 1;
        assert_eq!(detect(&bad), None, "a header CRC mismatch is no image");
    }

    #[test]
    fn a_zimage_is_sized_by_its_header() {
        let mut img = vec![0u8; 0x1000];
        img[0x24..0x28].copy_from_slice(&ZIMAGE_MAGIC.to_le_bytes());
        img[0x2c..0x30].copy_from_slice(&0x1000u32.to_le_bytes());
        let b = detect(&img).unwrap();
        assert_eq!((b.format, b.size), (Format::ZImage, 0x1000));
        img[0x2c..0x30].copy_from_slice(&0x10u32.to_le_bytes());
        assert_eq!(detect(&img), None, "an implausible size is no zImage");
    }

    #[test]
    fn erased_and_zeroed_flash_hold_nothing() {
        assert_eq!(detect(&[0xffu8; HEAD]), None);
        assert_eq!(detect(&[0u8; HEAD]), None);
        assert_eq!(detect(&[]), None);
    }

    #[test]
    fn a_fit_gives_its_size_timestamp_and_description() {
        // A minimal FDT: header (40 bytes), structure, strings.
        let strings = b"timestamp\0description\0";
        let mut st = Vec::new();
        let w = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
        w(&mut st, 1);
        w(&mut st, 0); // root name "" padded
        w(&mut st, 3);
        w(&mut st, 4);
        w(&mut st, 0);
        w(&mut st, 1_800_000_000);
        w(&mut st, 3);
        w(&mut st, 6);
        w(&mut st, 10);
        st.extend_from_slice(b"fw 2\0\0\0\0");
        w(&mut st, 1);
        st.extend_from_slice(b"images\0\0");
        let mut img = vec![0u8; 40];
        let total = 40 + st.len() + strings.len();
        img[0..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        img[4..8].copy_from_slice(&(total as u32).to_be_bytes());
        img[8..12].copy_from_slice(&40u32.to_be_bytes());
        img[12..16].copy_from_slice(&((40 + st.len()) as u32).to_be_bytes());
        img[32..36].copy_from_slice(&(strings.len() as u32).to_be_bytes());
        img.extend_from_slice(&st);
        img.extend_from_slice(strings);
        let b = detect(&img).unwrap();
        assert_eq!(b.format, Format::Fit);
        assert_eq!(b.size, total as u64);
        assert_eq!(b.build_time, Some(1_800_000_000));
        assert_eq!(b.name.as_deref(), Some("fw 2"));
        // Its strings past the head (as after a large embedded image): read for it.
        let head = &img[..40 + st.len()];
        assert_eq!(detect_with(head, |_, _| None), None);
        let read = |at: u64, len: usize| Some(img[at as usize..at as usize + len].to_vec());
        assert_eq!(detect_with(head, read), Some(b));
        // Images' data outside the tree (`mkimage -E`): its extent is not known.
        let mut ext = img[..40 + st.len()].to_vec();
        let names = b"data-offset\0description\0timestamp\0";
        ext.extend_from_slice(names);
        ext[32..36].copy_from_slice(&(names.len() as u32).to_be_bytes());
        let total = ext.len() as u32;
        ext[4..8].copy_from_slice(&total.to_be_bytes());
        assert_eq!(detect(&ext), None);
    }
}
