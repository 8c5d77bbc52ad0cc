//! fwguard's log: a small `tracing` subscriber. Each event is one line, to stderr
//! (`2026-12-01T20:10:01.126453Z  INFO message key=value`) or, with `--syslog`, one datagram
//! to the syslog socket with the event's level as its severity. Which events are logged:
//! `$FWGUARD_LOG` (a level for everything, `debug`, or per target,
//! `fwguard=debug,hyper=info`), else fwguard's own at the level `-v` gives. Written here
//! rather than taken from `tracing-subscriber`, whose formatting machinery was 22 KB of the
//! router build for this.

use super::syslog::{severity, Syslog};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Which targets log up to which level (None: off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    default: Option<Level>,
    targets: Vec<(String, Option<Level>)>,
}

fn level(s: &str) -> Option<Option<Level>> {
    Some(match s.to_ascii_lowercase().as_str() {
        "off" => None,
        "error" => Some(Level::ERROR),
        "warn" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => return None,
    })
}

impl Filter {
    /// fwguard's own events up to `max`, nothing else.
    pub fn fwguard(max: Level) -> Filter {
        Filter {
            default: None,
            targets: vec![("fwguard".into(), Some(max))],
        }
    }

    /// `debug`, or `fwguard=debug,hyper=info`; None when it is neither.
    pub fn parse(s: &str) -> Option<Filter> {
        let mut f = Filter {
            default: None,
            targets: Vec::new(),
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                Some((target, l)) => f.targets.push((target.to_string(), level(l)?)),
                None => f.default = level(item)?,
            }
        }
        Some(f)
    }

    /// Whether an event of `meta` is logged: the level of the longest target that is its
    /// target or a module path above it, else the default.
    pub fn enabled(&self, meta: &Metadata<'_>) -> bool {
        let t = meta.target();
        let max = self
            .targets
            .iter()
            .filter(|(p, _)| {
                t == p
                    || t.strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with("::"))
            })
            .max_by_key(|(p, _)| p.len())
            .map_or(self.default, |(_, l)| *l);
        max.is_some_and(|m| *meta.level() <= m)
    }
}

pub struct Logger {
    filter: Filter,
    syslog: Option<Syslog>,
    spans: AtomicU64,
}

impl Logger {
    pub fn new(filter: Filter, syslog: Option<Syslog>) -> Logger {
        Logger {
            filter,
            syslog,
            spans: AtomicU64::new(0),
        }
    }
}

/// An event's message, then its other fields as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Logger {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.filter.enabled(meta)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.spans.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let level = event.metadata().level();
        match &self.syslog {
            // syslog stamps the time and keeps the severity itself.
            Some(s) => s.send(severity(level), &format!("{}{}", f.message, f.rest)),
            None => {
                let line = format!(
                    "{} {level:>5} {}{}\n",
                    humantime::format_rfc3339_micros(std::time::SystemTime::now()),
                    f.message,
                    f.rest
                );
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_read_as_fwguard_log_writes_them() {
        let f = Filter::parse("fwguard=debug,hyper=info").unwrap();
        assert_eq!(f.targets.len(), 2);
        assert_eq!(f.default, None);
        let f = Filter::parse("warn").unwrap();
        assert_eq!(f.default, Some(Level::WARN));
        assert!(Filter::parse("fwguard=loud").is_none());
        assert!(Filter::parse("chatty").is_none());
        assert_eq!(Filter::parse("off").unwrap().default, None);
    }
}
