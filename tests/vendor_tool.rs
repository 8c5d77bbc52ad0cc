//! `fwguard-index` as a vendor uses it: keys, a root, releases, pulls, rollouts, floors,
//! signing by several signers, a root rotation, and `verify` saying why a directory fails.

use std::path::Path;
use std::process::{Command, Output};

fn tool(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fwguard-index"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = tool(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into()
}

fn refused(dir: &Path, args: &[&str], words: &str) {
    let o = tool(dir, args);
    assert_eq!(o.status.code(), Some(6), "{args:?} should be refused");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(words), "{err:?} does not mention {words:?}");
}

#[test]
fn a_vendor_publishes_rotates_and_verifies() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    for k in ["a", "b", "root1", "root2"] {
        ok(
            d,
            &[
                "keygen",
                "-s",
                &format!("{k}.sec"),
                "-p",
                &format!("{k}.pub"),
            ],
        );
    }
    ok(
        d,
        &[
            "init",
            "root.toml",
            "--index-key",
            "a.pub",
            "--index-key",
            "b.pub",
            "--index-threshold",
            "2",
            "--root-key",
            "root1.pub",
        ],
    );
    std::fs::create_dir(d.join("images")).unwrap();
    let fw = Command::new(env!("CARGO_BIN_EXE_fwguard"))
        .args([
            "sim",
            "image",
            "images/fw-2.0.img",
            "--version",
            "2.0",
            "--size",
            "2048",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(fw.status.success());
    ok(d, &["new", "index.toml"]);
    ok(
        d,
        &[
            "add-release",
            "index.toml",
            "--version",
            "2.0",
            "--board",
            "wrt32x",
            "--image",
            "images/fw-2.0.img",
            "--min-from",
            "1.5",
        ],
    );
    ok(
        d,
        &[
            "rollout",
            "index.toml",
            "--version",
            "2.0",
            "--wave",
            "1h:1",
            "--wave",
            "1d:50",
            "--wave",
            "2d:100",
        ],
    );
    ok(
        d,
        &[
            "floor",
            "index.toml",
            "--board",
            "wrt32x",
            "--version",
            "1.5",
        ],
    );
    ok(
        d,
        &[
            "pull",
            "index.toml",
            "--version",
            "2.0",
            "--reason",
            "boot loop on rev B boards",
        ],
    );
    let text = std::fs::read_to_string(d.join("index.toml")).unwrap();
    for w in [
        "min_from = \"1.5\"",
        "percent = 50",
        "wrt32x = \"1.5\"",
        "pulled = \"boot loop on rev B boards\"",
    ] {
        assert!(text.contains(w), "{w:?} missing:\n{text}");
    }
    // One signer of two required.
    ok(d, &["sign", "index.toml", "-s", "a.sec"]);
    refused(
        d,
        &["verify", ".", "--root", "root.toml"],
        "1 valid signature(s) from distinct trusted keys, 2 required",
    );
    ok(d, &["sign", "index.toml", "-s", "b.sec", "--append"]);
    assert!(ok(d, &["verify", ".", "--root", "root.toml"]).contains("OK: index version"));

    // Rotate: index key b is retired, root2 joins; the new root needs root1 (current) and
    // root2 (its own) to sign.
    ok(
        d,
        &[
            "rotate-root",
            ".",
            "--current",
            "root.toml",
            "--index-key",
            "a.pub",
            "--root-key",
            "root2.pub",
        ],
    );
    ok(d, &["sign", "root/2.root.toml", "-s", "root1.sec"]);
    refused(
        d,
        &["verify", ".", "--root", "root.toml"],
        "root version 2 (by its own root keys)",
    );
    ok(
        d,
        &["sign", "root/2.root.toml", "-s", "root2.sec", "--append"],
    );
    let out = ok(d, &["verify", ".", "--root", "root.toml"]);
    assert!(out.contains("root rotated to version 2"), "{out}");

    // A tampered index is refused, naming why.
    let text = std::fs::read_to_string(d.join("index.toml")).unwrap();
    std::fs::write(
        d.join("index.toml"),
        text.replace("percent = 50", "percent = 60"),
    )
    .unwrap();
    refused(
        d,
        &["verify", ".", "--root", "root.toml"],
        "do not match the signed bytes",
    );
}

#[test]
fn bad_vendor_input_is_named() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    ok(d, &["keygen", "-s", "k.sec", "-p", "k.pub"]);
    let o = tool(d, &["keygen", "-s", "k.sec", "-p", "k2.pub"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite a key"));
    ok(d, &["new", "index.toml"]);
    let o = tool(
        d,
        &["pull", "index.toml", "--version", "9.9", "--reason", "x"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("the index has no release 9.9"));
    let o = tool(
        d,
        &[
            "init",
            "root.toml",
            "--index-key",
            "k.pub",
            "--index-threshold",
            "2",
            "--root-key",
            "k.pub",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("index_threshold 2 must be between 1 and the number of index keys (1)"));
}

#[test]
fn a_payload_is_wrapped_into_a_firmware_image() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("fw.itb"), &payload).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fwguard-index"))
        .args([
            "image",
            "fw.itb",
            "-o",
            "fw-2.0.img",
            "--board",
            "vrouter-arm",
        ])
        .args(["--version", "2.0"])
        .env("SOURCE_DATE_EPOCH", "1763800000")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = std::fs::read(d.join("fw-2.0.img")).unwrap();
    let h = fwguard::firmware::Header::parse(&img).unwrap();
    assert_eq!(h.board, "vrouter-arm");
    assert_eq!(h.version.as_str(), "2.0");
    assert_eq!(h.build_time, 1763800000);
    assert_eq!(h.payload_size, payload.len() as u64);
    use sha2::Digest;
    assert_eq!(
        h.payload_sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(&payload))
    );
    assert_eq!(&img[fwguard::firmware::HEADER_LEN..], &payload[..]);

    // An explicit build time wins; bad input is named and writes nothing.
    ok(
        d,
        &[
            "image",
            "fw.itb",
            "-o",
            "b.img",
            "--board",
            "x",
            "--version",
            "1.0",
        ],
    );
    let o = Command::new(env!("CARGO_BIN_EXE_fwguard-index"))
        .args([
            "image",
            "fw.itb",
            "-o",
            "c.img",
            "--board",
            "x",
            "--version",
            "1",
        ])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("SOURCE_DATE_EPOCH=\"yesterday\""));
    assert!(!d.join("c.img").exists());
    let o = tool(
        d,
        &[
            "image",
            "nope.itb",
            "-o",
            "d.img",
            "--board",
            "x",
            "--version",
            "1",
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.itb"));
    assert!(!d.join("d.img").exists());
    let long = "b".repeat(600);
    let o = tool(
        d,
        &[
            "image",
            "fw.itb",
            "-o",
            "e.img",
            "--board",
            &long,
            "--version",
            "1",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("header"));
    assert!(!d.join("e.img").exists());
}

#[test]
fn a_root_rotation_can_reset_the_time_floor_of_devices() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    for k in ["index", "root"] {
        ok(
            d,
            &[
                "keygen",
                "-s",
                &format!("{k}.sec"),
                "-p",
                &format!("{k}.pub"),
            ],
        );
    }
    let keys = ["--index-key", "index.pub", "--root-key", "root.pub"];
    ok(d, &[&["init", "root.toml"][..], &keys].concat());
    let rotate = |floor: &str| {
        tool(
            d,
            &[
                &["rotate-root", ".", "--current", "root.toml"][..],
                &keys,
                &["--reset-time-floor", floor],
            ]
            .concat(),
        )
    };
    // A time that is not RFC 3339 is named.
    let o = rotate("tomorrow");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"tomorrow\" is not an RFC 3339"), "{err}");
    let o = rotate("2026-12-01T00:00:00Z");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("reset their time floor to 2026-12-01T00:00:00Z"),
        "{out}"
    );
    let root = std::fs::read_to_string(d.join("root/2.root.toml")).unwrap();
    assert!(
        root.contains("time_floor = \"2026-12-01T00:00:00Z\""),
        "{root}"
    );
    ok(d, &["sign", "root/2.root.toml", "-s", "root.sec"]);
    ok(d, &["new", "index.toml"]);
    ok(d, &["sign", "index.toml", "-s", "index.sec"]);
    let out = ok(d, &["verify", ".", "--root", "root.toml"]);
    assert!(
        out.contains("root version 2 resets devices' time floor to 2026-12-01T00:00:00Z"),
        "{out}"
    );
}
