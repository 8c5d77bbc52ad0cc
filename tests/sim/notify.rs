//! `[[notify]]` on the sim router: an ntfy topic and a webhook on loopback, and a command
//! sink, each told every event once, with the documented fields; a receiver that is down
//! delays neither a commit nor a rollback and costs no state write per retry.

use super::common;

use common::{world, TestWorld, FAST_TRIAL, PANICS};
use fwguard::agent::DaemonExit;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as received: its head (lower case) and body.
#[derive(Debug, Clone)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP receiver on loopback: keeps what it is sent, answers `status`; with `answer`
/// false it takes the connection and never answers.
#[derive(Clone)]
struct Inbox {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Request>>>,
    attempts: Arc<AtomicUsize>,
}

impl Inbox {
    async fn start(status: u16, answer: bool) -> Inbox {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inbox = Inbox {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
            attempts: Arc::default(),
        };
        let me = inbox.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    me.attempts.fetch_add(1, Ordering::SeqCst);
                    if !answer {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        return;
                    }
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (end, len) = loop {
                        let n = conn.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "request cut short");
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .map_or(0, |n| n.trim().parse().unwrap());
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < end + len {
                        let n = conn.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    me.got.lock().unwrap().push(Request {
                        head: String::from_utf8_lossy(&buf[..end]).to_lowercase(),
                        body: buf[end..end + len].to_vec(),
                    });
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    conn.write_all(answer.as_bytes()).await.unwrap();
                });
            }
        });
        inbox
    }

    fn got(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }
}

/// The three sinks of a test: an ntfy topic, a webhook, and a command that appends each
/// notification to a file, one line each.
struct Sinks {
    ntfy: Inbox,
    hook: Inbox,
    file: std::path::PathBuf,
}

impl Sinks {
    async fn start(t: &TestWorld) -> Sinks {
        Sinks {
            ntfy: Inbox::start(200, true).await,
            hook: Inbox::start(204, true).await,
            file: t.world.root.join("notices.jsonl"),
        }
    }

    fn config(&self) -> String {
        format!(
            r#"
[[notify]]
kind = "ntfy"
url = "http://{}/router-topic-s3cret"
token = "tk_s3cret"
retry_after = "100ms"

[[notify]]
kind = "webhook"
url = "http://{}/hook"
retry_after = "100ms"

[[notify]]
kind = "command"
command = ["/bin/sh", "-c", "cat >> '{}' && echo >> '{}'"]
"#,
            self.ntfy.addr,
            self.hook.addr,
            self.file.display(),
            self.file.display()
        )
    }

    /// The events the webhook and the command got (in order), once all three sinks have
    /// `n` each, or after 10 s.
    async fn events(&self, n: usize) -> (Vec<Value>, Vec<Value>) {
        let lines = || -> Vec<Value> {
            std::fs::read_to_string(&self.file)
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until
            && (self.ntfy.got().len() < n || self.hook.got().len() < n || lines().len() < n)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Anything sent twice would arrive meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let hook: Vec<Value> = self.hook.got().iter().map(Request::json).collect();
        (hook, lines())
    }
}

fn configure(t: &TestWorld, agent: &str, notify: &str) {
    t.world.write_config(agent, FAST_TRIAL).unwrap();
    let mut cfg = std::fs::read_to_string(&t.cfg).unwrap();
    cfg.push_str(notify);
    std::fs::write(&t.cfg, cfg).unwrap();
}

fn kinds(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|n| {
            format!(
                "{} {}",
                n["event"].as_str().unwrap(),
                n["version"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

#[tokio::test]
async fn every_sink_is_told_each_event_once() {
    let mut t = world("auto").await;
    let sinks = Sinks::start(&t).await;
    configure(&t, "policy = \"auto\"\nmax_rollbacks = 1", &sinks.config());
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert!(matches!(t.settle().await, DaemonExit::Reboot(_)));
    assert_eq!(t.power_cycle().await.version.as_str(), "1.1");
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    // 1.2 breaks the WAN: rolled back, and with max_rollbacks 1 the daemon pauses.
    t.world.publish(&["1.0", "1.1", "1.2"]).unwrap();
    assert!(matches!(t.settle().await, DaemonExit::Reboot(_)));
    assert_eq!(t.power_cycle().await.version.as_str(), "1.2");
    assert!(matches!(t.settle().await, DaemonExit::Reboot(_)));
    assert_eq!(t.power_cycle().await.version.as_str(), "1.1");
    assert_eq!(t.settle().await, DaemonExit::Stopped);

    let want = [
        "installed 1.1",
        "committed 1.1",
        "installed 1.2",
        "rolled-back 1.2",
        "paused -",
    ];
    let (hook, lines) = sinks.events(want.len()).await;
    assert_eq!(kinds(&hook), want);
    assert_eq!(kinds(&lines), want);
    let ntfy = sinks.ntfy.got();
    assert_eq!(ntfy.len(), want.len());
    let rolled = &hook[3];
    assert_eq!(rolled["schema"], 1);
    assert_eq!(rolled["board"], "sim");
    assert_eq!(rolled["running"], "1.1");
    assert!(!rolled["device"].as_str().unwrap().is_empty());
    assert!(rolled["at"].as_u64().unwrap() > 0);
    let failing = rolled["failing"].as_array().unwrap();
    assert!(!failing.is_empty(), "{rolled}");
    let message = rolled["message"].as_str().unwrap();
    assert!(message.contains("`fwguard pin 1.2`"), "{message}");
    // ntfy: the message as the body, title and priority as headers, the token as bearer.
    let r = ntfy
        .iter()
        .find(|r| r.header("title") == Some("fwguard: 1.2 rolled back"))
        .unwrap_or_else(|| panic!("{ntfy:?}"));
    assert!(
        r.head.starts_with("post /router-topic-s3cret "),
        "{}",
        r.head
    );
    assert_eq!(r.header("authorization"), Some("bearer tk_s3cret"));
    assert_eq!(r.header("priority"), Some("high"));
    assert_eq!(String::from_utf8_lossy(&r.body), message);
    let installed = &ntfy[0];
    assert_eq!(installed.header("priority"), Some("default"));
    // Nothing kept on the device names the topic or the token.
    for dir in [t.settings().state_dir, t.settings().runtime_dir] {
        for f in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read(f.unwrap().path()).unwrap();
            assert!(
                !String::from_utf8_lossy(&text).contains("s3cret"),
                "{}",
                dir.display()
            );
        }
    }
}

#[tokio::test]
async fn an_update_available_a_wait_for_the_owner_and_a_given_up_boot_are_told_once() {
    let mut t = world("notify").await;
    let sinks = Sinks::start(&t).await;
    configure(&t, "policy = \"notify\"", &sinks.config());
    t.world.publish(&["1.0", "1.1"]).unwrap();
    // Three rounds: told once.
    let rounds = t.index_fetches() + 3;
    assert_eq!(
        common::run_daemon_until(t.agent(), || t.index_fetches() >= rounds).await,
        DaemonExit::Stopped
    );
    let (hook, _) = sinks.events(1).await;
    assert_eq!(kinds(&hook), ["update-available 1.1"]);
    let m = hook[0]["message"].as_str().unwrap();
    assert!(m.contains("`fwguard update` installs it"), "{m}");
    // Policy approve: staged, and the owner is asked, once.
    t.agent()
        .set_policy(fwguard::config::Policy::Approve)
        .unwrap();
    let rounds = t.index_fetches() + 3;
    assert_eq!(
        common::run_daemon_until(t.agent(), || t.index_fetches() >= rounds).await,
        DaemonExit::Stopped
    );
    let (hook, _) = sinks.events(2).await;
    assert_eq!(kinds(&hook), ["update-available 1.1", "needs-owner 1.1"]);
    // A firmware that never boots: the bootloader gives it up.
    t.world.add_image("1.3", PANICS).unwrap();
    t.world.publish(&["1.0", "1.3"]).unwrap();
    t.agent()
        .update(fwguard::agent::UpdateMode::Install)
        .await
        .unwrap();
    assert_eq!(t.power_cycle().await.version.as_str(), "1.0");
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    let (hook, lines) = sinks.events(3).await;
    assert_eq!(kinds(&hook)[2], "given-up 1.3");
    assert_eq!(kinds(&lines), kinds(&hook));
    assert!(hook[2]["message"]
        .as_str()
        .unwrap()
        .contains("never reached userspace"));
}

#[tokio::test]
async fn a_held_version_below_the_security_floor_asks_the_owner_once() {
    use common::trust::{fresh, publish};
    let mut t = world("auto").await;
    let sinks = Sinks::start(&t).await;
    configure(&t, "policy = \"auto\"", &sinks.config());
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent().check().await.unwrap();
    t.agent().hold().unwrap();
    let mut d = fresh(&t, 9, &["1.0", "1.1"]);
    d.set_security_floor("sim", Some("1.1".parse().unwrap()));
    publish(&t, &d, &[&t.world.key]);
    let rounds = t.index_fetches() + 3;
    assert_eq!(
        common::run_daemon_until(t.agent(), || t.index_fetches() >= rounds).await,
        DaemonExit::Stopped
    );
    let (hook, _) = sinks.events(1).await;
    assert_eq!(kinds(&hook), ["needs-owner 1.0"]);
    let m = hook[0]["message"].as_str().unwrap();
    assert!(
        m.contains("below 1.1") && m.contains("`fwguard release`"),
        "{m}"
    );
    // Released, it updates: nothing more to ask.
    t.agent().unpin().unwrap();
    assert!(matches!(t.settle().await, DaemonExit::Reboot(_)));
    assert_eq!(sinks.events(1).await.0.len(), 1);
}

/// Commit 1.1, then roll back 1.2, timing the daemon's judgement of each trial.
async fn judge_both(t: &mut TestWorld) -> (Duration, Duration) {
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert!(matches!(t.settle().await, DaemonExit::Reboot(_)));
    t.power_cycle().await;
    let start = Instant::now();
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    let commit = start.elapsed();
    t.world.publish(&["1.0", "1.1", "1.2"]).unwrap();
    assert!(matches!(t.settle().await, DaemonExit::Reboot(_)));
    t.power_cycle().await;
    let start = Instant::now();
    assert!(matches!(t.settle().await, DaemonExit::Reboot(_)));
    let rollback = start.elapsed();
    t.power_cycle().await;
    assert_eq!(t.settle().await, DaemonExit::Stopped);
    (commit, rollback)
}

#[tokio::test]
async fn a_receiver_that_is_down_delays_nothing_and_writes_nothing() {
    let mut plain = world("auto").await;
    let (commit0, rollback0) = judge_both(&mut plain).await;

    let mut t = world("auto").await;
    // One never answers, one refuses every request (counted), one is not there at all.
    let hole = Inbox::start(200, false).await;
    let refusing = Inbox::start(503, true).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let notify = format!(
        r#"
[[notify]]
kind = "webhook"
url = "http://{}/hook"
timeout = "30s"

[[notify]]
kind = "webhook"
url = "http://{}/hook"
retries = 3
retry_after = "200ms"

[[notify]]
kind = "ntfy"
url = "http://{closed}/topic"
retry_after = "100ms"
"#,
        hole.addr, refusing.addr
    );
    configure(&t, "policy = \"auto\"", &notify);
    let (commit, rollback) = judge_both(&mut t).await;
    let slack = Duration::from_millis(500);
    assert!(
        commit <= commit0 * 3 / 2 + slack,
        "commit {commit:?}, without notifications {commit0:?}"
    );
    assert!(
        rollback <= rollback0 * 3 / 2 + slack,
        "rollback {rollback:?}, without notifications {rollback0:?}"
    );
    // The retries of the last notices (rolled-back) go on; the state is not written for
    // them.
    let state = t.settings().state_dir.join("state.json");
    let before = (
        std::fs::read(&state).unwrap(),
        std::fs::metadata(&state).unwrap().modified().unwrap(),
    );
    let attempts = refusing.attempts.load(Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs(10);
    while refusing.attempts.load(Ordering::SeqCst) < attempts + 3 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refusing.attempts.load(Ordering::SeqCst) >= attempts + 3,
        "retried"
    );
    let after = (
        std::fs::read(&state).unwrap(),
        std::fs::metadata(&state).unwrap().modified().unwrap(),
    );
    assert!(
        before == after,
        "the state was written while notifications were retried"
    );
    // Each notice: the first attempt and 3 retries, then given up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(refusing.attempts.load(Ordering::SeqCst) % 4, 0);
    assert!(refusing
        .got()
        .iter()
        .all(|r| r.head.starts_with("post /hook ")));
}

#[test]
fn bad_notify_tables_are_named() {
    let example = include_str!("../../packaging/config.toml");
    let parse = |extra: &str| {
        fwguard::config::Settings::parse(
            std::path::Path::new("/etc/fwguard/config.toml"),
            &format!("{example}\n{extra}"),
        )
        .map(|s| s.notify)
        .map_err(|e| e.to_string())
    };
    for (extra, want) in [
        (
            "[[notify]]\nkind = \"email\"",
            "notify[0].kind`: \"email\" is not \"ntfy\", \"webhook\" or \"command\"",
        ),
        ("[[notify]]\nkind = \"ntfy\"", "notify[0].url`: is missing"),
        (
            "[[notify]]\nkind = \"ntfy\"\nurl = \"ftp://x/y\"",
            "scheme \"ftp\" is not http or https",
        ),
        (
            "[[notify]]\nkind = \"webhook\"\nurl = \"http://x/\"\ntoken = \"t\"",
            "notify[0].token`: is for kind ntfy",
        ),
        (
            "[[notify]]\nkind = \"command\"\ncommand = []",
            "notify[0].command`: must name a program",
        ),
        (
            "[[notify]]\nkind = \"command\"\ncommand = [\"x\"]\nurl = \"http://x/\"",
            "notify[0].url`: is for kind ntfy or webhook",
        ),
        (
            "[[notify]]\nkind = \"ntfy\"\nurl = \"http://x/\"\nevents = [\"rebooted\"]",
            "\"rebooted\" is not one of update-available, installed",
        ),
        (
            "[[notify]]\nkind = \"ntfy\"\nurl = \"http://x/\"\nevents = []",
            "lists no event",
        ),
        (
            "[[notify]]\nkind = \"ntfy\"\nurl = \"http://x/\"\nretries = 11",
            "notify[0].retries`: must be at most 10",
        ),
        (
            "[[notify]]\nkind = \"ntfy\"\nurl = \"http://x/\"\ntopic = \"a\"",
            "notify[0]`: unknown field `topic`",
        ),
        (
            "[[notify]]\nkind = \"ntfy\"\nurl = \"http://x/\"\ntoken = \"a\\nb\"",
            "must be one non-empty line",
        ),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    let n = parse("[[notify]]\nkind = \"ntfy\"\nurl = \"https://ntfy.sh/t\"\nevents = [\"rolled-back\", \"paused\"]")
        .unwrap();
    assert_eq!(n[0].events.len(), 2);
    assert_eq!((n[0].retries, n[0].timeout), (3, Duration::from_secs(10)));
}
