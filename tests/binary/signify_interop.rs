//! Keys and signatures interchange with the real signify (Debian signify-openbsd, the
//! format OpenWrt's usign also uses). Installed by tests/run.sh; a missing tool fails.

use super::common;

use common::world;
use fwguard::agent::{Action, UpdateMode};
use std::path::Path;
use std::process::Command;

fn signify(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("signify-openbsd")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("signify-openbsd is not runnable ({e}); tests/run.sh installs it")
        })
}

#[tokio::test]
async fn an_index_signed_by_signify_is_accepted_by_the_device() {
    let mut t = world("off").await;
    let dir = t.world.root.join("signify");
    std::fs::create_dir_all(&dir).unwrap();
    let o = signify(
        &[
            "-G",
            "-n",
            "-p",
            "vendor.pub",
            "-s",
            "vendor.sec",
            "-c",
            "vendor signify key",
        ],
        &dir,
    );
    assert!(o.status.success(), "{o:?}");
    // Trust the signify key instead of the world's own.
    let cfg = std::fs::read_to_string(&t.cfg).unwrap();
    let cfg = cfg
        .lines()
        .map(|l| {
            if l.starts_with("trusted_key_files") {
                format!(
                    "trusted_key_files = [\"{}\"]",
                    dir.join("vendor.pub").display()
                )
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&t.cfg, cfg).unwrap();
    // The world signs with its key; replace the signature with signify's over the same bytes.
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let index = t.world.www.join("index.toml");
    let o = signify(
        &[
            "-S",
            "-s",
            "vendor.sec",
            "-m",
            index.to_str().unwrap(),
            "-x",
            index.with_extension("toml.sig").to_str().unwrap(),
        ],
        &dir,
    );
    assert!(o.status.success(), "{o:?}");
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(a, Action::Reboot("trial boot of 1.1 in slot B".into()));
}

#[test]
fn signify_verifies_what_fwguard_index_signs() {
    let dir = tempfile::tempdir().unwrap();
    let tool = env!("CARGO_BIN_EXE_fwguard-index");
    let run = |args: &[&str]| {
        let o = Command::new(tool)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["keygen", "-s", "v.sec", "-p", "v.pub"]);
    run(&["new", "index.toml"]);
    run(&["sign", "index.toml", "-s", "v.sec"]);
    let o = signify(
        &[
            "-V",
            "-p",
            "v.pub",
            "-m",
            "index.toml",
            "-x",
            "index.toml.sig",
        ],
        dir.path(),
    );
    assert!(
        o.status.success(),
        "signify refused: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("Signature Verified"));
    // And signify can sign with a fwguard-made secret key.
    let o = signify(
        &["-S", "-s", "v.sec", "-m", "index.toml", "-x", "again.sig"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A tampered index is refused by signify too.
    std::fs::write(dir.path().join("index.toml"), "[index]\nformat = 2\n").unwrap();
    let o = signify(
        &[
            "-V",
            "-p",
            "v.pub",
            "-m",
            "index.toml",
            "-x",
            "index.toml.sig",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
}

#[test]
fn a_passphrase_protected_signify_key_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // signify reads the passphrase from the terminal; without one it cannot make such a
    // key here, so build its header the way signify writes it (kdf rounds 42).
    let key = fwguard::index::sign::SecretKey::generate()
        .unwrap()
        .to_file("x");
    let line = key.lines().nth(1).unwrap();
    use base64::Engine as _;
    let mut blob = base64::engine::general_purpose::STANDARD
        .decode(line)
        .unwrap();
    blob[4..8].copy_from_slice(&42u32.to_be_bytes());
    let text = format!(
        "untrusted comment: x\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(blob)
    );
    let p = dir.path().join("enc.sec");
    std::fs::write(&p, text).unwrap();
    let err = fwguard::index::sign::SecretKey::parse(&std::fs::read_to_string(&p).unwrap())
        .err()
        .unwrap();
    assert!(err.to_string().contains("passphrase-protected"), "{err}");
}
