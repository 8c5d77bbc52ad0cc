//! Index and root parsing plus verification on arbitrary bytes.
//!
//! Each input is tried three ways: as an index with an arbitrary signature file (must be
//! refused without a panic); as an index validly signed by the trusted test key (so the
//! parser and every field, version and time check run on fuzzed bytes); and as a trust root
//! (parse, and rotation signed by the test root key).
#![no_main]

use fwguard::index::root::TrustRoot;
use fwguard::index::sign::SecretKey;
use fwguard::index::{LastIndex, TrustPolicy, UntrustedIndex};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::parse(include_str!("../../firmware-index/test-keys/test.sec")).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let k = key();
    let trust = TrustPolicy {
        keys: vec![k.public()],
        threshold: 1,
    };
    let last = LastIndex {
        version: 3,
        sha256: "00".repeat(32),
        issued_at: 1_700_000_000,
        ..Default::default()
    };
    let (sig_part, rest) = data.split_at(data.len().min(120));
    let _ = UntrustedIndex {
        bytes: rest.to_vec(),
        signatures: sig_part.to_vec(),
    }
    .verify(&trust, Some(&last), 1_790_000_000, 0);

    let signed = k.sign(data).to_file("fuzz");
    for prev in [None, Some(&last)] {
        if let Ok(ix) = (UntrustedIndex {
            bytes: data.to_vec(),
            signatures: signed.clone().into_bytes(),
        })
        .verify(&trust, prev, 1_790_000_000, 1_700_000_000)
        {
            let _ = ix.as_last("sim");
        }
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TrustRoot::parse(text);
    }
    let root = TrustRoot::parse(&fwguard::index::root::root_toml(1, &[k.public()], 1, &[k.public()], 1)).unwrap();
    let _ = root.rotate(data, signed.as_bytes());
});
