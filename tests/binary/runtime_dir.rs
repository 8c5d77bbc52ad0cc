//! The runtime directory (`agent.runtime_dir`) must be in RAM: fwguard rewrites health.json
//! there every health round, and on OpenWrt, where /run may not exist, `/run/fwguard` would be
//! created on the overlay, on flash. Off tmpfs (or ramfs) nothing is written there, and the
//! daemon says why and carries on; on tmpfs (the simulated world's) the files are written.

use super::common;

use common::{disk_dir, fwguard, world, TestWorld, BIN};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const REFUSED: &str = "not in RAM (tmpfs or ramfs)";
const FIX: &str = "fix: set agent.runtime_dir to a directory on tmpfs";

/// Run the daemon binary until `done` holds (30 s at most), then stop it; its stderr.
async fn daemon_log_until(t: &TestWorld, done: impl Fn() -> bool) -> String {
    let mut child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&t.cfg)
        .arg("daemon")
        .env_remove("FWGUARD_CONFIG")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        waited.is_ok(),
        "the daemon did not get there in 30 s:\n{err}"
    );
    err
}

fn is_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).unwrap().filesystem_type() == nix::sys::statfs::TMPFS_MAGIC
}

#[tokio::test]
async fn a_health_round_refuses_a_runtime_dir_on_disk_and_writes_nothing_there() {
    let mut t = world("off").await;
    t.world.publish(&["1.0"]).unwrap();
    let disk = disk_dir();
    let run = disk.path().join("fwguard");
    t.set_runtime_dir(&run);
    let o = fwguard(&t.cfg, &["health"]).await;
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    // The checks ran and passed, and are shown; only their record was refused.
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("pass internet"), "{out}");
    assert!(
        err.contains(&format!("agent.runtime_dir {}", run.display())),
        "{err}"
    );
    assert!(err.contains(REFUSED) && err.contains(FIX), "{err}");
    assert!(!run.exists(), "{} was created on the disk", run.display());
}

#[tokio::test]
async fn the_daemon_refuses_a_runtime_dir_on_disk_says_why_and_keeps_checking() {
    let mut t = world("notify").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let disk = disk_dir();
    let run = disk.path().join("fwguard");
    t.set_runtime_dir(&run);
    // Each round asks for the index once: at the third request two rounds have ended.
    let err = daemon_log_until(&t, || t.index_fetches() >= 3).await;
    assert!(
        err.contains(&format!("agent.runtime_dir {}", run.display())),
        "{err}"
    );
    assert!(err.contains(REFUSED) && err.contains(FIX), "{err}");
    assert!(err.contains("update available: 1.1"), "{err}");
    assert!(!run.exists(), "{} was created on the disk", run.display());
}

#[tokio::test]
async fn on_tmpfs_the_health_round_and_the_daemon_write_their_runtime_files() {
    let mut t = world("notify").await;
    t.world.publish(&["1.0"]).unwrap();
    let run = t.settings().runtime_dir;
    let parent = run.parent().unwrap();
    assert!(is_tmpfs(parent), "{} is not on tmpfs", parent.display());
    let o = fwguard(&t.cfg, &["health"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(run.join("health.json").exists());
    let files = ["round.json", "daemon.pid"];
    let err = daemon_log_until(&t, || files.iter().all(|f| run.join(f).exists())).await;
    assert!(!err.contains("agent.runtime_dir"), "{err}");
    // RAM does not survive a reboot: after one, no record of the last boot's rounds.
    t.power_cycle().await;
    assert!(!run.exists(), "the runtime directory survived a reboot");
    let o = fwguard(&t.cfg, &["status", "--json"]).await;
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(status["last_health"].is_null(), "{status}");
}
