//! Log lines to the local syslog socket (`--syslog`), for systems where neither procd nor
//! systemd captures stderr: one datagram per event, `<PRI>fwguard[PID]: message` (RFC 3164's
//! local form, which busybox syslogd, OpenWrt's logd, rsyslog and journald all read), in the
//! daemon facility with the event's level as severity.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The daemon facility (3), as RFC 3164 numbers it.
const FACILITY_DAEMON: u8 = 3;

pub struct Syslog {
    sock: UnixDatagram,
    pid: u32,
}

impl Syslog {
    pub fn connect(path: &Path) -> std::io::Result<Syslog> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        Ok(Syslog {
            sock,
            pid: std::process::id(),
        })
    }
}

/// The syslog severity of a tracing level.
fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// One event's text, sent as one datagram when the formatter is done with it.
pub struct Line<'a> {
    to: &'a Syslog,
    severity: u8,
    buf: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let msg = format!(
            "<{}>fwguard[{}]: {text}",
            FACILITY_DAEMON * 8 + self.severity,
            self.to.pid
        );
        // A full or vanished log socket must not stop the agent.
        let _ = self.to.sock.send(msg.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            to: self,
            severity: 6,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            to: self,
            severity: severity(meta.level()),
            buf: Vec::new(),
        }
    }
}
