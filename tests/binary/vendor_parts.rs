//! `fwguard-index add-release --part`: a release of several parts, each file hashed into the
//! index with its target, and verified as a device verifies the directory.

use super::vendor_tool::{ok, tool};
use sha2::{Digest, Sha256};

#[test]
fn a_release_of_several_parts_is_added_signed_and_verified() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    ok(d, &["keygen", "-s", "k.sec", "-p", "k.pub"]);
    ok(
        d,
        &[
            "init",
            "root.toml",
            "--index-key",
            "k.pub",
            "--root-key",
            "k.pub",
        ],
    );
    std::fs::create_dir(d.join("images")).unwrap();
    let kernel: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("images/k.bin"), kernel).unwrap();
    // The boot image: a real uImage.
    let img = d.join("images/fw-3.0.img");
    let data = d.join("images/k.bin");
    super::common::tools::tool(
        "mkimage",
        &[
            "-A",
            "arm",
            "-O",
            "linux",
            "-T",
            "kernel",
            "-C",
            "none",
            "-a",
            "0x8000",
            "-e",
            "0x8000",
            "-n",
            "fw 3.0",
            "-d",
            data.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let root = super::common::tools::squashfs(d, "3.0");
    std::fs::write(d.join("images/root-3.0.squashfs"), &root).unwrap();
    std::fs::write(d.join("images/dtb-3.0.bin"), [7u8; 300]).unwrap();
    ok(d, &["new", "index.toml"]);
    let args = [
        "add-release",
        "index.toml",
        "--version",
        "3.0",
        "--board",
        "acme-r1",
        "--image",
        "images/fw-3.0.img",
        "--part",
        "root:rootfs:images/root-3.0.squashfs",
        "--part",
        "dtb:dtb:images/dtb-3.0.bin",
        "--part-url",
        "dtb=https://cdn.example.net/dtb-3.0.bin",
        "--part-url",
        "dtb=images/dtb-3.0.bin",
    ];
    let out = ok(d, &args);
    let root_sha = hex::encode(Sha256::digest(&root));
    assert!(
        out.contains(&format!(
            "part root for target rootfs: {} bytes, sha256 {root_sha}",
            root.len()
        )),
        "{out}"
    );
    ok(d, &["sign", "index.toml", "-s", "k.sec"]);
    let verified = ok(d, &["verify", ".", "--root", "root.toml"]);
    assert!(verified.contains("1 release(s)"), "{verified}");
    let text = std::fs::read_to_string(d.join("index.toml")).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let parts = doc["release"][0]["part"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["name"].as_str(), Some("root"));
    assert_eq!(parts[0]["target"].as_str(), Some("rootfs"));
    assert_eq!(parts[0]["sha256"].as_str(), Some(root_sha.as_str()));
    assert_eq!(
        parts[0]["urls"][0].as_str(),
        Some("images/root-3.0.squashfs")
    );
    let dtb_urls: Vec<_> = parts[1]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(
        dtb_urls,
        ["https://cdn.example.net/dtb-3.0.bin", "images/dtb-3.0.bin"]
    );

    // Bad part specifications are refused and leave the index as it was.
    let before = std::fs::read(d.join("index.toml")).unwrap();
    for (extra, words) in [
        (vec!["--part", "root-only"], "expected NAME:TARGET:FILE"),
        (
            vec!["--part", "root:rootfs:images/missing"],
            "images/missing",
        ),
        (
            vec!["--part", "Root:rootfs:images/dtb-3.0.bin"],
            "name \"Root\" must be",
        ),
        (
            vec![
                "--part",
                "a:t:images/dtb-3.0.bin",
                "--part",
                "b:t:images/dtb-3.0.bin",
            ],
            "goes to target \"t\" too",
        ),
        (
            vec!["--part", "a:t:images/dtb-3.0.bin", "--part-url", "b=x"],
            "no --part is named \"b\"",
        ),
    ] {
        let mut a = vec![
            "add-release",
            "index.toml",
            "--version",
            "3.1",
            "--board",
            "acme-r1",
            "--image",
            "images/fw-3.0.img",
        ];
        a.extend(extra);
        let o = tool(d, &a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(words), "{a:?}: {err}");
        assert_eq!(std::fs::read(d.join("index.toml")).unwrap(), before);
    }
}

#[test]
fn a_linksys_factory_image_is_added_with_the_extents_it_is_checked_by() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    ok(d, &["new", "index.toml"]);
    let (img, path) = super::common::linksys::factory_image(
        d,
        "3.0",
        fwguard::sim::Behaviour::GOOD_WITH_ROOT,
        "WRT32X",
    );
    let add = |model: &str, file: &std::path::Path| {
        tool(
            d,
            &[
                "add-release",
                "index.toml",
                "--version",
                "3.0",
                "--board",
                "linksys-wrt32x",
                "--image",
                file.to_str().unwrap(),
                "--linksys-factory",
                model,
                "--kernel-size",
                "1MiB",
                "--peb-size",
                "0x20000",
            ],
        )
    };
    let before = std::fs::read(d.join("index.toml")).unwrap();
    // Another model's footer, a footer whose CRC is wrong, no footer: refused, unchanged.
    let other = add("WRT3200ACM", &path);
    assert!(String::from_utf8_lossy(&other.stderr)
        .contains("footer is for model \"WRT32X\", not \"WRT3200ACM\""));
    let mut bad = img.clone();
    bad[10] ^= 1;
    std::fs::write(d.join("bad.img"), &bad).unwrap();
    let o = add("WRT32X", &d.join("bad.img"));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("CRC in its .LINKSYS. footer does not match")
    );
    std::fs::write(d.join("bare.img"), &img[..img.len() - 256]).unwrap();
    let o = add("WRT32X", &d.join("bare.img"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no .LINKSYS. footer"));
    assert_eq!(std::fs::read(d.join("index.toml")).unwrap(), before);

    let o = add("WRT32X", &path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("checked by kernel: 1048576 bytes at 0x0"),
        "{out}"
    );
    assert!(
        out.contains("of UBI volume rootfs in the UBI image at 0x100000"),
        "{out}"
    );
    let doc: toml::Table = std::fs::read_to_string(d.join("index.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let v = doc["release"][0]["verify"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["ubi_volume"].as_str(), Some("rootfs"));
    assert_eq!(v[1]["peb_size"].as_integer(), Some(0x20000));
    assert_eq!(v[1]["offset"].as_integer(), Some(0x100000));
    let kernel_sha = hex::encode(Sha256::digest(&img[..0x100000]));
    assert_eq!(v[0]["sha256"].as_str(), Some(kernel_sha.as_str()));
}

#[test]
fn a_sysupgrade_image_is_added_as_ranges_of_its_file() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    ok(d, &["new", "index.toml"]);
    let kernel: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let root = super::common::tools::squashfs(d, "4.0");
    let meta = super::common::sysupgrade::metadata("linksys,wrt32x", "23.05.5", "1.1");
    let img = super::common::sysupgrade::sysupgrade_image(
        d,
        "linksys_wrt32x",
        &kernel,
        &root,
        Some(&meta),
    );
    std::fs::write(d.join("sysupgrade.bin"), &img).unwrap();
    let add = |device: &str| {
        tool(
            d,
            &[
                "add-release",
                "index.toml",
                "--version",
                "4.0",
                "--board",
                "linksys-wrt32x",
                "--image",
                "sysupgrade.bin",
                "--sysupgrade",
                "--supported-device",
                device,
            ],
        )
    };
    let before = std::fs::read(d.join("index.toml")).unwrap();
    let o = add("linksys,wrt3200acm");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("does not list \"linksys,wrt3200acm\""),
        "{err}"
    );
    assert_eq!(std::fs::read(d.join("index.toml")).unwrap(), before);
    let o = add("linksys,wrt32x");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("sysupgrade image for board linksys_wrt32x"),
        "{out}"
    );
    assert!(
        out.contains("metadata: version 23.05.5, compat_version 1.1"),
        "{out}"
    );
    let doc: toml::Table = std::fs::read_to_string(d.join("index.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let rel = &doc["release"][0];
    let boot = &rel["boot"];
    let at = boot["offset"].as_integer().unwrap() as usize;
    assert_eq!(boot["size"].as_integer(), Some(kernel.len() as i64));
    assert_eq!(
        &img[at..at + kernel.len()],
        &kernel[..],
        "the boot range is the kernel"
    );
    let part = &rel["part"][0];
    let at = part["offset"].as_integer().unwrap() as usize;
    assert_eq!(part["target"].as_str(), Some("rootfs"));
    assert_eq!(&img[at..at + root.len()], &root[..], "the part is the root");
    assert!(part.get("urls").is_none());
    // Damaged metadata is said so.
    let mut bad = img.clone();
    let n = bad.len();
    bad[n - 30] ^= 1;
    std::fs::write(d.join("bad.bin"), &bad).unwrap();
    let o = tool(
        d,
        &[
            "add-release",
            "index.toml",
            "--version",
            "4.1",
            "--board",
            "x",
            "--image",
            "bad.bin",
            "--sysupgrade",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("fwtool trailer: its CRC does not match"));
}
