//! Every refusal leaves the router as it was: a clear error naming the problem, both slots
//! and the env byte-identical, the update state idle.

use super::common;

use common::{world, TestWorld};
use fwguard::agent::{Action, UpdateMode};
use fwguard::error::{EXIT_NETWORK, EXIT_VERIFICATION};
use fwguard::index::build::{IndexDraft, NewRelease};
use fwguard::index::sign::SecretKey;
use fwguard::sim::world::BUILD_TIME;
use fwguard::state::UpdateState;
use fwguard::time::unix_now;

fn release(t: &TestWorld, version: &str, boards: &[&str]) -> NewRelease {
    NewRelease::from_image(
        version.parse().unwrap(),
        boards.iter().map(|b| b.to_string()).collect(),
        vec!["stable".into()],
        vec![format!("images/fw-{version}.img")],
        &t.world.www.join(format!("images/fw-{version}.img")),
    )
    .unwrap()
}

/// Publish an index by hand, signed by `key`.
fn publish_raw(
    t: &TestWorld,
    version: u64,
    issued: u64,
    expires: u64,
    rels: Vec<NewRelease>,
    key: &SecretKey,
) -> Vec<u8> {
    let mut d = IndexDraft::new(version, issued, expires);
    for r in rels {
        d.add_release(r).unwrap();
    }
    let bytes = d.to_toml().into_bytes();
    t.world.write_index(&bytes, key).unwrap();
    bytes
}

/// Run `update`, expect it to fail with `code` and a message containing `words`, and
/// check nothing changed on the router.
async fn refused(t: &TestWorld, code: i32, words: &str) -> String {
    let before = t.snapshot();
    let err = t.agent().update(UpdateMode::Install).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), code, "{msg}");
    assert!(msg.contains(words), "{msg:?} does not mention {words:?}");
    assert_eq!(t.snapshot(), before, "the router changed: {msg}");
    assert_eq!(t.state().update, UpdateState::Idle);
    assert!(!t.world.router.reboot_requested());
    msg
}

#[tokio::test]
async fn bad_signature() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    // Tamper with the index after it was signed: move 1.1 to another channel.
    let p = t.world.www.join("index.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("channels = [\"stable\"]", "channels = [\"beta\"]");
    std::fs::write(&p, text).unwrap();
    refused(&t, EXIT_VERIFICATION, "do not match the signed bytes").await;
}

#[tokio::test]
async fn unknown_key() {
    let t = world("off").await;
    let stranger = SecretKey::generate().unwrap();
    let now = unix_now();
    publish_raw(
        &t,
        1,
        now,
        now + 3600,
        vec![release(&t, "1.1", &["sim"])],
        &stranger,
    );
    let msg = refused(&t, EXIT_VERIFICATION, "unknown key").await;
    assert!(msg.contains(&stranger.id.to_string()), "{msg}");
}

#[tokio::test]
async fn missing_signature_file() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    std::fs::remove_file(t.world.www.join("index.toml.sig")).unwrap();
    refused(&t, EXIT_NETWORK, "404").await;
}

#[tokio::test]
async fn wrong_hash_never_becomes_bootable() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    // Same size, other bytes: the 1.2 image under 1.1's name.
    let img11 = t.world.www.join("images/fw-1.1.img");
    let mut other = std::fs::read(t.world.www.join("images/fw-1.2.img")).unwrap();
    other.truncate(std::fs::metadata(&img11).unwrap().len() as usize);
    std::fs::write(&img11, other).unwrap();
    let before = t.snapshot();
    let err = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert_eq!(err.exit_code(), EXIT_VERIFICATION);
    assert!(err.to_string().contains("sha256"), "{err}");
    let after = t.snapshot();
    // The running slot and the env are untouched; the inactive slot never got a header.
    assert_eq!((&after[0], &after[2]), (&before[0], &before[2]));
    assert!(after[1][..fwguard::flash::HEAD_LEN].iter().all(|&b| b == 0));
    let st = t.state();
    assert_eq!(st.update, UpdateState::Idle);
    assert!(st.slot_b.is_none());
    assert!(st.history.iter().any(|h| h.event == "install-failed"));
}

#[tokio::test]
async fn oversize_download_is_cut_off() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let img = t.world.www.join("images/fw-1.1.img");
    let mut bytes = std::fs::read(&img).unwrap();
    bytes.extend_from_slice(&[0x55; 4096]);
    std::fs::write(&img, bytes).unwrap();
    refused(&t, EXIT_VERIFICATION, "more than").await;
}

#[tokio::test]
async fn truncated_download_is_refused() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let img = t.world.www.join("images/fw-1.1.img");
    let mut bytes = std::fs::read(&img).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&img, bytes).unwrap();
    let err = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert_eq!(err.exit_code(), EXIT_VERIFICATION);
    assert!(err.to_string().contains("the index states"), "{err}");
    assert_eq!(t.state().update, UpdateState::Idle);
}

#[tokio::test]
async fn older_index_version_is_refused() {
    let mut t = world("off").await;
    let v1 = t.world.publish(&["1.0"]).unwrap();
    let old = std::fs::read(t.world.www.join("index.toml")).unwrap();
    let old_sig = std::fs::read(t.world.www.join("index.toml.sig")).unwrap();
    t.world.publish(&["1.0"]).unwrap();
    assert_eq!(v1, 1);
    // The device accepts version 2 ...
    assert!(matches!(
        t.agent().update(UpdateMode::Install).await.unwrap(),
        Action::UpToDate(_)
    ));
    assert_eq!(t.state().last_index.unwrap().version, 2);
    // ... and then a mirror serves the old, validly signed version 1.
    std::fs::write(t.world.www.join("index.toml"), old).unwrap();
    std::fs::write(t.world.www.join("index.toml.sig"), old_sig).unwrap();
    refused(&t, EXIT_VERIFICATION, "older than version 2").await;
}

#[tokio::test]
async fn same_index_version_with_other_bytes_is_refused() {
    let t = world("off").await;
    let now = unix_now().max(BUILD_TIME);
    publish_raw(
        &t,
        5,
        now,
        now + 3600,
        vec![release(&t, "1.0", &["sim"])],
        &t.world.key,
    );
    assert!(matches!(
        t.agent().update(UpdateMode::Install).await.unwrap(),
        Action::UpToDate(_)
    ));
    publish_raw(
        &t,
        5,
        now,
        now + 3600,
        vec![release(&t, "1.0", &["sim"]), release(&t, "1.1", &["sim"])],
        &t.world.key,
    );
    refused(&t, EXIT_VERIFICATION, "different contents").await;
}

#[tokio::test]
async fn expired_index_is_refused() {
    let t = world("off").await;
    let now = unix_now();
    publish_raw(
        &t,
        1,
        now - 7200,
        now - 3600,
        vec![release(&t, "1.1", &["sim"])],
        &t.world.key,
    );
    refused(&t, EXIT_VERIFICATION, "expired").await;
}

#[tokio::test]
async fn release_for_another_board_is_not_installed() {
    let t = world("off").await;
    let now = unix_now();
    publish_raw(
        &t,
        1,
        now,
        now + 3600,
        vec![release(&t, "1.1", &["wrt32x"])],
        &t.world.key,
    );
    let before = t.snapshot();
    let action = t.agent().update(UpdateMode::Install).await.unwrap();
    assert_eq!(
        action,
        Action::UpToDate(
            "no release for board sim on channel stable (the running firmware is unidentified)"
                .into()
        )
    );
    assert_eq!(t.snapshot(), before);
}
