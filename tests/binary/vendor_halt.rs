//! `fwguard-index` and the halt-only role: a root with a halt key, `halt` / `--resume` writing
//! each next version of halt.toml, `sign` with the halt key, and `verify` checking it as a
//! device would (the index key cannot stand in for the halt key).

use super::vendor_tool::{fails, ok, tool};

#[test]
fn a_vendor_halts_and_resumes_a_release_with_the_halt_key() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    for k in ["index", "root", "halt"] {
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
    // A halt key that is also an index key could do more than halt: refused.
    fails(
        d,
        &[
            "init",
            "bad.toml",
            "--index-key",
            "index.pub",
            "--root-key",
            "root.pub",
            "--halt-key",
            "index.pub",
        ],
        "halt_keys[0] is also one of the index keys",
    );
    assert!(!d.join("bad.toml").exists());
    ok(
        d,
        &[
            "init",
            "root.toml",
            "--index-key",
            "index.pub",
            "--root-key",
            "root.pub",
            "--halt-key",
            "halt.pub",
        ],
    );
    ok(d, &["new", "index.toml"]);
    ok(d, &["sign", "index.toml", "-s", "index.sec"]);
    let out = ok(
        d,
        &[
            "halt",
            "halt.toml",
            "--release",
            "2.0",
            "--board",
            "wrt32x",
            "--reason",
            "wave 1: 3 of 10 rolled back",
        ],
    );
    assert!(
        out.contains("halted 2.0 on wrt32x: wave 1: 3 of 10 rolled back"),
        "{out}"
    );
    assert!(out.contains("halt.toml version is now 1"), "{out}");
    // Signed by the index key: a device refuses it.
    ok(d, &["sign", "halt.toml", "-s", "index.sec"]);
    let o = tool(d, &["verify", ".", "--root", "root.toml"]);
    assert_eq!(o.status.code(), Some(6));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("halt.toml is not signed by enough trusted keys"),
        "{err}"
    );
    ok(d, &["sign", "halt.toml", "-s", "halt.sec"]);
    let out = ok(d, &["verify", ".", "--root", "root.toml"]);
    assert!(out.contains("halt version 1 halts 2.0"), "{out}");
    // Resumed: the next version halts nothing.
    let out = ok(d, &["halt", "halt.toml", "--resume", "2.0"]);
    assert!(
        out.contains("resumed 2.0") && out.contains("version is now 2"),
        "{out}"
    );
    fails(
        d,
        &["halt", "halt.toml", "--resume", "2.0"],
        "2.0 is not halted",
    );
    ok(d, &["sign", "halt.toml", "-s", "halt.sec"]);
    let out = ok(d, &["verify", ".", "--root", "root.toml"]);
    assert!(out.contains("halt version 2 halts no release"), "{out}");
}
