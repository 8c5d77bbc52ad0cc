//! The trust root's halt-only role: `halt.toml` next to the index, signed by a halt key (which
//! a vendor's fleet service holds online). It stops a release's rollout on devices that do
//! not run it yet; it cannot publish, un-pull or change a release; an older or expired halt
//! is refused, and the next root can revoke the key.

use super::common;

use common::installs;

use common::trust::{
    fresh, keys, publish, publish_halt, publish_root, root_of, use_root_with_halt, DAY,
};
use common::TestWorld;
use fwguard::agent::{Action, UpdateMode};
use fwguard::error::EXIT_VERIFICATION;
use fwguard::index::halt::HaltDraft;
use fwguard::index::select::Choice;
use fwguard::index::sign::SecretKey;
use fwguard::time::unix_now;

/// The next halt file of `d`, valid for a day.
fn next(d: &mut HaltDraft) -> String {
    let now = unix_now();
    d.next_toml(now, now + DAY)
}

/// An owner's `fwguard update`: nothing to install, for a reason saying `words`; nothing
/// written to the slots or the env.
async fn held_back(t: &TestWorld, words: &str) {
    let before = t.snapshot();
    match t.agent().update(UpdateMode::Install).await.unwrap() {
        Action::UpToDate(why) => assert!(why.contains(words), "{why}"),
        other => panic!("expected nothing installed, got {other:?}"),
    }
    assert_eq!(t.snapshot(), before, "slots or env written");
}

#[tokio::test]
async fn a_halted_release_is_not_installed_until_resumed_and_an_older_or_expired_halt_is_refused() {
    let t = common::world("off").await;
    let (root, halt) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    use_root_with_halt(&t, &root, &halt);
    publish(&t, &fresh(&t, 1, &["1.0", "1.1"]), &[&t.world.key]);
    let mut d = HaltDraft::default();
    let v1 = next(&mut d); // halts nothing
    d.halt(
        "1.1".parse().unwrap(),
        vec![],
        "wave 1: 3 of 10 rolled back".into(),
    );
    let v2 = next(&mut d);
    publish_halt(&t, &v1, &halt);
    t.agent().check().await.unwrap();
    publish_halt(&t, &v2, &halt);
    let r = t.agent().check().await.unwrap();
    match &r.choice {
        Choice::UpToDate { reason } => assert!(
            reason.contains("1.1 is not offered to this device: the vendor halted it (wave 1: 3 of 10 rolled back)"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    let st = t.state();
    assert_eq!(st.halts().map(|h| h.version), Some(2));
    let halts: Vec<_> = st.history.iter().filter(|h| h.event == "halt").collect();
    assert_eq!(halts.len(), 2, "{halts:?}");
    assert!(
        halts[1].detail.contains("halts 1.1 (wave 1"),
        "{}",
        halts[1].detail
    );
    let status = t.agent().status().unwrap();
    assert_eq!(status.halted.len(), 1);
    assert!(
        status
            .to_string()
            .contains("halted:       1.1 by the vendor: wave 1"),
        "{status}"
    );
    // Nothing new: a check writes nothing.
    let state_file = t.settings().state_dir.join("state.json");
    let bytes = std::fs::read(&state_file).unwrap();
    held_back(&t, "the vendor halted it").await;
    assert_eq!(std::fs::read(&state_file).unwrap(), bytes);

    // Version 1 again (it lifted nothing, but it is older): refused, the halt holds.
    publish_halt(&t, &v1, &halt);
    held_back(&t, "the vendor halted it").await;
    // A lifting version 3 that expired: refused, the halt holds.
    let mut lifted = d.clone();
    lifted.resume(&"1.1".parse().unwrap());
    let now = unix_now();
    publish_halt(
        &t,
        &lifted.clone().next_toml(now - 2 * DAY, now - DAY),
        &halt,
    );
    held_back(&t, "the vendor halted it").await;
    // Unsigned by a halt key (the index key signs it): refused, the halt holds.
    let v3 = lifted.next_toml(now, now + DAY);
    publish_halt(&t, &v3, &t.world.key);
    held_back(&t, "the vendor halted it").await;
    assert_eq!(t.state().halts().map(|h| h.version), Some(2));
    // Resumed by the halt key: installed.
    publish_halt(&t, &v3, &halt);
    installs(&t, "1.1").await;
    assert!(t.agent().status().unwrap().halted.is_empty());
}

#[tokio::test]
async fn a_halt_key_can_halt_and_nothing_else() {
    let t = common::world("off").await;
    let (root, halt) = (
        SecretKey::generate().unwrap(),
        SecretKey::generate().unwrap(),
    );
    use_root_with_halt(&t, &root, &halt);
    // It cannot publish: an index (a new release) signed by the halt key is refused.
    publish(&t, &fresh(&t, 1, &["1.0", "1.1"]), &[&halt]);
    let before = t.snapshot();
    let e = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert_eq!(e.exit_code(), EXIT_VERIFICATION, "{e}");
    assert!(
        e.to_string().contains("not signed by enough trusted keys"),
        "{e}"
    );
    assert_eq!(t.snapshot(), before);
    // It cannot make itself an index key: a root it signs is refused.
    let evil = root_of(2, &halt, &halt, None);
    publish_root(&t, &evil, &[&halt]);
    let e = t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert_eq!(e.exit_code(), EXIT_VERIFICATION, "{e}");
    assert!(
        e.to_string().contains("root version 2 (by root version 1)"),
        "{e}"
    );
    std::fs::remove_file(t.world.www.join("root/2.root.toml")).unwrap();
    // It cannot un-pull, add or change a release: a halt file saying so is refused, and
    // the index alone decides (1.1 pulled there stays pulled; 9.9 does not exist).
    let mut index = fresh(&t, 2, &["1.0", "1.1"]);
    index
        .set_pulled(
            &"1.1".parse().unwrap(),
            None,
            Some("bricks the radio".into()),
        )
        .unwrap();
    publish(&t, &index, &[&t.world.key]);
    let now = unix_now();
    for body in [
        "unpull = [\"1.1\"]\n",
        "[[release]]\nversion = \"9.9\"\nurls = [\"images/1.1.img\"]\n",
        "[[halt]]\nrelease = \"1.0\"\nreason = \"r\"\nsha256 = \"00\"\n",
    ] {
        let text = format!(
            "format = 1\nversion = 1\nissued_at = \"{}\"\nexpires = \"{}\"\n{body}",
            fwguard::time::format_time(now - 60),
            fwguard::time::format_time(now + DAY)
        );
        publish_halt(&t, &text, &halt);
        held_back(&t, "1.1 was pulled by the vendor: bricks the radio").await;
        assert_eq!(t.state().halt, None, "{body}");
    }
}

#[tokio::test]
async fn the_next_root_revokes_the_halt_key() {
    let t = common::world("off").await;
    let k = keys(2);
    let (root, halt) = (&k[0], &k[1]);
    use_root_with_halt(&t, root, halt);
    publish(&t, &fresh(&t, 1, &["1.0", "1.1"]), &[&t.world.key]);
    let mut d = HaltDraft::default();
    d.halt("1.1".parse().unwrap(), vec![], "halted".into());
    publish_halt(&t, &next(&mut d), halt);
    held_back(&t, "the vendor halted it").await;
    // The halt key leaked: the next root has none. The halt it signed no longer holds,
    // though halt.toml is still served.
    let next_root = root_of(2, &t.world.key, root, None);
    publish_root(&t, &next_root, &[root]);
    publish(&t, &fresh(&t, 2, &["1.0", "1.1"]), &[&t.world.key]);
    installs(&t, "1.1").await;
    assert_eq!(t.state().halt, None);
}
