//! `fwguard-index` as a vendor uses it: keys, a root, releases, pulls, rollouts, floors,
//! signing by several signers, a root rotation, and `verify` saying why a directory fails.

use std::path::Path;
use std::process::{Command, Output};

pub(super) fn tool(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fwguard-index"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

pub(super) fn ok(dir: &Path, args: &[&str]) -> String {
    let o = tool(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into()
}

/// Run the tool, expect exit `code` and an error mentioning `words`.
fn exits(dir: &Path, args: &[&str], code: i32, words: &str) {
    let o = tool(dir, args);
    assert_eq!(o.status.code(), Some(code), "{args:?} should exit {code}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(words), "{err:?} does not mention {words:?}");
}

/// Refused as verification (6).
fn refused(dir: &Path, args: &[&str], words: &str) {
    exits(dir, args, 6, words);
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

/// What each board's entry of `version` says: (board, pulled reason, rollout state).
fn entries(dir: &Path, version: &str) -> Vec<(String, Option<String>, Option<bool>)> {
    let text = std::fs::read_to_string(dir.join("index.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for r in doc["release"].as_array().unwrap() {
        if r["version"].as_str() != Some(version) {
            continue;
        }
        for b in r["boards"].as_array().unwrap() {
            out.push((
                b.as_str().unwrap().to_string(),
                r.get("pulled").map(|p| p.as_str().unwrap().to_string()),
                r.get("rollout").map(|ro| ro["halted"].as_bool().unwrap()),
            ));
        }
    }
    out.sort();
    out
}

/// A failed edit (1).
pub(super) fn fails(dir: &Path, args: &[&str], words: &str) {
    exits(dir, args, 1, words);
}

#[test]
fn pull_unpull_rollout_and_floor_act_on_every_boards_entry_or_the_one_board_named() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::write(d.join("fw.img"), b"firmware").unwrap();
    ok(d, &["new", "index.toml"]);
    for boards in [&["a"][..], &["b"], &["c", "d"]] {
        let mut args = vec!["add-release", "index.toml", "--version", "2.0"];
        for b in boards {
            args.extend(["--board", b]);
        }
        ok(d, &[&args[..], &["--image", "fw.img"]].concat());
    }
    let pulled = |r: &str| Some(r.to_string());

    // Every board's entry, a line each.
    let out = ok(
        d,
        &[
            "pull",
            "index.toml",
            "--version",
            "2.0",
            "--reason",
            "bricks",
        ],
    );
    let all_pulled: Vec<_> = ["a", "b", "c", "d"]
        .map(|b| (b.to_string(), pulled("bricks"), None))
        .into();
    assert_eq!(entries(d, "2.0"), all_pulled);
    for b in ["a", "b", "c", "d"] {
        assert!(
            out.contains(&format!("2.0 for board {b}: pulled (bricks)")),
            "{out}"
        );
    }

    // One board's, splitting the entry it shares with another board.
    let out = ok(
        d,
        &["unpull", "index.toml", "--version", "2.0", "--board", "c"],
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("2.0 for board"))
            .collect::<Vec<_>>(),
        ["2.0 for board c: offered again"]
    );
    let e = entries(d, "2.0");
    assert_eq!(e[2], ("c".into(), None, None));
    assert_eq!(e[3], ("d".into(), pulled("bricks"), None));
    ok(
        d,
        &["unpull", "index.toml", "--version", "2.0", "--board", "b"],
    );
    fails(
        d,
        &["unpull", "index.toml", "--version", "2.0", "--board", "zz"],
        "release 2.0 has no entry for board \"zz\"",
    );
    fails(
        d,
        &["unpull", "index.toml", "--version", "2.0", "--board", "b"],
        "nothing to change: 2.0 for board b: left as it was (not pulled)",
    );
    ok(d, &["unpull", "index.toml", "--version", "2.0"]);

    // Rollouts likewise: set on all, halted on one.
    let out = ok(
        d,
        &[
            "rollout",
            "index.toml",
            "--version",
            "2.0",
            "--wave",
            "1h:10",
        ],
    );
    assert_eq!(out.matches("rollout set in 1 wave(s)").count(), 4, "{out}");
    let out = ok(
        d,
        &[
            "rollout",
            "index.toml",
            "--version",
            "2.0",
            "--halt",
            "--board",
            "d",
        ],
    );
    assert!(out.contains("2.0 for board d: rollout halted"), "{out}");
    let halted: Vec<_> = entries(d, "2.0").into_iter().map(|e| e.2).collect();
    assert_eq!(halted, [Some(false), Some(false), Some(false), Some(true)]);
    fails(
        d,
        &[
            "rollout",
            "index.toml",
            "--version",
            "2.0",
            "--wave",
            "1h:1",
            "--board",
            "zz",
        ],
        "no entry for board \"zz\"",
    );

    // A floor is per board already: it names the change and refuses a board no release is for.
    let out = ok(
        d,
        &["floor", "index.toml", "--board", "a", "--version", "1.5"],
    );
    assert!(
        out.contains("security floor of board a: set to 1.5"),
        "{out}"
    );
    let out = ok(
        d,
        &["floor", "index.toml", "--board", "a", "--version", "2.0"],
    );
    assert!(
        out.contains("security floor of board a: 1.5 -> 2.0"),
        "{out}"
    );
    fails(
        d,
        &["floor", "index.toml", "--board", "zz", "--version", "1.5"],
        "no release of the index is for board \"zz\"",
    );
    fails(
        d,
        &["floor", "index.toml", "--board", "b", "--clear"],
        "board \"b\" has no security floor to clear",
    );
    let text = std::fs::read_to_string(d.join("index.toml")).unwrap();
    assert!(
        text.contains("a = \"2.0\"") && !text.contains("zz"),
        "{text}"
    );
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
