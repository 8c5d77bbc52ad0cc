//! `[[notify]]`: where the owner is told what fwguard did. Each entry is an ntfy topic, a
//! webhook or a command, with the events it wants and how its delivery is retried.

use super::{ConfigError, Validator};
use crate::notify::Kind;
use serde::Deserialize;
use std::time::Duration;

/// One `[[notify]]` table as written; which keys a kind takes is checked by the validator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    kind: String,
    url: Option<String>,
    token: Option<String>,
    command: Option<Vec<String>>,
    events: Option<Vec<String>>,
    timeout: Option<String>,
    retries: Option<u32>,
    retry_after: Option<String>,
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// An ntfy topic (`https://ntfy.sh/TOPIC`, or a server of one's own): the message as
    /// the body, the title and priority as headers; `token` as a bearer token.
    Ntfy {
        url: reqwest::Url,
        token: Option<String>,
    },
    /// The notification as a JSON POST (docs/status-schema.md).
    Webhook { url: reqwest::Url },
    /// A program run with the notification as JSON on stdin (`sendmail`, `msmtp`, ...).
    Command { argv: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    pub sink: Sink,
    /// The events it is sent (all, unless the table lists some).
    pub events: Vec<Kind>,
    /// Each attempt's limit.
    pub timeout: Duration,
    /// Attempts after the first one fails, each after twice the wait of the one before.
    pub retries: u32,
    pub retry_after: Duration,
}

impl Validator<'_> {
    pub(super) fn notify(&self, raw: Vec<toml::Table>) -> Result<Vec<NotifySettings>, ConfigError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, table)| self.notify_one(i, table))
            .collect()
    }

    fn notify_one(&self, i: usize, table: toml::Table) -> Result<NotifySettings, ConfigError> {
        let key = |k: &str| format!("notify[{i}].{k}");
        let r = RawNotify::deserialize(table)
            .map_err(|e| self.err(&format!("notify[{i}]"), e.message()))?;
        let only = |k: &str, set: bool, kinds: &str| match set {
            true => Err(self.err(&key(k), format!("is for kind {kinds}, not {:?}", r.kind))),
            false => Ok(()),
        };
        let url = |u: &Option<String>| match u {
            Some(u) => self.http_url(&key("url"), u.clone()),
            None => Err(self.err(&key("url"), "is missing")),
        };
        let sink = match r.kind.as_str() {
            "ntfy" | "webhook" => {
                only("command", r.command.is_some(), "command")?;
                let url = url(&r.url)?;
                match r.kind.as_str() {
                    "ntfy" => Sink::Ntfy {
                        url,
                        token: match r.token {
                            Some(t) if t.is_empty() || t.contains(['\r', '\n']) => {
                                return Err(self.err(&key("token"), "must be one non-empty line"))
                            }
                            t => t,
                        },
                    },
                    _ => {
                        only("token", r.token.is_some(), "ntfy")?;
                        Sink::Webhook { url }
                    }
                }
            }
            "command" => {
                only("url", r.url.is_some(), "ntfy or webhook")?;
                only("token", r.token.is_some(), "ntfy")?;
                match r.command {
                    Some(argv) if !argv.is_empty() && !argv[0].is_empty() => Sink::Command { argv },
                    _ => return Err(self.err(&key("command"), "must name a program")),
                }
            }
            other => {
                return Err(self.err(
                    &key("kind"),
                    format!("{other:?} is not \"ntfy\", \"webhook\" or \"command\""),
                ))
            }
        };
        let events = match r.events {
            None => Kind::ALL.to_vec(),
            Some(names) => {
                let mut events = Vec::new();
                for n in names {
                    let k = Kind::parse(&n).ok_or_else(|| {
                        let all: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                        self.err(
                            &key("events"),
                            format!("{n:?} is not one of {}", all.join(", ")),
                        )
                    })?;
                    events.push(k);
                }
                if events.is_empty() {
                    return Err(self.err(&key("events"), "lists no event (leave it out for all)"));
                }
                events
            }
        };
        Ok(NotifySettings {
            sink,
            events,
            timeout: self.duration(
                &key("timeout"),
                r.timeout.as_deref(),
                Duration::from_secs(10),
            )?,
            retries: match r.retries {
                Some(n) if n > 10 => return Err(self.err(&key("retries"), "must be at most 10")),
                n => n.unwrap_or(3),
            },
            retry_after: self.duration(
                &key("retry_after"),
                r.retry_after.as_deref(),
                Duration::from_secs(30),
            )?,
        })
    }
}
