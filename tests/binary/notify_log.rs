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
                .write_all(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n")
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
