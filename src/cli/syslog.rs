//! Log lines to the local syslog socket (`--syslog`), for systems where neither procd nor
//! systemd captures stderr: one datagram per event, `<PRI>fwguard[PID]: message` (RFC 3164's
//! local form, which busybox syslogd, OpenWrt's logd, rsyslog and journald all read), in the
//! daemon facility with the event's level as severity.
//!
//! The socket never blocks: a syslog daemon that stopped reading must not stop the agent (its
//! runtime is one thread). A line that cannot be sent is dropped and counted, and the next
//! line that can be sent is preceded by one saying how many were lost.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Level;

/// The daemon facility (3), as RFC 3164 numbers it.
const FACILITY_DAEMON: u8 = 3;

pub struct Syslog {
    sock: UnixDatagram,
    pid: u32,
    /// Lines dropped since the last one sent.
    dropped: AtomicU64,
}

impl Syslog {
    pub fn connect(path: &Path) -> std::io::Result<Syslog> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        sock.set_nonblocking(true)?;
        Ok(Syslog {
            sock,
            pid: std::process::id(),
            dropped: AtomicU64::new(0),
        })
    }

    fn datagram(&self, severity: u8, text: &str) -> String {
        format!(
            "<{}>fwguard[{}]: {text}",
            FACILITY_DAEMON * 8 + severity,
            self.pid
        )
    }

    /// Send one line without blocking; a full or vanished socket drops it (counted).
    pub fn send(&self, severity: u8, text: &str) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            let note = format!("{dropped} log line(s) dropped: the syslog socket was full");
            if self.sock.send(self.datagram(4, &note).as_bytes()).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.dropped.fetch_sub(dropped, Ordering::Relaxed);
        }
        if self
            .sock
            .send(self.datagram(severity, text).as_bytes())
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The syslog severity of a tracing level.
pub fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &UnixDatagram) -> Vec<String> {
        rx.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while let Ok(n) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    }

    #[test]
    fn a_full_syslog_socket_drops_lines_without_blocking_and_a_later_line_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let log = std::sync::Arc::new(Syslog::connect(&path).unwrap());
        let writer = log.clone();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for i in 0..2000 {
                writer.send(6, &format!("line {i}"));
            }
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("2000 lines to a socket nobody reads are written without blocking");
        let dropped = log.dropped.load(Ordering::Relaxed);
        let kept = drain(&rx);
        assert!(dropped > 0, "the socket took all 2000 lines");
        assert_eq!(kept.len() as u64 + dropped, 2000);
        log.send(6, "after");
        let pid = std::process::id();
        assert_eq!(
            drain(&rx),
            [
                format!(
                    "<28>fwguard[{pid}]: {dropped} log line(s) dropped: the syslog socket was full"
                ),
                format!("<30>fwguard[{pid}]: after"),
            ]
        );
        assert_eq!(log.dropped.load(Ordering::Relaxed), 0);
    }
}
