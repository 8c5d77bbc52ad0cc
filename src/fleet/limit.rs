//! Rate limits: at most so many reports a minute from one source address and for one device
//! (a fixed window a minute), so that a flood from one place, or for one device, costs the
//! service little and cannot tip a wave's counts by itself.

use std::collections::HashMap;
use std::sync::Mutex;

pub struct Limiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

impl Limiter {
    pub fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether one more report from `who` at `now` (unix seconds) is within the limit.
    pub fn allow(&self, who: &str, now: u64) -> bool {
        let minute = now / 60;
        let mut w = self.windows.lock().expect("limiter");
        if w.len() > 100_000 {
            // Forget past minutes rather than grow without end.
            w.retain(|_, (m, _)| *m == minute);
        }
        let e = w.entry(who.to_string()).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
        e.1 <= self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_one_gets_its_share_a_minute() {
        let l = Limiter::new(2);
        assert!(l.allow("a", 60) && l.allow("a", 61));
        assert!(!l.allow("a", 62), "a third in the minute");
        assert!(l.allow("b", 62), "another is not held back");
        assert!(l.allow("a", 120), "the next minute");
    }
}
