//! Health checks: what decides whether a trial boot is committed or rolled back.
//!
//! Each check has its own timeout and records how long it took and why it failed;
//! [`policy`] turns a round of results into a verdict.

pub mod dns;
pub mod local;
pub mod net;
pub mod policy;

pub use local::Proto;
pub use net::Family;
pub use policy::{Group, Plan, Verdict};

use crate::fetch::Roots;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub name: String,
    pub timeout: Duration,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// The interface is up with carrier.
    Link { interface: String },
    /// The interface has an address of the family (IPv4, or global IPv6).
    Address { interface: String, family: Family },
    /// A default route exists.
    Route { family: Family },
    /// A name resolves, through the system resolver or a given server.
    Dns {
        name: String,
        server: Option<SocketAddr>,
    },
    /// GET a URL (TLS verified) and expect a status.
    Http { url: String, expect_status: u16 },
    /// Connect to host:port.
    Tcp { address: String },
    /// ICMP echo.
    Ping { host: IpAddr },
    /// A named process runs.
    Process { name: String },
    /// A local port listens.
    Listen { port: u16, proto: Proto },
    /// Run a program; exit status 0 passes.
    Command { argv: Vec<String> },
    /// The clock has been set (NTP synchronised, or past the time floor).
    Clock,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub duration_ms: u64,
    /// Why it failed, or what it saw when it passed.
    pub detail: String,
}

/// One round of every check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub results: Vec<CheckResult>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// "name: detail; name: detail" for the failed checks.
    pub fn failures(&self) -> String {
        self.results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| format!("{}: {}", r.name, r.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The HTTP client of the `http` checks and the CAs it trusts.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    roots: Roots,
}

/// Runs checks; holds the HTTP client so rounds reuse it.
pub struct Checker {
    http: Http,
}

impl Checker {
    /// `roots`: the certificate authorities an `https` check trusts.
    pub fn new(roots: Roots) -> Checker {
        let client = roots
            .client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client builds with static settings");
        Checker {
            http: Http { client, roots },
        }
    }

    /// Run every check concurrently, each bounded by its own timeout. `now` and `floor` are
    /// the wall clock and the time floor, for the `clock` check.
    pub async fn run_all(&self, specs: &[CheckSpec], now: u64, floor: u64) -> Report {
        let mut set = tokio::task::JoinSet::new();
        for (i, spec) in specs.iter().cloned().enumerate() {
            let http = self.http.clone();
            set.spawn(async move { (i, run_one(&http, &spec, now, floor).await) });
        }
        let mut results: Vec<Option<CheckResult>> = vec![None; specs.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((i, r)) = joined {
                results[i] = Some(r);
            }
        }
        Report {
            results: results
                .into_iter()
                .zip(specs)
                .map(|(r, s)| {
                    r.unwrap_or_else(|| CheckResult {
                        name: s.name.clone(),
                        passed: false,
                        duration_ms: 0,
                        detail: "check task failed".into(),
                    })
                })
                .collect(),
        }
    }
}

async fn run_one(http: &Http, spec: &CheckSpec, now: u64, floor: u64) -> CheckResult {
    let start = Instant::now();
    let outcome = tokio::time::timeout(
        spec.timeout,
        probe(http, &spec.kind, spec.timeout, now, floor),
    )
    .await;
    let (passed, detail) = match outcome {
        Ok(Ok(seen)) => (true, seen),
        Ok(Err(why)) => (false, why),
        Err(_) => (
            false,
            format!("no answer within {} ms", spec.timeout.as_millis()),
        ),
    };
    CheckResult {
        name: spec.name.clone(),
        passed,
        duration_ms: start.elapsed().as_millis() as u64,
        // Kept in history, health.json and outcome reports: no credentials or tokens.
        detail: crate::redact::text(&detail),
    }
}

/// Run a blocking probe off the async threads.
async fn blocking(
    f: impl FnOnce() -> Result<String, String> + Send + 'static,
) -> Result<String, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("probe failed: {e}")))
}

async fn probe(
    http: &Http,
    kind: &CheckKind,
    timeout: Duration,
    now: u64,
    floor: u64,
) -> Result<String, String> {
    match kind.clone() {
        CheckKind::Link { interface } => blocking(move || net::link(&interface)).await,
        CheckKind::Address { interface, family } => {
            blocking(move || net::address(&interface, family)).await
        }
        CheckKind::Route { family } => blocking(move || net::route(family)).await,
        CheckKind::Dns { name, server: None } => dns::system(&name).await,
        CheckKind::Dns {
            name,
            server: Some(s),
        } => dns::direct(&name, s).await,
        CheckKind::Ping { host } => blocking(move || net::ping(host, timeout)).await,
        CheckKind::Process { name } => blocking(move || local::process(&name)).await,
        CheckKind::Listen { port, proto } => blocking(move || local::listen(port, proto)).await,
        CheckKind::Clock => local::clock(now, floor),
        other => probe_io(http, &other).await,
    }
}

async fn probe_io(http: &Http, kind: &CheckKind) -> Result<String, String> {
    match kind {
        CheckKind::Http { url, expect_status } => {
            // Without a CA bundle an https check fails naming the missing file.
            if let Ok(u) = reqwest::Url::parse(url) {
                http.roots.check(&u).map_err(|e| e.to_string())?;
            }
            let resp = http
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
            let status = resp.status().as_u16();
            if status == *expect_status {
                Ok(format!("GET {url}: {status}"))
            } else {
                Err(format!(
                    "GET {url}: status {status}, expected {expect_status}"
                ))
            }
        }
        CheckKind::Tcp { address } => tokio::net::TcpStream::connect(address.as_str())
            .await
            .map(|_| format!("connected to {address}"))
            .map_err(|e| format!("connect {address}: {e}")),
        CheckKind::Command { argv } => {
            let Some((program, args)) = argv.split_first() else {
                return Err("no program to run".into());
            };
            let status = tokio::process::Command::new(program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("{program}: {e}"))?;
            if status.success() {
                Ok(format!("{program} exited 0"))
            } else {
                Err(format!("{program} failed: {status}"))
            }
        }
        // The other kinds are judged without I/O (`Checker::run` does not come here).
        _ => Err("not an I/O probe".into()),
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
