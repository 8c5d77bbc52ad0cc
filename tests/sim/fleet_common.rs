//! What the fleet service's suites share (feature `fleet`): `fwguard-fleet`'s server on
//! loopback on SQLite or a real PostgreSQL server, the other devices of a wave (peers with
//! their own keys, reporting over HTTP), and the router under test, reporting to the service
//! and saying hello to it from its daemon.

use super::common;

use common::trust::{publish, use_root_with_halt};
use common::TestWorld;
use fwguard::fleet::rule::Rule;
use fwguard::fleet::{store::Store, Fleet, FleetConfig};
use fwguard::index::rollout::bucket;
use fwguard::index::sign::SecretKey;
use fwguard::time::unix_now;
use std::sync::Arc;

/// The database the service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Db {
    Sqlite,
    Postgres,
}

pub(super) struct Service {
    pub(super) url: String,
    pub(super) fleet: Arc<Fleet>,
    pub(super) db: Db,
    _dir: tempfile::TempDir,
    pub(super) _pg: Option<common::postgres::Postgres>,
}

impl Service {
    /// The store blocks: the service's own calls, from a blocking thread.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Fleet) -> T + Send + 'static,
    ) -> T {
        let fleet = self.fleet.clone();
        tokio::task::spawn_blocking(move || f(&fleet))
            .await
            .unwrap()
    }

    pub(super) async fn view(&self, now: u64) -> Vec<fwguard::fleet::ReleaseView> {
        self.blocking(move |f| f.view(now).unwrap()).await
    }

    pub(super) async fn tick(&self, now: u64) {
        self.blocking(move |f| f.tick(now).unwrap()).await
    }
}

/// The service's settings for `t`'s published directory and the halt key `halt`: the
/// default rule, 60 s of grace, 5 reports a minute per device; counting only devices known
/// before their wave began if `known` (the default).
pub(super) fn config(t: &TestWorld, halt: &SecretKey, known: bool) -> FleetConfig {
    FleetConfig {
        index_dir: t.world.www.clone(),
        halt_key: SecretKey::parse(&halt.to_file("halt")).unwrap(),
        rule: Rule::default(),
        grace: 60,
        halt_valid: 7 * 86_400,
        per_source_minute: 1000,
        per_device_minute: 5,
        known_before_wave: known,
    }
}

/// The service for `t`'s published directory, with the halt key `halt`, on `db`, as it runs by
/// default.
pub(super) async fn service(t: &TestWorld, halt: &SecretKey, db: Db) -> Service {
    service_with(t, halt, true, db).await
}

/// The same, counting only devices heard of before their wave began if `known`.
pub(super) async fn service_with(t: &TestWorld, halt: &SecretKey, known: bool, db: Db) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(t, halt, known);
    let pg = (db == Db::Postgres).then(common::postgres::Postgres::start);
    let at = match &pg {
        Some(pg) => pg.url.clone(),
        None => dir.path().join("fleet.sqlite").display().to_string(),
    };
    instance(cfg, at, db, dir, pg).await
}

/// An instance of the service with `cfg` on database `at`, serving on a port of its own.
pub(super) async fn instance(
    cfg: FleetConfig,
    at: String,
    db: Db,
    dir: tempfile::TempDir,
    pg: Option<common::postgres::Postgres>,
) -> Service {
    let handle = tokio::runtime::Handle::current();
    let store = tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&at, Some(handle)).unwrap();
        assert_eq!(store.version().unwrap(), 2);
        store
    })
    .await
    .unwrap();
    let fleet = Arc::new(Fleet::new(cfg, store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let f = fleet.clone();
    tokio::spawn(async move {
        fwguard::fleet::serve(f, listener, std::time::Duration::from_secs(3600))
            .await
            .unwrap()
    });
    Service {
        url,
        fleet,
        db,
        _dir: dir,
        _pg: pg,
    }
}

/// A device of the fleet other than the router under test: its id and its report key.
pub(super) struct Peer {
    pub(super) id: String,
    pub(super) key: ed25519_dalek::SigningKey,
}

/// Devices whose bucket for `version` puts them in the first wave (below 10%).
pub(super) fn first_wave(version: &str, n: usize) -> Vec<Peer> {
    let v = version.parse().unwrap();
    (0..)
        .map(|i| format!("peer-{i}"))
        .filter(|id| bucket(id, &v) < 10)
        .take(n)
        .enumerate()
        .map(|(i, id)| Peer {
            id,
            key: ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]),
        })
        .collect()
}

/// `peers` said hello an hour ago (their daemons started then): known before any wave.
pub(super) async fn known(s: &Service, peers: &[Peer]) {
    for p in peers {
        let (body, key, sig) = signed(p, "1.0", "hello", "");
        let then = unix_now() - 3600;
        s.blocking(move |f| f.ingest(body.as_bytes(), &key, &sig, then).unwrap())
            .await;
    }
}

/// `t`'s daemon starts and says hello to `fleet`: run until the fleet knows `device`.
pub(super) async fn says_hello(fleet: &Arc<Fleet>, t: &TestWorld, device: &str) {
    let heard = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (f, d, h) = (fleet.clone(), device.to_string(), heard.clone());
    let asking = tokio::spawn(async move {
        loop {
            let (f, d) = (f.clone(), d.clone());
            let known = tokio::task::spawn_blocking(move || f.known(&d).unwrap())
                .await
                .unwrap();
            if known.is_some() {
                h.store(true, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    common::run_daemon_until(t.agent(), || {
        heard.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    asking.abort();
    assert!(
        heard.load(std::sync::atomic::Ordering::SeqCst),
        "{device} said no hello"
    );
}

/// A report of `result` for `release` by `peer`: (body, key, signature) as sent.
pub(super) fn signed(
    peer: &Peer,
    release: &str,
    result: &str,
    id: &str,
) -> (String, String, String) {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = match result {
        "hello" => serde_json::json!({
            "schema": 1, "device": peer.id, "board": "sim", "result": result,
            "release": release, "at": unix_now(), "id": id,
        }),
        _ => serde_json::json!({
            "schema": 1, "device": peer.id, "board": "sim", "release": release, "result": result,
            "failing": if result == "rolled-back" { vec!["wan-link"] } else { vec![] },
            "detail": "", "at": unix_now(), "id": id,
            "deadline_s": if result == "armed" { Some(600) } else { None },
        }),
    }
    .to_string();
    let sig = peer.key.sign(body.as_bytes());
    let key = b64.encode(peer.key.verifying_key().as_bytes());
    (body, key, b64.encode(sig.to_bytes()))
}

/// POST `result` for `release` as `peer`; the HTTP status.
pub(super) async fn post(s: &Service, peer: &Peer, release: &str, result: &str, id: &str) -> u16 {
    let (body, key, sig) = signed(peer, release, result, id);
    reqwest::Client::new()
        .post(format!("{}/report", s.url))
        .header("content-type", "application/json")
        .header("x-fwguard-key", key)
        .header("x-fwguard-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The world's router, trusting a root with halt key `halt`; `version` published in two
/// waves (10%, then everyone), both open. The world has 1.1 (good) and 1.2 (breaks the WAN).
pub(super) async fn router(halt: &SecretKey, version: &str) -> TestWorld {
    let t = router_with(halt, None).await;
    publish_waves(&t, version);
    t
}

/// The same, nothing published yet, with an image `(version, behaviour)` made first if given.
pub(super) async fn router_with(
    halt: &SecretKey,
    made: Option<(&str, fwguard::sim::Behaviour)>,
) -> TestWorld {
    let mut t = common::world("off").await;
    if let Some((version, b)) = made {
        t.world.add_image(version, b).unwrap();
    }
    let root = SecretKey::generate().unwrap();
    use_root_with_halt(&t, &root, halt);
    t
}

/// Publish `version` on `t`'s index in two waves (10%, then everyone), both open.
pub(super) fn publish_waves(t: &TestWorld, version: &str) {
    let mut d = common::trust::fresh(t, 1, &["1.0", version]);
    let v = version.parse().unwrap();
    d.set_rollout(&v, None, unix_now() - 60, &[(0, 10), (0, 100)])
        .unwrap();
    publish(t, &d, &[&t.world.key]);
}

/// `t`'s router (reporting to `s` as `device`) says hello, and a second later `version` is
/// published: the router is known before its wave began.
pub(super) async fn known_then_published(s: &Service, t: &TestWorld, device: &str, version: &str) {
    says_hello(&s.fleet, t, device).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    publish_waves(t, version);
}

/// Report to `s`, as a device of the second wave of 1.1 (its id chosen so); returns the id.
pub(super) fn with_report(t: &TestWorld, s: &Service) -> String {
    with_report_for(t, s, "1.1")
}

/// Report to `s`, as a device of the second wave of `version`; returns its id.
pub(super) fn with_report_for(t: &TestWorld, s: &Service, version: &str) -> String {
    let v = version.parse().unwrap();
    let id = (0..)
        .map(|i| format!("router-{i}"))
        .find(|id| bucket(id, &v) >= 10)
        .unwrap();
    let cfg = std::fs::read_to_string(&t.cfg).unwrap();
    let cfg = cfg.replacen("[agent]\n", &format!("[agent]\ndevice_id = \"{id}\"\n"), 1);
    assert!(cfg.contains(&id));
    std::fs::write(
        &t.cfg,
        format!(
            "{cfg}\n[report]\nurl = \"{}/report\"\ntimeout = \"2s\"\n",
            s.url
        ),
    )
    .unwrap();
    id
}

pub(super) async fn page(s: &Service) -> String {
    reqwest::get(format!("{}/", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
