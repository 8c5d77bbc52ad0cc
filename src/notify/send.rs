//! Delivering notifications, beside the update logic and never in its way: each notice goes
//! to each `[[notify]]` that wants its event, in a task of its own, retried a bounded number
//! of times with a growing wait, then dropped with a log line. Nothing is written anywhere
//! per attempt. A URL is logged by its scheme and host only (an ntfy topic in the path is as
//! good as a password), and a token never.

use super::Notice;
use crate::config::{NotifySettings, Sink};
use crate::fetch::Fetcher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Notices waiting for one sink beyond which new ones are dropped.
const QUEUE: usize = 32;

/// Where notices are handed in. Each sink has a task of its own, in the tokio runtime the
/// outbox was made in, that delivers its notices in order, each with its retries.
pub struct Outbox {
    queues: Vec<(Kinds, tokio::sync::mpsc::Sender<Arc<Notice>>, String)>,
    /// Notices handed to a sink and not yet delivered or given up.
    pending: Arc<AtomicUsize>,
}

type Kinds = Vec<super::Kind>;

/// A sink as the log names it.
pub fn describe(sink: &Sink) -> String {
    match sink {
        Sink::Ntfy { url, .. } => format!("ntfy {}", shown(url)),
        Sink::Webhook { url } => format!("webhook {}", shown(url)),
        Sink::Command { argv } => format!("command {}", argv[0]),
    }
}

/// `scheme://host[:port]/…`: a URL without what may be secret in it.
fn shown(url: &reqwest::Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}/…",
        url.scheme(),
        url.host_str().unwrap_or("?")
    )
}

/// One sink's delivery task.
struct Courier {
    sink: NotifySettings,
    fetcher: Fetcher,
}

impl Outbox {
    /// Start a task per sink (inside a tokio runtime).
    pub fn new(sinks: Vec<NotifySettings>, fetcher: Fetcher) -> Outbox {
        let pending = Arc::new(AtomicUsize::new(0));
        let queues = sinks
            .into_iter()
            .map(|sink| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Notice>>(QUEUE);
                let (events, name) = (sink.events.clone(), describe(&sink.sink));
                let c = Courier {
                    sink,
                    fetcher: fetcher.clone(),
                };
                let pending = pending.clone();
                tokio::spawn(async move {
                    while let Some(n) = rx.recv().await {
                        c.deliver(&n).await;
                        pending.fetch_sub(1, Ordering::SeqCst);
                    }
                });
                (events, tx, name)
            })
            .collect();
        Outbox { queues, pending }
    }

    /// Wait until every notice handed in is delivered or given up, `limit` at most: before
    /// a round that may reboot, so that what is under way is not cut off by the reboot.
    pub async fn settle(&self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Hand `notice` to every sink that wants it; returns at once.
    pub fn send(&self, notice: Notice) {
        let notice = Arc::new(notice);
        for (events, tx, name) in &self.queues {
            if !events.contains(&notice.event) {
                continue;
            }
            self.pending.fetch_add(1, Ordering::SeqCst);
            if tx.try_send(notice.clone()).is_err() {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!(
                    "notification {} to {name} dropped: {QUEUE} are waiting for it already",
                    notice.event.as_str()
                );
            }
        }
    }
}

impl Courier {
    async fn deliver(&self, notice: &Notice) {
        let s = &self.sink;
        let name = describe(&s.sink);
        let mut wait = s.retry_after;
        for attempt in 0..=s.retries {
            match self.attempt(s, notice).await {
                Ok(()) => {
                    tracing::info!("notified {name}: {}", notice.title);
                    return;
                }
                Err(e) if attempt < s.retries => {
                    tracing::warn!(
                        "notification {} to {name} failed ({e}); retried in {}",
                        notice.event.as_str(),
                        humantime::format_duration(wait)
                    );
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                Err(e) => tracing::warn!(
                    "notification {} to {name} failed ({e}); given up after {} attempts",
                    notice.event.as_str(),
                    s.retries + 1
                ),
            }
        }
    }

    async fn attempt(&self, s: &NotifySettings, n: &Notice) -> Result<(), String> {
        let json = || serde_json::to_vec(n).expect("a notice serialises");
        let (url, body, headers) = match &s.sink {
            Sink::Ntfy { url, token } => {
                let mut h = vec![
                    ("title", n.title.clone()),
                    (
                        "priority",
                        if n.event.urgent() { "high" } else { "default" }.into(),
                    ),
                    ("tags", format!("fwguard,{}", n.event.as_str())),
                    ("content-type", "text/plain; charset=utf-8".into()),
                ];
                if let Some(t) = token {
                    h.push(("authorization", format!("Bearer {t}")));
                }
                (url, n.message.clone().into_bytes(), h)
            }
            Sink::Webhook { url } => (
                url,
                json(),
                vec![("content-type", "application/json".into())],
            ),
            Sink::Command { argv } => return run(argv, json(), s.timeout).await,
        };
        self.fetcher
            .post(url, body, &headers, s.timeout)
            .await
            .map_err(|e| e.to_string().replace(url.as_str(), &shown(url)))
    }
}

/// Run `argv` with `input` on its stdin; exit status 0 within `timeout` is success.
async fn run(argv: &[String], input: Vec<u8>, timeout: Duration) -> Result<(), String> {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let work = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input is its own business.
            let _ = stdin.write_all(&input).await;
        }
        child.wait().await
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(format!(
            "no exit within {}; killed",
            humantime::format_duration(timeout)
        )),
        Ok(Err(e)) => Err(format!("waiting for it: {e}")),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("it exited with {status}")),
    }
}
