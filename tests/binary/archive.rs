//! The archive of known-good images (`[archive] dir`, `fwguard archive list` / `install`) on
//! the sim router, through the real binary: committed images are copied out of their slots
//! with the signed index they came from; after the vendor pulled one, it is reinstalled from
//! the archive with no download, verified against the kept index; whatever the archive cannot
//! vouch for is refused with nothing changed.

use super::common;

use common::{fwguard, history_has, release, run_daemon_for, run_daemon_until, world, TestWorld};
use fwguard::index::build::IndexDraft;
use fwguard::sim::Behaviour;
use fwguard::time::unix_now;
use fwguard::Slot;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A world (policy off) whose config keeps `keep` images in `<root>/usb`.
pub(super) async fn archived_world(keep: usize) -> (TestWorld, PathBuf) {
    let t = world("off").await;
    let usb = t.world.root.join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    add_archive(&t, &usb, keep);
    (t, usb)
}

fn add_archive(t: &TestWorld, dir: &Path, keep: usize) {
    let mut text = std::fs::read_to_string(&t.cfg).unwrap();
    text += &format!("\n[archive]\ndir = \"{}\"\nkeep = {keep}\n", dir.display());
    std::fs::write(&t.cfg, text).unwrap();
}

/// Publish `versions`, install the newest, boot it, let the daemon commit it and then run
/// a little longer (its archive step runs between rounds).
pub(super) async fn commit_newest(t: &mut TestWorld, versions: &[&str]) {
    t.world.publish(versions).unwrap();
    let (r, _) = t.update_and_judge().await;
    assert_eq!(r.version.as_str(), *versions.last().unwrap());
    assert!(history_has(
        &t.state(),
        "committed",
        versions.last().unwrap()
    ));
    run_daemon_for(t.agent(), 400).await;
}

pub(super) fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `fwguard archive list --json`: (version, verified) for each entry.
pub(super) async fn listed(t: &TestWorld) -> Vec<(String, bool)> {
    let o = fwguard(&t.cfg, &["archive", "list", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_str().unwrap().to_string(),
                e["problem"].is_null(),
            )
        })
        .collect()
}

fn entries(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(v, ok)| (v.to_string(), *ok)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_the_vendor_pulled_comes_back_from_the_archive() {
    let (mut t, usb) = archived_world(3).await;
    t.world.add_image("1.3", Behaviour::GOOD).unwrap();
    t.world.add_image("1.4", Behaviour::GOOD).unwrap();
    commit_newest(&mut t, &["1.0", "1.1"]).await;
    // The firmware the router came with (its signed entry noted when the index was checked)
    // and 1.1, each with the exact index it was installed from.
    assert_eq!(listed(&t).await, entries(&[("1.0", true), ("1.1", true)]));
    let kept = std::fs::read(usb.join("1.1/index.toml")).unwrap();
    assert_eq!(kept, std::fs::read(t.world.www.join("index.toml")).unwrap());
    assert_eq!(
        std::fs::read(usb.join("1.1/image.bin")).unwrap(),
        std::fs::read(t.world.www.join("images/fw-1.1.img")).unwrap()
    );
    let o = fwguard(&t.cfg, &["archive", "list"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let size = std::fs::metadata(usb.join("1.1/image.bin")).unwrap().len();
    assert!(
        out.contains(&format!(
            "1.1        verified  {size} bytes  signed index version 1 of "
        )),
        "{out}"
    );
    assert!(out.lines().nth(1).unwrap().ends_with("(running)"), "{out}");

    // The vendor pulls 1.1 from its site and ships 1.3, then 1.4: neither slot holds 1.1
    // any more, and at most three images are kept (the oldest, 1.0, goes).
    std::fs::remove_file(t.world.www.join("images/fw-1.1.img")).unwrap();
    commit_newest(&mut t, &["1.3"]).await;
    commit_newest(&mut t, &["1.3", "1.4"]).await;
    assert_eq!(
        listed(&t).await,
        entries(&[("1.1", true), ("1.3", true), ("1.4", true)])
    );
    assert!(!usb.join(".incoming").read_dir().unwrap().any(|_| true));
    let server = t.world.server.as_ref().unwrap();
    let fetched = server.ranges("/images/fw-1.1.img").len();

    let o = fwguard(&t.cfg, &["archive", "install", "1.1"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "rebooting: trial boot of 1.1 in slot A\n"
    );
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "1.1"));
    t.settle().await;
    let st = t.state();
    assert!(history_has(&st, "committed", "1.1"));
    assert!(history_has(&st, "archive-install", "1.1"));
    assert_eq!(st.pin.as_ref().map(|v| v.as_str()), Some("1.1"));
    // Nothing was downloaded; the pin keeps the channel's 1.4 away.
    let server = t.world.server.as_ref().unwrap();
    assert_eq!(server.ranges("/images/fw-1.1.img").len(), fetched);
    let o = fwguard(&t.cfg, &["check"]).await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("running the pinned version 1.1"),
        "{}",
        text(&o)
    );
    // Running from the archive again: installing it once more has nothing to do.
    let o = fwguard(&t.cfg, &["archive", "install", "1.1"]).await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1.1 is running already"),
        "{}",
        text(&o)
    );
}

/// Flip one byte of `path` (in the middle), returning the original bytes.
fn flip(path: &Path) -> Vec<u8> {
    let orig = std::fs::read(path).unwrap();
    let mut bad = orig.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    std::fs::write(path, bad).unwrap();
    orig
}

/// Run `fwguard archive install VERSION` expecting a refusal with `code` whose message
/// names `what`, and nothing changed on the router or in the state.
async fn refused(t: &TestWorld, args: &[&str], code: i32, what: &str) {
    let before = (t.snapshot(), std::fs::read(state_file(t)).unwrap());
    let o = fwguard(&t.cfg, args).await;
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(what),
        "{}",
        text(&o)
    );
    let after = (t.snapshot(), std::fs::read(state_file(t)).unwrap());
    assert!(before == after, "the router or the state changed");
    assert!(!t.world.router.reboot_requested());
}

fn state_file(t: &TestWorld) -> PathBuf {
    t.settings().state_dir.join("state.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_archive_cannot_vouch_for_is_refused_and_changes_nothing() {
    let (mut t, usb) = archived_world(2).await;
    commit_newest(&mut t, &["1.0", "1.1"]).await;
    let install = ["archive", "install", "1.0"];

    // An archived image changed on the USB stick: listed as failed, refused.
    let image = usb.join("1.0/image.bin");
    let orig = flip(&image);
    let o = fwguard(&t.cfg, &["archive", "list"]).await;
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("1.0        FAILED") && out.contains("sha256"),
        "{out}"
    );
    assert!(out.contains("1.1        verified"), "{out}");
    refused(&t, &install, 6, "1.0/image.bin").await;
    // On a device whose state is gone (nothing recorded yet), the refusal records nothing
    // either: not even the running firmware as known-good.
    let kept = std::fs::read(state_file(&t)).unwrap();
    std::fs::remove_file(state_file(&t)).unwrap();
    let o = fwguard(&t.cfg, &install).await;
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        !state_file(&t).exists(),
        "a refused archive install wrote the state"
    );
    std::fs::write(state_file(&t), kept).unwrap();
    // Grown to 1 TiB (sparse): refused by its size, without hashing a terabyte.
    std::fs::File::options()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let o = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        fwguard(&t.cfg, &["archive", "list"]),
    )
    .await
    .expect("an oversized image is refused without reading it");
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("1099511627776 bytes; the signed index kept with it says"),
        "{}",
        text(&o)
    );
    refused(&t, &install, 6, "1099511627776 bytes").await;
    std::fs::write(&image, orig).unwrap();

    // Its kept index edited: the signature no longer matches.
    let index = usb.join("1.0/index.toml");
    let orig = std::fs::read(&index).unwrap();
    let mut edited = orig.clone();
    edited.extend_from_slice(b"# edited\n");
    std::fs::write(&index, edited).unwrap();
    refused(&t, &install, 6, "not signed by enough trusted keys").await;
    // Re-signed by a key the device does not trust.
    let stranger = fwguard::index::sign::SecretKey::generate().unwrap();
    let sig = usb.join("1.0/index.toml.sig");
    let orig_sig = std::fs::read(&sig).unwrap();
    std::fs::write(
        &sig,
        fwguard::index::build::sign_bytes(&stranger, &orig, "stranger.pub"),
    )
    .unwrap();
    std::fs::write(&index, &orig).unwrap();
    refused(&t, &install, 6, "unknown key").await;
    std::fs::write(&sig, orig_sig).unwrap();

    // Not in the archive.
    refused(
        &t,
        &["archive", "install", "9.9"],
        5,
        "no image of version 9.9 is kept",
    )
    .await;

    // Today's security floor is above it: refused unless forced.
    let mut d = IndexDraft::new(50, unix_now(), unix_now() + 86_400);
    d.add_release(release(&t, "1.1")).unwrap();
    d.set_security_floor("sim", Some("1.1".parse().unwrap()));
    t.world
        .write_index(d.to_toml().as_bytes(), &t.world.key)
        .unwrap();
    let o = fwguard(&t.cfg, &["check"]).await;
    assert!(o.status.success(), "{}", text(&o));
    refused(&t, &install, 5, "below the security floor 1.1").await;
    let o = fwguard(&t.cfg, &["archive", "list"]).await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(below the security floor 1.1)"),
        "{}",
        text(&o)
    );

    // All in order again and forced: 1.0 goes back on from the archive.
    let o = fwguard(&t.cfg, &["archive", "install", "1.0", "--force-insecure"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let r = t.power_cycle().await;
    assert_eq!((r.slot, r.version.as_str()), (Slot::A, "1.0"));
    t.settle().await;
    let st = t.state();
    assert!(history_has(&st, "committed", "1.0"));
    assert!(st.pin_insecure);
    assert!(st
        .history
        .iter()
        .any(|h| h.event == "archive-install" && h.detail.contains("BELOW THE SECURITY FLOOR")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_archive_or_its_storage() {
    let mut t = world("off").await;
    // None configured: the commands name the missing key.
    let o = fwguard(&t.cfg, &["archive", "list"]).await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("archive.dir"));

    // Configured on a USB stick that is not mounted: updates go on, nothing is created in
    // its place, and listing it names it.
    let usb = t.world.root.join("usb-not-mounted");
    add_archive(&t, &usb, 2);
    commit_newest(&mut t, &["1.0", "1.1"]).await;
    assert!(!usb.exists());
    let o = fwguard(&t.cfg, &["archive", "list"]).await;
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usb-not-mounted"));

    // A bad archive section is refused naming the key, before anything runs.
    for (section, key) in [
        ("[archive]\ndir = \"/mnt\"\nkeep = 0\n", "archive.keep"),
        ("[archive]\ndir = \"\"\n", "archive.dir"),
        ("[archive]\nkeep = 2\n", "dir"),
    ] {
        let text_before = std::fs::read_to_string(&t.cfg).unwrap();
        let base = text_before.split("\n[archive]").next().unwrap().to_string();
        std::fs::write(&t.cfg, format!("{base}\n{section}")).unwrap();
        let o = fwguard(&t.cfg, &["status"]).await;
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(key),
            "{key}: {}",
            text(&o)
        );
    }
}

/// Every path under `dir` with its modification time and contents.
fn tree(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p.clone());
                out.push((p, m.modified().unwrap(), Vec::new()));
            } else {
                out.push((p.clone(), m.modified().unwrap(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_with_nothing_to_archive_write_nothing() {
    // Keeping one image: the running 1.1. The 1.0 in the other slot would be pruned at once,
    // so it is never copied, round after round.
    let (mut t, usb) = archived_world(1).await;
    commit_newest(&mut t, &["1.0", "1.1"]).await;
    assert_eq!(listed(&t).await, entries(&[("1.1", true)]));
    // The daemon checks the index every round (policy notify) with 1.0 still in slot A.
    t.agent()
        .set_policy(fwguard::config::Policy::Notify)
        .unwrap();
    let before = tree(&usb);
    let fetched = t.index_fetches();
    run_daemon_until(t.agent(), || t.index_fetches() >= fetched + 2).await;
    let after = tree(&usb);
    let changed: Vec<_> = after
        .iter()
        .filter(|e| !before.contains(e))
        .map(|e| &e.0)
        .collect();
    assert!(after == before, "the archive changed: {changed:?}");
    assert_eq!(listed(&t).await, entries(&[("1.1", true)]));
}

/// A long copy into the archive does not starve the daemon's systemd watchdog feeder: it
/// reaches the service manager (a notify socket here) between the daemon's
/// `STATUS=archiving …` and `STATUS=archive copy of … ended`, not only after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_fed_while_an_image_is_archived() {
    let opts = fwguard::sim::world::WorldOptions {
        payload_len: 8 << 20,
        slot_size: 12 << 20,
        ..Default::default()
    };
    let mut t = common::world_with("off", opts).await;
    let usb = t.world.root.join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    add_archive(&t, &usb, 2);
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent()
        .update(fwguard::agent::UpdateMode::Install)
        .await
        .unwrap();
    assert_eq!(t.power_cycle().await.version.as_str(), "1.1");

    // The daemon (WatchdogSec=20ms: fed every 10 ms) commits the trial, then archives the
    // two known-good images.
    let got = common::notifications_until(&t, 20_000, |seen| {
        seen.iter().filter(|m| m.ends_with("ended")).count() == 2
    })
    .await;
    let statuses: Vec<&String> = got.iter().filter(|m| m.starts_with("STATUS=")).collect();
    assert_eq!(
        statuses,
        [
            "STATUS=archiving 1.0 from slot A",
            "STATUS=archive copy of 1.0 ended",
            "STATUS=archiving 1.1 from slot B",
            "STATUS=archive copy of 1.1 ended",
        ]
    );
    for copy in got.split(|m| m.starts_with("STATUS=archiving")).skip(1) {
        let during = copy.iter().take_while(|m| !m.ends_with("ended"));
        let fed = during.filter(|m| *m == "WATCHDOG=1").count();
        assert!(
            fed >= 2,
            "the watchdog was fed {fed} times during a copy: {got:?}"
        );
    }
    assert_eq!(listed(&t).await, entries(&[("1.0", true), ("1.1", true)]));
}
