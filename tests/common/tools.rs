//! Running the real U-Boot tools (installed by tests/run.sh; a missing one fails the test).

use std::process::Command;

/// Run `name args`, require success, return its stdout.
pub fn tool(name: &str, args: &[&str]) -> String {
    let o = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is not runnable ({e}); tests/run.sh installs it"));
    assert!(
        o.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A squashfs holding one file that names `version`, made by mksquashfs.
pub fn squashfs(dir: &std::path::Path, version: &str) -> Vec<u8> {
    squashfs_of(dir, version, 0)
}

/// A squashfs holding a file that names `version` and `noise` bytes that do not compress
/// (a root that spans several UBI blocks).
pub fn squashfs_of(dir: &std::path::Path, version: &str, noise: usize) -> Vec<u8> {
    let src = dir.join(format!("root-{version}"));
    std::fs::create_dir_all(src.join("etc")).unwrap();
    let bytes = incompressible(0x2545_f491_4f6c_dd1d ^ version.len() as u64, noise);
    std::fs::write(src.join("etc/noise"), bytes).unwrap();
    std::fs::write(
        src.join("etc/openwrt_release"),
        format!("DISTRIB_RELEASE='{version}'\n"),
    )
    .unwrap();
    let out = dir.join(format!("root-{version}.squashfs"));
    tool(
        "mksquashfs",
        &[
            src.to_str().unwrap(),
            out.to_str().unwrap(),
            "-noappend",
            "-quiet",
            "-all-root",
            "-mkfs-time",
            "0",
            "-comp",
            "gzip",
        ],
    );
    std::fs::read(out).unwrap()
}

/// `len` bytes that do not compress (xorshift from `seed`).
pub fn incompressible(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
