//! The read-back after an install reads the medium, not the page cache: a slot on a loop
//! device whose backing file is changed after the image was written and synced (as a disk or
//! eMMC that lost or garbled a write would) fails the read-back, although reading the
//! device through the page cache still returns the bytes that were written. Needs root and
//! `losetup` (util-linux), as the test command has.

use fwguard::flash::{self, Expected, FileSlot, SlotDevice};
use fwguard::Slot;
use sha2::{Digest, Sha256};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop device over `file`, detached when dropped.
struct Loop(PathBuf);

impl Loop {
    fn attach(file: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .expect("losetup (util-linux) must be installed; the test command installs it");
        assert!(
            out.status.success(),
            "losetup --find --show {}: {} (the test needs root and loop devices)",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
    }
}

impl Loop {
    /// Keep the device open, as another program might (udev's probe, a monitor): the kernel
    /// drops a block device's cache when its last user closes it, and while one holds it
    /// open, reads come from the cache.
    fn hold(&self) -> std::fs::File {
        std::fs::File::open(&self.0).unwrap()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// A slot's medium: a loop device over a fresh zeroed file of `len` bytes in `dir`, held
/// open by another opener.
struct Medium {
    backing: PathBuf,
    lo: Loop,
    _other: std::fs::File,
}

fn medium(dir: &Path, len: usize) -> Medium {
    let backing = dir.join("slot.img");
    std::fs::write(&backing, vec![0u8; len]).unwrap();
    let lo = Loop::attach(&backing);
    let _other = lo.hold();
    Medium {
        backing,
        lo,
        _other,
    }
}

impl Medium {
    /// The backing file, for writing behind the device's back.
    fn backing_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.backing)
            .unwrap()
    }
}

fn expected(img: &[u8]) -> Expected {
    Expected {
        size: img.len() as u64,
        sha256: Sha256::digest(img).into(),
    }
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 977) as u8).collect()
}

/// What reading the device through the page cache returns (as the read-back did before).
fn cached_sha(dev: &Path, len: usize) -> [u8; 32] {
    let mut buf = vec![0u8; len];
    std::fs::File::open(dev)
        .unwrap()
        .read_exact_at(&mut buf, 0)
        .unwrap();
    Sha256::digest(&buf).into()
}

/// Write `img` into a slot on a loop device over a fresh file; then, after the sync and
/// before the read-back, `damage` the backing file; returns the read-back's result.
fn install_then_damage(
    img: &[u8],
    damage: impl FnOnce(&std::fs::File),
) -> Result<flash::VerifiedSlot, flash::FlashError> {
    let tmp = tempfile::tempdir().unwrap();
    let m = medium(tmp.path(), 8 << 20);
    let lo = &m.lo;
    let dev = FileSlot::new(Slot::B, &lo.0);
    let exp = expected(img);
    let mut writer = flash::begin(&dev, &exp).unwrap();
    for piece in img.chunks(40_000) {
        writer.write(piece).unwrap();
    }
    let written = writer.finish(&exp).unwrap();
    // The medium changes under the written, synced data; the device's cache does not.
    let file = m.backing_file();
    damage(&file);
    file.sync_all().unwrap();
    assert_eq!(
        cached_sha(&lo.0, img.len()),
        exp.sha256,
        "the page cache still holds what was written: a read-back from it would pass"
    );
    let verified = written.verify(&dev, &exp);
    // The verify leaves the cache dropped: the device now shows what is on the medium.
    let damaged = cached_sha(&lo.0, img.len()) != exp.sha256;
    assert_eq!(damaged, verified.is_err());
    assert_eq!(dev.slot(), Slot::B);
    verified
}

#[test]
fn a_medium_that_differs_from_what_was_written_fails_the_read_back() {
    let img = image(3 << 20 | 12_345);
    // One byte flipped in the third MiB.
    let at = (2 << 20) + 777;
    let flipped = [img[at] ^ 0x40];
    let e = install_then_damage(&img, |f| f.write_all_at(&flipped, at as u64).unwrap())
        .expect_err("the damaged medium must not verify");
    let text = e.to_string();
    assert!(
        text.contains("read back from the medium")
            && text.contains(&format!("bytes {}..{}", 2 << 20, 3 << 20)),
        "{text}"
    );
    // A write that never reached the medium: the last, short MiB reads as zeros.
    let e = install_then_damage(&img, |f| {
        f.write_all_at(&vec![0u8; 12_345], 3 << 20).unwrap()
    })
    .expect_err("a lost write must not verify");
    assert!(
        e.to_string()
            .contains(&format!("bytes {}..{}", 3 << 20, img.len())),
        "{e}"
    );
}

#[test]
fn an_intact_medium_verifies() {
    let img = image(2 << 20);
    let verified = install_then_damage(&img, |_| {}).expect("an intact medium verifies");
    assert_eq!(verified.size(), img.len() as u64);
    assert_eq!(verified.sha256(), <[u8; 32]>::from(Sha256::digest(&img)));
}

#[test]
fn a_later_check_of_a_slot_reads_its_medium_too() {
    let img = image(1 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let m = medium(tmp.path(), 4 << 20);
    let lo = &m.lo;
    let dev = FileSlot::new(Slot::A, &lo.0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lo.0)
        .unwrap()
        .write_all_at(&img, 0)
        .unwrap();
    std::fs::File::open(&lo.0).unwrap().sync_all().unwrap();
    let exp = expected(&img);
    flash::verify_existing(&dev, &exp).expect("the slot holds the image");
    let file = m.backing_file();
    file.write_all_at(b"X", 4096).unwrap();
    file.sync_all().unwrap();
    assert_eq!(cached_sha(&lo.0, img.len()), exp.sha256);
    let e = flash::verify_existing(&dev, &exp).expect_err("the medium changed");
    assert!(e.to_string().contains("does not match"), "{e}");
}
