use super::*;
use crate::flash::mtd_image::MtdImage;
use crate::flash::ubi_root::UbiRoot;
use crate::flash::{begin, verify_existing, Expected, SlotDevice};
use sha2::{Digest, Sha256};

const PEB: u64 = 0x20000;
const PAGE: u64 = 2048;

fn info(pebs: u64) -> MtdInfo {
    MtdInfo {
        size: pebs * PEB,
        erase_size: PEB,
        write_size: PAGE,
    }
}

fn root(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn expected(data: &[u8]) -> Expected {
    Expected {
        size: data.len() as u64,
        sha256: Sha256::digest(data).into(),
    }
}

/// Stream `data` through a FreshUbi sink with a fixed image sequence number.
fn write(mtd: &dyn Mtd, data: &[u8], seq: u32, finish: bool) -> Result<(), FlashError> {
    let g = Geometry::new(mtd.info().unwrap(), PAGE).unwrap();
    let mut sink = FreshUbi::new(Slot::B, mtd, g, "rootfs", seq)?;
    sink.invalidate(0, data.len() as u64)?;
    for chunk in data.chunks(10_000) {
        let at = sink.next;
        sink.write_at(at, chunk)?;
    }
    if finish {
        sink.finish(&[])?;
    }
    Ok(())
}

/// What `ubinize -e 0 -Q SEQ` makes of `data` as volume rootfs and a one-block autoresize
/// rootfs_data (the real tool, from mtd-utils).
fn ubinize(dir: &std::path::Path, data: &[u8], seq: u32, ec: u32) -> Vec<u8> {
    std::fs::write(dir.join("root.img"), data).unwrap();
    let cfg = dir.join("u.cfg");
    std::fs::write(
        &cfg,
        format!(
            "[rootfs]\nmode=ubi\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\nimage={}\n\n[rootfs_data]\nmode=ubi\nvol_id=1\nvol_type=dynamic\nvol_name=rootfs_data\nvol_size=124KiB\nvol_flags=autoresize\n",
            dir.join("root.img").display()
        ),
    )
    .unwrap();
    let out = dir.join("out.ubi");
    let st = std::process::Command::new("ubinize")
        .args([
            "-o",
            out.to_str().unwrap(),
            "-p",
            "128KiB",
            "-m",
            "2048",
            "-s",
            "2048",
        ])
        .args([
            "-e",
            &ec.to_string(),
            "-Q",
            &seq.to_string(),
            cfg.to_str().unwrap(),
        ])
        .output()
        .expect("ubinize (mtd-utils) must be installed: tests/run.sh installs it");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(out).unwrap()
}

#[test]
fn the_blocks_are_what_ubinize_makes() {
    let d = tempfile::tempdir().unwrap();
    let mtd = MtdImage::create(&d.path().join("mtd8"), info(12)).unwrap();
    let data = root(300_000);
    write(&mtd, &data, 12345, true).unwrap();
    let made = ubinize(d.path(), &data, 12345, 0);
    let mut flash = vec![0u8; (12 * PEB) as usize];
    mtd.read(0, &mut flash).unwrap();
    assert_eq!(made.len() as u64, 5 * PEB);
    for (i, (ours, theirs)) in flash
        .chunks(PEB as usize)
        .zip(made.chunks(PEB as usize))
        .enumerate()
    {
        assert!(ours == theirs, "erase block {i} differs from ubinize's");
    }
    // The free blocks carry only an erase counter header, of the same image.
    let g = Geometry::new(info(12), PAGE).unwrap();
    for b in flash.chunks(PEB as usize).skip(5) {
        assert_eq!(&b[..HDR], &ec_header(&g, 0, 12345));
        assert!(b[HDR..].iter().all(|&x| x == 0xff));
    }
}

#[test]
fn a_root_written_over_an_old_ubi_verifies_and_keeps_the_erase_counts() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("mtd8");
    // An older UBI (ubinize's, with erase counts of 7) with a bad block among it.
    let old = ubinize(d.path(), &root(200_000), 99, 7);
    let mut img = vec![0xffu8; (16 * PEB) as usize];
    img[..old.len()].copy_from_slice(&old);
    std::fs::write(&path, &img).unwrap();
    let mtd = MtdImage::open(&path, info(16))
        .unwrap()
        .with_bad_block(3 * PEB);
    let dev = UbiRoot::new(Slot::B, Box::new(mtd), PAGE, "rootfs").unwrap();
    let data = root(600_000);
    let exp = expected(&data);
    assert_eq!(dev.capacity().unwrap(), (15 - OVERHEAD_PEBS) * (PEB - 4096));
    let mut w = begin(&dev, &exp).unwrap();
    w.write(&data).unwrap();
    w.finish(&exp).unwrap().verify(&dev, &exp).unwrap();
    verify_existing(&dev, &exp).unwrap();
    let mut raw = vec![0u8; (16 * PEB) as usize];
    std::fs::File::open(&path)
        .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut raw, 0))
        .unwrap();
    let ec = |b: usize| be64(&raw[b * PEB as usize..], 8);
    // Blocks of the old UBI count one more erase; the bad block is untouched; blocks that
    // had no header get the mean.
    assert_eq!((ec(0), ec(1), ec(2)), (8, 8, 8));
    assert_eq!((ec(4), ec(15)), (7, 7));
    assert_eq!(
        raw[3 * PEB as usize..4 * PEB as usize],
        old[3 * PEB as usize..]
    );
    // What the reader gives is the volume's content, then erased flash.
    let mut all = Vec::new();
    dev.reader().unwrap().read_to_end(&mut all).unwrap();
    assert_eq!(&all[..data.len()], &data[..]);
    assert!(all[data.len()..].iter().all(|&x| x == 0xff));
}

#[test]
fn a_cut_write_leaves_no_volume_table() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("mtd8");
    let old = ubinize(d.path(), &root(200_000), 99, 0);
    let mut img = vec![0xffu8; (12 * PEB) as usize];
    img[..old.len()].copy_from_slice(&old);
    std::fs::write(&path, &img).unwrap();
    let dev = UbiRoot::new(Slot::B, dev_mtd(&path), PAGE, "rootfs").unwrap();
    // Before: the old root reads back.
    verify_existing(&dev, &expected(&root(200_000))).unwrap();
    let data = root(400_000);
    write(dev_mtd(&path).as_ref(), &data, 5, false).unwrap();
    let e = verify_existing(&dev, &expected(&data))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no UBI volume table"), "{e}");
    // A stream that does not match the index is never finished: the same.
    let exp = Expected {
        size: data.len() as u64,
        sha256: [0; 32],
    };
    let mut w = begin(&dev, &exp).unwrap();
    w.write(&data).unwrap();
    assert!(w.finish(&exp).is_err());
    assert!(verify_existing(&dev, &expected(&data)).is_err());
}

fn dev_mtd(path: &std::path::Path) -> Box<dyn Mtd> {
    Box::new(MtdImage::open(path, info(12)).unwrap())
}

#[test]
fn too_large_or_foreign_geometry_is_refused_before_a_write() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("mtd8");
    let mtd = MtdImage::create(&path, info(8)).unwrap();
    let e = write(&mtd, &root(5 * 126_976), 1, true).unwrap_err();
    assert!(matches!(e, FlashError::TooSmall { .. }), "{e}");
    assert_eq!(mtd.ops.lock().unwrap().0, 0, "nothing erased");
    // A UBI made for a 512-byte sub-page (headers at 0x200) is not overwritten with ours.
    let mut img = vec![0xffu8; (8 * PEB) as usize];
    let g512 = Geometry::new(info(8), 512).unwrap();
    assert_eq!((g512.vid_at, g512.data_at), (512, 2048));
    img[..HDR].copy_from_slice(&ec_header(&g512, 3, 7));
    std::fs::write(&path, &img).unwrap();
    let mtd = MtdImage::open(&path, info(8)).unwrap();
    let e = write(&mtd, &root(1000), 1, true).unwrap_err().to_string();
    assert!(e.contains("headers at 0x200"), "{e}");
    assert_eq!(mtd.ops.lock().unwrap().0, 0, "nothing erased");
    assert!(Geometry::new(info(8), 4096).is_err());
}

#[test]
fn a_block_moved_while_the_volume_is_read_is_found_again() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("mtd8");
    MtdImage::create(&path, info(12)).unwrap();
    let dev = UbiRoot::new(Slot::A, dev_mtd(&path), PAGE, "rootfs").unwrap();
    let data = root(400_000);
    let exp = expected(&data);
    let mut w = begin(&dev, &exp).unwrap();
    w.write(&data).unwrap();
    w.finish(&exp).unwrap();
    let mut r = dev.reader().unwrap();
    let mut got = vec![0u8; 1000];
    r.read_exact(&mut got).unwrap();
    // Wear levelling moves block 2 (erase block 4) to the free erase block 10: a copy with
    // a higher sequence number, the old one erased.
    let m = dev_mtd(&path);
    let mut b = vec![0u8; PEB as usize];
    m.read(4 * PEB, &mut b).unwrap();
    let vid = 2048;
    b[vid + 40..vid + 48].copy_from_slice(&7u64.to_be_bytes());
    let crc = ubi_crc(&b[vid..vid + 60]);
    b[vid + 60..vid + 64].copy_from_slice(&crc.to_be_bytes());
    m.erase(10 * PEB).unwrap();
    m.program(10 * PEB, &b).unwrap();
    m.erase(4 * PEB).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    got.extend(rest);
    assert_eq!(&got[..data.len()], &data[..]);
}

#[test]
fn a_refusing_or_attached_target_is_not_written() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("mtd8");
    MtdImage::create(&path, info(12)).unwrap();
    let exp = expected(&root(1000));
    let dev = UbiRoot::new(Slot::B, dev_mtd(&path), PAGE, "rootfs")
        .unwrap()
        .refusing("the sub-page size is unknown".into());
    let e = begin(&dev, &exp).err().unwrap().to_string();
    assert!(e.contains("sub-page size is unknown"), "{e}");
    let ubi = d.path().join("class/ubi");
    std::fs::create_dir_all(ubi.join("ubi0")).unwrap();
    std::fs::write(ubi.join("ubi0/mtd_num"), "6\n").unwrap();
    let dev = UbiRoot::new(Slot::B, dev_mtd(&path), PAGE, "rootfs")
        .unwrap()
        .with_attach_check(ubi.clone(), ["7".into(), "8".into()]);
    begin(&dev, &exp).unwrap(); // ubi0 is on another partition
    std::fs::create_dir_all(ubi.join("ubi1")).unwrap();
    std::fs::write(ubi.join("ubi1/mtd_num"), "8\n").unwrap();
    let e = begin(&dev, &exp).err().unwrap().to_string();
    assert!(e.contains("ubi1 is attached to mtd8"), "{e}");
    // The reserve counts against the room.
    let small = UbiRoot::new(Slot::B, dev_mtd(&path), PAGE, "rootfs")
        .unwrap()
        .with_reserve(6);
    assert_eq!(small.capacity().unwrap(), PEB - 4096);
}
