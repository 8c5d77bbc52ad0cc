//! Downloads that survive interruption: an image transfer cut off at several offsets keeps a
//! checkpoint (bytes written and synced into the inactive slot, plus the held-back head), and
//! the next install asks the server only for the rest (HTTP Range), re-hashing the prefix
//! from the slot; the result verifies, boots and commits.

use super::common;

use common::{history_has, world};
use fwguard::agent::{Action, UpdateMode};
use fwguard::error::Error;
use fwguard::sim::httpd::Fault;
use fwguard::state::UpdateState;
use fwguard::Slot;

const IMAGE: &str = "/images/fw-1.1.img";

#[tokio::test]
async fn a_cut_download_resumes_where_it_stopped() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let size = std::fs::metadata(t.world.www.join("images/fw-1.1.img"))
        .unwrap()
        .len();
    let mut resumed_at = Vec::new();
    for cut in [size / 5, size / 2, size * 4 / 5] {
        let server = t.world.server.as_ref().unwrap();
        server.set_fault(IMAGE, Some(Fault::CutAt { offset: cut }));
        let e = t.agent().update(UpdateMode::Install).await.unwrap_err();
        assert!(matches!(e, Error::Fetch(_)), "{e}");
        let st = t.state();
        assert_eq!(st.update, UpdateState::Idle);
        let p = st.partial.expect("a checkpoint is kept");
        assert_eq!((p.target, p.version.as_str()), (Slot::B, "1.1"));
        // A transfer that breaks off keeps what it got: synced, and checkpointed at the cut.
        assert!(
            p.written <= cut && p.written + 65536 > cut,
            "{p:?} cut {cut}"
        );
        assert!(resumed_at.last().is_none_or(|&w| p.written > w));
        resumed_at.push(p.written);
        assert!(history_has(&t.state(), "install-failed", "1.1"));
        // The slot never looks like an image while incomplete.
        let slot = std::fs::read(t.world.router.slot_path(Slot::B)).unwrap();
        assert!(slot[..4096].iter().all(|&b| b == 0));
    }
    t.world.server.as_ref().unwrap().set_fault(IMAGE, None);
    let action = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(action, Action::Reboot(_)), "{action:?}");
    // The first request asked for everything; each one after for the rest from its checkpoint.
    let ranges = t.world.server.as_ref().unwrap().ranges(IMAGE);
    let mut want = vec![None];
    want.extend(resumed_at.iter().map(|w| Some(format!("bytes={w}-"))));
    assert_eq!(ranges, want);
    let st = t.state();
    assert!(st.partial.is_none());
    let image = std::fs::read(t.world.www.join("images/fw-1.1.img")).unwrap();
    let slot = std::fs::read(t.world.router.slot_path(Slot::B)).unwrap();
    assert_eq!(&slot[..image.len()], &image[..]);
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::B, "1.1"));
    t.settle().await;
    assert!(history_has(&t.state(), "committed", "1.1"));
}

#[tokio::test]
async fn a_checkpoint_for_other_bytes_is_not_used() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let server = t.world.server.as_ref().unwrap();
    server.set_fault(IMAGE, Some(Fault::CutAt { offset: 600_000 }));
    t.agent().update(UpdateMode::Install).await.unwrap_err();
    assert!(t.state().partial.is_some());
    // The vendor replaces 1.1 with other bytes (a new signed index): the checkpoint names the
    // old hash, so the install starts over from byte 0 and the new image verifies.
    t.world.server.as_ref().unwrap().set_fault(IMAGE, None);
    t.world.add_image("1.1", common::WAN_DOWN).unwrap();
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let action = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(action, Action::Reboot(_)), "{action:?}");
    let ranges = t.world.server.as_ref().unwrap().ranges(IMAGE);
    assert_eq!(ranges, vec![None, None]);
}

/// Installs `payload_len` bytes of 1.1 on a fresh world and counts the state file's writes
/// (each save renames a new `state.json` into the state directory).
async fn state_writes_of_an_install(payload_len: usize) -> usize {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let opts = fwguard::sim::world::WorldOptions {
        payload_len,
        slot_size: 16 << 20,
        ..Default::default()
    };
    let mut t = common::world_with("off", opts).await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let dir = t.settings().state_dir;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .unwrap();
    }
    let watch = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    // The temporary file's creation is watched too: it separates the renames, which the
    // kernel would merge into one event while they queue unread.
    watch
        .add_watch(&dir, AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE)
        .unwrap();
    let action = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(action, Action::Reboot(_)), "{action:?}");
    let mut writes = 0;
    loop {
        match watch.read_events() {
            Ok(events) => {
                writes += events
                    .iter()
                    .filter(|e| e.name.as_deref() == Some(std::ffi::OsStr::new("state.json")))
                    .count()
            }
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(e) => panic!("inotify: {e}"),
        }
    }
    writes
}

#[tokio::test]
async fn a_download_checkpoints_at_most_twice_whatever_its_size() {
    // An image under 64 KiB is never checkpointed: its writes are the state changes alone.
    let changes = state_writes_of_an_install(40_000).await;
    assert!(changes > 0);
    for len in [1 << 20, 12 << 20] {
        let writes = state_writes_of_an_install(len).await;
        assert_eq!(writes, changes + 2, "an install of {len} bytes");
    }
}
