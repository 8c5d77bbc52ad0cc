//! Every shipped example parses and verifies: the config in packaging/, the signed example
//! index in firmware-index/examples/.

use super::common::repo;
use fwguard::config::{BoardSettings, Policy, Settings};
use fwguard::index::sign::PublicKey;
use fwguard::index::{TrustPolicy, UntrustedIndex};
use std::path::Path;
use std::time::Duration;

#[test]
fn example_config_parses_with_every_setting() {
    let s = Settings::load(&repo("packaging/config.toml")).unwrap();
    assert_eq!(s.policy, Policy::Auto);
    assert_eq!(s.check_interval, Duration::from_secs(6 * 3600));
    assert_eq!(s.index.channel, "stable");
    assert_eq!(s.index.trust.index.keys.len(), 1);
    assert_eq!(s.trial.deadline, Duration::from_secs(300));
    match &s.board {
        BoardSettings::UBoot { env, slot_b, .. } => {
            assert_eq!(env.copies.len(), 1);
            assert_eq!(env.copies[0].size, 0x4000);
            assert_eq!(slot_b, Path::new("/dev/vda3"));
        }
        other => panic!("{other:?}"),
    }
    let mut kinds: Vec<String> = s
        .health
        .checks
        .iter()
        .map(|c| {
            format!("{:?}", c.kind)
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "Address", "Clock", "Command", "Dns", "Http", "Link", "Listen", "Ping", "Process",
            "Route", "Tcp"
        ],
        "the example config documents every check kind"
    );
    let internet = s
        .health
        .groups
        .iter()
        .find(|g| g.name == "internet")
        .unwrap();
    assert_eq!(
        (internet.members.len(), internet.need, internet.advisory),
        (4, 2, false)
    );
    assert!(s
        .health
        .groups
        .iter()
        .any(|g| g.name == "clock" && g.advisory));
    assert_eq!(s.trial.soak, Duration::from_secs(600));
    assert_eq!(s.max_rollbacks, 2);
}

#[test]
fn example_config_key_is_the_test_key() {
    let s = Settings::load(&repo("packaging/config.toml")).unwrap();
    let test = PublicKey::parse(
        &std::fs::read_to_string(repo("firmware-index/test-keys/test.pub")).unwrap(),
    )
    .unwrap();
    assert_eq!(s.index.trust.index.keys[0], test);
}

#[test]
fn example_index_verifies_with_the_test_key() {
    let dir = repo("firmware-index/examples");
    let key = PublicKey::parse(
        &std::fs::read_to_string(repo("firmware-index/test-keys/test.pub")).unwrap(),
    )
    .unwrap();
    let ix = UntrustedIndex {
        bytes: std::fs::read(dir.join("index.toml")).unwrap(),
        signatures: std::fs::read(dir.join("index.toml.sig")).unwrap(),
    };
    let trust = TrustPolicy {
        keys: vec![key],
        threshold: 1,
    };
    let v = ix
        .verify(&trust, None, fwguard::time::unix_now(), 0)
        .unwrap();
    assert_eq!(v.releases().len(), 2);
    // The listed sizes and hashes are those of the example images.
    for r in v.releases() {
        let img = std::fs::read(dir.join(&r.urls[0])).unwrap();
        assert_eq!(img.len() as u64, r.size);
        use sha2::Digest;
        assert_eq!(<[u8; 32]>::from(sha2::Sha256::digest(&img)), r.sha256);
    }
}

#[test]
fn example_root_and_index_verify_as_a_device_would() {
    use fwguard::index::root::TrustRoot;
    let dir = repo("firmware-index/examples");
    let root = TrustRoot::parse(&std::fs::read_to_string(dir.join("root.toml")).unwrap()).unwrap();
    let ix = UntrustedIndex {
        bytes: std::fs::read(dir.join("index.toml")).unwrap(),
        signatures: std::fs::read(dir.join("index.toml.sig")).unwrap(),
    }
    .verify(&root.index, None, fwguard::time::unix_now(), 0)
    .unwrap();
    assert_eq!(ix.security_floor("sim").map(|v| v.as_str()), Some("1.0"));
    assert!(ix.releases().iter().any(|r| r.rollout.is_some()));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fwguard-index"))
        .arg("verify")
        .arg(&dir)
        .arg("--root")
        .arg(dir.join("root.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The optional sections shown commented out in the example config load as written once
/// uncommented, with the documented defaults.
#[test]
fn example_config_optional_sections_load_uncommented() {
    let text = std::fs::read_to_string(repo("packaging/config.toml")).unwrap();
    let mut out = String::new();
    let mut section = false;
    for line in text.lines() {
        let bare = line.strip_prefix("# ").unwrap_or(line);
        if bare == "[report]" || bare == "[archive]" {
            section = true;
        } else if !line.starts_with("# ") || bare.starts_with('[') {
            section = false;
        }
        out += if section { bare } else { line };
        out += "\n";
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, out).unwrap();
    let s = Settings::load(&cfg).unwrap();
    let archive = s.archive.expect("[archive] uncommented");
    assert_eq!(archive.dir, std::path::PathBuf::from("/mnt/usb/fwguard"));
    assert_eq!(archive.keep, 2);
    let report = s.report.expect("[report] uncommented");
    assert_eq!(report.timeout, Duration::from_secs(10));
}
