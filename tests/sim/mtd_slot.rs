//! The raw-flash slot writer through fwguard's install pipeline (invalidate, write while
//! hashing, read back, verify) on a fake NAND: erase-to-0xFF, page-aligned programming that
//! can only clear bits, factory bad blocks, blocks that wear out (a failed erase: EIO).

use super::common::expected;
use fwguard::flash::mtd_image::MtdImage;
use fwguard::flash::{self, FlashError, MtdInfo, MtdSlot, SlotDevice, HEAD_LEN};
use fwguard::Slot;
use std::path::Path;

const ERASE: u64 = 128 * 1024;
const INFO: MtdInfo = MtdInfo {
    size: 8 * ERASE,
    erase_size: ERASE,
    write_size: 2048,
};

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect()
}

/// Install `img` the way the agent does, in odd-sized chunks.
fn install(dev: &dyn SlotDevice, img: &[u8]) -> Result<flash::VerifiedSlot, FlashError> {
    let exp = expected(img);
    let mut w = flash::begin(dev, &exp)?;
    for chunk in img.chunks(7001) {
        w.write(chunk)?;
    }
    w.finish(&exp)?.verify(dev, &exp)
}

fn raw(path: &Path, block: u64) -> Vec<u8> {
    let all = std::fs::read(path).unwrap();
    all[(block * ERASE) as usize..((block + 1) * ERASE) as usize].to_vec()
}

#[test]
fn an_image_across_a_bad_block_installs_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtd5");
    let fake = MtdImage::create(&path, INFO)
        .unwrap()
        .with_bad_block(2 * ERASE);
    let dev = MtdSlot::new(Slot::B, fake);
    assert_eq!(
        dev.capacity().unwrap(),
        7 * ERASE,
        "the bad block is not capacity"
    );
    let img = image(5 * ERASE as usize + 12345, 1);
    let v = install(&dev, &img).unwrap();
    assert_eq!((v.slot(), v.size()), (Slot::B, img.len() as u64));
    // The bad block was skipped: logical block 2 went to physical block 3.
    assert!(raw(&path, 2).iter().all(|&b| b == 0xff));
    assert_eq!(raw(&path, 3), img[2 * ERASE as usize..3 * ERASE as usize]);
    assert_eq!(raw(&path, 0)[..HEAD_LEN], img[..HEAD_LEN]);
    // Installing again over a written slot erases before it programs.
    let img2 = image(3 * ERASE as usize, 7);
    install(&dev, &img2).unwrap();
    flash::verify_existing(&dev, &expected(&img2)).unwrap();
}

#[test]
fn a_power_cut_mid_write_leaves_the_slot_without_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtd5");
    let dev = MtdSlot::new(Slot::B, MtdImage::create(&path, INFO).unwrap());
    install(&dev, &image(4 * ERASE as usize, 3)).unwrap();
    // A new install stops after two and a half blocks: the old header is erased first, and
    // the new one is only programmed once everything else is in place and verified.
    let img = image(4 * ERASE as usize, 9);
    let exp = expected(&img);
    let mut w = flash::begin(&dev, &exp).unwrap();
    w.write(&img[..(2 * ERASE + ERASE / 2) as usize]).unwrap();
    drop(w);
    assert!(
        raw(&path, 0).iter().all(|&b| b == 0xff),
        "block 0 is erased"
    );
    assert!(flash::verify_existing(&dev, &exp).is_err());
    let head = flash::read_head(&dev, HEAD_LEN).unwrap();
    assert!(head.iter().all(|&b| b == 0xff), "no image starts there");
}

#[test]
fn an_image_larger_than_the_good_blocks_is_refused_before_any_erase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtd5");
    let fake = MtdImage::create(&path, INFO)
        .unwrap()
        .with_bad_block(5 * ERASE);
    let dev = MtdSlot::new(Slot::B, fake);
    install(&dev, &image(ERASE as usize, 2)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = install(&dev, &image(7 * ERASE as usize + 1, 4)).unwrap_err();
    assert!(
        matches!(err, FlashError::TooSmall { capacity, .. } if capacity == 7 * ERASE),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was erased");
}

#[test]
fn the_fake_behaves_like_flash() {
    use fwguard::flash::Mtd;
    let dir = tempfile::tempdir().unwrap();
    let fake = MtdImage::create(&dir.path().join("m"), INFO)
        .unwrap()
        .with_bad_block(ERASE);
    fake.program(0, &[0x0f; 2048]).unwrap();
    let e = fake.program(0, &[0xf0; 2048]).unwrap_err();
    assert!(e.to_string().contains("not erased"), "{e}");
    assert!(fake.program(100, &[0; 2048]).is_err(), "unaligned");
    assert!(fake.erase(ERASE).is_err(), "bad block");
    fake.erase(0).unwrap();
    fake.program(0, &[0xf0; 2048]).unwrap();
}

#[test]
fn a_block_that_wears_out_mid_write_is_marked_bad_and_the_next_takes_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtd5");
    let fake = MtdImage::create(&path, INFO)
        .unwrap()
        .with_bad_block(5 * ERASE)
        .with_worn_block(2 * ERASE);
    let dev = MtdSlot::new(Slot::B, fake);
    let img = image(4 * ERASE as usize + 999, 5);
    let v = install(&dev, &img).unwrap();
    assert_eq!(v.size(), img.len() as u64);
    assert_eq!(
        dev.mtd().bad_blocks(),
        vec![2 * ERASE, 5 * ERASE],
        "the worn block is marked bad"
    );
    // Logical block 2 went to physical block 3, 3 to 4, and 4 past the factory bad block to 6.
    assert_eq!(raw(&path, 3), img[2 * ERASE as usize..3 * ERASE as usize]);
    assert_eq!(raw(&path, 4), img[3 * ERASE as usize..4 * ERASE as usize]);
    assert_eq!(raw(&path, 6)[..999], img[4 * ERASE as usize..]);
    assert_eq!(dev.capacity().unwrap(), 6 * ERASE);
    // Read back and installed again through the new layout.
    flash::verify_existing(&dev, &expected(&img)).unwrap();
    let img2 = image(2 * ERASE as usize + 1, 8);
    install(&dev, &img2).unwrap();
    flash::verify_existing(&dev, &expected(&img2)).unwrap();
}

#[test]
fn a_first_block_worn_at_the_invalidation_moves_the_image_to_the_next_good_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtd5");
    let fake = MtdImage::create(&path, INFO).unwrap().with_worn_block(0);
    let dev = MtdSlot::new(Slot::B, fake);
    let img = image(2 * ERASE as usize + 77, 6);
    install(&dev, &img).unwrap();
    assert_eq!(dev.mtd().bad_blocks(), vec![0]);
    assert_eq!(
        raw(&path, 1)[..HEAD_LEN],
        img[..HEAD_LEN],
        "the header is in block 1"
    );
    assert_eq!(flash::read_head(&dev, HEAD_LEN).unwrap(), img[..HEAD_LEN]);
}

#[test]
fn a_first_block_that_wears_out_after_the_rest_is_written_fails_the_install_headerless() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtd5");
    // Block 0 survives the invalidation's erase, then fails when the header is programmed
    // last: the blocks after it are written, so nothing can move; the slot stays invalid.
    let fake = MtdImage::create(&path, INFO)
        .unwrap()
        .with_block_wearing_out(0, 1);
    let dev = MtdSlot::new(Slot::B, fake);
    let img = image(3 * ERASE as usize, 4);
    let err = install(&dev, &img).unwrap_err().to_string();
    assert!(
        err.contains("wore out") && err.contains("now marked bad") && err.contains("written again"),
        "{err}"
    );
    assert_eq!(dev.mtd().bad_blocks(), vec![0]);
    assert!(flash::verify_existing(&dev, &expected(&img)).is_err());
    // The next install lays the image out past the bad block, whole.
    install(&dev, &img).unwrap();
    assert_eq!(raw(&path, 1)[..HEAD_LEN], img[..HEAD_LEN]);
}
