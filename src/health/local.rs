//! Probes of the router's own services: a process runs, a port listens, a vendor command
//! succeeds, the clock has been set.

/// A process whose name (`/proc/PID/comm`, or the executable's file name) is `name` runs.
pub fn process(name: &str) -> Result<String, String> {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    for e in dir.flatten() {
        let file_name = e.file_name();
        let Some(pid) = file_name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // Bytes: a name cut by the kernel may end inside a character (not UTF-8).
        let comm = std::fs::read(e.path().join("comm")).unwrap_or_default();
        let exe = std::fs::read_link(e.path().join("exe")).ok();
        let exe = exe
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|f| f.as_bytes());
        if comm_matches(&comm, name) || (!name.is_empty() && exe == Some(name.as_bytes())) {
            return Ok(format!("{name} runs as pid {pid}"));
        }
    }
    Err(format!("no process named {name}"))
}

/// The kernel keeps the first 15 bytes of a process name in `/proc/PID/comm` (16 with the
/// NUL), cutting a character in two if need be: compare bytes, as it does.
fn comm_matches(comm: &[u8], name: &str) -> bool {
    const TASK_COMM_MAX: usize = 15;
    let comm = comm.strip_suffix(b"\n").unwrap_or(comm);
    let name = name.as_bytes();
    let cut = &name[..name.len().min(TASK_COMM_MAX)];
    !name.is_empty() && comm == cut
}

/// Transport of a `listen` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Ports with a listening (TCP) or bound (UDP) socket in a `/proc/net/{tcp,udp}{,6}` table.
pub fn listening_ports(table: &str, proto: Proto) -> Vec<u16> {
    // TCP_LISTEN is 0x0A; an unconnected UDP socket is TCP_CLOSE, 0x07.
    let want = match proto {
        Proto::Tcp => "0A",
        Proto::Udp => "07",
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = f.get(1)?.rsplit(':').next()?;
            (f.get(3) == Some(&want))
                .then(|| u16::from_str_radix(port, 16).ok())
                .flatten()
        })
        .collect()
}

/// Something listens on `port` (TCP) or has it bound (UDP), IPv4 or IPv6.
pub fn listen(port: u16, proto: Proto) -> Result<String, String> {
    let files: &[&str] = match proto {
        Proto::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
        Proto::Udp => &["/proc/net/udp", "/proc/net/udp6"],
    };
    let name = if proto == Proto::Tcp { "TCP" } else { "UDP" };
    for f in files {
        if let Ok(t) = std::fs::read_to_string(f) {
            if listening_ports(&t, proto).contains(&port) {
                return Ok(format!("{name} port {port} is listening"));
            }
        }
    }
    Err(format!("nothing listens on {name} port {port}"))
}

/// No clock that has been set reads earlier than this (2025-01-01, before fwguard existed).
pub const PLAUSIBLE_TIME: u64 = 1_735_689_600;

/// The kernel says the clock is synchronised (NTP), or the clock is past `floor` (the
/// firmware's build time or the newest trusted time seen, at least [`PLAUSIBLE_TIME`]), so
/// it has been set since boot.
pub fn clock(now: u64, floor: u64) -> Result<String, String> {
    let floor = floor.max(PLAUSIBLE_TIME);
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state into `tx`.
    let mut tx: nix::libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { nix::libc::adjtimex(&mut tx) };
    const TIME_ERROR: i32 = 5;
    const STA_UNSYNC: i32 = 0x0040;
    if state >= 0 && state != TIME_ERROR && tx.status & STA_UNSYNC == 0 {
        return Ok("the kernel clock is synchronised".into());
    }
    if now >= floor {
        return Ok(format!(
            "the clock ({}) is past the time floor ({})",
            crate::time::format_time(now),
            crate::time::format_time(floor)
        ));
    }
    Err(format!(
        "the clock is not synchronised and reads {}, before the time floor {}",
        crate::time::format_time(now),
        crate::time::format_time(floor)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
                   1: 0100007F:0050 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2\n";
        assert_eq!(listening_ports(tcp, Proto::Tcp), vec![8080]);
        let udp = "  sl  local_address rem_address   st\n 7: 00000000:0035 00000000:0000 07 00000000:00000000\n";
        assert_eq!(listening_ports(udp, Proto::Udp), vec![53]);
    }

    #[test]
    fn a_long_name_matches_its_first_15_bytes_even_inside_a_character() {
        let name = "ü".repeat(10); // 20 bytes: byte 15 is inside the 8th character
        let comm = [&name.as_bytes()[..15], b"\n"].concat();
        assert!(comm_matches(&comm, &name));
        assert!(comm_matches(b"dnsmasq\n", "dnsmasq"));
        assert!(!comm_matches(b"dnsmasq\n", "dnsmas"));
        assert!(comm_matches(b"averylongdaemon\n", "averylongdaemonname"));
        assert!(!comm_matches(b"\n", ""));
        assert!(!comm_matches(&comm, &"ü".repeat(7)));
    }

    #[test]
    fn this_process_is_found() {
        let me = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(process(me.trim()).is_ok());
        assert!(process("no-such-process-fwguard").is_err());
    }

    #[test]
    fn clock_against_the_floor() {
        // Either the kernel says synchronised, or the floor decides.
        assert!(clock(2_000_000_000, 1_000_000_000).is_ok());
        let r = clock(0, 1_793_491_200);
        if let Err(why) = r {
            assert!(why.contains("before the time floor"), "{why}");
        }
    }
}
