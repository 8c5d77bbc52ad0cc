//! Health checks: what decides whether a trial boot is committed or rolled back.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub name: String,
    pub timeout: Duration,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// GET a URL and expect a status.
    Http { url: String, expect_status: u16 },
    /// Connect to host:port.
    Tcp { address: String },
    /// Run a program; exit status 0 passes.
    Command { argv: Vec<String> },
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

/// Runs checks; holds the HTTP client so rounds reuse it.
pub struct Checker {
    client: reqwest::Client,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

impl Checker {
    pub fn new() -> Checker {
        Checker {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client builds with static settings"),
        }
    }

    /// Run every check concurrently, each bounded by its own timeout.
    pub async fn run_all(&self, specs: &[CheckSpec]) -> Report {
        let mut set = tokio::task::JoinSet::new();
        for (i, spec) in specs.iter().cloned().enumerate() {
            let client = self.client.clone();
            set.spawn(async move { (i, run_one(&client, &spec).await) });
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

async fn run_one(client: &reqwest::Client, spec: &CheckSpec) -> CheckResult {
    let start = Instant::now();
    let outcome = tokio::time::timeout(spec.timeout, probe(client, &spec.kind)).await;
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
        detail,
    }
}

async fn probe(client: &reqwest::Client, kind: &CheckKind) -> Result<String, String> {
    match kind {
        CheckKind::Http { url, expect_status } => {
            let resp = client
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
            let status = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("{}: {e}", argv[0]))?;
            if status.success() {
                Ok(format!("{} exited 0", argv[0]))
            } else {
                Err(format!("{} failed: {status}", argv[0]))
            }
        }
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
