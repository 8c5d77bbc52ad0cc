//! `file://` fetches (an offline install from a USB stick, a local index) under the same
//! deadline and minimum rate as HTTP.

use super::{too_slow, FetchError, MinRate, RateWindow, SinkOr};
use reqwest::Url;
use std::io::{Read, Seek};

/// The local file of a `file://` URL, opened without following a symbolic link anywhere in
/// its path (an offline install or the archive is a tree on removable storage that someone
/// else may have prepared): a path whose canonical form differs is refused, and the file
/// itself is opened with `O_NOFOLLOW`. (A FIFO or device node is read like a file: the
/// deadline and the size cap bound it, and the signed hash refuses what it gives.)
fn open_no_links(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let real = std::fs::canonicalize(path)?;
    if real != path {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the path passes through a symbolic link (it leads to {}); fwguard reads no file through one: give the real path",
                real.display()
            ),
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// What the reader thread of a `file://` fetch hands over: a piece, the end, or its error.
type Piece = std::io::Result<Option<Vec<u8>>>;

/// Read a local file from `start` into `sink`, refusing more than `cap` bytes. Opening and
/// reading run on a blocking thread, a piece at a time, so the caller's deadline and the
/// minimum rate hold as for HTTP: a read that never returns (a dead USB stick, a FIFO nobody
/// writes) is abandoned, its thread left blocked in the kernel, and it stops at its next piece.
pub(super) async fn read_file<E>(
    url: &Url,
    start: u64,
    cap: u64,
    rate: MinRate,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, SinkOr<E>> {
    let path = url.to_file_path().map_err(|_| FetchError::BadUrl {
        url: url.to_string(),
        problem: "not a local file path".into(),
    })?;
    let ferr = |source| FetchError::File {
        path: path.display().to_string(),
        source,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(2);
    let from = path.clone();
    tokio::task::spawn_blocking(move || {
        let mut f = match open_no_links(&from).and_then(|mut f| match start {
            0 => Ok(f),
            _ => f.seek(std::io::SeekFrom::Start(start)).map(|_| f),
        }) {
            Ok(f) => f,
            Err(e) => return drop(tx.blocking_send(Err(e))),
        };
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let piece = match f.read(&mut buf) {
                Ok(0) => Ok(None),
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Some(buf))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let more = matches!(piece, Ok(Some(_)));
            // Nobody waits any more (the fetch gave up): stop reading.
            if tx.blocking_send(piece).is_err() || !more {
                return;
            }
        }
    });
    let mut window = RateWindow::new(rate);
    let mut total = 0u64;
    loop {
        match tokio::time::timeout(window.left(), rx.recv()).await {
            Ok(Some(Ok(Some(piece)))) => {
                window.add(piece.len());
                total += piece.len() as u64;
                if total > cap {
                    return Err(SinkOr::Fetch(FetchError::TooLarge {
                        url: url.to_string(),
                        limit: cap,
                    }));
                }
                sink(&piece).map_err(SinkOr::Sink)?;
            }
            Ok(Some(Ok(None))) => return Ok(total),
            Ok(Some(Err(e))) => return Err(SinkOr::Fetch(ferr(e))),
            Ok(None) => {
                return Err(SinkOr::Fetch(ferr(std::io::Error::other(
                    "the reading thread stopped",
                ))))
            }
            Err(_) => {}
        }
        window
            .check()
            .map_err(|got| SinkOr::Fetch(too_slow(url.as_str(), got, rate)))?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Fetcher, Roots};
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_file_that_trickles_is_abandoned_by_the_minimum_rate() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("index.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let writer = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(writer)
                .unwrap();
            // A byte every 50 ms until the reader leaves (EPIPE), 5 s at most.
            for _ in 0..100 {
                if f.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let rate = MinRate {
            min_bytes_per_sec: 1024,
            window: Duration::from_millis(300),
        };
        let roots = Roots::load(&dir.path().join("no-ca-bundle.pem")).unwrap();
        let fetcher = Fetcher::new(Duration::from_secs(30), rate, roots).unwrap();
        let url = Url::from_file_path(&fifo).unwrap();
        let start = std::time::Instant::now();
        let err = fetcher.fetch_bytes(&url, 1 << 20).await.unwrap_err();
        assert!(matches!(err, FetchError::TooSlow { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
