//! `--syslog[=SOCKET]`: log lines go to the local syslog socket as `<PRI>fwguard[PID]: …`
//! datagrams (daemon facility, the level as severity) instead of stderr.

use super::common;

use common::{world, BIN};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn received(sock: &UnixDatagram) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_go_to_the_syslog_socket_with_their_severity() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let path = t.world.root.join("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let syslog = format!("--syslog={}", path.display());
    let cfg = t.cfg.to_str().unwrap().to_string();

    let child = std::process::Command::new(BIN)
        .args([&syslog, "--config", &cfg, "check"])
        .output()
        .unwrap();
    assert_eq!(child.status.code(), Some(0), "{child:?}");
    let lines = received(&sock);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<30>fwguard[") && l.ends_with("]: accepted index version 1")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.ends_with('\n')),
        "one line per datagram, no newline: {lines:?}"
    );
    // Nothing but the command's own output: the log lines are not on stderr too.
    assert!(
        child.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );

    // An error: logged as an error (severity 3) and still printed on stderr.
    std::fs::remove_file(t.world.www.join("index.toml")).unwrap();
    let child = std::process::Command::new(BIN)
        .args([&syslog, "--config", &cfg, "check"])
        .output()
        .unwrap();
    assert_eq!(child.status.code(), Some(7));
    let err = String::from_utf8_lossy(&child.stderr);
    let message = err
        .strip_prefix("fwguard: error: ")
        .unwrap_or_else(|| panic!("{err}"))
        .trim_end();
    assert!(
        message.contains("index.toml") && message.contains("404"),
        "{message}"
    );
    let lines = received(&sock);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<27>fwguard[") && l.ends_with(&format!("]: {message}"))),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_syslog_socket_the_log_stays_on_stderr_saying_why() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let absent = t.world.root.join("no-such.sock");
    let o = std::process::Command::new(BIN)
        .arg(format!("--syslog={}", absent.display()))
        .args(["--config", t.cfg.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot log to syslog at") && err.contains("no-such.sock"),
        "{err}"
    );
    assert!(err.contains("logging to stderr"), "{err}");
    assert!(err.contains("INFO accepted index version 1"), "{err}");
}

/// Fill the receive queue of the socket at `path` (bound, never read) until no sender can add
/// to it: a syslog daemon that stopped reading.
fn fill(path: &std::path::Path) -> Vec<UnixDatagram> {
    let mut senders = Vec::new();
    for _ in 0..1000 {
        let s = UnixDatagram::unbound().unwrap();
        s.connect(path).unwrap();
        s.set_nonblocking(true).unwrap();
        let mut sent = 0;
        while s.send(b"<30>filler: a line nobody reads").is_ok() {
            sent += 1;
        }
        senders.push(s);
        if sent == 0 {
            return senders;
        }
    }
    panic!("the socket at {} never filled", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syslog_socket_nobody_reads_drops_lines_instead_of_blocking_the_agent() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let path = t.world.root.join("log.sock");
    let _unread = UnixDatagram::bind(&path).unwrap();
    let _fillers = fill(&path);
    let run = tokio::process::Command::new(BIN)
        .arg(format!("--syslog={}", path.display()))
        .args(["-vv", "--config", t.cfg.to_str().unwrap(), "check"])
        .kill_on_drop(true)
        .output();
    let o = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("fwguard check ends although its syslog socket is full")
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}
