//! Network probes: link, address, default route, ping, TCP, HTTP. Everything is read from
//! the kernel of the network namespace fwguard runs in (`/sys/class/net`, `getifaddrs`,
//! `/proc/net`), so it judges the router's own view of its WAN.

use std::net::IpAddr;
use std::time::Duration;

/// Which IP family a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    Any,
}

impl Family {
    fn wants(self, ip: &IpAddr) -> bool {
        matches!(
            (self, ip),
            (Family::Any, _) | (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }
}

fn sys(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{path}: {e}"))
}

/// Refuse a name the kernel never gives an interface (its `dev_valid_name`: 1 to 15 bytes,
/// not `.` or `..`, no `/`, `:` or white space), before it becomes a path under /sys.
fn interface_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if bad {
        return Err(format!(
            "{name:?} is not an interface name (1 to 15 bytes, no /, : or space)"
        ));
    }
    Ok(())
}

/// The interface exists, is administratively and operationally up, and has carrier.
pub fn link(interface: &str) -> Result<String, String> {
    interface_name(interface)?;
    let base = format!("/sys/class/net/{interface}");
    if !std::path::Path::new(&base).exists() {
        return Err(format!("no interface {interface}"));
    }
    let oper = sys(&format!("{base}/operstate"))?;
    // A link that is down has no readable carrier (EINVAL).
    let carrier = sys(&format!("{base}/carrier")).unwrap_or_else(|_| "0".into());
    match (oper.as_str(), carrier.as_str()) {
        ("up" | "unknown", "1") => Ok(format!("{interface} is {oper} with carrier")),
        (_, "1") => Err(format!("{interface} is {oper}")),
        _ => Err(format!("{interface} is {oper}, no carrier")),
    }
}

/// Is `ip` usable on the internet side (not loopback, link-local or unspecified)?
fn routable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local() && !a.is_unspecified(),
        IpAddr::V6(a) => {
            !a.is_loopback() && !a.is_unspecified() && (a.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// The interface has an address of the family (a WAN lease), IPv4 or global IPv6.
pub fn address(interface: &str, family: Family) -> Result<String, String> {
    interface_name(interface)?;
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| format!("getifaddrs: {e}"))?;
    let mut found = Vec::new();
    for a in addrs.filter(|a| a.interface_name == interface) {
        let Some(sa) = a.address else { continue };
        let ip = if let Some(v4) = sa.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = sa.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if family.wants(&ip) && routable(&ip) {
            found.push(ip.to_string());
        }
    }
    if found.is_empty() {
        Err(format!(
            "{interface} has no {} address",
            family_name(family)
        ))
    } else {
        Ok(format!("{interface} has {}", found.join(", ")))
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "IPv4",
        Family::V6 => "global IPv6",
        Family::Any => "IPv4 or global IPv6",
    }
}

/// Parse `/proc/net/route` for a default route that is up; returns its interface.
pub fn default_v4(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
        (f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000") && flags & 1 == 1)
            .then(|| f[0].to_string())
    })
}

/// Parse `/proc/net/ipv6_route` for a default route (::/0) that is up and not a reject.
pub fn default_v6(text: &str) -> Option<String> {
    const RTF_UP: u32 = 0x1;
    const RTF_REJECT: u32 = 0x200;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
        let default = f.first()?.chars().all(|c| c == '0') && f.get(1) == Some(&"00");
        (default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && f.get(9) != Some(&"lo"))
            .then(|| f[9].to_string())
    })
}

/// A default route exists for the family.
pub fn route(family: Family) -> Result<String, String> {
    let v4 = || {
        std::fs::read_to_string("/proc/net/route")
            .ok()
            .and_then(|t| default_v4(&t))
    };
    let v6 = || {
        std::fs::read_to_string("/proc/net/ipv6_route")
            .ok()
            .and_then(|t| default_v6(&t))
    };
    let found = match family {
        Family::V4 => v4().map(|i| format!("IPv4 default route via {i}")),
        Family::V6 => v6().map(|i| format!("IPv6 default route via {i}")),
        Family::Any => v4()
            .map(|i| format!("IPv4 default route via {i}"))
            .or_else(|| v6().map(|i| format!("IPv6 default route via {i}"))),
    };
    found.ok_or_else(|| format!("no {} default route", family_name(family)))
}

/// RFC 1071 checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// ICMP echo to `host`: an unprivileged ICMP datagram socket where the kernel allows it
/// (net.ipv4.ping_group_range), a raw socket otherwise (needs CAP_NET_RAW).
pub fn ping(host: IpAddr, timeout: Duration) -> Result<String, String> {
    use nix::sys::socket::{
        recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
        SockType, SockaddrStorage,
    };
    use std::os::fd::AsRawFd;
    let (af, proto, echo, reply) = match host {
        IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp, 8u8, 0u8),
        IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6, 128u8, 129u8),
    };
    let (fd, raw) = match socket(af, SockType::Datagram, SockFlag::SOCK_CLOEXEC, proto) {
        Ok(fd) => (fd, false),
        Err(_) => (
            socket(af, SockType::Raw, SockFlag::SOCK_CLOEXEC, proto)
                .map_err(|e| format!("no ICMP socket (unprivileged ping is off and raw sockets need CAP_NET_RAW): {e}"))?,
            true,
        ),
    };
    // time_t is 32 bits on some router targets: let nix convert.
    let tv = <nix::sys::time::TimeVal as nix::sys::time::TimeValLike>::milliseconds(
        timeout.as_millis() as i64,
    );
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(|e| format!("ICMP socket: {e}"))?;
    let ident = (std::process::id() & 0xffff) as u16;
    let mut pkt = vec![echo, 0, 0, 0];
    pkt.extend_from_slice(&ident.to_be_bytes());
    pkt.extend_from_slice(&1u16.to_be_bytes());
    pkt.extend_from_slice(b"fwguard-health");
    if matches!(host, IpAddr::V4(_)) {
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let dest = SockaddrStorage::from(std::net::SocketAddr::new(host, 0));
    let start = std::time::Instant::now();
    sendto(fd.as_raw_fd(), &pkt, &dest, MsgFlags::empty())
        .map_err(|e| format!("ping {host}: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| match e {
            nix::errno::Errno::EAGAIN => {
                format!("ping {host}: no reply within {} ms", timeout.as_millis())
            }
            e => format!("ping {host}: {e}"),
        })?;
        // A raw IPv4 socket hands over the IP header too.
        let icmp = if raw && matches!(host, IpAddr::V4(_)) {
            let ihl = ((buf[0] & 0x0f) as usize) * 4;
            &buf[ihl.min(n)..n]
        } else {
            &buf[..n]
        };
        if icmp.first() == Some(&reply)
            && (!raw || icmp.get(4..6) == Some(&ident.to_be_bytes()[..]))
        {
            return Ok(format!(
                "reply from {host} in {} ms",
                start.elapsed().as_millis()
            ));
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "ping {host}: no reply within {} ms",
                timeout.as_millis()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_from_proc() {
        let v4 =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  wan\t00000000\t0100FB0A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  wan\t0000FB0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_v4(v4).as_deref(), Some("wan"));
        let no_default = "Iface\tDestination\tGateway\n wan\t0000FB0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_v4(no_default), None);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd00fb00000000000000000000000001 00000400 00000001 00000000 00000003      wan\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        assert_eq!(default_v6(v6).as_deref(), Some("wan"));
        assert_eq!(
            default_v6(v6.lines().nth(1).unwrap()),
            None,
            "the reject route on lo is no default"
        );
    }

    #[test]
    fn names_no_interface_can_have_are_refused_before_any_path_is_built() {
        for bad in [
            "",
            ".",
            "..",
            "../../etc",
            "wan:1",
            "a b",
            "eth\0",
            "sixteen-bytes-xx",
        ] {
            assert!(
                link(bad).unwrap_err().contains("is not an interface name"),
                "{bad:?}"
            );
            assert!(address(bad, Family::Any).is_err(), "{bad:?}");
        }
        assert!(interface_name("wan").is_ok());
        assert!(interface_name("ü".repeat(7).as_str()).is_ok());
        assert!(link("fwg-no-such-if").unwrap_err().contains("no interface"));
    }

    #[test]
    fn icmp_checksum() {
        // Echo request id 0x1234 seq 1, no payload: checksum of 08 00 00 00 12 34 00 01.
        assert_eq!(checksum(&[8, 0, 0, 0, 0x12, 0x34, 0, 1]), 0xe5ca);
    }
}
