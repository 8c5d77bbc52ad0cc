//! `fwguard-index image`: a release's image is what the slot holds from offset 0, so it must
//! start with what bootloaders boot. The images here are made with the real mkimage (and
//! dtc, for FITs).

use super::vendor_tool::{fails, ok};
use std::path::Path;
use std::process::Command;

fn mkimage(dir: &Path, args: &[&str]) {
    let o = Command::new("mkimage")
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1763800000")
        .current_dir(dir)
        .output()
        .expect("mkimage (u-boot-tools) is installed by tests/run.sh");
    assert!(
        o.status.success(),
        "mkimage {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn image_checks_that_a_file_starts_with_what_bootloaders_boot() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("kernel"), &payload).unwrap();
    // A legacy uImage made by the real mkimage, with its build time.
    let mk = Command::new("mkimage")
        .args(["-A", "arm", "-O", "linux", "-T", "kernel", "-C", "none"])
        .args(["-a", "0x8000", "-e", "0x8000", "-n", "OpenWrt test"])
        .args(["-d", "kernel", "fw.uimg"])
        .env("SOURCE_DATE_EPOCH", "1763800000")
        .current_dir(d)
        .output()
        .expect("mkimage (u-boot-tools) is installed by tests/run.sh");
    assert!(
        mk.status.success(),
        "{}",
        String::from_utf8_lossy(&mk.stderr)
    );
    let out = ok(d, &["image", "fw.uimg"]);
    assert!(
        out.contains(&format!(
            "uImage \"OpenWrt test\" ({} bytes)",
            64 + payload.len()
        )),
        "{out}"
    );
    assert!(out.contains("built 2025-11-22T08:26:40Z"), "{out}");
    // A root filesystem after the kernel is fine; the kernel's extent is what its header says.
    let mut longer = std::fs::read(d.join("fw.uimg")).unwrap();
    longer.extend_from_slice(&[0x55; 1000]);
    std::fs::write(d.join("longer.img"), &longer).unwrap();
    assert!(ok(d, &["image", "longer.img"]).contains("1000 bytes follow it"));
    // What bootm would refuse, or no bootloader boots, is refused, naming why.
    let mut bad = std::fs::read(d.join("fw.uimg")).unwrap();
    bad[5000] ^= 1;
    std::fs::write(d.join("bad.img"), &bad).unwrap();
    fails(d, &["image", "bad.img"], "data CRC");
    std::fs::write(d.join("cut.img"), &bad[..3000]).unwrap();
    fails(d, &["image", "cut.img"], "truncated");
    std::fs::write(d.join("raw.img"), &payload).unwrap();
    fails(
        d,
        &["image", "raw.img"],
        "starts with no uImage, FIT (with its images' data inside it) or zImage",
    );
    fails(d, &["image", "nope.img"], "nope.img");
}

#[test]
fn a_fit_is_sized_by_its_header_unless_its_data_is_outside_it() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    // Larger than the 4 KiB fwguard reads first: the FIT's strings come after the data.
    let kernel: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(d.join("kernel"), &kernel).unwrap();
    std::fs::write(
        d.join("fw.its"),
        r#"/dts-v1/;
/ {
  description = "test firmware 2.0";
  #address-cells = <1>;
  images { kernel-1 { data = /incbin/("kernel"); type = "kernel"; arch = "arm"; os = "linux";
    compression = "none"; load = <0x40400000>; entry = <0x40400000>;
    hash-1 { algo = "sha256"; }; }; };
  configurations { default = "conf-1"; conf-1 { kernel = "kernel-1"; }; };
};
"#,
    )
    .unwrap();
    mkimage(d, &["-q", "-f", "fw.its", "fw.itb"]);
    let len = std::fs::metadata(d.join("fw.itb")).unwrap().len();
    let out = ok(d, &["image", "fw.itb"]);
    assert!(
        out.contains(&format!(
            "FIT \"test firmware 2.0\" ({len} bytes), built 2025-11-22T08:26:40Z"
        )),
        "{out}"
    );
    // `mkimage -E`: the images' data after the tree, which its header does not cover.
    mkimage(d, &["-q", "-E", "-f", "fw.its", "ext.itb"]);
    fails(d, &["image", "ext.itb"], "fwguard cannot tell its extent");
}
