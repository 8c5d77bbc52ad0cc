//! The service manager's readiness and watchdog protocol (systemd `sd_notify`): datagrams
//! such as `READY=1` or `WATCHDOG=1` to the socket named by `$NOTIFY_SOCKET`. Without that
//! variable (procd, a shell, tests) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            // An abstract socket is written with a leading '@'.
            let target = if let Some(name) = path.strip_prefix('@') {
                format!("\0{name}")
            } else {
                path
            };
            UnixDatagram::unbound().ok().map(|s| (s, target))
        });
        Notifier { socket }
    }

    pub fn notify(&self, state: &str) {
        let Some((sock, target)) = &self.socket else {
            return;
        };
        let sent = if let Some(name) = target.strip_prefix('\0') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
        } else {
            sock.send_to(state.as_bytes(), target)
        };
        if let Err(e) = sent {
            tracing::warn!("cannot notify the service manager: {e}");
        }
    }

    /// Half the watchdog interval the service manager asked for (`$WATCHDOG_USEC`), if any.
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p == std::process::id().to_string());
        (pid_ok && usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), path.display().to_string())),
        };
        n.notify("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        // Without a socket nothing happens.
        Notifier { socket: None }.notify("READY=1");
    }
}
