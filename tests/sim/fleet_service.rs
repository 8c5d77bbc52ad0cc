//! The fleet service end to end (feature `fleet`): `fwguard-fleet`'s server on loopback,
//! on SQLite and on PostgreSQL, fed the signed reports of the first wave's devices; a bad
//! release is halted by the rule, the halt published next to the index signed with the halt
//! key, and the real fwguard of a later wave's router sees it and does not install; a good
//! release is not halted, and that router's own reports (signed by ring on the device,
//! checked by the service) are counted; only devices known before their wave began count.

use super::common;
use super::fleet_common::*;

use fwguard::agent::{Action, UpdateMode};
use fwguard::index::sign::SecretKey;
use fwguard::time::unix_now;

async fn the_first_waves_rollback_halts_the_release_and_a_later_wave_never_installs_it(db: Db) {
    let halt = SecretKey::generate().unwrap();
    let t = router(&halt, "1.1").await;
    let s = service(&t, &halt, db).await;
    with_report(&t, &s);

    // The first wave: two devices, known since their hellos an hour ago, install; one rolls
    // back (its WAN is down).
    let peers = first_wave("1.1", 2);
    known(&s, &peers).await;
    for (p, outcome) in peers.iter().zip(["committed", "rolled-back"]) {
        for (i, r) in ["installing", "armed", outcome].iter().enumerate() {
            assert_eq!(post(&s, p, "1.1", r, &format!("{}-{i}", p.id)).await, 204);
        }
    }
    // A retried report counts once; a forged one (another key for the same device) and a
    // bad signature are refused.
    assert_eq!(
        post(
            &s,
            &peers[0],
            "1.1",
            "committed",
            &format!("{}-2", peers[0].id)
        )
        .await,
        200
    );
    let forger = Peer {
        id: peers[0].id.clone(),
        key: ed25519_dalek::SigningKey::from_bytes(&[99; 32]),
    };
    assert_eq!(
        post(&s, &forger, "1.1", "rolled-back", "forged-1").await,
        403
    );
    // Forgeries for peers[0] do not use up its own budget (it has sent 3 of 5 this minute).
    for i in 0..6 {
        let code = post(
            &s,
            &forger,
            "1.1",
            "installing",
            &format!("forged-more-{i}"),
        )
        .await;
        assert!(code == 403 || code == 429, "{code}");
    }
    assert_eq!(post(&s, &peers[0], "1.1", "installing", "own-1").await, 204);
    // One device cannot flood the service: 5 reports a minute (it sent 3 just now).
    for id in ["flood-1", "flood-2"] {
        assert_eq!(post(&s, &peers[1], "1.1", "installing", id).await, 204);
    }
    assert_eq!(
        post(&s, &peers[1], "1.1", "installing", "flood-3").await,
        429
    );

    let view = s.view(unix_now()).await;
    let w1 = &view[0].waves[0];
    assert_eq!(
        (
            w1.wave,
            w1.installing,
            w1.armed,
            w1.committed,
            w1.rolled_back
        ),
        (1, 2, 2, 1, 1)
    );
    let (why, _) = view[0].halted.clone().expect("halted by the rule");
    assert!(why.contains("wave 1: 1 of 2 armed trials failed"), "{why}");
    assert_eq!(view[0].failing_checks, vec![("wan-link".to_string(), 1)]);

    // The halt is next to the index, signed with the halt key; the router honours it.
    let halt_file = std::fs::read_to_string(t.world.www.join("halt.toml")).unwrap();
    assert!(halt_file.contains("release = \"1.1\""), "{halt_file}");
    let before = t.snapshot();
    match t.agent().update(UpdateMode::Install).await.unwrap() {
        Action::UpToDate(why) => assert!(why.contains("the vendor halted it"), "{why}"),
        other => panic!("installed a halted release: {other:?}"),
    }
    assert_eq!(t.snapshot(), before);
    let html = page(&s).await;
    assert!(
        html.contains("release 1.1") && html.contains("HALTED"),
        "{html}"
    );
    assert!(html.contains("wan-link (1)"), "{html}");
    in_a_browser(&s).await;
}

/// The dashboard as a real browser shows it: headless Chromium loads it, the DOM it built
/// says the release is halted with its wave's counts, and its screenshot is kept
/// (target/fleet-dashboard-sqlite.png, -postgres.png).
async fn in_a_browser(s: &Service) {
    let url = format!("{}/", s.url);
    let dom = common::browser::dom(&url).await;
    assert!(dom.contains("2 device(s) known, running: 1.0 (2)"), "{dom}");
    assert!(dom.contains("<h2>release 1.1</h2>"), "{dom}");
    assert!(dom.contains("class=\"halted\">HALTED at "), "{dom}");
    let row = "<tr class=\"wave\"><td>1</td><td>2</td><td>2</td><td>1</td><td>1</td><td>0</td><td>0</td></tr>";
    assert!(dom.contains(row), "{dom}");
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/fleet-dashboard-{:?}.png", s.db).to_lowercase());
    common::browser::screenshot(&url, &shot).await;
}

async fn a_good_release_is_not_halted_and_the_routers_own_signed_reports_are_counted(db: Db) {
    let halt = SecretKey::generate().unwrap();
    let mut t = router_with(&halt, None).await;
    let s = service(&t, &halt, db).await;
    let id = with_report(&t, &s);
    let peers = first_wave("1.1", 3);
    known(&s, &peers).await;
    known_then_published(&s, &t, &id, "1.1").await;
    for p in peers {
        for (i, r) in ["installing", "armed", "committed"].iter().enumerate() {
            assert_eq!(post(&s, &p, "1.1", r, &format!("{}-{i}", p.id)).await, 204);
        }
    }
    // The router installs (its installing and armed reach the service before the reboot),
    // boots the trial and commits.
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::Reboot(_)), "{a:?}");
    t.power_cycle().await;
    t.settle_until(|st| common::history_has(st, "committed", "1.1") && st.outcomes.is_empty())
        .await;
    let view = s.view(unix_now()).await;
    assert_eq!(view[0].halted, None);
    let committed: u32 = view[0].waves.iter().map(|w| w.committed).sum();
    let armed: u32 = view[0].waves.iter().map(|w| w.armed).sum();
    assert_eq!((armed, committed), (4, 4), "{:?}", view[0].waves);
    assert!(!t.world.www.join("halt.toml").exists());
    assert!(page(&s).await.contains("rolling out"));
}

/// The blind spot of report-counting services: a device bricked by the release never
/// reports. An armed trial that stays silent past its deadline and the grace is a failure.
async fn a_silent_trial_is_presumed_failed_and_halts_the_release_in_time(db: Db) {
    let halt = SecretKey::generate().unwrap();
    let t = router(&halt, "1.1").await;
    let s = service(&t, &halt, db).await;
    let p = &first_wave("1.1", 1)[0];
    known(&s, std::slice::from_ref(p)).await;
    for (i, r) in ["installing", "armed"].iter().enumerate() {
        assert_eq!(post(&s, p, "1.1", r, &format!("{}-{i}", p.id)).await, 204);
    }
    let now = unix_now();
    // Within the trial's 600 s and the 60 s of grace: still armed, nothing halted.
    s.tick(now + 600).await;
    let view = s.view(now + 600).await;
    assert_eq!(
        (view[0].waves[0].armed, view[0].waves[0].presumed_failed),
        (1, 0)
    );
    assert_eq!(view[0].halted, None);
    assert!(!t.world.www.join("halt.toml").exists());
    // Past them: presumed failed, and the release is halted.
    s.tick(now + 700).await;
    let view = s.view(now + 700).await;
    assert_eq!(view[0].waves[0].presumed_failed, 1);
    let (why, _) = view[0].halted.clone().expect("halted");
    assert!(why.contains("1 presumed failed"), "{why}");
    assert!(t.world.www.join("halt.toml.sig").exists());
}

/// Devices first heard of once their wave was under way (made-up ids with made-up keys, say)
/// are shown but not counted, whether they start with a report or with a hello; a device
/// that said hello before the release was published is.
async fn only_devices_known_before_their_wave_began_are_counted(db: Db) {
    let halt = SecretKey::generate().unwrap();
    let t = router(&halt, "1.1").await;
    let s = service(&t, &halt, db).await;
    let peers = first_wave("1.1", 3);
    // peers[0] said hello an hour ago, before 1.1 was published (its waves began a minute
    // ago, but it was published just now: its first wave began then).
    known(&s, &peers[..1]).await;
    // peers[1] is new, and peers[2] says hello only now: their rollbacks are not counted,
    // and nothing is halted.
    assert_eq!(post(&s, &peers[2], "1.0", "hello", "").await, 204);
    for p in &peers[1..] {
        for (i, r) in ["installing", "armed", "rolled-back"].iter().enumerate() {
            assert_eq!(post(&s, p, "1.1", r, &format!("{}-{i}", p.id)).await, 204);
        }
    }
    let v = s.view(unix_now()).await;
    let v11 = v.iter().find(|v| v.release == "1.1").unwrap();
    assert_eq!((v11.uncounted, v11.halted.clone()), (2, None));
    assert!(v11.waves.is_empty(), "{:?}", v11.waves);
    assert!(page(&s).await.contains("2 device(s) not counted"));
    // peers[0]'s rollback counts, and halts.
    for (i, r) in ["installing", "armed", "rolled-back"].iter().enumerate() {
        assert_eq!(
            post(&s, &peers[0], "1.1", r, &format!("known-{i}")).await,
            204
        );
    }
    let v = s.view(unix_now()).await;
    let v11 = v.iter().find(|v| v.release == "1.1").unwrap();
    assert_eq!((v11.uncounted, v11.waves[0].rolled_back), (2, 1));
    assert!(v11.halted.is_some());
}

/// With `known_before_wave` off, every device that reports counts, new or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_known_before_wave_off_a_new_device_counts() {
    let halt = SecretKey::generate().unwrap();
    let t = router(&halt, "1.1").await;
    let s = service_with(&t, &halt, false, Db::Sqlite).await;
    let p = &first_wave("1.1", 1)[0];
    for (i, r) in ["installing", "armed", "rolled-back"].iter().enumerate() {
        assert_eq!(post(&s, p, "1.1", r, &format!("new-{i}")).await, 204);
    }
    let v = s.view(unix_now()).await;
    assert_eq!((v[0].uncounted, v[0].waves[0].rolled_back), (0, 1));
    assert!(v[0].halted.is_some());
}

/// The commonest brick: a firmware that never reaches userspace. Its trial is presumed failed
/// while nothing is heard of it, and counted as given up by the bootloader once the old
/// firmware, running again, reports it.
async fn a_trial_that_never_reaches_userspace_is_presumed_failed_then_counted_as_given_up(db: Db) {
    let halt = SecretKey::generate().unwrap();
    let mut t = router_with(&halt, Some(("1.3", common::PANICS))).await;
    let s = service(&t, &halt, db).await;
    let id = with_report_for(&t, &s, "1.3");
    known_then_published(&s, &t, &id, "1.3").await;
    let a = t.agent().update(UpdateMode::Install).await.unwrap();
    assert!(matches!(a, Action::Reboot(_)), "{a:?}");
    let now = unix_now();
    let wave = |v: &[fwguard::fleet::ReleaseView]| {
        let w = &v.iter().find(|v| v.release == "1.3").unwrap().waves[0];
        (w.armed, w.presumed_failed, w.trial_failed)
    };
    assert_eq!(wave(&s.view(now).await), (1, 0, 0));
    // Its deadline and the grace pass in silence: presumed failed.
    assert_eq!(wave(&s.view(now + 120).await), (1, 1, 0));
    // The bootloader gives it up; the old firmware's fwguard reports it.
    let back = t.power_cycle().await;
    assert_eq!(back.slot, fwguard::Slot::A);
    t.settle_until(|st| common::history_has(st, "trial-failed", "1.3") && st.outcomes.is_empty())
        .await;
    assert_eq!(wave(&s.view(now + 120).await), (1, 0, 1));
}

// Every case above, on SQLite and on a real PostgreSQL server.
on_both!(
    a_trial_that_never_reaches_userspace_is_presumed_failed_then_counted_as_given_up,
    the_first_waves_rollback_halts_the_release_and_a_later_wave_never_installs_it,
    a_good_release_is_not_halted_and_the_routers_own_signed_reports_are_counted,
    a_silent_trial_is_presumed_failed_and_halts_the_release_in_time,
    only_devices_known_before_their_wave_began_are_counted
);

/// Several instances behind one address share one PostgreSQL: exactly one of them decides
/// (and publishes) at a time, under an advisory lock, so a halt is published once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_decide_one_at_a_time() {
    let halt = SecretKey::generate().unwrap();
    let t = router(&halt, "1.1").await;
    let a = service(&t, &halt, Db::Postgres).await;
    let url = a._pg.as_ref().unwrap().url.clone();
    let cfg = config(&t, &halt, true);
    let b = instance(
        cfg,
        url.clone(),
        Db::Postgres,
        tempfile::tempdir().unwrap(),
        None,
    )
    .await;
    // A third session holds the deciders' lock: neither instance may halt meanwhile.
    let (holder, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    holder.batch_execute("BEGIN").await.unwrap();
    let lock = fwguard::fleet::store::DECIDER_LOCK;
    let got: bool = holder
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&lock])
        .await
        .unwrap()
        .get(0);
    assert!(got);
    let p = &first_wave("1.1", 1)[0];
    known(&a, std::slice::from_ref(p)).await;
    // Reports reach both instances (one address, a balancer).
    assert_eq!(post(&a, p, "1.1", "installing", "i").await, 204);
    assert_eq!(post(&b, p, "1.1", "armed", "a").await, 204);
    assert_eq!(post(&a, p, "1.1", "rolled-back", "r").await, 204);
    let now = unix_now();
    b.tick(now).await;
    assert_eq!(a.view(now).await[0].halted, None, "halted without the lock");
    assert!(!t.world.www.join("halt.toml").exists());
    // The lock is free again: both instances tick at once; one halts, once.
    holder.batch_execute("COMMIT").await.unwrap();
    tokio::join!(a.tick(now), b.tick(now));
    let text = std::fs::read_to_string(t.world.www.join("halt.toml")).unwrap();
    let draft = fwguard::index::halt::HaltDraft::parse(&text).unwrap();
    assert_eq!((draft.version, draft.entries.len()), (1, 1), "{text}");
    for s in [&a, &b] {
        let v = s.view(now).await;
        assert!(v[0].halted.is_some());
    }
}
