//! Where an image comes from: a mirror that keeps streaming the wrong image is given up
//! after a few tries (so it cannot keep the inactive slot invalid forever), and an image
//! staged already is not written again when only its release's metadata changed.

use super::common;

use common::{release, world};
use fwguard::agent::{Action, By, UpdateMode};
use fwguard::index::build::IndexDraft;
use fwguard::sim::world::BUILD_TIME;
use fwguard::time::unix_now;

fn publish(t: &common::TestWorld, version: u64, rels: Vec<fwguard::index::build::NewRelease>) {
    let now = unix_now().max(BUILD_TIME);
    let mut d = IndexDraft::new(version, now, now + 86400);
    for r in rels {
        d.add_release(r).unwrap();
    }
    t.world
        .write_index(d.to_toml().as_bytes(), &t.world.key)
        .unwrap();
}

/// A copy of the image of `version` with one byte changed, at `images/bad/`.
fn bad_copy(t: &common::TestWorld, version: &str) -> String {
    let good = t.world.www.join(format!("images/fw-{version}.img"));
    let mut bytes = std::fs::read(good).unwrap();
    bytes[100_000] ^= 0x55;
    std::fs::create_dir_all(t.world.www.join("images/bad")).unwrap();
    std::fs::write(
        t.world.www.join(format!("images/bad/fw-{version}.img")),
        bytes,
    )
    .unwrap();
    format!("images/bad/fw-{version}.img")
}

#[tokio::test]
async fn a_mirror_streaming_the_wrong_image_is_given_up_after_three_tries() {
    let mut t = world("off").await;
    t.world
        .add_image("1.3", fwguard::sim::Behaviour::GOOD)
        .unwrap();
    let bad = bad_copy(&t, "1.1");
    let mut r = release(&t, "1.1");
    r.urls = vec![bad.clone(), "images/fw-1.1.img".into()];
    publish(&t, 1, vec![r]);
    let stage = || async {
        t.agent()
            .update_by(UpdateMode::StageOnly, By::Owner { force: false })
            .await
    };
    for _ in 0..3 {
        let e = stage().await.unwrap_err();
        assert!(e.to_string().contains("sha256"), "{e}");
    }
    // The bad mirror is skipped now: the good one is used.
    assert_eq!(
        stage().await.unwrap(),
        Action::Staged("1.1".parse().unwrap())
    );
    let server = t.world.server.as_ref().unwrap();
    assert_eq!(server.ranges(&format!("/{bad}")).len(), 3);
    assert_eq!(server.ranges("/images/fw-1.1.img").len(), 1);
    // A release whose only source streams wrong images: after three tries it is refused
    // before the inactive slot is invalidated again.
    let bad = bad_copy(&t, "1.3");
    let mut r = release(&t, "1.3");
    r.urls = vec![bad.clone()];
    publish(&t, 2, vec![release(&t, "1.1"), r]);
    for _ in 0..3 {
        stage().await.unwrap_err();
    }
    let before = t.snapshot();
    let e = stage().await.unwrap_err();
    assert!(e.to_string().contains("not trying them again"), "{e}");
    assert_eq!(t.snapshot(), before, "the slot was written again");
    let server = t.world.server.as_ref().unwrap();
    assert_eq!(server.ranges(&format!("/{bad}")).len(), 3);
    // Kept in the state (a power cut does not reset the count); 1.1's were forgotten once
    // it was written right.
    let bad_sources = t.state().bad_sources;
    assert_eq!(bad_sources.len(), 1, "{bad_sources:?}");
    assert_eq!(bad_sources[0].failures, 3);
}

#[tokio::test]
async fn a_staged_image_is_not_written_again_when_only_its_metadata_changed() {
    let t = world("off").await;
    let mut world = t;
    world.world.publish(&["1.1"]).unwrap();
    let t = world;
    let a = t.agent().update(UpdateMode::StageOnly).await.unwrap();
    assert_eq!(a, Action::Staged("1.1".parse().unwrap()));
    // The vendor edits the release's channels (a metadata change; same image).
    let mut r = release(&t, "1.1");
    r.channels = vec!["stable".into(), "beta".into()];
    publish(&t, 2, vec![r]);
    let server = t.world.server.as_ref().unwrap();
    assert_eq!(server.ranges("/images/fw-1.1.img").len(), 1);
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::Reboot(_)), "{a:?}");
    assert_eq!(
        server.ranges("/images/fw-1.1.img").len(),
        1,
        "the staged image was downloaded again"
    );
}
