//! The UBI volume slot writer on a volume image with the kernel's update semantics (the
//! volume is invalid from UBI_IOCVOLUP until the announced size has been written): an install
//! completes and reads back; an interrupted one, a wrong hash or a short stream leave the
//! volume invalid, never a half image that boots.

use super::common::expected;
use fwguard::flash::ubi::{open_ubi, UbiImage, UbiSlot, UbiVolume};
use fwguard::flash::{self, FlashError, SlotDevice};
use fwguard::Slot;

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn volume(dir: &std::path::Path, size: usize) -> std::path::PathBuf {
    let p = dir.join("ubi0_1");
    std::fs::write(&p, vec![0xffu8; size]).unwrap();
    p
}

fn install(dev: &dyn SlotDevice, img: &[u8], chunk: usize) -> Result<(), FlashError> {
    let exp = expected(img);
    let mut w = flash::begin(dev, &exp)?;
    for c in img.chunks(chunk) {
        w.write(c)?;
    }
    w.finish(&exp)?.verify(dev, &exp)?;
    Ok(())
}

#[test]
fn an_install_is_one_volume_update_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = volume(dir.path(), 1 << 20);
    let dev = UbiSlot::new(Slot::B, UbiImage::open(&path).unwrap());
    for (len, chunk) in [(300_000, 65536), (5000, 7), (4096, 4096), (100, 1)] {
        let img = image(len, len as u8);
        install(&dev, &img, chunk).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..len], &img[..]);
        assert!(UbiImage::open(&path).unwrap().pending().unwrap().is_none());
    }
    // Too big for the volume: refused before the update starts.
    let e = install(&dev, &image((1 << 20) + 1, 1), 65536).unwrap_err();
    assert!(matches!(e, FlashError::TooSmall { .. }), "{e}");
}

#[test]
fn a_wrong_or_cut_stream_never_completes_the_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = volume(dir.path(), 1 << 20);
    let dev = UbiSlot::new(Slot::B, UbiImage::open(&path).unwrap());
    let good = image(200_000, 3);
    install(&dev, &good, 65536).unwrap();

    // Wrong hash: all bytes arrived, but the last block is withheld, so the update stays
    // unfinished and the volume reads as corrupted.
    let mut bad = good.clone();
    bad[150_000] ^= 1;
    let exp = expected(&good);
    let mut w = flash::begin(&dev, &exp).unwrap();
    w.write(&bad).unwrap();
    let e = w.finish(&exp).unwrap_err().to_string();
    assert!(e.contains("sha256"), "{e}");
    let pending = UbiImage::open(&path).unwrap().pending().unwrap();
    assert_eq!(pending, Some((200_000, 200_000 - 4096)));
    let e = flash::verify_existing(&dev, &exp).unwrap_err().to_string();
    assert!(e.contains("volume corrupted"), "{e}");

    // Cut off mid-stream (a power cut, a dropped download): invalid as well.
    let mut w = flash::begin(&dev, &exp).unwrap();
    w.write(&good[..100_000]).unwrap();
    drop(w);
    assert!(flash::verify_existing(&dev, &exp).is_err());
    // A later install completes normally.
    install(&dev, &good, 65536).unwrap();
}

#[test]
fn paths_naming_ubi_volumes() {
    use fwguard::flash::ubi::ubi_volume_name;
    assert_eq!(
        ubi_volume_name(std::path::Path::new("/dev/ubi0_1")).as_deref(),
        Some("ubi0_1")
    );
    assert_eq!(ubi_volume_name(std::path::Path::new("/dev/ubi0")), None);
    assert_eq!(
        ubi_volume_name(std::path::Path::new("/dev/ubiblock0_1")),
        None
    );
    let dir = tempfile::tempdir().unwrap();
    let path = volume(dir.path(), 8192);
    let vol = open_ubi(&path, dir.path()).unwrap().unwrap();
    assert_eq!(vol.capacity().unwrap(), 8192);
    assert!(vol.describe().contains("UBI volume image"));
    assert!(open_ubi(&dir.path().join("slot-b.img"), dir.path()).is_none());
}
