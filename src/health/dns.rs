//! The `dns` check: a name resolves, through the system resolver or by asking a given
//! server directly (a minimal A/AAAA query over UDP, retried over TCP when truncated).

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resolve through the system resolver (getaddrinfo: /etc/hosts, /etc/resolv.conf).
pub async fn system(name: &str) -> Result<String, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|e| format!("{name}: {e}"))?
        .collect();
    match addrs.first() {
        Some(a) => Ok(format!("{name} is {}", a.ip())),
        None => Err(format!("{name}: no address")),
    }
}

/// A DNS query for `name` (type A) with id `id`, recursion desired.
pub fn query(name: &str, id: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a valid DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    Ok(q)
}

/// What a response says: Ok(number of answers) or the failure. `Err(None)` asks for TCP.
pub fn answer(resp: &[u8], id: u16) -> Result<u16, Option<String>> {
    if resp.len() < 12 || resp[0..2] != id.to_be_bytes() {
        return Err(Some("malformed or unrelated DNS response".into()));
    }
    let (flags_hi, flags_lo) = (resp[2], resp[3]);
    if flags_hi & 0x80 == 0 {
        return Err(Some("DNS response is a query".into()));
    }
    if flags_hi & 0x02 != 0 {
        return Err(None);
    }
    match flags_lo & 0x0f {
        0 => {}
        3 => return Err(Some("no such name (NXDOMAIN)".into())),
        2 => return Err(Some("server failure (SERVFAIL)".into())),
        5 => return Err(Some("query refused (REFUSED)".into())),
        rc => return Err(Some(format!("DNS error code {rc}"))),
    }
    let count = u16::from_be_bytes([resp[6], resp[7]]);
    if count == 0 {
        return Err(Some("no answer".into()));
    }
    Ok(count)
}

/// Ask `server` directly.
pub async fn direct(name: &str, server: SocketAddr) -> Result<String, String> {
    let mut idb = [0u8; 2];
    getrandom::getrandom(&mut idb).map_err(|e| e.to_string())?;
    let id = u16::from_be_bytes(idb);
    let q = query(name, id)?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("UDP socket: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    sock.send(&q).await.map_err(|e| format!("{server}: {e}"))?;
    let mut buf = vec![0u8; 1500];
    let n = sock
        .recv(&mut buf)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let count = match answer(&buf[..n], id) {
        Ok(c) => c,
        Err(Some(why)) => return Err(format!("{name} at {server}: {why}")),
        Err(None) => tcp(&q, id, server)
            .await
            .map_err(|why| format!("{name} at {server} over TCP: {why}"))?,
    };
    Ok(format!("{name} resolved by {server} ({count} answer(s))"))
}

async fn tcp(q: &[u8], id: u16, server: SocketAddr) -> Result<u16, String> {
    let mut s = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(q);
    s.write_all(&msg).await.map_err(|e| e.to_string())?;
    let len = s.read_u16().await.map_err(|e| e.to_string())? as usize;
    let mut resp = vec![0u8; len];
    s.read_exact(&mut resp).await.map_err(|e| e.to_string())?;
    answer(&resp, id).map_err(|e| e.unwrap_or_else(|| "truncated over TCP too".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_answers() {
        let q = query("fwguard.test", 0xbeef).unwrap();
        assert_eq!(&q[..4], &[0xbe, 0xef, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x07fwguard\x04test\x00\x00\x01\x00\x01");
        assert!(query("a..b", 1).is_err());
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        assert_eq!(answer(&r, 0xbeef), Ok(1));
        r[3] = 0x83;
        assert_eq!(
            answer(&r, 0xbeef),
            Err(Some("no such name (NXDOMAIN)".into()))
        );
        r[2] = 0x83;
        assert_eq!(answer(&r, 0xbeef), Err(None), "truncated: retry over TCP");
        assert!(answer(&r, 0x1111).is_err());
    }
}
