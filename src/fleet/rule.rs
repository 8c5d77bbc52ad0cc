//! What the service counts per release and wave, and the rule that halts a release.
//!
//! A device's state for a release is its latest report of it, except that an outcome always
//! wins over `installing`/`armed` (reports may arrive out of order after retries). A device
//! whose latest is `armed` and that sent nothing for `deadline_s` plus the grace after its
//! `armed` arrived is **presumed failed**: a firmware that bricked the router never reports.

use serde::Serialize;

/// One device's reports of one release, as the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReports {
    pub device: String,
    /// The wave the device is in for this release (1 = the first).
    pub wave: u32,
    /// (result, received at, deadline_s) of each report, oldest first.
    pub reports: Vec<(String, u64, Option<u64>)>,
    /// The health checks that failed, of its rollback.
    pub failing: Vec<String>,
}

/// Where one device stands with a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Installing,
    Armed,
    Committed,
    RolledBack,
    TrialFailed,
    PresumedFailed,
}

impl Standing {
    pub fn failed(self) -> bool {
        matches!(
            self,
            Standing::RolledBack | Standing::TrialFailed | Standing::PresumedFailed
        )
    }
}

/// A device's standing at time `now`, given `grace` seconds for a reboot.
pub fn standing(d: &DeviceReports, now: u64, grace: u64) -> Option<Standing> {
    let outcome = d.reports.iter().rev().find_map(|(r, ..)| match r.as_str() {
        "committed" => Some(Standing::Committed),
        "rolled-back" => Some(Standing::RolledBack),
        "trial-failed" => Some(Standing::TrialFailed),
        _ => None,
    });
    if outcome.is_some() {
        return outcome;
    }
    let armed = d.reports.iter().rev().find(|(r, ..)| r == "armed");
    match armed {
        Some((_, at, deadline)) => {
            let due = at
                .saturating_add(deadline.unwrap_or(0))
                .saturating_add(grace);
            Some(match now > due {
                true => Standing::PresumedFailed,
                false => Standing::Armed,
            })
        }
        None => d
            .reports
            .iter()
            .any(|(r, ..)| r == "installing")
            .then_some(Standing::Installing),
    }
}

/// The counts of one wave of one release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub wave: u32,
    /// Devices that began the install.
    pub installing: u32,
    /// Devices that armed a trial (whatever came of it).
    pub armed: u32,
    pub committed: u32,
    pub rolled_back: u32,
    pub trial_failed: u32,
    pub presumed_failed: u32,
}

impl Tally {
    pub fn failed(&self) -> u32 {
        self.rolled_back + self.trial_failed + self.presumed_failed
    }
}

/// The tallies of a release, one per wave that has devices, in wave order, and its most
/// failing health checks (name, devices), most first.
pub fn tally(devices: &[DeviceReports], now: u64, grace: u64) -> (Vec<Tally>, Vec<(String, u32)>) {
    let mut waves: std::collections::BTreeMap<u32, Tally> = Default::default();
    let mut checks: std::collections::BTreeMap<String, u32> = Default::default();
    for d in devices {
        let Some(s) = standing(d, now, grace) else {
            continue;
        };
        let t = waves.entry(d.wave).or_insert_with(|| Tally {
            wave: d.wave,
            ..Tally::default()
        });
        t.installing += 1;
        if s != Standing::Installing {
            t.armed += 1;
        }
        match s {
            Standing::Committed => t.committed += 1,
            Standing::RolledBack => t.rolled_back += 1,
            Standing::TrialFailed => t.trial_failed += 1,
            Standing::PresumedFailed => t.presumed_failed += 1,
            Standing::Installing | Standing::Armed => {}
        }
        if s == Standing::RolledBack {
            for c in &d.failing {
                *checks.entry(c.clone()).or_default() += 1;
            }
        }
    }
    let mut top: Vec<(String, u32)> = checks.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    (waves.into_values().collect(), top)
}

/// When a release is halted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Any failure in the first wave halts.
    pub first_wave_any: bool,
    /// In any wave, once this many devices armed a trial ...
    pub min_armed: u32,
    /// ... this share of them failed (percent) halts.
    pub max_failed_percent: u32,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            first_wave_any: true,
            min_armed: 5,
            max_failed_percent: 20,
        }
    }
}

impl Rule {
    /// Why the release whose waves are `tallies` must be halted, if it must.
    pub fn fires(&self, tallies: &[Tally]) -> Option<String> {
        for t in tallies {
            let failed = t.failed();
            let counts = format!(
                "{failed} of {} armed trials failed ({} rolled back, {} given up by the bootloader, {} presumed failed)",
                t.armed, t.rolled_back, t.trial_failed, t.presumed_failed
            );
            if self.first_wave_any && t.wave == 1 && failed > 0 {
                return Some(format!(
                    "wave 1: {counts}; any failure in the first wave halts"
                ));
            }
            if t.armed >= self.min_armed.max(1) && failed * 100 >= self.max_failed_percent * t.armed
            {
                return Some(format!(
                    "wave {}: {counts}, at least {}% of at least {} armed",
                    t.wave, self.max_failed_percent, self.min_armed
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(wave: u32, reports: &[(&str, u64)]) -> DeviceReports {
        DeviceReports {
            device: "d".into(),
            wave,
            reports: reports
                .iter()
                .map(|(r, at)| (r.to_string(), *at, (*r == "armed").then_some(100)))
                .collect(),
            failing: vec!["wan-link".into()],
        }
    }

    #[test]
    fn silence_after_an_armed_trial_is_a_presumed_failure() {
        let d = dev(1, &[("installing", 0), ("armed", 10)]);
        assert_eq!(standing(&d, 100, 60), Some(Standing::Armed));
        assert_eq!(standing(&d, 171, 60), Some(Standing::PresumedFailed));
        // The outcome, however late, decides; out of order, too.
        let d = dev(1, &[("committed", 500), ("armed", 10)]);
        assert_eq!(standing(&d, 10_000, 60), Some(Standing::Committed));
        let d = dev(1, &[("armed", 10), ("trial-failed", 900)]);
        assert_eq!(standing(&d, 10_000, 60), Some(Standing::TrialFailed));
        assert_eq!(standing(&dev(1, &[]), 0, 0), None);
        assert_eq!(
            standing(&dev(1, &[("installing", 0)]), 9, 0),
            Some(Standing::Installing)
        );
    }

    #[test]
    fn waves_are_counted_apart_with_the_failing_checks() {
        let devices = [
            dev(1, &[("installing", 0), ("armed", 1), ("rolled-back", 50)]),
            dev(1, &[("installing", 0), ("armed", 1), ("committed", 50)]),
            dev(2, &[("installing", 0)]),
            dev(2, &[("installing", 0), ("armed", 1)]),
        ];
        let (t, top) = tally(&devices, 1000, 60);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (
                t[0].installing,
                t[0].armed,
                t[0].committed,
                t[0].rolled_back
            ),
            (2, 2, 1, 1)
        );
        assert_eq!(
            (t[1].installing, t[1].armed, t[1].presumed_failed),
            (2, 1, 1)
        );
        assert_eq!(top, vec![("wan-link".to_string(), 1)]);
    }

    #[test]
    fn the_rule_fires_on_a_first_wave_failure_or_a_share_of_enough_trials() {
        let r = Rule::default();
        let mut t = Tally {
            wave: 1,
            armed: 1,
            rolled_back: 1,
            ..Tally::default()
        };
        assert!(r.fires(&[t.clone()]).unwrap().contains("wave 1: 1 of 1"));
        t.wave = 2;
        assert_eq!(r.fires(&[t.clone()]), None, "one trial of five is too few");
        t.armed = 5;
        assert!(r.fires(&[t.clone()]).unwrap().contains("at least 20%"));
        t.armed = 6;
        assert_eq!(r.fires(&[t.clone()]), None, "1 of 6 is under 20%");
        let strict = Rule {
            first_wave_any: false,
            ..Rule::default()
        };
        t.wave = 1;
        t.armed = 1;
        assert_eq!(strict.fires(&[t]), None);
    }
}
