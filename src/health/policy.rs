//! From check results to a verdict: groups (all, or k of n), required or advisory, and the
//! baseline rule: after an update, a required group that already failed before it does not
//! block (the ISP being down is not the firmware's fault).

use super::{CheckSpec, Report};
use serde::{Deserialize, Serialize};

/// Checks judged together. A check with no group forms a group of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// Indexes into the plan's checks.
    pub members: Vec<usize>,
    /// How many members must pass.
    pub need: usize,
    pub advisory: bool,
}

/// Every check and the groups they form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub checks: Vec<CheckSpec>,
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Required groups failing: these block a commit.
    pub failing: Vec<String>,
    /// Required groups failing that also failed before the update (baseline): not blocking.
    pub excused: Vec<String>,
    /// Advisory groups failing: recorded only.
    pub advisory: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failing.is_empty()
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    fn group_passes(&self, g: &Group, report: &Report) -> bool {
        g.members
            .iter()
            .filter(|&&i| report.results.get(i).is_some_and(|r| r.passed))
            .count()
            >= g.need
    }

    /// "name: k of n passed (need m): failures" for a failing group.
    fn describe(&self, g: &Group, report: &Report) -> String {
        let passed = g
            .members
            .iter()
            .filter(|&&i| report.results.get(i).is_some_and(|r| r.passed))
            .count();
        let fails: Vec<String> = g
            .members
            .iter()
            .filter_map(|&i| {
                report
                    .results
                    .get(i)
                    .filter(|r| !r.passed)
                    .map(|r| format!("{}: {}", r.name, r.detail))
            })
            .collect();
        if g.members.len() == 1 {
            fails.join("; ")
        } else {
            format!(
                "{}: {passed} of {} passed, {} needed ({})",
                g.name,
                g.members.len(),
                g.need,
                fails.join("; ")
            )
        }
    }

    /// Names of the groups that pass (what a baseline records).
    pub fn passing(&self, report: &Report) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| self.group_passes(g, report))
            .map(|g| g.name.clone())
            .collect()
    }

    /// Judge a report; with `baseline`, required groups that were failing before are excused.
    pub fn judge(&self, report: &Report, baseline: Option<&[String]>) -> Verdict {
        let mut v = Verdict::default();
        for g in self.groups.iter().filter(|g| !self.group_passes(g, report)) {
            let what = self.describe(g, report);
            if g.advisory {
                v.advisory.push(what);
            } else if baseline.is_some_and(|b| !b.contains(&g.name)) {
                v.excused.push(what);
            } else {
                v.failing.push(what);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{CheckKind, CheckResult};
    use std::time::Duration;

    fn plan() -> Plan {
        let check = |n: &str| CheckSpec {
            name: n.into(),
            timeout: Duration::from_secs(1),
            kind: CheckKind::Clock,
        };
        Plan {
            checks: ["a", "b", "c", "d", "wan", "ui"]
                .iter()
                .map(|n| check(n))
                .collect(),
            groups: vec![
                Group {
                    name: "internet".into(),
                    members: vec![0, 1, 2, 3],
                    need: 2,
                    advisory: false,
                },
                Group {
                    name: "wan".into(),
                    members: vec![4],
                    need: 1,
                    advisory: false,
                },
                Group {
                    name: "ui".into(),
                    members: vec![5],
                    need: 1,
                    advisory: true,
                },
            ],
        }
    }

    fn report(pass: [bool; 6]) -> Report {
        Report {
            results: pass
                .iter()
                .enumerate()
                .map(|(i, &p)| CheckResult {
                    name: format!("c{i}"),
                    passed: p,
                    duration_ms: 1,
                    detail: if p { "ok".into() } else { "down".into() },
                })
                .collect(),
        }
    }

    #[test]
    fn k_of_n_groups() {
        let p = plan();
        assert!(p
            .judge(&report([true, true, false, false, true, true]), None)
            .passed());
        let v = p.judge(&report([true, false, false, false, true, true]), None);
        assert_eq!(
            v.failing,
            vec!["internet: 1 of 4 passed, 2 needed (c1: down; c2: down; c3: down)".to_string()]
        );
    }

    #[test]
    fn advisory_never_blocks() {
        let v = plan().judge(&report([true, true, true, true, true, false]), None);
        assert!(v.passed());
        assert_eq!(v.advisory, vec!["c5: down".to_string()]);
    }

    #[test]
    fn baseline_excuses_what_failed_before() {
        let p = plan();
        let before = report([true, true, true, true, false, true]);
        let baseline = p.passing(&before);
        assert_eq!(baseline, vec!["internet".to_string(), "ui".to_string()]);
        // WAN was down before the update too: not the firmware's fault.
        let v = p.judge(
            &report([true, true, true, true, false, true]),
            Some(&baseline),
        );
        assert!(v.passed());
        assert_eq!(v.excused.len(), 1);
        // The internet group passed before: now it must pass.
        let v = p.judge(
            &report([false, false, false, true, false, true]),
            Some(&baseline),
        );
        assert!(!v.passed());
    }
}
