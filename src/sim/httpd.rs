//! A small static-file HTTP/1.1 server for the simulated world (demo and tests), bound to
//! loopback. It serves a directory with `Content-Length` and single `Range` requests, and
//! can throttle its sending so a test can interrupt a download part-way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Send at most this many bytes per 10 ms tick (None: as fast as possible).
    pub bytes_per_tick: Option<usize>,
}

/// Misbehaviour for one path, to test the client's defences. Every fault is bounded in
/// bytes and time, so the server always stops by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A body with no length that never ends (up to 256 MiB, or until the client leaves).
    Endless,
    /// The file, `bytes` every `every_ms` milliseconds.
    Trickle { bytes: usize, every_ms: u64 },
    /// Headers, then silence for up to 60 s.
    Stall,
    /// The file (or the range asked for) with its full length announced, but the
    /// connection closed once the file offset `offset` is reached: a transfer cut off.
    CutAt { offset: u64 },
}

type Faults = Arc<Mutex<HashMap<String, Fault>>>;
/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    query: Option<String>,
    range: Option<String>,
}

/// Every request, in order.
type Log = Arc<Mutex<Vec<Request>>>;

/// A running server; stops when dropped or on [`Server::stop`].
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    faults: Faults,
    log: Log,
}

impl Server {
    /// Bind `addr` (use port 0 for any free port) and serve `root`.
    pub async fn start(
        addr: SocketAddr,
        root: PathBuf,
        opts: ServeOptions,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let faults: Faults = Arc::default();
        let shared = faults.clone();
        let log: Log = Arc::default();
        let shared_log = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let root = root.clone();
                let opts = opts.clone();
                let faults = shared.clone();
                let log = shared_log.clone();
                tokio::spawn(async move {
                    let _ = handle(sock, &root, &opts, &faults, &log).await;
                });
            }
        });
        Ok(Server {
            addr,
            task,
            faults,
            log,
        })
    }

    /// Make requests for `path` (e.g. "/index.toml") misbehave; `None` restores it.
    pub fn set_fault(&self, path: &str, fault: Option<Fault>) {
        let mut f = self.faults.lock().expect("fault table");
        match fault {
            Some(x) => f.insert(path.to_string(), x),
            None => f.remove(path),
        };
    }

    /// The `Range` headers of the requests for `path` so far, in order (None: no range).
    pub fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.requests(path, |r| r.range.clone())
    }

    /// The query strings of the requests for `path` so far, in order (None: no `?`). Files
    /// are served by path whatever the query.
    pub fn queries(&self, path: &str) -> Vec<Option<String>> {
        self.requests(path, |r| r.query.clone())
    }

    fn requests<T>(&self, path: &str, what: impl Fn(&Request) -> T) -> Vec<T> {
        self.log
            .lock()
            .expect("request log")
            .iter()
            .filter(|r| r.path == path)
            .map(what)
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(sock: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(msg.as_bytes()).await
}

/// Map a request path onto `root`, refusing anything that could leave it.
fn local_path(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split('?').next()?;
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(rel))
}

/// Parse `bytes=START-` or `bytes=START-END`.
fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        len.checked_sub(1)?
    } else {
        b.parse().ok()?
    };
    (start <= end && end < len).then_some((start, end))
}

async fn handle(
    mut sock: TcpStream,
    root: &Path,
    opts: &ServeOptions,
    faults: &Faults,
    log: &Log,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut req = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (req.next().unwrap_or(""), req.next().unwrap_or(""));
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.trim().to_string());
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    log.lock().expect("request log").push(Request {
        path: path.to_string(),
        query,
        range: range.clone(),
    });
    if method != "GET" && method != "HEAD" {
        return respond(&mut sock, "405 Method Not Allowed", "only GET and HEAD\n").await;
    }
    let fault = faults.lock().expect("fault table").get(path).copied();
    match fault {
        Some(Fault::Endless) => {
            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n").await?;
            let block = vec![b'x'; 64 * 1024];
            for _ in 0..4096 {
                sock.write_all(&block).await?;
            }
            return Ok(());
        }
        Some(Fault::Stall) => {
            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")
                .await?;
            tokio::time::sleep(Duration::from_secs(60)).await;
            return Ok(());
        }
        _ => {}
    }
    let Some(path) = local_path(root, target) else {
        return respond(&mut sock, "400 Bad Request", "bad path\n").await;
    };
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return respond(&mut sock, "404 Not Found", "not found\n").await;
    };
    let len = file.metadata().await?.len();
    let (status, start, end) = match range.as_deref().map(|r| parse_range(r, len)) {
        None => ("200 OK", 0, len.saturating_sub(1)),
        Some(Some((s, e))) => ("206 Partial Content", s, e),
        Some(None) => return respond(&mut sock, "416 Range Not Satisfiable", "bad range\n").await,
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let mut hdr = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {count}\r\nAccept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n"
    );
    if status.starts_with("206") {
        hdr.push_str(&format!("Content-Range: bytes {start}-{end}/{len}\r\n"));
    }
    hdr.push_str("\r\n");
    sock.write_all(hdr.as_bytes()).await?;
    if method == "HEAD" {
        return Ok(());
    }
    use tokio::io::AsyncSeekExt;
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut left = match fault {
        Some(Fault::CutAt { offset }) => count.min(offset.saturating_sub(start)),
        _ => count,
    };
    let (chunk, tick) = match fault {
        Some(Fault::Trickle { bytes, every_ms }) => {
            (bytes.max(1), Some(Duration::from_millis(every_ms)))
        }
        _ => (
            opts.bytes_per_tick.unwrap_or(64 * 1024).max(1),
            opts.bytes_per_tick.map(|_| Duration::from_millis(10)),
        ),
    };
    let mut buf = vec![0u8; chunk];
    while left > 0 {
        let want = (chunk as u64).min(left) as usize;
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            break;
        }
        sock.write_all(&buf[..n]).await?;
        left -= n as u64;
        if let Some(t) = tick {
            tokio::time::sleep(t).await;
        }
    }
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ranges() {
        let root = Path::new("/srv");
        assert_eq!(
            local_path(root, "/a/b.img?x=1"),
            Some(PathBuf::from("/srv/a/b.img"))
        );
        assert_eq!(local_path(root, "/../etc/passwd"), None);
        assert_eq!(parse_range("bytes=10-", 100), Some((10, 99)));
        assert_eq!(parse_range("bytes=10-19", 100), Some((10, 19)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("items=1-2", 100), None);
    }
}
