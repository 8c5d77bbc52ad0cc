//! The fleet end to end (feature `fleet`): one vendor publishes a release in three waves to
//! twenty sim routers running the real fwguard (each router a world of its own: its slots, its
//! WAN, its state; all on the one vendor's index, root and halt key; the vendor's own world
//! serves the index and runs no update), reporting to
//! `fwguard-fleet` on loopback. A release that breaks the WAN: the first wave installs it and
//! rolls back, the service halts it, and when the later waves open their routers see the
//! signed halt and never install it. A good release: no halt, every wave commits.

use super::common;
use super::fleet_common::Db;

use common::trust::{publish, use_root_with_halt};
use common::TestWorld;
use fwguard::agent::{Action, UpdateMode};
use fwguard::fleet::{store::Store, Fleet, FleetConfig};
use fwguard::index::rollout::bucket;
use fwguard::index::sign::SecretKey;
use fwguard::time::unix_now;
use std::sync::Arc;

/// Device ids for `version`: 3 in wave 1 (buckets 0-9), 7 in wave 2 (10-49), 10 in wave 3.
fn ids(version: &str) -> Vec<(u32, String)> {
    let v = version.parse().unwrap();
    let mut want = [3usize, 7, 10];
    let mut out = Vec::new();
    for i in 0.. {
        let id = format!("router-{i}");
        let w = match bucket(&id, &v) {
            0..=9 => 0,
            10..=49 => 1,
            _ => 2,
        };
        if want[w] > 0 {
            want[w] -= 1;
            out.push((w as u32 + 1, id));
        }
        if want.iter().all(|n| *n == 0) {
            break;
        }
    }
    out.sort();
    out
}

/// Twenty routers on the vendor's index, each with its device id (and its wave), all reporting
/// to the service and known to it (their daemons said hello) before anything is published;
/// the vendor's world last (wave 0); and the service.
async fn fleet(version: &str, db: Db) -> (Vec<(u32, TestWorld)>, Service, String) {
    let halt = SecretKey::generate().unwrap();
    let root = SecretKey::generate().unwrap();
    let vendor = common::world("off").await;
    use_root_with_halt(&vendor, &root, &halt);
    let db_file = vendor.world.root.join("fleet.sqlite");
    // As the other fleet tests run it, but 20 reports a minute per device and a day's halt.
    let cfg = FleetConfig {
        per_device_minute: 20,
        halt_valid: 86_400,
        ..super::fleet_common::config(&vendor, &halt, true)
    };
    let pg = (db == Db::Postgres).then(common::postgres::Postgres::start);
    let at = match &pg {
        Some(pg) => pg.url.clone(),
        None => db_file.display().to_string(),
    };
    let handle = tokio::runtime::Handle::current();
    let store = tokio::task::spawn_blocking(move || Store::open(&at, Some(handle)).unwrap())
        .await
        .unwrap();
    let service = Arc::new(Fleet::new(cfg, store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let f = service.clone();
    tokio::spawn(async move {
        fwguard::fleet::serve(f, listener, std::time::Duration::from_secs(3600))
            .await
            .unwrap()
    });
    let vendor_cfg = std::fs::read_to_string(&vendor.cfg).unwrap();
    let root_line = vendor_cfg
        .lines()
        .find(|l| l.starts_with("root = "))
        .unwrap()
        .to_string();
    let mut routers = Vec::new();
    for (wave, id) in ids(version) {
        let t = common::world("off").await;
        // On the vendor's index and root; its own WAN and health checks.
        let text = std::fs::read_to_string(&t.cfg).unwrap();
        let text = text
            .replace(&t.world.index_url(), &vendor.world.index_url())
            .lines()
            .map(
                |l| match l.starts_with("trusted_key_files") || l.starts_with("root = ") {
                    true => root_line.clone(),
                    false => l.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("\n")
            .replacen("[agent]\n", &format!("[agent]\ndevice_id = \"{id}\"\n"), 1);
        let text = format!("{text}\n[report]\nurl = \"{url}/report\"\ntimeout = \"2s\"\n");
        std::fs::write(&t.cfg, text).unwrap();
        // Its daemon starts and says hello: known to the service before anything is
        // published (a second before, at least).
        super::fleet_common::says_hello(&service, &t, &id).await;
        routers.push((wave, t));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // The vendor's own world stays alive as the index's server: kept as the last router, of
    // no wave (it does not report).
    routers.push((0, vendor));
    (
        routers,
        Service {
            fleet: service,
            _pg: pg,
        },
        url,
    )
}

/// The service, with its PostgreSQL server if it has one.
struct Service {
    fleet: Arc<Fleet>,
    _pg: Option<common::postgres::Postgres>,
}

impl Service {
    /// The releases as the service counts them now (the store blocks: from a blocking thread).
    async fn view(&self) -> Vec<fwguard::fleet::ReleaseView> {
        let f = self.fleet.clone();
        tokio::task::spawn_blocking(move || f.view(unix_now()).unwrap())
            .await
            .unwrap()
    }
}

/// Publish `version` in three waves: the first open now, the others opening after an hour
/// and two; `opened`: as if those hours had passed.
fn publish_waves(vendor: &TestWorld, version: &str, index_version: u64, opened: bool) {
    let mut d = common::trust::fresh(vendor, index_version, &["1.0", version]);
    let start = unix_now() - if opened { 3 * 3600 } else { 60 };
    d.set_rollout(
        &version.parse().unwrap(),
        None,
        start,
        &[(0, 10), (3600, 50), (7200, 100)],
    )
    .unwrap();
    publish(vendor, &d, &[&vendor.world.key]);
}

/// Install on `t` and arm the trial (the reboot is the next power cycle).
async fn install(t: &TestWorld) {
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::Reboot(_)), "{a:?}");
}

/// Install on `t`, boot the trial, and settle: committed, or rolled back and reported.
async fn through_the_trial(t: &mut TestWorld, version: &str, good: bool) {
    install(t).await;
    trial(t, version, good).await;
}

/// Boot the armed trial on `t` and settle: committed, or rolled back and reported.
async fn trial(t: &mut TestWorld, version: &str, good: bool) {
    t.power_cycle().await;
    if good {
        t.settle_until(|s| common::history_has(s, "committed", version) && s.outcomes.is_empty())
            .await;
    } else {
        t.settle().await; // the trial fails its checks and reboots into the old slot
        t.power_cycle().await;
        t.settle_until(|s| common::history_has(s, "rolled-back", version) && s.outcomes.is_empty())
            .await;
    }
}

async fn a_release_that_breaks_the_wan_is_halted_after_the_first_wave_and_later_waves_never_install_it(
    db: Db,
) {
    let (mut routers, service, url) = fleet("1.2", db).await;
    let vendor_at = routers.len() - 1;
    assert_eq!(routers.iter().filter(|(w, _)| *w > 0).count(), 20);
    publish_waves(&routers[vendor_at].1, "1.2", 1, false);
    // Only the first wave is offered 1.2; its routers install it (at about the same time),
    // then each boots it, fails its checks and rolls back.
    for (wave, t) in routers.iter().filter(|(w, _)| *w > 0) {
        if *wave == 1 {
            install(t).await;
        } else {
            match t.agent().update(UpdateMode::Install).await.unwrap() {
                Action::UpToDate(why) => {
                    assert!(why.contains("not offered to this device yet"), "{why}")
                }
                other => panic!("wave {wave} installed before its time: {other:?}"),
            }
        }
    }
    for (_, t) in routers.iter_mut().filter(|(w, _)| *w == 1) {
        trial(t, "1.2", false).await;
    }
    let v = service.view().await;
    let r = v.iter().find(|v| v.release == "1.2").unwrap();
    let w1 = &r.waves[0];
    assert_eq!(
        (w1.wave, w1.installing, w1.armed, w1.rolled_back),
        (1, 3, 3, 3)
    );
    let (why, _) = r.halted.clone().expect("the service halted 1.2");
    assert!(why.contains("wave 1"), "{why}");
    // Hours later every wave is open; the halt holds them all back: nothing written.
    publish_waves(&routers[vendor_at].1, "1.2", 2, true);
    for (wave, t) in routers.iter().filter(|(w, _)| *w > 1) {
        let before = t.snapshot();
        match t.agent().update(UpdateMode::Install).await.unwrap() {
            Action::UpToDate(why) => {
                assert!(why.contains("the vendor halted it"), "wave {wave}: {why}")
            }
            other => panic!("wave {wave} installed a halted release: {other:?}"),
        }
        assert_eq!(t.snapshot(), before);
    }
    let v = service.view().await;
    let r = v.iter().find(|v| v.release == "1.2").unwrap();
    assert_eq!(
        r.waves.len(),
        1,
        "only the first wave ever installed: {:?}",
        r.waves
    );
    // The dashboard, as a browser shows it.
    let dom = common::browser::dom(&format!("{url}/")).await;
    assert!(
        dom.contains("<h2>release 1.2</h2>") && dom.contains(">HALTED at "),
        "{dom}"
    );
    assert!(dom.contains("20 device(s) known"), "{dom}");
    let row = "<tr class=\"wave\"><td>1</td><td>3</td><td>3</td><td>0</td><td>3</td><td>0</td><td>0</td></tr>";
    assert!(dom.contains(row), "{dom}");
    assert!(
        dom.contains("failing checks: <span class=\"check\">internet (3)</span>"),
        "{dom}"
    );
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/fleet-waves-{db:?}.png").to_lowercase());
    common::browser::screenshot(&format!("{url}/"), &shot).await;
}

async fn a_good_release_is_not_halted_and_every_wave_commits(db: Db) {
    let (mut routers, service, _) = fleet("1.1", db).await;
    let vendor_at = routers.len() - 1;
    publish_waves(&routers[vendor_at].1, "1.1", 1, false);
    for (_, t) in routers.iter_mut().filter(|(w, _)| *w == 1) {
        through_the_trial(t, "1.1", true).await;
    }
    publish_waves(&routers[vendor_at].1, "1.1", 2, true);
    for (_, t) in routers.iter_mut().filter(|(w, _)| *w > 1) {
        through_the_trial(t, "1.1", true).await;
    }
    let v = service.view().await;
    let r = v.iter().find(|v| v.release == "1.1").unwrap();
    assert_eq!(r.halted, None);
    let per_wave: Vec<(u32, u32, u32)> = r
        .waves
        .iter()
        .map(|w| (w.wave, w.armed, w.committed))
        .collect();
    assert_eq!(per_wave, vec![(1, 3, 3), (2, 7, 7), (3, 10, 10)]);
    assert!(!routers[vendor_at].1.world.www.join("halt.toml").exists());
}

// Both cases on SQLite and on a real PostgreSQL server.
on_both!(
    a_release_that_breaks_the_wan_is_halted_after_the_first_wave_and_later_waves_never_install_it,
    a_good_release_is_not_halted_and_every_wave_commits
);
