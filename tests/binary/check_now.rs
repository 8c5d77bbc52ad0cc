//! `fwguard check --now`: wakes the running daemon for a round at once (instead of waiting
//! out its interval), or does the round itself when no daemon runs; one daemon per device.

use super::common;

use common::{fwguard, BIN};

use common::world;
use fwguard::agent::{RoundRecord, RoundResult};
use fwguard::state::UpdateState;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Index fetches (its signature file is only fetched with it; the index URL itself also
/// serves as the vendor-site health check).
fn index_requests(t: &common::TestWorld) -> usize {
    t.world
        .server
        .as_ref()
        .unwrap()
        .ranges("/index.toml.sig")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_daemon_the_round_runs_here_as_the_policy_says() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();

    // Policy off: nothing is checked, and it says how to look anyway.
    let o = fwguard(&t.cfg, &["check", "--now"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("policy is off"), "{}", stdout(&o));
    assert_eq!(index_requests(&t), 0);

    // notify: checked, reported, nothing downloaded.
    assert_eq!(
        fwguard(&t.cfg, &["policy", "notify"]).await.status.code(),
        Some(0)
    );
    let o = fwguard(&t.cfg, &["check", "--now"]).await;
    assert!(
        stdout(&o).contains("update available: 1.1"),
        "{}",
        stdout(&o)
    );
    assert_eq!(index_requests(&t), 1);
    assert!(t
        .world
        .server
        .as_ref()
        .unwrap()
        .ranges("/images/fw-1.1.img")
        .is_empty());

    // download-only: staged into the inactive slot.
    assert_eq!(
        fwguard(&t.cfg, &["policy", "download-only"])
            .await
            .status
            .code(),
        Some(0)
    );
    let o = fwguard(&t.cfg, &["check", "--now"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("1.1 is written and verified"),
        "{}",
        stdout(&o)
    );
    assert!(matches!(t.state().update, UpdateState::Staged { .. }));

    // A failed round exits with its class: the index gone is a network failure (7).
    std::fs::remove_file(t.world.www.join("index.toml")).unwrap();
    let o = fwguard(&t.cfg, &["check", "--now"]).await;
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert!(stdout(&o).contains("update check failed"), "{}", stdout(&o));
}

/// Wait until `path` holds a round record that `done` accepts.
async fn round_where(path: &Path, done: impl Fn(&RoundRecord) -> bool) -> RoundRecord {
    let start = Instant::now();
    loop {
        if let Some(r) = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RoundRecord>(&b).ok())
            .filter(&done)
        {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no such round");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_daemon_is_woken_and_its_round_reported() {
    let mut t = world("download-only").await;
    t.world.publish(&["1.0"]).unwrap();
    // An hour between the daemon's own checks: only a wake-up can make a second one soon.
    let cfg_text = std::fs::read_to_string(&t.cfg).unwrap().replace(
        "check_interval = \"1s\"",
        "check_interval = \"1h\"\ncheck_jitter = \"0s\"",
    );
    std::fs::write(&t.cfg, cfg_text).unwrap();
    let mut daemon = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&t.cfg)
        .arg("daemon")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let run = t.world.runtime_dir();
    let first = round_where(&run.join("round.json"), |r| {
        r.result == RoundResult::UpToDate
    })
    .await;
    assert_eq!(index_requests(&t), 1);
    let pid: u32 = std::fs::read_to_string(run.join("daemon.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(Some(pid), daemon.id());

    // A second daemon is refused: exit 4, naming the first.
    let o = fwguard(&t.cfg, &["daemon"]).await;
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("another fwguard daemon is running (pid {pid}")),
        "{err}"
    );

    // The vendor publishes 1.1; `check --now` has the daemon fetch and stage it at once.
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let asked = Instant::now();
    let o = fwguard(&t.cfg, &["check", "--now"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("1.1 is written and verified in the inactive slot"),
        "{}",
        stdout(&o)
    );
    assert!(asked.elapsed() < Duration::from_secs(30));
    assert_eq!(index_requests(&t), 2);
    let woken = round_where(&run.join("round.json"), |r| r.result == RoundResult::Staged).await;
    assert!(woken.started_ms > first.finished_ms);
    assert!(matches!(t.state().update, UpdateState::Staged { .. }));
    // It was the daemon's round: the daemon is still running, and this process did not fetch.
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon keeps running"
    );

    // With the daemon gone, `check --now` does the round itself.
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    let o = fwguard(&t.cfg, &["check", "--now", "--exit-code"]).await;
    assert_eq!(index_requests(&t), 3);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("1.1 is written and verified"), "{o:?}");
    let image = t
        .world
        .server
        .as_ref()
        .unwrap()
        .ranges("/images/fw-1.1.img");
    assert_eq!(image.len(), 1, "the staged image is not downloaded again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_wakes_the_running_daemon_which_boots_the_release() {
    let mut t = world("approve").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let cfg_text = std::fs::read_to_string(&t.cfg).unwrap().replace(
        "check_interval = \"1s\"",
        "check_interval = \"1h\"\ncheck_jitter = \"0s\"",
    );
    std::fs::write(&t.cfg, cfg_text).unwrap();
    let mut daemon = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&t.cfg)
        .arg("daemon")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let run = t.world.runtime_dir();
    let staged = round_where(&run.join("round.json"), |r| r.result == RoundResult::Staged).await;
    assert!(staged.outcome.contains("waits for the owner"), "{staged:?}");
    assert!(!t.world.router.reboot_requested());
    // The approval wakes it (an hour before its next round), and it reboots into 1.1.
    let o = fwguard(&t.cfg, &["approve", "1.1"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let pid = daemon.id().unwrap();
    assert!(
        stdout(&o).contains(&format!("the daemon (pid {pid}) boots it now")),
        "{}",
        stdout(&o)
    );
    let exit = tokio::time::timeout(Duration::from_secs(20), daemon.wait())
        .await
        .expect("the daemon reboots soon")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(t.world.router.reboot_requested());
    assert!(matches!(t.state().update, UpdateState::Armed { .. }));
}
