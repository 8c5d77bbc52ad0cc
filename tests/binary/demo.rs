//! The README's first command: `fwguard demo` must end with 1.1 committed and 1.2 rolled back.

#[test]
fn demo_commits_1_1_and_rolls_back_1_2() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fwguard"))
        .arg("demo")
        .output()
        .expect("demo runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for line in [
        "committed 1.1: health checks passed",
        "rollback 1.2: switching to slot B: health checks failed until the trial deadline",
        "FAIL internet",
        "running:      1.1 in slot B",
        "denylisted:   1.2",
        "demo passed",
    ] {
        assert!(
            out.contains(line),
            "{line:?} missing from the demo output:\n{out}"
        );
    }
    assert!(
        !out.lines().any(|l| l.starts_with("FAIL ")),
        "a final check failed:\n{out}"
    );
}
