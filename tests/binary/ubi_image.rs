//! fwguard's reader of UBI volumes in raw flash, on images made by the real ubinize and
//! changed as a running firmware's UBI changes them: the root volume's content still hashes
//! the same, while a hash over the raw bytes does not.

use super::common;

use common::tools::squashfs;
use common::ubi::{first_attach, leb_of, move_block, ubinize_root, PEB};
use fwguard::flash::ubi_image::UbiArea;
use fwguard::flash::FileSlot;
use fwguard::Slot;
use sha2::{Digest, Sha256};

const AT: usize = 0x100000;

fn hash(dev: &FileSlot, size: u64) -> Result<[u8; 32], String> {
    UbiArea {
        dev,
        offset: AT as u64,
        peb_size: PEB as u64,
    }
    .hash_volume("rootfs", size)
    .map_err(|e| e.to_string())
}

#[test]
fn a_root_volume_hashes_the_same_after_ubi_rewrote_its_headers() {
    let d = tempfile::tempdir().unwrap();
    let root = squashfs(d.path(), "2.0");
    let ubi = ubinize_root(d.path(), &root);
    // A kernel area, then the UBI image, then erased flash up to 16 erase blocks.
    let mut flash = vec![0xffu8; AT + 16 * PEB];
    flash[..AT].fill(0x11);
    flash[AT..AT + ubi.len()].copy_from_slice(&ubi);
    let path = d.path().join("kernel1.bin");
    std::fs::write(&path, &flash).unwrap();
    let dev = FileSlot::new(Slot::A, &path);
    let want: [u8; 32] = Sha256::digest(&root).into();
    assert_eq!(hash(&dev, root.len() as u64), Ok(want));
    let raw_before = Sha256::digest(&flash[..AT + ubi.len()]);

    // The first boot: the autoresize volume grows (the volume table rewritten), and wear
    // levelling moves the root volume's first block elsewhere.
    let area = &mut flash[AT..];
    first_attach(area, 16);
    let root_peb = (0..16).find(|p| leb_of(area, *p) == Some((0, 0))).unwrap();
    move_block(area, root_peb, 12);
    std::fs::write(&path, &flash).unwrap();
    assert_ne!(Sha256::digest(&flash[..AT + ubi.len()]), raw_before);
    assert_eq!(hash(&dev, root.len() as u64), Ok(want));

    // One changed byte of the root's content is seen.
    flash[AT + 12 * PEB + 4096 + 100] ^= 1;
    std::fs::write(&path, &flash).unwrap();
    assert_ne!(hash(&dev, root.len() as u64), Ok(want));

    // No such volume, no UBI at all, an extent past the area: said so.
    let e = UbiArea {
        dev: &dev,
        offset: AT as u64,
        peb_size: PEB as u64,
    }
    .hash_volume("kernel", 10)
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no UBI volume \"kernel\"") && e.contains("rootfs, rootfs_data"),
        "{e}"
    );
    let e = UbiArea {
        dev: &dev,
        offset: (AT + PEB / 2) as u64,
        peb_size: PEB as u64,
    }
    .hash_volume("rootfs", 10)
    .unwrap_err()
    .to_string();
    assert!(e.contains("no UBI volume table"), "{e}");
    assert!(hash(&dev, 1 << 40).unwrap_err().contains("do not fit"));
}

/// Headers made to mislead (a valid CRC over offsets past the block) and erase block sizes
/// that cannot be are errors, never a crash.
#[test]
fn hostile_headers_and_impossible_geometry_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let mut flash = vec![0xffu8; 4 * PEB];
    for (peb, vid_at) in [(0usize, 0xffff_fff0u32), (1, 0x0002_0000), (2, 40)] {
        let b = &mut flash[peb * PEB..];
        b[..4].copy_from_slice(b"UBI#");
        b[16..20].copy_from_slice(&vid_at.to_be_bytes());
        b[20..24].copy_from_slice(&0x1000u32.to_be_bytes());
        let c = crc32fast::hash(&b[..60]) ^ 0xffff_ffff;
        b[60..64].copy_from_slice(&c.to_be_bytes());
    }
    let path = d.path().join("flash.bin");
    std::fs::write(&path, &flash).unwrap();
    let dev = FileSlot::new(Slot::A, &path);
    for (offset, peb, words) in [
        (0, PEB as u64, "no UBI volume table"),
        (0, 0, "not a power of two"),
        (0, 48, "not a power of two"),
        (0, 3 << 16, "not a power of two"),
    ] {
        let e = UbiArea {
            dev: &dev,
            offset,
            peb_size: peb,
        }
        .hash_volume("rootfs", 10)
        .unwrap_err()
        .to_string();
        assert!(e.contains(words), "{peb}: {e}");
    }
}
