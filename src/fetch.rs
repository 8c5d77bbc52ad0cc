//! Fetching the index and images over HTTP(S) (reqwest with rustls) or from `file://` URLs,
//! streaming with size caps enforced as bytes arrive, an overall deadline and a minimum rate
//! (a `file://` read too: a hung USB stick must not hold the agent forever).

mod file;

use reqwest::Url;
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
    #[error("{url}: no CA bundle at {path} (agent.ca_bundle) to check the server's certificate")]
    NoCaBundle { url: String, path: String },
    #[error("CA bundle {path} (agent.ca_bundle): {problem}")]
    CaBundle { path: String, problem: String },
}

impl FetchError {
    /// A size bound refused the data: that is a verification failure, not a network one.
    pub fn is_verification(&self) -> bool {
        matches!(self, FetchError::TooLarge { .. })
    }

    /// The configuration is wrong (an unreadable CA bundle), not the network.
    pub fn is_config(&self) -> bool {
        matches!(self, FetchError::CaBundle { .. })
    }
}

/// The certificate authorities TLS connections trust: the system's PEM bundle
/// (`agent.ca_bundle`), read once. A missing bundle is no error until an `https` URL needs it.
#[derive(Clone)]
pub struct Roots {
    path: std::path::PathBuf,
    /// Shared: every client and check task holds a copy.
    certs: Option<std::sync::Arc<Vec<reqwest::Certificate>>>,
}

impl Roots {
    pub fn load(path: &std::path::Path) -> Result<Roots, FetchError> {
        let bad = |problem: String| FetchError::CaBundle {
            path: path.display().to_string(),
            problem,
        };
        let certs = match std::fs::read(path) {
            Ok(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| bad(format!("not a PEM certificate bundle: {e}")))?;
                if certs.is_empty() {
                    return Err(bad("holds no certificate".into()));
                }
                Some(std::sync::Arc::new(certs))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(bad(e.to_string())),
        };
        Ok(Roots {
            path: path.to_path_buf(),
            certs,
        })
    }

    /// A client builder trusting exactly these roots (none compiled in).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder().tls_built_in_root_certs(false);
        for c in self.certs.iter().flat_map(|c| c.iter()) {
            b = b.add_root_certificate(c.clone());
        }
        b
    }

    /// Refuse an `https` URL when there is no bundle, naming the file, instead of the TLS
    /// library's "unknown issuer".
    pub fn check(&self, url: &Url) -> Result<(), FetchError> {
        if url.scheme() == "https" && self.certs.is_none() {
            return Err(FetchError::NoCaBundle {
                url: url.to_string(),
                path: self.path.display().to_string(),
            });
        }
        Ok(())
    }
}

/// Resolve a URL from the index (an image, or `root/<n>.root.toml`) against the index's own
/// URL.
///
/// A relative URL is resolved against the index URL's path and, when it has no query of its
/// own and stays on the index's host, gets the index URL's query string. A query on the index
/// URL (`https://host/fw/index.toml?token=abc`) is how a CDN grants access to the vendor's
/// directory: a token, or a signed policy for the path prefix (a CloudFront custom policy
/// with a wildcard resource, an Akamai token ACL `/fw/*`), and every file published beside
/// the index needs it (a query that grants the index alone would not open its `.sig`
/// either). An absolute URL is used as written, so the token is never sent to another host,
/// and a per-object signed URL (S3 presigned) is written into the index whole.
pub fn resolve(base: &str, url: &str) -> Result<Url, FetchError> {
    let bad = |problem: String| FetchError::BadUrl {
        url: url.to_string(),
        problem,
    };
    let base = Url::parse(base).map_err(|e| bad(format!("index URL: {e}")))?;
    let relative = Url::parse(url).is_err();
    let mut u = base.join(url).map_err(|e| bad(e.to_string()))?;
    let same_host = u.scheme() == base.scheme()
        && u.host_str() == base.host_str()
        && u.port_or_known_default() == base.port_or_known_default();
    if relative && same_host && u.query().is_none() {
        u.set_query(base.query());
    }
    match u.scheme() {
        "http" | "https" | "file" => Ok(u),
        other => Err(bad(format!("scheme {other:?} is not http, https or file"))),
    }
}

/// The detached signature of the file at `url`: `.sig` appended to its path, its query string
/// kept (`.../index.toml.sig?token=abc`).
pub fn signature_url(url: &Url) -> Url {
    let mut sig = url.clone();
    sig.set_path(&format!("{}.sig", url.path()));
    sig
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

fn too_slow(url: &str, got: u64, rate: MinRate) -> FetchError {
    FetchError::TooSlow {
        url: url.to_string(),
        got,
        secs: rate.window.as_secs(),
        min: rate.min_bytes_per_sec,
    }
}

/// The bytes of a transfer counted per window of its [`MinRate`].
struct RateWindow {
    rate: MinRate,
    start: Instant,
    bytes: u64,
}

impl RateWindow {
    fn new(rate: MinRate) -> RateWindow {
        RateWindow {
            rate,
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// How long the next piece may take before this window closes.
    fn left(&self) -> Duration {
        self.rate.window.saturating_sub(self.start.elapsed())
    }

    fn add(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// When the window is over: `Err(bytes in it)` if they are below the rate, else a new
    /// window begins.
    fn check(&mut self) -> Result<(), u64> {
        if self.start.elapsed() >= self.rate.window {
            if (self.bytes as f64)
                < self.rate.min_bytes_per_sec as f64 * self.rate.window.as_secs_f64()
            {
                return Err(self.bytes);
            }
            (self.start, self.bytes) = (Instant::now(), 0);
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    roots: Roots,
    timeout: Duration,
    rate: MinRate,
}

impl Fetcher {
    /// `timeout` bounds a whole transfer, from connecting to the last byte.
    pub fn new(timeout: Duration, rate: MinRate, roots: Roots) -> Result<Fetcher, FetchError> {
        let client = roots
            .client_builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("fwguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| FetchError::Transport {
                url: String::new(),
                source,
            })?;
        Ok(Fetcher {
            client,
            roots,
            timeout,
            rate,
        })
    }

    /// POST a JSON document to `url`; a 2xx answer within `timeout` is success.
    pub async fn post_json(
        &self,
        url: &Url,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), FetchError> {
        self.post(
            url,
            body,
            &[("content-type", "application/json".into())],
            timeout,
        )
        .await
    }

    /// POST `body` with `headers` to `url`; a 2xx answer within `timeout` is success.
    pub async fn post(
        &self,
        url: &Url,
        body: Vec<u8>,
        headers: &[(&'static str, String)],
        timeout: Duration,
    ) -> Result<(), FetchError> {
        self.roots.check(url)?;
        let u = url.to_string();
        let mut req = self.client.post(url.clone()).body(body);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let send = req.send();
        let resp = tokio::time::timeout(timeout, send)
            .await
            .map_err(|_| FetchError::Timeout {
                url: u.clone(),
                secs: timeout.as_secs(),
            })?
            .map_err(|source| FetchError::Transport {
                url: u.clone(),
                source,
            })?;
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: u,
                status: resp.status().as_u16(),
            });
        }
        Ok(())
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
        let rate = self.rate;
        let slow = |got: u64| too_slow(&u, got, rate);
        let work = async {
            if url.scheme() == "file" {
                return file::read_file(url, start, cap, rate, sink).await;
            }
            self.roots.check(url)?;
            let mut req = self.client.get(url.clone());
            if start > 0 {
                req = req.header(reqwest::header::RANGE, format!("bytes={start}-"));
            }
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
            let mut window = RateWindow::new(rate);
            loop {
                match tokio::time::timeout(window.left(), resp.chunk()).await {
                    Ok(Ok(Some(chunk))) => {
                        window.add(chunk.len());
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
                window.check().map_err(|got| SinkOr::Fetch(slow(got)))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_beside_an_index_url_with_a_query_keep_the_query_after_their_own_path() {
        let index = "https://cdn.example/fw/index.toml?token=abc";
        let url = resolve(index, index).unwrap();
        assert_eq!(url.as_str(), index);
        assert_eq!(
            signature_url(&url).as_str(),
            "https://cdn.example/fw/index.toml.sig?token=abc"
        );
        let root = resolve(index, "root/2.root.toml").unwrap();
        assert_eq!(
            root.as_str(),
            "https://cdn.example/fw/root/2.root.toml?token=abc"
        );
        assert_eq!(
            signature_url(&root).as_str(),
            "https://cdn.example/fw/root/2.root.toml.sig?token=abc"
        );
        assert_eq!(
            resolve(index, "images/fw-2.0.img").unwrap().as_str(),
            "https://cdn.example/fw/images/fw-2.0.img?token=abc"
        );
        // A relative URL with a query of its own keeps its own.
        assert_eq!(
            resolve(index, "images/fw.img?sig=x").unwrap().as_str(),
            "https://cdn.example/fw/images/fw.img?sig=x"
        );
        // The token never goes to another host, nor into an absolute URL.
        for other in [
            "https://mirror.example/fw.img",
            "//mirror.example/fw.img",
            "http://cdn.example/fw/images/fw.img",
            "https://cdn.example:8443/fw/images/fw.img",
        ] {
            assert_eq!(resolve(index, other).unwrap().query(), None, "{other}");
        }
        // Without a query nothing changes.
        let plain = resolve("http://127.0.0.1:8080/index.toml", "root/2.root.toml").unwrap();
        assert_eq!(plain.as_str(), "http://127.0.0.1:8080/root/2.root.toml");
        assert_eq!(
            signature_url(&resolve("file:///media/usb/index.toml", "index.toml").unwrap()).as_str(),
            "file:///media/usb/index.toml.sig"
        );
        assert!(resolve(index, "ftp://cdn.example/fw.img").is_err());
    }
}
