//! Maintenance windows: when the daemon may reboot the router into an update, as days of the
//! week and a time range in the router's local time. Routers keep their zone as a POSIX TZ
//! string (OpenWrt: `/etc/TZ`, e.g. `CET-1CEST,M3.5.0,M10.5.0/3`) or a zoneinfo name; the
//! `tz-rs` crate turns either into UTC offsets, daylight saving time included.

use super::{ConfigError, Validator};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// mon, tue, wed, thu, fri, sat, sun; default every day.
    pub days: Option<Vec<String>>,
    /// "HH:MM", local time. A window whose end is not after its start runs past midnight.
    pub from: String,
    pub to: String,
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One window: the days it starts on (bit 0 = Sunday) and its minutes of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    days: u8,
    from: u16,
    to: u16,
}

/// A local time: day of the week (0 = Sunday) and minute of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub weekday: u8,
    pub minute: u16,
}

impl LocalTime {
    /// `unix` seconds in the zone `tz` (UTC when None).
    pub fn at(unix: u64, tz: Option<&tz::TimeZone>) -> LocalTime {
        let offset = tz
            .and_then(|z| z.find_local_time_type(unix as i64).ok())
            .map_or(0, |t| t.ut_offset() as i64);
        let local = unix as i64 + offset;
        let day = local.div_euclid(86_400);
        LocalTime {
            // 1970-01-01 was a Thursday.
            weekday: (day + 4).rem_euclid(7) as u8,
            minute: (local.rem_euclid(86_400) / 60) as u16,
        }
    }
}

impl Window {
    pub fn contains(&self, t: LocalTime) -> bool {
        let starts_on = |weekday: u8| self.days & (1 << weekday) != 0;
        if self.from < self.to {
            starts_on(t.weekday) && (self.from..self.to).contains(&t.minute)
        } else {
            // Past midnight: the evening of a listed day, or the early hours after one.
            (starts_on(t.weekday) && t.minute >= self.from)
                || (starts_on((t.weekday + 6) % 7) && t.minute < self.to)
        }
    }
}

fn hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}

impl Validator<'_> {
    pub(super) fn windows(
        &self,
        section: &str,
        raw: Vec<toml::Table>,
    ) -> Result<Vec<Window>, ConfigError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, table)| {
                let key = |k: &str| format!("{section}[{i}].{k}");
                let w = RawWindow::deserialize(table)
                    .map_err(|e| self.err(&format!("{section}[{i}]"), e.message()))?;
                let time = |k: &str, v: &str| {
                    hhmm(v).ok_or_else(|| {
                        self.err(&key(k), format!("{v:?} is not a time of day as \"HH:MM\""))
                    })
                };
                let (from, to) = (time("from", &w.from)?, time("to", &w.to)?);
                if from == to {
                    return Err(self.err(&key("to"), "the window is empty (from = to)"));
                }
                let mut days = 0u8;
                for d in w.days.unwrap_or_else(|| DAYS.map(String::from).to_vec()) {
                    let n = DAYS.iter().position(|x| *x == d).ok_or_else(|| {
                        self.err(
                            &key("days"),
                            format!("{d:?} is not one of mon, tue, wed, thu, fri, sat, sun"),
                        )
                    })?;
                    days |= 1 << n;
                }
                if days == 0 {
                    return Err(self.err(&key("days"), "no day given"));
                }
                Ok(Window { days, from, to })
            })
            .collect()
    }

    /// The zone: the configured one (POSIX TZ string or zoneinfo name), else `$TZ`, else
    /// the first line of `/etc/TZ` (OpenWrt), else UTC.
    pub(super) fn timezone(
        &self,
        raw: Option<String>,
    ) -> Result<Option<tz::TimeZone>, ConfigError> {
        let (spec, key) = match raw {
            Some(s) => (s, "agent.timezone"),
            None => match std::env::var("TZ")
                .ok()
                .filter(|s| !s.is_empty())
                .or_else(|| {
                    std::fs::read_to_string("/etc/TZ")
                        .ok()
                        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
                        .filter(|s| !s.is_empty())
                }) {
                Some(s) => (s, "agent.timezone (from $TZ or /etc/TZ)"),
                None => return Ok(None),
            },
        };
        tz::TimeZone::from_posix_tz(&spec).map(Some).map_err(|e| {
            self.err(
                key,
                format!("{spec:?} is not a POSIX TZ string or zoneinfo name: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(days: u8, from: &str, to: &str) -> Window {
        Window {
            days,
            from: hhmm(from).unwrap(),
            to: hhmm(to).unwrap(),
        }
    }

    #[test]
    fn local_time_follows_the_zone_and_its_summer_time() {
        let cet = tz::TimeZone::from_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2026-07-04 01:30 UTC is Saturday 03:30 in Berlin (CEST, +2).
        let summer = 1_783_128_600;
        assert_eq!(
            LocalTime::at(summer, None),
            LocalTime {
                weekday: 6,
                minute: 90
            }
        );
        assert_eq!(
            LocalTime::at(summer, Some(&cet)),
            LocalTime {
                weekday: 6,
                minute: 210
            }
        );
        // 2026-01-10 01:30 UTC is Saturday 02:30 (CET, +1).
        let winter = 1_768_008_600;
        assert_eq!(
            LocalTime::at(winter, Some(&cet)),
            LocalTime {
                weekday: 6,
                minute: 150
            }
        );
        // Just before midnight UTC on a Sunday is already Monday in Berlin.
        let late = 1_783_290_600; // 2026-07-05 22:30 UTC, Sunday: 00:30 Monday in Berlin
        assert_eq!(LocalTime::at(late, Some(&cet)).weekday, 1);
    }

    #[test]
    fn windows_by_day_and_past_midnight() {
        let sat_night = w(1 << 6, "02:00", "04:00");
        assert!(sat_night.contains(LocalTime {
            weekday: 6,
            minute: 150
        }));
        assert!(!sat_night.contains(LocalTime {
            weekday: 6,
            minute: 240
        }));
        assert!(!sat_night.contains(LocalTime {
            weekday: 0,
            minute: 150
        }));
        // Friday 23:00 to 01:00: Friday night and the first hour of Saturday.
        let wrap = w(1 << 5, "23:00", "01:00");
        assert!(wrap.contains(LocalTime {
            weekday: 5,
            minute: 23 * 60 + 30
        }));
        assert!(wrap.contains(LocalTime {
            weekday: 6,
            minute: 30
        }));
        assert!(!wrap.contains(LocalTime {
            weekday: 6,
            minute: 23 * 60 + 30
        }));
        assert!(!wrap.contains(LocalTime {
            weekday: 5,
            minute: 30
        }));
        assert_eq!(hhmm("24:00"), None);
        assert_eq!(hhmm("2:00"), None);
        assert_eq!(hhmm("02:60"), None);
    }
}
