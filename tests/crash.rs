//! Power cuts at every step. The real `fwguard daemon` is killed with SIGKILL at each
//! failpoint (and once by an outside `kill -9` mid-download); the router is power-cycled and
//! the daemon restarted until it settles. After every power cut the router must boot a good
//! firmware and the state must parse; in the end the update completes or is cleanly
//! abandoned. Needs `--features failpoints`.

mod common;

use common::{world, TestWorld, BIN};
use fwguard::sim::httpd::ServeOptions;
use fwguard::sim::world::WorldOptions;
use fwguard::state::{PersistedState, UpdateState};
use fwguard::Slot;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Killed by SIGKILL (a failpoint or the test's own kill -9).
    Killed,
    /// Exited by itself after asking for a reboot.
    Rebooting,
    /// Reached the expected end state and was stopped.
    Settled,
}

/// Where a scenario must end: the running slot and version, all committed.
struct End {
    slot: Slot,
    version: &'static str,
    denied: Option<&'static str>,
    /// Anything else that must hold outside the state (the archive's contents).
    also: fn(&TestWorld) -> bool,
}

fn settled(st: &PersistedState, booted: Option<Slot>, end: &End) -> bool {
    st.update == UpdateState::Idle
        && booted == Some(end.slot)
        && st.known_good == Some(end.slot)
        && st
            .slot(end.slot)
            .is_some_and(|r| r.version.as_str() == end.version && r.good)
        && end
            .denied
            .is_none_or(|v| st.is_denylisted(&v.parse().unwrap()))
}

/// Run the daemon binary once. `kill_when` lets the test kill -9 it from outside.
async fn round(
    t: &TestWorld,
    failpoint: Option<&str>,
    end: &End,
    kill_when: Option<&dyn Fn(&PersistedState) -> bool>,
) -> (Round, String) {
    let log = t.world.root.join("daemon.log");
    let mut child = tokio::process::Command::new(BIN)
        .args(["--config"])
        .arg(&t.cfg)
        .arg("daemon")
        .env("FWGUARD_FAILPOINT", failpoint.unwrap_or(""))
        .env("FWGUARD_LOG", "fwguard=debug")
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let outcome = loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.unwrap();
                break if status.signal() == Some(9) {
                    Round::Killed
                } else {
                    assert!(status.success(), "daemon failed: {status}\n{}", std::fs::read_to_string(&log).unwrap());
                    assert!(t.world.router.reboot_requested(), "daemon exited without asking for a reboot");
                    Round::Rebooting
                };
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                assert!(Instant::now() < deadline, "daemon did not settle:\n{}", std::fs::read_to_string(&log).unwrap());
                let Ok(st) = t.agent().load() else { continue };
                if let Some(kill) = kill_when {
                    if kill(&st) {
                        child.start_kill().unwrap();
                        continue;
                    }
                }
                if settled(&st, t.world.router.booted(), end) && (end.also)(t) && !t.world.router.reboot_requested() {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
                    child.wait().await.unwrap();
                    break Round::Settled;
                }
            }
        }
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // Every round's log, in order, for a scenario to look back at.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(t.world.root.join("daemon-rounds.log"))
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap();
    (outcome, text)
}

/// Publish `versions`, run the daemon (policy auto) with `failpoint` armed until it is hit,
/// cut the power there, and keep booting and restarting until the router settles at `end`.
async fn scenario(
    mut t: TestWorld,
    versions: &[&str],
    failpoint: Option<&str>,
    end: End,
    kill_when: Option<&dyn Fn(&PersistedState) -> bool>,
) -> TestWorld {
    t.world.publish(versions).unwrap();
    let published: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
    let mut hit = false;
    for _ in 0..12 {
        let armed = if hit { None } else { failpoint };
        let kill = if hit { None } else { kill_when };
        let (outcome, log) = round(&t, armed, &end, kill).await;
        match outcome {
            Round::Settled => {
                assert!(hit, "the crash point was never reached:\n{log}");
                let st = t.state();
                assert!(
                    st.history.iter().all(|h| h.event != "install-failed"),
                    "{:#?}",
                    st.history
                );
                return t;
            }
            Round::Killed => {
                assert!(
                    failpoint.is_none() || log.contains("failpoint"),
                    "killed elsewhere:\n{log}"
                );
                hit = true;
            }
            Round::Rebooting => {}
        }
        // Power cut or reboot: the bootloader must find a good firmware.
        let r = t
            .world
            .power_cycle()
            .await
            .unwrap_or_else(|e| panic!("router bricked: {e}\n{log}"));
        assert!(
            published.contains(&r.version.to_string()),
            "booted unpublished {}",
            r.version
        );
        let st = t.state(); // parses
        if st.known_good.is_some_and(|g| g != r.slot) {
            // Not the recorded known-good slot: then it is on trial, or its commit was
            // written to the bootloader just before the cut (the daemon finishes it).
            let boot = t.agent().board.bootloader.read_state().unwrap();
            let committing = matches!(st.update, UpdateState::Trial { slot, .. } if slot == r.slot);
            assert!(
                boot.trial || committing,
                "booted slot {} is neither known-good nor on trial",
                r.slot
            );
        }
    }
    panic!("the router never settled");
}

fn good() -> End {
    End {
        slot: Slot::B,
        version: "1.1",
        denied: None,
        also: |_| true,
    }
}

fn rolled_back() -> End {
    End {
        slot: Slot::A,
        version: "1.0",
        denied: Some("1.2"),
        also: |_| true,
    }
}

macro_rules! crash_at {
    ($name:ident, $fp:literal, $versions:expr, $end:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenario(world("auto").await, &$versions, Some($fp), $end, None).await;
        }
    };
}

crash_at!(install_begun, "install-begun", ["1.0", "1.1"], good());
crash_at!(
    install_mid_write,
    "install-mid-write",
    ["1.0", "1.1"],
    good()
);
crash_at!(
    install_checkpoint,
    "install-checkpoint",
    ["1.0", "1.1"],
    good()
);
crash_at!(install_written, "install-written", ["1.0", "1.1"], good());
crash_at!(install_verified, "install-verified", ["1.0", "1.1"], good());
crash_at!(arm_persisted, "arm-persisted", ["1.0", "1.1"], good());
crash_at!(arm_env_written, "arm-env-written", ["1.0", "1.1"], good());
crash_at!(
    trial_health_round_healthy,
    "trial-health-round",
    ["1.0", "1.1"],
    good()
);
crash_at!(
    trial_health_round_unhealthy,
    "trial-health-round",
    ["1.0", "1.2"],
    rolled_back()
);
crash_at!(
    commit_env_written,
    "commit-env-written",
    ["1.0", "1.1"],
    good()
);
crash_at!(
    rollback_persisted,
    "rollback-persisted",
    ["1.0", "1.2"],
    rolled_back()
);
crash_at!(
    rollback_env_written,
    "rollback-env-written",
    ["1.0", "1.2"],
    rolled_back()
);

/// Power cut while an image is copied into the archive (after the commit): the update
/// stands, the restarted daemon removes the half-made entry and archives it again, and
/// every entry verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_copied() {
    let t = world("auto").await;
    let usb = t.world.root.join("usb");
    std::fs::create_dir_all(&usb).unwrap();
    let text = std::fs::read_to_string(&t.cfg).unwrap();
    std::fs::write(
        &t.cfg,
        format!("{text}\n[archive]\ndir = \"{}\"\n", usb.display()),
    )
    .unwrap();
    // Settled once both images are archived.
    let archived = End {
        also: |t| {
            ["1.0", "1.1"]
                .iter()
                .all(|v| t.world.root.join(format!("usb/{v}/image.bin")).exists())
        },
        ..good()
    };
    let t = scenario(t, &["1.0", "1.1"], Some("archive-copied"), archived, None).await;
    let listed: Vec<(String, bool)> = t
        .agent()
        .archive_list()
        .unwrap()
        .into_iter()
        .map(|i| (i.version.to_string(), i.problem.is_none()))
        .collect();
    assert_eq!(
        listed,
        vec![("1.0".to_string(), true), ("1.1".to_string(), true)]
    );
    let names: Vec<String> = std::fs::read_dir(&usb)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".tmp") || n.starts_with(".old"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// A power cut once the root part of a two-part release is in slot B's rootfs target, before
/// its boot image is: the old firmware boots, and the install that follows finds the part in
/// place (it reads back to the signed hash) and does not write it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_after_a_part_is_written() {
    const CUT: (&str, [&str; 2]) = ("install-part-written", ["1.0", "1.3"]);
    let mut t = world("auto").await;
    let root = common::tools::squashfs(&t.world.root, "1.3");
    t.world
        .add_image("1.3", fwguard::sim::Behaviour::GOOD_WITH_ROOT)
        .unwrap();
    t.world.add_part("1.3", "root", "rootfs", &root).unwrap();
    let end = End {
        slot: Slot::B,
        version: "1.3",
        denied: None,
        also: |_| true,
    };
    let t = scenario(t, &CUT.1, Some(CUT.0), end, None).await;
    let logs = std::fs::read_to_string(t.world.root.join("daemon-rounds.log")).unwrap();
    let (before_cut, after_cut) = logs.split_once("failpoint install-part-written").unwrap();
    assert!(before_cut.contains("writing part \"root\""), "{logs}");
    assert!(
        after_cut.contains("not written again") && !after_cut.contains("writing part"),
        "{logs}"
    );
    let st = t.state();
    assert_eq!(st.slot_b.as_ref().unwrap().parts.len(), 1);
}

/// A power cut in the middle of streaming a sysupgrade image (its kernel to slot B, its
/// root to slot B's rootfs target): the old firmware boots, and the install starts over and
/// completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_mid_sysupgrade() {
    let mut t = world("auto").await;
    let v = "1.4".parse().unwrap();
    let kernel = fwguard::sim::firmware_image(
        &v,
        fwguard::sim::world::BUILD_TIME,
        64 * 1024,
        fwguard::sim::Behaviour::GOOD_WITH_ROOT,
    );
    let root = common::tools::squashfs(&t.world.root, "1.4");
    let dir = t.world.root.join("build-1.4");
    let img = common::sysupgrade::sysupgrade_image(&dir, "sim", &kernel, &root, None);
    t.world.add_sysupgrade("1.4", &img).unwrap();
    let end = End {
        slot: Slot::B,
        version: "1.4",
        denied: None,
        also: |_| true,
    };
    let t = scenario(t, &["1.0", "1.4"], Some("install-mid-write"), end, None).await;
    let st = t.state();
    assert_eq!(st.slot_b.as_ref().unwrap().parts.len(), 1);
}

#[test]
fn every_failpoint_has_a_scenario() {
    let src: String = include_str!("crash.rs").split_whitespace().collect();
    // The settings carry's points are cut on the Linksys emulation, where settings go.
    let settings: String = include_str!("sim/linksys_settings.rs")
        .split_whitespace()
        .collect();
    for fp in fwguard::failpoint::ALL {
        assert!(
            src.contains(&format!("\"{fp}\",["))
                || src.contains(&format!("Some(\"{fp}\"),archived,"))
                || settings.contains(&format!("\"{fp}\"")),
            "no crash scenario for failpoint {fp}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_kill_mid_download() {
    // A slow server, so the kill lands while the image streams into slot B.
    let opts = WorldOptions {
        payload_len: 2 << 20,
        serve: ServeOptions {
            bytes_per_tick: Some(16 * 1024),
        },
        ..WorldOptions::default()
    };
    let t = common::world_with("auto", opts).await;
    let slot_b = t.world.router.slot_path(Slot::B);
    let mid_write = move |st: &PersistedState| {
        matches!(st.update, UpdateState::Installing { .. })
            && std::fs::metadata(&slot_b)
                .map(|m| m.blocks() > 1024)
                .unwrap_or(false)
    };
    use std::os::unix::fs::MetadataExt;
    scenario(t, &["1.0", "1.1"], None, good(), Some(&mid_write)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_checkpoint_the_download_resumes() {
    let mut t = world("auto").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let end = good();
    let (first, _) = round(&t, Some("install-checkpoint"), &end, None).await;
    assert_eq!(first, Round::Killed);
    let written = t.state().partial.expect("checkpoint persisted").written;
    assert!(written > 0);
    // The power comes back: the router boots the old firmware, the daemon starts again.
    t.world.power_cycle().await.unwrap();
    let (second, log) = round(&t, None, &end, None).await;
    assert_eq!(second, Round::Rebooting, "{log}");
    assert!(
        log.contains(&format!("resuming the download of 1.1 at byte {written}")),
        "{log}"
    );
    let st = t.state();
    let cut = st
        .history
        .iter()
        .find(|h| h.event == "install-interrupted")
        .unwrap();
    assert!(cut
        .detail
        .contains(&format!("resumes after byte {written}")));
    assert!(st.partial.is_none());
    let ranges = t
        .world
        .server
        .as_ref()
        .unwrap()
        .ranges("/images/fw-1.1.img");
    assert_eq!(ranges, vec![None, Some(format!("bytes={written}-"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_restart_mid_trial_without_reboot_keeps_the_deadline() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.2"]).unwrap();
    t.agent()
        .update(fwguard::agent::UpdateMode::Install)
        .await
        .unwrap();
    t.world.power_cycle().await.unwrap();
    let end = rolled_back();
    // Killed in its first health round; restarted in the same boot (procd respawn).
    let (first, _) = round(&t, Some("trial-health-round"), &end, None).await;
    assert_eq!(first, Round::Killed);
    let started = match t.state().update {
        UpdateState::Trial {
            started_ms, boots, ..
        } => {
            assert_eq!(boots, 1);
            started_ms
        }
        other => panic!("{other:?}"),
    };
    let (second, log) = round(&t, None, &end, None).await;
    assert_eq!(second, Round::Rebooting, "{log}");
    // Same boot: the deadline was measured from the first start, not restarted.
    assert!(t.state().history.iter().all(|h| h.event != "trial-reboot"));
    let rb = t
        .state()
        .history
        .into_iter()
        .rev()
        .find(|h| h.event == "rollback")
        .unwrap();
    assert!(rb.detail.contains("trial deadline"));
    assert!(started > 0);
}
