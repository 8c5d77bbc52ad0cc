//! The daemon's log of notifications that fail: the sink named by its scheme and host, the
//! retries counted, and neither the topic in the URL nor the token.

use super::common;

use common::{world, BIN, FAST_TRIAL};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_notification_is_logged_without_its_secrets() {
    let mut t = world("notify").await;
    // Refuses every request, after reading it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 8192];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    t.world
        .write_config("policy = \"notify\"", FAST_TRIAL)
        .unwrap();
    let mut cfg = std::fs::read_to_string(&t.cfg).unwrap();
    cfg.push_str(&format!(
        "\n[[notify]]\nkind = \"ntfy\"\nurl = \"http://u:pw-s3cret@{addr}/topic-s3cret?auth=s3cret\"\ntoken = \"tk_s3cret\"\nretries = 1\nretry_after = \"100ms\"\n"
    ));
    std::fs::write(&t.cfg, cfg).unwrap();
    t.world.publish(&["1.0", "1.1"]).unwrap();

    let mut child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&t.cfg)
        .arg("daemon")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await {
            Ok(Ok(Some(l))) => {
                let done = l.contains("given up after 2 attempts");
                log.push(l);
                if done {
                    break;
                }
            }
            Ok(_) => break,
            Err(_) => {}
        }
    }
    child.kill().await.unwrap();
    let log = log.join("\n");
    let sink = format!("ntfy http://{addr}/…");
    assert!(
        log.contains(&format!("notification update-available to {sink} failed"))
            && log.contains("retried in 100ms")
            && log.contains(&format!("to {sink} failed"))
            && log.contains("given up after 2 attempts"),
        "{log}"
    );
    assert!(log.contains("503"), "{log}");
    assert!(!log.contains("s3cret"), "{log}");
}

/// A commit followed at once by an install that reboots: the commit's notification (held
/// up by a slow receiver) is delivered before the daemon process ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_being_told_is_delivered_before_a_reboot() {
    let mut t = world("auto").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                while !String::from_utf8_lossy(&buf).contains("}") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
                let text = String::from_utf8_lossy(&buf).into_owned();
                let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
                let n: serde_json::Value = serde_json::from_str(body).unwrap();
                seen.lock()
                    .unwrap()
                    .push(format!("{} {}", n["event"], n["version"]));
                let _ = conn
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert!(matches!(
        t.settle().await,
        fwguard::agent::DaemonExit::Reboot(_)
    ));
    assert_eq!(t.power_cycle().await.version.as_str(), "1.1");
    t.world.publish(&["1.0", "1.1", "1.2"]).unwrap();
    let mut cfg = std::fs::read_to_string(&t.cfg).unwrap();
    cfg.push_str(&format!(
        "\n[[notify]]\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n"
    ));
    std::fs::write(&t.cfg, cfg).unwrap();
    // The trial of 1.1 commits; the next round installs 1.2 and reboots: the process ends.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&t.cfg)
            .arg("daemon")
            .output(),
    )
    .await
    .expect("the daemon reboots")
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(t.world.router.reboot_requested());
    assert_eq!(
        *got.lock().unwrap(),
        ["\"installed\" \"1.1\"", "\"committed\" \"1.1\""]
    );
}
