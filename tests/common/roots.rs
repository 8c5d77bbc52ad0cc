//! Trust roots in tests: trusting one instead of the vendor key, publishing a rotation, and
//! rewriting the config.

use super::TestWorld;
use fwguard::index::build::sign_bytes;
use fwguard::index::root::root_toml;
use fwguard::index::sign::SecretKey;

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
