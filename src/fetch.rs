//! Fetching the index and images over HTTP(S) (reqwest with rustls) or from `file://` URLs,
//! streaming with size caps enforced as bytes arrive and an overall deadline.

use reqwest::Url;
use std::io::Read;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("bad URL {url:?}: {problem}")]
    BadUrl { url: String, problem: String },
    #[error("{url}: server answered {status}")]
    Status { url: String, status: u16 },
    #[error(
        "{url}: asked for the bytes from {asked} on, the server sent a range starting at {sent}"
    )]
    BadRange {
        url: String,
        asked: u64,
        sent: String,
    },
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: more than {limit} bytes (the allowed size); download cut off")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: no complete answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error(
        "{url}: only {got} bytes in {secs} s, below the minimum rate of {min} bytes/s; abandoned"
    )]
    TooSlow {
        url: String,
        got: u64,
        secs: u64,
        min: u64,
    },
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no URL of release {version} could be fetched: {errors}")]
    AllMirrorsFailed { version: String, errors: String },
}

impl FetchError {
    /// A size bound refused the data: that is a verification failure, not a network one.
    pub fn is_verification(&self) -> bool {
        matches!(self, FetchError::TooLarge { .. })
    }
}

/// Resolve a URL from the index against the index's own URL.
pub fn resolve(base: &str, url: &str) -> Result<Url, FetchError> {
    let bad = |problem: String| FetchError::BadUrl {
        url: url.to_string(),
        problem,
    };
    let base = Url::parse(base).map_err(|e| bad(format!("index URL: {e}")))?;
    let u = base.join(url).map_err(|e| bad(e.to_string()))?;
    match u.scheme() {
        "http" | "https" | "file" => Ok(u),
        other => Err(bad(format!("scheme {other:?} is not http, https or file"))),
    }
}

/// The slowest transfer tolerated: fewer than `min_bytes_per_sec` on average over any
/// `window` abandons it (a server trickling bytes must not hold the device forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub min_bytes_per_sec: u64,
    pub window: Duration,
}

impl Default for MinRate {
    fn default() -> Self {
        MinRate {
            min_bytes_per_sec: 1024,
            window: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    rate: MinRate,
}

impl Fetcher {
    /// `timeout` bounds a whole transfer, from connecting to the last byte.
    pub fn new(timeout: Duration, rate: MinRate) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("fwguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| FetchError::Transport {
                url: String::new(),
                source,
            })?;
        Ok(Fetcher {
            client,
            timeout,
            rate,
        })
    }

    /// Fetch a small document into memory, refusing more than `cap` bytes.
    pub async fn fetch_bytes(&self, url: &Url, cap: u64) -> Result<Vec<u8>, FetchError> {
        let mut out = Vec::new();
        self.fetch_into(url, cap, &mut |chunk: &[u8]| {
            out.extend_from_slice(chunk);
            Ok::<(), std::convert::Infallible>(())
        })
        .await
        .map_err(|e| match e {
            SinkOr::Fetch(f) => f,
            SinkOr::Sink(never) => match never {},
        })?;
        Ok(out)
    }

    /// Stream the body at `url` into `sink`, refusing more than `cap` bytes.
    pub async fn fetch_into<E>(
        &self,
        url: &Url,
        cap: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, SinkOr<E>> {
        self.fetch_from(url, 0, cap, sink).await
    }

    /// Stream the body at `url` from byte `start` on (an HTTP `Range` request; a server that
    /// answers with the whole body has the first `start` bytes skipped) into `sink`, refusing
    /// more than `cap` bytes.
    pub async fn fetch_from<E>(
        &self,
        url: &Url,
        start: u64,
        cap: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, SinkOr<E>> {
        let u = url.to_string();
        let work = async {
            if url.scheme() == "file" {
                return read_file(url, start, cap, sink);
            }
            let mut req = self.client.get(url.clone());
            if start > 0 {
                req = req.header(reqwest::header::RANGE, format!("bytes={start}-"));
            }
            let rate = self.rate;
            let slow = |got: u64| FetchError::TooSlow {
                url: u.clone(),
                got,
                secs: rate.window.as_secs(),
                min: rate.min_bytes_per_sec,
            };
            let mut resp = match tokio::time::timeout(rate.window, req.send()).await {
                Ok(r) => r.map_err(|source| FetchError::Transport {
                    url: u.clone(),
                    source,
                })?,
                Err(_) => return Err(SinkOr::Fetch(slow(0))),
            };
            if !resp.status().is_success() {
                return Err(SinkOr::Fetch(FetchError::Status {
                    url: u.clone(),
                    status: resp.status().as_u16(),
                }));
            }
            // What to drop from the front: nothing when the server honoured the range.
            let mut skip = if start > 0 && resp.status().as_u16() == 206 {
                let from = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if from != Some(start) {
                    return Err(SinkOr::Fetch(FetchError::BadRange {
                        url: u.clone(),
                        asked: start,
                        sent: from.map_or("(unreadable)".into(), |f| f.to_string()),
                    }));
                }
                0
            } else {
                start
            };
            if resp
                .content_length()
                .is_some_and(|n| n.saturating_sub(skip) > cap)
            {
                return Err(SinkOr::Fetch(FetchError::TooLarge {
                    url: u.clone(),
                    limit: cap,
                }));
            }
            let mut total = 0u64;
            let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
            loop {
                let left = rate.window.saturating_sub(window_start.elapsed());
                match tokio::time::timeout(left, resp.chunk()).await {
                    Ok(Ok(Some(chunk))) => {
                        window_bytes += chunk.len() as u64;
                        let drop = skip.min(chunk.len() as u64) as usize;
                        skip -= drop as u64;
                        let chunk = &chunk[drop..];
                        total += chunk.len() as u64;
                        if total > cap {
                            return Err(SinkOr::Fetch(FetchError::TooLarge {
                                url: u.clone(),
                                limit: cap,
                            }));
                        }
                        sink(chunk).map_err(SinkOr::Sink)?;
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(source)) => {
                        return Err(SinkOr::Fetch(FetchError::Transport {
                            url: u.clone(),
                            source,
                        }))
                    }
                    Err(_) => {}
                }
                if window_start.elapsed() >= rate.window {
                    if (window_bytes as f64)
                        < rate.min_bytes_per_sec as f64 * rate.window.as_secs_f64()
                    {
                        return Err(SinkOr::Fetch(slow(window_bytes)));
                    }
                    (window_start, window_bytes) = (Instant::now(), 0);
                }
            }
            Ok(total)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(SinkOr::Fetch(FetchError::Timeout {
                url: u,
                secs: self.timeout.as_secs(),
            })),
        }
    }
}

/// A failure of the transfer, or of whatever consumed its bytes.
#[derive(Debug)]
pub enum SinkOr<E> {
    Fetch(FetchError),
    Sink(E),
}

impl<E> From<FetchError> for SinkOr<E> {
    fn from(e: FetchError) -> Self {
        SinkOr::Fetch(e)
    }
}

fn read_file<E>(
    url: &Url,
    start: u64,
    cap: u64,
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
    let mut f = std::fs::File::open(&path).map_err(ferr)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start)).map_err(ferr)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(ferr)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > cap {
            return Err(SinkOr::Fetch(FetchError::TooLarge {
                url: url.to_string(),
                limit: cap,
            }));
        }
        sink(&buf[..n]).map_err(SinkOr::Sink)?;
    }
}
