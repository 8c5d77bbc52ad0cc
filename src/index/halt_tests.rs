use super::*;
use crate::index::build::sign_bytes;
use crate::index::sign::SecretKey;

const NOW: u64 = 1_796_083_200; // 2026-12-01T00:00:00Z
const DAY: u64 = 86_400;

struct Keys {
    halt: SecretKey,
    index: SecretKey,
}

fn keys() -> Keys {
    Keys {
        halt: SecretKey::generate().unwrap(),
        index: SecretKey::generate().unwrap(),
    }
}

fn policy(k: &SecretKey) -> TrustPolicy {
    TrustPolicy {
        keys: vec![k.public()],
        threshold: 1,
    }
}

fn signed(text: &str, by: &SecretKey) -> UntrustedHalt {
    UntrustedHalt {
        bytes: text.as_bytes().to_vec(),
        signatures: sign_bytes(by, text.as_bytes(), "k.pub").into_bytes(),
    }
}

fn doc(version: u64, expires: u64, body: &str) -> String {
    format!(
        "format = 1\nversion = {version}\nissued_at = \"{}\"\nexpires = \"{}\"\n{body}",
        format_time(NOW - 60),
        format_time(expires)
    )
}

const HALT_2_0: &str =
    "\n[[halt]]\nrelease = \"2.0\"\nboards = [\"wrt32x\"]\nreason = \"wave 1: 3 of 10 rolled back\"\n";

#[test]
fn a_halt_signed_by_a_halt_key_halts_the_release_for_its_boards_until_it_expires() {
    let k = keys();
    let h = signed(&doc(1, NOW + DAY, HALT_2_0), &k.halt)
        .verify(&policy(&k.halt), 1, None, NOW)
        .unwrap();
    let v: Version = "2.0".parse().unwrap();
    assert_eq!(
        h.halting(&v, "wrt32x", NOW),
        Some("wave 1: 3 of 10 rolled back")
    );
    assert_eq!(h.halting(&v, "other-board", NOW), None);
    assert_eq!(h.halting(&"2.1".parse().unwrap(), "wrt32x", NOW), None);
    assert_eq!(h.halting(&v, "wrt32x", NOW + DAY), None, "expired");
    let every = signed(
        &doc(
            2,
            NOW + DAY,
            "[[halt]]\nrelease = \"2.0\"\nreason = \"r\"\n",
        ),
        &k.halt,
    )
    .verify(&policy(&k.halt), 1, Some(&h), NOW)
    .unwrap();
    assert_eq!(every.halting(&v, "other-board", NOW), Some("r"));
}

#[test]
fn only_the_halt_keys_sign_a_halt() {
    let k = keys();
    let e = signed(&doc(1, NOW + DAY, HALT_2_0), &k.index)
        .verify(&policy(&k.halt), 1, None, NOW)
        .unwrap_err();
    assert!(matches!(e, HaltError::Signature(_)), "{e}");
    assert!(
        e.to_string()
            .contains("halt.toml is not signed by enough trusted keys"),
        "{e}"
    );
    // Bytes changed after signing.
    let mut h = signed(&doc(1, NOW + DAY, HALT_2_0), &k.halt);
    h.bytes.extend_from_slice(b"\n");
    assert!(h.verify(&policy(&k.halt), 1, None, NOW).is_err());
}

#[test]
fn an_older_halt_is_a_replay_and_the_same_version_may_not_change() {
    let k = keys();
    let p = policy(&k.halt);
    let v3 = signed(&doc(3, NOW + DAY, HALT_2_0), &k.halt)
        .verify(&p, 1, None, NOW)
        .unwrap();
    // Version 2 lifted nothing yet, but it is older than what was seen: refused.
    let e = signed(&doc(2, NOW + DAY, ""), &k.halt)
        .verify(&p, 1, Some(&v3), NOW)
        .unwrap_err();
    assert!(matches!(e, HaltError::Rollback { got: 2, last: 3 }), "{e}");
    let e = signed(&doc(3, NOW + DAY, ""), &k.halt)
        .verify(&p, 1, Some(&v3), NOW)
        .unwrap_err();
    assert!(matches!(e, HaltError::Forked { version: 3 }), "{e}");
    // The same file again: accepted (nothing new).
    let again = signed(&doc(3, NOW + DAY, HALT_2_0), &k.halt)
        .verify(&p, 1, Some(&v3), NOW)
        .unwrap();
    assert_eq!(again, v3);
    // Under a new root (which may have other halt keys) the versions start afresh.
    assert!(signed(&doc(1, NOW + DAY, ""), &k.halt)
        .verify(&p, 2, Some(&v3), NOW)
        .is_ok());
}

#[test]
fn an_expired_halt_is_refused() {
    let k = keys();
    let e = signed(&doc(1, NOW, HALT_2_0), &k.halt)
        .verify(&policy(&k.halt), 1, None, NOW)
        .unwrap_err();
    assert!(matches!(e, HaltError::Expired { .. }), "{e}");
    assert!(
        e.to_string().contains("expired at 2026-12-01T00:00:00Z"),
        "{e}"
    );
}

#[test]
fn a_halt_can_say_nothing_but_halt_a_release() {
    let k = keys();
    let p = policy(&k.halt);
    // Releases, URLs, hashes, a pull or its lifting: none is a field of a halt file.
    for (body, field) in [
        (
            "[[release]]\nversion = \"9.9\"\nboards = [\"wrt32x\"]\n",
            "release",
        ),
        (
            "[[halt]]\nrelease = \"2.0\"\nreason = \"r\"\nurls = [\"http://evil/fw.img\"]\n",
            "urls",
        ),
        (
            "[[halt]]\nrelease = \"2.0\"\nreason = \"r\"\nsha256 = \"00\"\n",
            "sha256",
        ),
        (
            "[[halt]]\nrelease = \"2.0\"\nreason = \"r\"\npulled = false\n",
            "pulled",
        ),
        ("unpull = [\"1.9\"]\n", "unpull"),
    ] {
        let e = signed(&doc(1, NOW + DAY, body), &k.halt)
            .verify(&p, 1, None, NOW)
            .unwrap_err();
        assert!(
            matches!(e, HaltError::Malformed(_)) && e.to_string().contains(field),
            "{field}: {e}"
        );
    }
    let e = signed(
        &doc(1, NOW + DAY, "").replace("format = 1", "format = 2"),
        &k.halt,
    )
    .verify(&p, 1, None, NOW)
    .unwrap_err();
    assert!(matches!(e, HaltError::Format(2)), "{e}");
}

#[test]
fn a_draft_halts_resumes_and_writes_the_next_version() {
    let k = keys();
    let mut d = HaltDraft::default();
    let v: Version = "2.0".parse().unwrap();
    d.halt(v.clone(), vec![], "first".into());
    d.halt(v.clone(), vec![], "second".into());
    assert_eq!(
        d.entries.len(),
        1,
        "a halt of the same release and boards is replaced"
    );
    let text = d.next_toml(NOW, NOW + DAY);
    let h = signed(&text, &k.halt)
        .verify(&policy(&k.halt), 1, None, NOW)
        .unwrap();
    assert_eq!((h.version, h.halting(&v, "b", NOW)), (1, Some("second")));
    let mut again = HaltDraft::parse(&text).unwrap();
    assert!(again.resume(&v) && !again.resume(&v));
    let text = again.next_toml(NOW + 1, NOW + DAY);
    let lifted = signed(&text, &k.halt)
        .verify(&policy(&k.halt), 1, Some(&h), NOW)
        .unwrap();
    assert_eq!((lifted.version, lifted.halting(&v, "b", NOW)), (2, None));
}
