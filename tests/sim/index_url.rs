//! An index URL with a query string (a CDN's access token): the signature, the rotated roots
//! and the images published beside the index are fetched by their own paths, with the query.

use super::common;

use common::trust::{publish_root, reconfigure, use_root};
use common::world;
use fwguard::agent::{Action, UpdateMode};
use fwguard::index::root::root_toml;
use fwguard::index::select::Choice;
use fwguard::index::sign::SecretKey;

#[tokio::test]
async fn an_index_url_with_a_token_is_checked_rotated_and_installed_with_the_token_on_every_file() {
    let mut t = world("off").await;
    let root_key = SecretKey::generate().unwrap();
    use_root(&t, &[&t.world.key], 1, &[&root_key], 1);
    let next = root_toml(2, &[t.world.key.public()], 1, &[root_key.public()], 1);
    publish_root(&t, &next, &[&root_key]);
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let url = t.world.index_url();
    reconfigure(&t, |c| c.replace(&url, &format!("{url}?token=abc")));

    let report = t.agent().check().await.unwrap();
    assert!(
        matches!(&report.choice, Choice::Install(r) if r.version.as_str() == "1.1"),
        "{report:?}"
    );
    assert_eq!(t.agent().status().unwrap().root_version, 2);
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::Reboot(_)), "{a:?}");
    assert_eq!(t.power_cycle().await.version.as_str(), "1.1");

    let server = t.world.server.as_ref().unwrap();
    for path in [
        "/index.toml",
        "/index.toml.sig",
        "/root/2.root.toml",
        "/root/2.root.toml.sig",
        "/root/3.root.toml",
        "/images/fw-1.1.img",
    ] {
        let q = server.queries(path);
        assert!(
            !q.is_empty() && q.iter().all(|q| q.as_deref() == Some("token=abc")),
            "{path} was asked for with queries {q:?}"
        );
    }
}
