//! The reports to `[report] url`: an install begun and a trial armed (sent by the install, the
//! second before the reboot), and the outcome after a commit or a completed rollback (sent by
//! the daemon); each retried every round until accepted, and each signed by the device's own
//! key over the exact body.

use super::common;

use common::{history_has, world, TestWorld};
use fwguard::agent::DaemonExit;
use fwguard::state::UpdateState;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Of an accepted report: its body as sent, and its key and signature headers.
type Signed = (Vec<u8>, String, String);

/// The vendor's report endpoint on loopback: keeps the JSON bodies it accepts (the daemon's
/// hellos apart); answers 503 to the first `refuse` reports, and to the first
/// `refuse_hellos` hellos.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<serde_json::Value>>>,
    hellos: Arc<Mutex<Vec<serde_json::Value>>>,
    signed: Arc<Mutex<Vec<Signed>>>,
    attempts: Arc<AtomicUsize>,
    hello_attempts: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(refuse: usize) -> Receiver {
        Receiver::start_with(refuse, 0).await
    }

    async fn start_with(refuse: usize, refuse_hellos: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            hellos: Arc::default(),
            signed: Arc::default(),
            attempts: Arc::default(),
            hello_attempts: Arc::default(),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len, key, sig) = loop {
                    let n = conn.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "request cut short");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        assert!(head.starts_with("post /report "), "{head}");
                        assert!(head.contains("content-type: application/json"), "{head}");
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap();
                        let header = |name: &str| {
                            head.lines()
                                .find_map(|l| l.strip_prefix(name))
                                .map(|v| v.trim().to_string())
                                .unwrap_or_default()
                        };
                        // Base64 is case-sensitive: taken from the head as sent.
                        let raw = String::from_utf8_lossy(&buf[..i]).to_string();
                        let exact = |name: &str| {
                            raw.lines()
                                .find(|l| l.to_lowercase().starts_with(name))
                                .map(|l| l[name.len()..].trim().to_string())
                                .unwrap_or_default()
                        };
                        assert!(!header("x-fwguard-key: ").is_empty(), "{head}");
                        break (
                            i + 4,
                            len,
                            exact("x-fwguard-key: "),
                            exact("x-fwguard-signature: "),
                        );
                    }
                };
                while buf.len() < head_end + len {
                    let n = conn.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let bytes = buf[head_end..head_end + len].to_vec();
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let hello = body["result"] == "hello";
                let (n, limit, kept) = match hello {
                    true => (&me.hello_attempts, refuse_hellos, &me.hellos),
                    false => (&me.attempts, refuse, &me.accepted),
                };
                let answer = if n.fetch_add(1, Ordering::SeqCst) < limit {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                } else {
                    kept.lock().unwrap().push(body);
                    me.signed.lock().unwrap().push((bytes, key, sig));
                    "HTTP/1.1 204 No Content\r\n\r\n"
                };
                conn.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        r
    }

    fn accepted(&self) -> Vec<serde_json::Value> {
        self.accepted.lock().unwrap().clone()
    }

    fn hellos(&self) -> Vec<serde_json::Value> {
        self.hellos.lock().unwrap().clone()
    }

    /// The results of the accepted reports, in order.
    fn results(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["result"].as_str().unwrap(),
                    r["release"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Every accepted report (and hello) is signed over its exact body by one and the same
    /// key; returns that key.
    fn one_signer(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let signed = self.signed.lock().unwrap().clone();
        assert!(!signed.is_empty());
        for (body, key, sig) in &signed {
            assert_eq!(key, &signed[0].1, "reports signed by two keys");
            let key: [u8; 32] = b64.decode(key).unwrap().try_into().unwrap();
            let key = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
            let sig: [u8; 64] = b64.decode(sig).unwrap().try_into().unwrap();
            let sig = ed25519_dalek::Signature::from_bytes(&sig);
            assert!(key.verify_strict(body, &sig).is_ok(), "bad signature");
            let mut other = body.clone();
            other.push(b' ');
            assert!(key.verify_strict(&other, &sig).is_err());
        }
        signed[0].1.clone()
    }
}

fn with_report(t: &TestWorld, r: &Receiver) {
    let mut cfg = std::fs::read_to_string(&t.cfg).unwrap();
    cfg.push_str(&format!(
        "\n[report]\nurl = \"http://{}/report\"\ntimeout = \"2s\"\n",
        r.addr
    ));
    std::fs::write(&t.cfg, cfg).unwrap();
}

async fn install(t: &TestWorld) {
    let a = t.agent().update(fwguard::agent::UpdateMode::Install).await;
    assert!(matches!(a, Ok(fwguard::agent::Action::Reboot(_))), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_and_a_rollback_are_reported_after_they_happen() {
    let mut t = world("off").await;
    let r = Receiver::start(0).await;
    with_report(&t, &r);

    // 1.1: the install says it began and that it armed the trial (before the reboot, with
    // the seconds the trial has); the commit is reported once made.
    t.world.publish(&["1.0", "1.1"]).unwrap();
    install(&t).await;
    assert_eq!(r.results(), ["installing 1.1", "armed 1.1"]);
    assert!(
        t.state().outcomes.is_empty(),
        "delivered, and dropped from the state"
    );
    let armed = &r.accepted()[1];
    assert!(armed["deadline_s"].as_u64().unwrap() > 0, "{armed}");
    t.power_cycle().await;
    t.settle_until(|s| history_has(s, "committed", "1.1") && s.outcomes.is_empty())
        .await;
    let got = r.accepted();
    assert_eq!(
        r.results(),
        ["installing 1.1", "armed 1.1", "committed 1.1"]
    );
    let c = &got[2];
    assert!(c.get("deadline_s").is_none(), "{c}");
    assert_eq!(c["schema"], 1);
    assert_eq!(c["result"], "committed");
    assert_eq!(c["release"], "1.1");
    assert_eq!(c["failing"], serde_json::json!([]));
    assert_eq!(c["device"], t.state().device_id.as_str());
    assert_eq!(c["board"], t.agent().board.id.as_str());
    assert!(c["at"].as_u64().unwrap() > 0);

    // 1.2 breaks the WAN: its install and trial are told, nothing while it fails its checks...
    t.world.publish(&["1.0", "1.1", "1.2"]).unwrap();
    install(&t).await;
    t.power_cycle().await;
    let exit = t.settle().await;
    assert!(matches!(exit, DaemonExit::Reboot(_)), "{exit:?}");
    assert!(matches!(t.state().update, UpdateState::RollingBack { .. }));
    assert_eq!(r.accepted().len(), 5);
    // ...and the rollback, once 1.1 runs again, with the checks that failed.
    let boot = t.power_cycle().await;
    assert_eq!(boot.version.as_str(), "1.1");
    t.settle_until(|s| history_has(s, "rolled-back", "1.2") && s.outcomes.is_empty())
        .await;
    let got = r.accepted();
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got[5]["result"], "rolled-back");
    assert_eq!(got[5]["release"], "1.2");
    let ids: std::collections::BTreeSet<&str> =
        got.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 6, "each report has an id of its own");
    // One device, one key, across its firmwares and reboots.
    r.one_signer();
    let failing: Vec<&str> = got[5]["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(failing.contains(&"internet"), "{failing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_report_stays_queued_and_is_retried_each_round() {
    let mut t = world("off").await;
    let r = Receiver::start(2).await;
    with_report(&t, &r);
    t.world.publish(&["1.0", "1.1"]).unwrap();
    // The install's two reports are refused (the first, then the first again before the
    // reboot): kept in the state, and the install goes on.
    install(&t).await;
    assert_eq!(r.attempts.load(Ordering::SeqCst), 2);
    let queued: Vec<String> = t
        .state()
        .outcomes
        .iter()
        .map(|o| o.result.clone())
        .collect();
    assert_eq!(queued, ["installing", "armed"]);
    t.power_cycle().await;
    t.settle_until(|s| history_has(s, "committed", "1.1")).await;
    t.settle_until(|s| s.outcomes.is_empty()).await;
    assert_eq!(r.attempts.load(Ordering::SeqCst), 5);
    assert_eq!(
        r.results(),
        ["installing 1.1", "armed 1.1", "committed 1.1"]
    );
    r.one_signer();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_report_url_nothing_is_queued() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    install(&t).await;
    t.power_cycle().await;
    t.settle().await;
    assert!(history_has(&t.state(), "committed", "1.1"));
    assert!(t.state().outcomes.is_empty());
}

/// The commonest brick: a firmware that never reaches userspace, so fwguard never runs on
/// it. Once the bootloader gives it up, the old firmware's fwguard reports exactly one
/// `trial-failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_the_bootloader_gave_up_before_fwguard_ran_is_reported_once() {
    let mut t = world("off").await;
    let r = Receiver::start(0).await;
    with_report(&t, &r);
    t.world.add_image("1.3", common::PANICS).unwrap();
    t.world.publish(&["1.0", "1.3"]).unwrap();
    install(&t).await;
    // The sim's U-Boot tries slot B until its boot limit, then boots A again.
    let back = t.power_cycle().await;
    assert_eq!(back.slot, fwguard::Slot::A);
    assert!(
        back.log.iter().any(|l| l.contains("ROLLBACK from B")),
        "{:?}",
        back.log
    );
    t.settle_until(|s| history_has(s, "trial-failed", "1.3") && s.outcomes.is_empty())
        .await;
    // A later round sends nothing more.
    common::run_daemon_for(t.agent(), 1500).await;
    let got = r.accepted();
    assert_eq!(
        r.results(),
        ["installing 1.3", "armed 1.3", "trial-failed 1.3"]
    );
    assert!(
        got[2]["detail"]
            .as_str()
            .unwrap()
            .contains("never reached userspace"),
        "{}",
        got[2]
    );
}

/// The public key (base64) of the report key in `t`'s state.
fn state_key(t: &TestWorld) -> String {
    use base64::Engine as _;
    let seed: [u8; 32] = hex::decode(t.state().report_key)
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
}

/// The daemon says hello at each start, signed with the key the state keeps: a fresh device
/// (no state file yet) saves its identity first, once; a later start writes nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_says_hello_at_each_start_and_writes_nothing_for_it() {
    let mut t = world("off").await;
    let r = Receiver::start(0).await;
    with_report(&t, &r);
    let state_file = t.settings().state_dir.join("state.json");
    assert!(!state_file.exists(), "a fresh device");
    common::run_daemon_until(t.agent(), || r.hellos().len() == 1).await;
    // The identity it signed with is the one now in its state file.
    let saved = std::fs::read(&state_file).expect("the identity saved");
    assert_eq!(r.one_signer(), state_key(&t));
    let h = &r.hellos()[0];
    assert_eq!(h["schema"], 1);
    assert_eq!(h["device"], t.state().device_id.as_str());
    assert_eq!(h["board"], t.agent().board.id.as_str());
    assert!(!h["id"].as_str().unwrap().is_empty(), "{h}");
    assert!(r.accepted().is_empty(), "a hello is no report");
    // The next start: hello again, same key, and not a byte written anywhere.
    let before = t.snapshot();
    common::run_daemon_until(t.agent(), || r.hellos().len() == 2).await;
    assert_eq!(std::fs::read(&state_file).unwrap(), saved);
    assert_eq!(t.snapshot(), before);
    r.one_signer();
    assert_ne!(r.hellos()[0]["id"], r.hellos()[1]["id"]);
    // Once the running firmware is known (after a check), the hello says which it is.
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().check().await.unwrap();
    common::run_daemon_until(t.agent(), || r.hellos().len() == 3).await;
    assert_eq!(r.hellos()[2]["release"], "1.0");
}

/// A state written by an fwguard that had no report key yet: the daemon saves the key it
/// makes before saying hello with it, so what it signs with is what it keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_without_a_report_key_keeps_the_one_its_first_hello_is_signed_with() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().check().await.unwrap();
    let state_file = t.settings().state_dir.join("state.json");
    let text = std::fs::read_to_string(&state_file).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("report_key");
    std::fs::write(&state_file, v.to_string()).unwrap();
    let r = Receiver::start(0).await;
    with_report(&t, &r);
    common::run_daemon_until(t.agent(), || r.hellos().len() == 1).await;
    assert_eq!(r.one_signer(), state_key(&t));
    assert_eq!(state_key(&t), state_key(&t), "kept in the file");
}

/// A hello not taken is said again the next round; once taken, not again until the next
/// start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_not_taken_is_said_again_next_round_and_then_no_more() {
    let t = world("off").await;
    let r = Receiver::start_with(0, 1).await;
    with_report(&t, &r);
    // Rounds each second: the first refused, the second taken, then three more rounds.
    common::run_daemon_for(t.agent(), 4500).await;
    assert_eq!(r.hello_attempts.load(Ordering::SeqCst), 2);
    assert_eq!(r.hellos().len(), 1);
}
