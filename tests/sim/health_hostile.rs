//! No health check panics on hostile input. Every kind, given names that are non-ASCII, very
//! long, empty or hold NUL bytes (as the config allows), interfaces that do not exist, a
//! command printing invalid UTF-8 by the megabyte, and loopback servers answering garbage,
//! ends in a passed or failed result. A release build aborts on a panic: the daemon would die
//! mid-trial.

use super::common;

use common::trust::reconfigure;
use common::world;
use fwguard::fetch::Roots;
use fwguard::health::Checker;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// A TOML string (escaped: NUL bytes become \u0000).
fn s(v: &str) -> String {
    toml::Value::String(v.into()).to_string()
}

/// A loopback HTTP server answering garbage, chosen by the request's path.
async fn garbage_http() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = vec![0u8; 64 * 1024];
                let n = sock.read(&mut head).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&head[..n]).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let reply: Vec<u8> = match path.as_str() {
                    "/garbage" => b"\x00\xff\xfe not http at all\r\n\r\n".to_vec(),
                    "/huge" => [&b"HTTP/1.1 200 OK\r\nX-A: "[..], &vec![b'a'; 2 << 20]].concat(),
                    "/status" => b"HTTP/1.1 2000 \xff\xfe\r\nContent-Length: 0\r\n\r\n".to_vec(),
                    "/length" => {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n".to_vec()
                    }
                    "/utf8" => {
                        b"HTTP/1.1 200 \xff\xfe\r\nX: \xff\xfe\r\nContent-Length: 2\r\n\r\n\xff\xfe"
                            .to_vec()
                    }
                    _ => Vec::new(),
                };
                let _ = sock.write_all(&reply).await;
            });
        }
    });
    addr
}

/// A loopback DNS server (UDP, and TCP on the same port) answering garbage: too short, a
/// truncated answer sending the client to TCP (where the length lies), an answer count with
/// no answers behind it, and noise.
async fn garbage_dns() -> SocketAddr {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        for turn in 0usize.. {
            let Ok((_, from)) = udp.recv_from(&mut buf).await else {
                return;
            };
            let id = [buf[0], buf[1]];
            let reply: Vec<u8> = match turn % 4 {
                0 => vec![0xff],
                1 => [&id[..], &[0x82, 0x00], &[0; 8]].concat(),
                2 => [&id[..], &[0x81, 0x80, 0, 1, 0xff, 0xff, 0, 0, 0, 0]].concat(),
                _ => (0..1500u32).map(|i| (i * 37 % 251) as u8).collect(),
            };
            let _ = udp.send_to(&reply, from).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = tcp.accept().await {
            let mut q = [0u8; 512];
            let _ = sock.read(&mut q).await;
            let _ = sock.write_all(&[0xff, 0xff, 1, 2, 3]).await;
        }
    });
    addr
}

#[tokio::test]
async fn every_check_kind_ends_in_a_result_on_hostile_names_and_answers() {
    // The hook is the process's, and this binary runs other suites' tests alongside: a
    // failing assertion there (in tests/) is not a check's panic, and still reports as usual.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info
            .location()
            .is_some_and(|l| l.file().starts_with("tests/"))
        {
            PANICS.fetch_add(1, Ordering::SeqCst);
            eprintln!("PANIC: {info}");
        }
        previous(info);
    }));
    let t = world("off").await;
    let (http, dns) = (garbage_http().await, garbage_dns().await);
    let long = "a".repeat(5000);
    // 2-byte characters: byte 15 falls inside one (the kernel's comm length).
    let wide = "ü".repeat(20);
    let names = [
        wide.as_str(),
        &long,
        "",
        "eth\0zero",
        "é\0".repeat(9).as_str(),
        "../../../../proc/self",
        "no-such-if0",
    ]
    .map(str::to_string);
    let mut checks: Vec<(&str, String)> = Vec::new();
    for n in &names {
        checks.push(("link", format!("interface = {}", s(n))));
        checks.push((
            "address",
            format!("interface = {}\nfamily = \"ipv6\"", s(n)),
        ));
        checks.push(("process", format!("process = {}", s(n))));
        checks.push(("command", format!("argv = [{}]", s(n))));
        // Four queries per name: each of the server's answers.
        for _ in 0..4 {
            checks.push(("dns", format!("query = {}\nserver = \"{dns}\"", s(n))));
        }
    }
    // The system resolver, with names it refuses before asking anyone (no query leaves
    // the machine): a NUL byte, a label far over 63 bytes.
    checks.push(("dns", format!("query = {}", s("bad\0name"))));
    checks.push(("dns", format!("query = {}", s(&"é".repeat(200)))));
    let junk = "head -c 3000000 /dev/zero | tr '\\0' '\\377'; head -c 3000000 /dev/zero >&2";
    checks.push(("command", format!("argv = [\"sh\", \"-c\", {}]", s(junk))));
    checks.push((
        "command",
        format!("argv = [\"sh\", \"-c\", \"exit 7\", {}]", s("\0")),
    ));
    checks.push((
        "command",
        "argv = [\"sh\", \"-c\", \"printf '\\\\377'; sleep 30\"]\ntimeout = \"300ms\"".into(),
    ));
    for path in ["garbage", "huge", "status", "length", "utf8", "none"] {
        checks.push(("http", format!("url = \"http://{http}/{path}\"")));
    }
    let wide_url = format!("http://{http}/{}?\0", "é".repeat(3000));
    checks.push(("http", format!("url = {}", s(&wide_url))));
    for a in [
        "127.0.0.1:99999",
        "127.0.0.1:1",
        "[::1]:1",
        ":",
        "x\0y:80",
        &format!("{}:80", "a".repeat(300)),
    ] {
        checks.push(("tcp", format!("address = {}", s(a))));
    }
    checks.push(("ping", "host = \"127.0.0.1\"\ntimeout = \"300ms\"".into()));
    checks.push(("ping", "host = \"::1\"\ntimeout = \"300ms\"".into()));
    checks.push(("listen", "port = 0".into()));
    checks.push(("listen", "port = 65535\nprotocol = \"udp\"".into()));
    checks.push(("route", "family = \"ipv6\"".into()));
    checks.push(("clock", String::new()));
    let mut text = String::new();
    for (i, (kind, body)) in checks.iter().enumerate() {
        text.push_str(&format!(
            "\n[[health.check]]\nname = \"{kind}-{i}\"\nkind = \"{kind}\"\nadvisory = true\n{body}\n"
        ));
        if !body.contains("timeout") {
            text.push_str("timeout = \"2s\"\n");
        }
    }
    reconfigure(&t, |c| c + &text);
    let settings = t.settings();
    let specs = settings.health.checks;
    assert_eq!(
        specs.len(),
        checks.len() + 2,
        "the config takes every check"
    );

    let checker = Checker::new(Roots::load(&settings.ca_bundle).unwrap());
    let start = Instant::now();
    let report = checker.run_all(&specs, fwguard::time::unix_now(), 0).await;
    assert!(start.elapsed() < Duration::from_secs(20), "bounded in time");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a check panicked");
    assert_eq!(report.results.len(), specs.len());
    for (r, spec) in report.results.iter().zip(&specs) {
        assert_eq!(r.name, spec.name);
        assert!(
            !r.detail.contains("probe failed") && !r.detail.contains("check task failed"),
            "{}: {}",
            r.name,
            r.detail
        );
    }
}
