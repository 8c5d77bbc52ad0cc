//! Wall-clock time as fwguard handles it: Unix seconds, read from the device's clock (which
//! may be wrong before NTP: the index's time floor guards against that), and RFC 3339 UTC
//! in files and messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An RFC 3339 UTC time (`2026-11-01T00:00:00Z`) as Unix seconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    humantime::parse_rfc3339(s)
        .map_err(|e| {
            format!("{s:?} is not an RFC 3339 UTC time such as 2026-11-01T00:00:00Z ({e})")
        })
        .and_then(|t| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(|_| format!("{s:?} is before 1970"))
        })
}

/// Unix seconds as RFC 3339 UTC.
pub fn format_time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// The device's clock, in Unix seconds (0 if it reads before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
