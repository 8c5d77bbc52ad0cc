//! The vendor's side of the trust root in tests: signed indexes by any set of keys, a root
//! installed on the device instead of the fixed vendor key, and published root rotations.

use super::{release, TestWorld};
use fwguard::index::build::{sign_bytes, IndexDraft};
use fwguard::index::root::{root_toml, NewRoot};
use fwguard::index::sign::SecretKey;
use fwguard::time::unix_now;

pub const DAY: u64 = 86_400;

pub fn keys(n: usize) -> Vec<SecretKey> {
    (0..n).map(|_| SecretKey::generate().unwrap()).collect()
}

/// Publish an index signed by every key in `signers`.
pub fn publish(t: &TestWorld, draft: &IndexDraft, signers: &[&SecretKey]) {
    let bytes = draft.to_toml();
    std::fs::write(t.world.www.join("index.toml"), &bytes).unwrap();
    let sigs: String = signers
        .iter()
        .map(|k| sign_bytes(k, bytes.as_bytes(), "k.pub"))
        .collect();
    std::fs::write(t.world.www.join("index.toml.sig"), sigs).unwrap();
}

/// An index of `version` issued at `issued`, listing the world's images of `releases`.
pub fn draft(
    t: &TestWorld,
    version: u64,
    issued: u64,
    expires: u64,
    releases: &[&str],
) -> IndexDraft {
    let mut d = IndexDraft::new(version, issued, expires);
    for r in releases {
        d.add_release(release(t, r)).unwrap();
    }
    d
}

/// An index issued now, valid for 30 days.
pub fn fresh(t: &TestWorld, version: u64, releases: &[&str]) -> IndexDraft {
    let now = unix_now();
    draft(t, version, now, now + 30 * DAY, releases)
}

/// Rewrite the config: `edit` gets the text.
pub fn reconfigure(t: &TestWorld, edit: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(&t.cfg).unwrap();
    std::fs::write(&t.cfg, edit(text)).unwrap();
}

/// Trust a root (index keys k-of-n, root keys) instead of the fixed vendor key.
pub fn use_root(t: &TestWorld, index: &[&SecretKey], k: usize, root: &[&SecretKey], rk: usize) {
    let text = root_toml(
        1,
        &index.iter().map(|x| x.public()).collect::<Vec<_>>(),
        k,
        &root.iter().map(|x| x.public()).collect::<Vec<_>>(),
        rk,
    );
    let p = t.world.root.join("root.toml");
    std::fs::write(&p, text).unwrap();
    reconfigure(t, |c| {
        c.lines()
            .map(|l| {
                if l.starts_with("trusted_key_files") {
                    format!("root = \"{}\"", p.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
}

/// Publish `text` as the next root (root/2.root.toml), signed by `signers`.
pub fn publish_root(t: &TestWorld, text: &str, signers: &[&SecretKey]) {
    std::fs::create_dir_all(t.world.www.join("root")).unwrap();
    std::fs::write(t.world.www.join("root/2.root.toml"), text).unwrap();
    let sigs: String = signers
        .iter()
        .map(|k| sign_bytes(k, text.as_bytes(), "root"))
        .collect();
    std::fs::write(t.world.www.join("root/2.root.toml.sig"), sigs).unwrap();
}

/// Root `version` with one key per role (and a halt role if `halt` is given).
pub fn root_of(
    version: u64,
    index: &SecretKey,
    root: &SecretKey,
    halt: Option<&SecretKey>,
) -> String {
    NewRoot {
        version,
        index: &[index.public()],
        index_threshold: 1,
        root: &[root.public()],
        root_threshold: 1,
        time_floor: None,
        halt: &halt.map(|h| h.public()).into_iter().collect::<Vec<_>>(),
        halt_threshold: 1,
    }
    .to_toml()
}

/// Trust a root whose index key is the world's, with root key `root` and halt key `halt`.
pub fn use_root_with_halt(t: &TestWorld, root: &SecretKey, halt: &SecretKey) {
    let text = root_of(1, &t.world.key, root, Some(halt));
    let p = t.world.root.join("root.toml");
    std::fs::write(&p, text).unwrap();
    reconfigure(t, |c| {
        c.lines()
            .map(|l| match l.starts_with("trusted_key_files") {
                true => format!("root = \"{}\"", p.display()),
                false => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
}

/// Publish `text` as halt.toml, signed by `by`.
pub fn publish_halt(t: &TestWorld, text: &str, by: &SecretKey) {
    std::fs::write(t.world.www.join("halt.toml"), text).unwrap();
    let sig = sign_bytes(by, text.as_bytes(), "halt.pub");
    std::fs::write(t.world.www.join("halt.toml.sig"), sig).unwrap();
}
