//! The configuration-format rules of a choice (`compat_version`): same, minor, major, and the
//! owner's `--no-settings`; releases the vendor's fleet service halted.

use super::*;
use crate::carry::CompatVersion;
use crate::index::build::{sign_bytes, IndexDraft, NewRelease};
use crate::index::sign::SecretKey;
use crate::index::{TrustPolicy, UntrustedIndex};

const NOW: u64 = 1_800_000_000;

fn release(version: &str, compat: Option<&str>, message: Option<&str>) -> NewRelease {
    NewRelease {
        version: version.parse().unwrap(),
        boards: vec!["wrt32x".into()],
        channels: vec!["stable".into()],
        urls: vec![format!("images/{version}.bin")],
        size: 1000,
        sha256: [1; 32],
        min_from: None,
        compat_version: compat.map(|c| CompatVersion::parse(c).unwrap()),
        compat_message: message.map(str::to_string),
        boot: None,
        parts: Vec::new(),
        verify: Vec::new(),
    }
}

fn index(releases: Vec<NewRelease>) -> VerifiedIndex {
    let key = SecretKey::generate().unwrap();
    let mut d = IndexDraft::new(1, NOW - 60, NOW + 86_400);
    for r in releases {
        d.add_release(r).unwrap();
    }
    let bytes = d.to_toml().into_bytes();
    let signatures = sign_bytes(&key, &bytes, "test").into_bytes();
    let trust = TrustPolicy {
        keys: vec![key.public()],
        threshold: 1,
    };
    UntrustedIndex { bytes, signatures }
        .verify(&trust, None, NOW, 0)
        .unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn want<'a>(running: &'a Version, compat: &str, pinned: Option<&'a Version>) -> Wanted<'a> {
    Wanted {
        board: "wrt32x",
        channel: "stable",
        running: Some(running),
        pinned,
        force_insecure: false,
        denylist: &[],
        device_id: "dev",
        compat: CompatVersion::parse(compat).unwrap(),
        no_settings: false,
        halts: None,
    }
}

fn installs(c: Result<Choice, SelectError>) -> String {
    match c {
        Ok(Choice::Install(r)) => r.version.to_string(),
        other => panic!("expected an install, got {other:?}"),
    }
}

#[test]
fn same_format_installs_and_a_break_waits_for_the_owner() {
    let ix = index(vec![
        release("21.02.7", None, None),
        release(
            "22.03.0",
            Some("1.1"),
            Some("swconfig to DSA: the switch config cannot migrate"),
        ),
        release(
            "23.05.0",
            Some("2.0"),
            Some("kernel partition grew: flash the factory image"),
        ),
    ]);
    let running = v("21.02.6");
    // A 1.0 device: 21.02.7 (no compat_version: 1.0) is installed; the breaks are not.
    assert_eq!(
        installs(select(&ix, &want(&running, "1.0", None))),
        "21.02.7"
    );
    // Once it runs 21.02.7, what is left is the owner's: the minor break, which the owner
    // can install, is named before the newer major one, which nobody can.
    let running = v("21.02.7");
    match select(&ix, &want(&running, "1.0", None)).unwrap() {
        Choice::NeedsOwner { version, reason } => {
            assert_eq!(version.as_str(), "22.03.0", "{reason}");
            assert!(reason.contains("swconfig to DSA"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let only_major = index(vec![release(
        "23.05.0",
        Some("2.0"),
        Some("flash the factory image"),
    )]);
    match select(&only_major, &want(&running, "1.0", None)).unwrap() {
        Choice::NeedsOwner { version, reason } => {
            assert_eq!(version.as_str(), "23.05.0");
            assert!(
                reason.contains("another major") && reason.contains("factory image"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // With --no-settings the minor break is taken, never the major one.
    let mut w = want(&running, "1.0", None);
    w.no_settings = true;
    assert_eq!(installs(select(&ix, &w)), "22.03.0");
    // A 1.1 device takes 1.1 releases as they come, but not 2.0.
    let ix = index(vec![
        release("22.03.1", Some("1.1"), None),
        release("23.05.0", Some("2.0"), None),
    ]);
    let running = v("22.03.0");
    assert_eq!(
        installs(select(&ix, &want(&running, "1.1", None))),
        "22.03.1"
    );
}

#[test]
fn a_minor_break_alone_names_the_commands() {
    let ix = index(vec![release("22.03.0", Some("1.1"), Some("DSA"))]);
    let running = v("21.02.7");
    match select(&ix, &want(&running, "1.0", None)).unwrap() {
        Choice::NeedsOwner { version, reason } => {
            assert_eq!(version.as_str(), "22.03.0");
            for needed in ["1.1", "1.0", "the vendor says: DSA", "--no-settings"] {
                assert!(reason.contains(needed), "{needed:?} in {reason}");
            }
        }
        other => panic!("{other:?}"),
    }
    // A lower minor is a break as well (the settings are of a newer format).
    assert!(matches!(
        select(&ix, &want(&running, "1.2", None)).unwrap(),
        Choice::NeedsOwner { .. }
    ));
}

#[test]
fn a_pin_across_a_break_is_refused_unless_the_owner_takes_defaults() {
    let ix = index(vec![
        release("22.03.0", Some("1.1"), None),
        release("23.05.0", Some("2.0"), Some("flash the factory image")),
    ]);
    let running = v("21.02.7");
    let minor = v("22.03.0");
    let e = select(&ix, &want(&running, "1.0", Some(&minor))).unwrap_err();
    assert!(
        matches!(&e, SelectError::Compat(why) if why.contains("--no-settings")),
        "{e}"
    );
    assert_eq!(e.exit_code(), crate::error::EXIT_DISALLOWED);
    let mut w = want(&running, "1.0", Some(&minor));
    w.no_settings = true;
    assert_eq!(installs(select(&ix, &w)), "22.03.0");
    let major = v("23.05.0");
    let mut w = want(&running, "1.0", Some(&major));
    w.no_settings = true;
    let e = select(&ix, &w).unwrap_err();
    assert!(e.to_string().contains("flash the factory image"), "{e}");
}

#[test]
fn the_index_refuses_a_bad_compat_entry() {
    let mut d = IndexDraft::new(1, NOW - 60, NOW + 86_400);
    let e = d
        .add_release(release("1.1", None, Some("a message without a version")))
        .unwrap_err();
    assert!(e.contains("compat_message needs a compat_version"), "{e}");
    let text = IndexDraft::new(1, NOW - 60, NOW + 86_400).to_toml()
        + "\n[[release]]\nversion = \"1.1\"\nboards = [\"b\"]\nchannels = [\"stable\"]\nurls = [\"x\"]\nsize = 1\nsha256 = \""
        + &"ab".repeat(32)
        + "\"\ncompat_version = \"1.x\"\n";
    let e = IndexDraft::parse(&text).unwrap_err();
    assert!(e.contains("compat_version") && e.contains("1.x"), "{e}");
}

#[test]
fn a_halted_release_is_passed_over_for_the_next_one_until_the_halt_expires() {
    use crate::index::halt::{Halt, Halts};
    let idx = index(vec![release("2.0", None, None), release("2.1", None, None)]);
    let (one, two) = (v("1.0"), v("2.1"));
    let mut halts = Halts {
        version: 1,
        sha256: String::new(),
        issued_at: NOW - 60,
        expires: NOW + 3600,
        root_version: 1,
        entries: vec![Halt {
            release: two.clone(),
            boards: vec!["wrt32x".into()],
            reason: "wave 1 rolled back".into(),
        }],
    };
    let mut w = want(&one, "1.0", None);
    w.halts = Some(&halts);
    match select(&idx, &w).unwrap() {
        Choice::Install(r) => assert_eq!(r.version, v("2.0")),
        other => panic!("{other:?}"),
    }
    // Halted on another board only: not here.
    halts.entries[0].boards = vec!["other".into()];
    let mut w = want(&one, "1.0", None);
    w.halts = Some(&halts);
    assert_eq!(installs(select(&idx, &w)), "2.1");
    // Every board, both releases: nothing, and why.
    halts.entries[0].boards.clear();
    halts.entries.push(Halt {
        release: v("2.0"),
        boards: vec![],
        reason: "same".into(),
    });
    let mut w = want(&one, "1.0", None);
    w.halts = Some(&halts);
    match select(&idx, &w).unwrap() {
        Choice::UpToDate { reason } => assert!(
            reason.contains(
                "2.1 is not offered to this device: the vendor halted it (wave 1 rolled back)"
            ),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // Expired: the halt no longer holds.
    halts.expires = NOW;
    let mut w = want(&one, "1.0", None);
    w.halts = Some(&halts);
    assert_eq!(installs(select(&idx, &w)), "2.1");
}
