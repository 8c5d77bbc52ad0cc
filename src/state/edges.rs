//! One test per edge of the update state graph, each asserting the whole state that
//! [`PersistedState::apply`] leaves: the tag, the slot records, known-good, the denylist,
//! the rollback counter, the history entry and the queued outcome. And the pairs that are
//! not edges are refused with nothing changed.

use super::*;
use crate::health::CheckResult;
use crate::index::Release;

const AT: u64 = 1_800_000_000;

fn rel() -> Release {
    Release {
        version: "1.1".parse().unwrap(),
        boards: vec!["sim".into()],
        channels: vec!["stable".into()],
        urls: vec!["fw.img".into()],
        size: 10,
        sha256: [7; 32],
        min_from: None,
        pulled: None,
        rollout: None,
    }
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn facts() -> Facts {
    Facts {
        at: AT,
        reporter: Some(Reporter {
            device: "dev1".into(),
            board: "sim".into(),
        }),
    }
}

fn good_a() -> SlotRecord {
    SlotRecord {
        version: v("1.0"),
        size: 5,
        sha256: "aa".into(),
        good: true,
    }
}

/// Running 1.0 from slot A, known-good, with one earlier rollback counted.
fn base() -> PersistedState {
    PersistedState {
        device_id: "dev1".into(),
        slot_a: Some(good_a()),
        known_good: Some(Slot::A),
        rollbacks_in_a_row: 1,
        ..Default::default()
    }
}

fn with(update: UpdateState) -> PersistedState {
    PersistedState { update, ..base() }
}

fn staged() -> UpdateState {
    UpdateState::Staged {
        release: rel(),
        target: Slot::B,
        arm_attempts: 0,
    }
}

fn armed(attempts: u8) -> UpdateState {
    UpdateState::Armed {
        release: rel(),
        target: Slot::B,
        previous: Slot::A,
        arm_attempts: attempts,
    }
}

fn trial() -> UpdateState {
    UpdateState::Trial {
        release: rel(),
        slot: Slot::B,
        previous: Slot::A,
        boot_id: "b1".into(),
        started_ms: 5,
        boots: 1,
    }
}

fn rolling(attempts: u8) -> UpdateState {
    UpdateState::RollingBack {
        version: v("1.1"),
        from: Slot::B,
        to: Slot::A,
        reason: "wan down".into(),
        attempts,
    }
}

fn b_record(good: bool) -> Option<SlotRecord> {
    Some(SlotRecord {
        version: v("1.1"),
        size: 10,
        sha256: hex::encode([7u8; 32]),
        good,
    })
}

fn entry(event: HistoryEvent, slot: Slot, detail: &str) -> HistoryEntry {
    HistoryEntry::new(AT, event, Some(&v("1.1")), Some(slot), detail)
}

fn check(name: &str, passed: bool) -> CheckResult {
    CheckResult {
        name: name.into(),
        passed,
        duration_ms: 1,
        detail: "d".into(),
    }
}

fn outcome(result: &str, failing: &[&str], detail: &str) -> Outcome {
    Outcome {
        schema: 1,
        device: "dev1".into(),
        board: "sim".into(),
        release: v("1.1"),
        result: result.into(),
        failing: failing.iter().map(|s| s.to_string()).collect(),
        detail: detail.into(),
        at: AT,
    }
}

/// Apply `event` to `from` and compare the whole result with `want`.
fn edge(from: PersistedState, event: Event, want: PersistedState) {
    let mut st = from;
    st.apply(event, &facts()).unwrap();
    assert_eq!(st, want);
}

#[test]
fn idle_begin() {
    let mut want = with(UpdateState::Installing {
        release: rel(),
        target: Slot::B,
    });
    want.history = vec![entry(
        HistoryEvent::Install,
        Slot::B,
        "writing 10 bytes into slot B",
    )];
    let begin = Event::Begin {
        release: rel(),
        target: Slot::B,
    };
    edge(base(), begin, want);
}

#[test]
fn staged_begin() {
    let mut from = with(staged());
    from.slot_b = b_record(false);
    let mut want = with(UpdateState::Installing {
        release: rel(),
        target: Slot::B,
    });
    want.history = vec![entry(
        HistoryEvent::Install,
        Slot::B,
        "writing 10 bytes into slot B",
    )];
    let begin = Event::Begin {
        release: rel(),
        target: Slot::B,
    };
    edge(from, begin, want);
}

#[test]
fn installing_verified() {
    let mut from = with(UpdateState::Installing {
        release: rel(),
        target: Slot::B,
    });
    from.partial = Some(Partial {
        version: v("1.1"),
        sha256: hex::encode([7u8; 32]),
        target: Slot::B,
        written: 4,
        head: String::new(),
    });
    from.note_bad_source(&hex::encode([7u8; 32]), "http://mirror/fw.img");
    let mut want = with(staged());
    want.slot_b = b_record(false);
    want.history = vec![entry(
        HistoryEvent::Verified,
        Slot::B,
        "image read back and verified",
    )];
    edge(from, Event::Verified, want);
}

#[test]
fn installing_failed() {
    let from = with(UpdateState::Installing {
        release: rel(),
        target: Slot::B,
    });
    let mut want = base();
    want.history = vec![entry(
        HistoryEvent::InstallFailed,
        Slot::B,
        "sha256 differs",
    )];
    let failed = Event::Failed {
        why: "sha256 differs".into(),
    };
    edge(from, failed, want);
}

#[test]
fn staged_failed() {
    let mut from = with(staged());
    from.slot_b = b_record(false);
    let mut want = base();
    want.history = vec![entry(
        HistoryEvent::InstallFailed,
        Slot::B,
        "no longer verifies",
    )];
    let failed = Event::Failed {
        why: "no longer verifies".into(),
    };
    edge(from, failed, want);
}

#[test]
fn installing_interrupted() {
    let mut from = with(UpdateState::Installing {
        release: rel(),
        target: Slot::B,
    });
    from.slot_b = b_record(false);
    let mut want = base();
    want.history = vec![entry(HistoryEvent::InstallInterrupted, Slot::B, "cut off")];
    let cut = Event::Interrupted {
        detail: "cut off".into(),
    };
    edge(from, cut, want);
}

#[test]
fn staged_arm() {
    let mut want = with(armed(1));
    want.history = vec![entry(
        HistoryEvent::Armed,
        Slot::B,
        "trial boot of slot B armed; previous slot A",
    )];
    edge(with(staged()), Event::Arm { previous: Slot::A }, want);
}

#[test]
fn armed_rearm() {
    let mut want = with(UpdateState::Staged {
        release: rel(),
        target: Slot::B,
        arm_attempts: 2,
    });
    let detail = "the boot switch was cut off; the image stays staged";
    want.history = vec![entry(HistoryEvent::ArmInterrupted, Slot::B, detail)];
    edge(with(armed(2)), Event::Rearm, want);
}

#[test]
fn armed_arm_failed() {
    let mut want = with(UpdateState::Staged {
        release: rel(),
        target: Slot::B,
        arm_attempts: 1,
    });
    want.history = vec![entry(HistoryEvent::ArmFailed, Slot::B, "read-back differs")];
    let failed = Event::ArmFailed {
        why: "read-back differs".into(),
    };
    edge(with(armed(1)), failed, want);
}

#[test]
fn armed_retry_boot() {
    edge(with(armed(1)), Event::RetryBoot, with(armed(2)));
}

#[test]
fn armed_booted_trial() {
    let mut want = with(trial());
    want.history = vec![entry(
        HistoryEvent::TrialStarted,
        Slot::B,
        "booted slot B on trial",
    )];
    let booted = Event::BootedTrial {
        boot_id: "b1".into(),
        started_ms: 5,
        bootcount: 1,
    };
    edge(with(armed(1)), booted, want);
}

#[test]
fn trial_booted_trial_again_counts_the_boot() {
    let mut want = with(UpdateState::Trial {
        release: rel(),
        slot: Slot::B,
        previous: Slot::A,
        boot_id: "b2".into(),
        started_ms: 9,
        boots: 2,
    });
    let detail = "rebooted during the trial (bootcount 2)";
    want.history = vec![entry(HistoryEvent::TrialReboot, Slot::B, detail)];
    let booted = Event::BootedTrial {
        boot_id: "b2".into(),
        started_ms: 9,
        bootcount: 2,
    };
    edge(with(trial()), booted, want);
    // The same boot again (a daemon restart): nothing changes.
    let same = Event::BootedTrial {
        boot_id: "b1".into(),
        started_ms: 99,
        bootcount: 1,
    };
    edge(with(trial()), same, with(trial()));
}

#[test]
fn trial_commit() {
    let checks = vec![check("internet", true), check("lan", false)];
    let mut want = base();
    want.slot_b = b_record(true);
    want.known_good = Some(Slot::B);
    want.rollbacks_in_a_row = 0;
    want.history =
        vec![entry(HistoryEvent::Committed, Slot::B, "passed").with_checks(checks.clone())];
    want.outcomes = vec![outcome("committed", &["lan"], "passed")];
    let commit = Event::Commit {
        checks,
        detail: "passed".into(),
    };
    edge(with(trial()), commit, want);
}

#[test]
fn armed_abandoned_by_the_bootloader_is_reported() {
    let mut want = base();
    want.rollbacks_in_a_row = 2;
    want.denylist = vec![DenyEntry {
        version: v("1.1"),
        reason: "never reached userspace".into(),
        at: AT,
    }];
    want.history = vec![entry(
        HistoryEvent::TrialFailed,
        Slot::B,
        "never reached userspace",
    )];
    want.outcomes = vec![outcome("trial-failed", &[], "never reached userspace")];
    let abandoned = Event::Abandoned {
        why: "never reached userspace".into(),
        by_bootloader: true,
    };
    edge(with(armed(1)), abandoned, want);
}

#[test]
fn armed_abandoned_when_the_switch_never_took_effect_is_not_reported() {
    let mut want = base();
    want.rollbacks_in_a_row = 2;
    want.denylist = vec![DenyEntry {
        version: v("1.1"),
        reason: "switch ignored".into(),
        at: AT,
    }];
    want.history = vec![entry(HistoryEvent::TrialFailed, Slot::B, "switch ignored")];
    let abandoned = Event::Abandoned {
        why: "switch ignored".into(),
        by_bootloader: false,
    };
    edge(with(armed(3)), abandoned, want);
}

#[test]
fn trial_abandoned() {
    let mut want = base();
    want.rollbacks_in_a_row = 2;
    want.denylist = vec![DenyEntry {
        version: v("1.1"),
        reason: "returned to A".into(),
        at: AT,
    }];
    want.history = vec![entry(HistoryEvent::TrialFailed, Slot::B, "returned to A")];
    want.outcomes = vec![outcome("trial-failed", &[], "returned to A")];
    let abandoned = Event::Abandoned {
        why: "returned to A".into(),
        by_bootloader: true,
    };
    edge(with(trial()), abandoned, want);
}

#[test]
fn trial_rollback() {
    let checks = vec![check("internet", false)];
    let mut want = with(rolling(0));
    want.rollbacks_in_a_row = 2;
    want.denylist = vec![DenyEntry {
        version: v("1.1"),
        reason: "wan down".into(),
        at: AT,
    }];
    want.history = vec![entry(
        HistoryEvent::Rollback,
        Slot::B,
        "switching to slot A: wan down",
    )
    .with_checks(checks.clone())];
    let rollback = Event::Rollback {
        to: Slot::A,
        version: v("1.1"),
        reason: "wan down".into(),
        checks,
        by_owner: false,
    };
    edge(with(trial()), rollback, want);
}

#[test]
fn idle_rollback_by_the_owner() {
    let mut from = base();
    from.slot_b = b_record(true);
    let mut want = from.clone();
    want.update = UpdateState::RollingBack {
        version: v("1.1"),
        from: Slot::A,
        to: Slot::B,
        reason: "owner".into(),
        attempts: 0,
    };
    want.rollbacks_in_a_row = 0;
    want.denylist = vec![DenyEntry {
        version: v("1.1"),
        reason: "owner".into(),
        at: AT,
    }];
    want.history = vec![entry(
        HistoryEvent::Rollback,
        Slot::A,
        "switching to slot B: owner",
    )];
    let rollback = Event::Rollback {
        to: Slot::B,
        version: v("1.1"),
        reason: "owner".into(),
        checks: Vec::new(),
        by_owner: true,
    };
    edge(from, rollback, want);
}

#[test]
fn rolling_back_rolled_back() {
    let mut from = with(rolling(0));
    let failed = vec![check("internet", false), check("lan", true)];
    from.history = vec![entry(HistoryEvent::Rollback, Slot::B, "switching").with_checks(failed)];
    let mut want = from.clone();
    want.update = UpdateState::Idle;
    want.known_good = Some(Slot::A);
    want.history.push(entry(
        HistoryEvent::RolledBack,
        Slot::A,
        "running slot A again (wan down)",
    ));
    want.outcomes = vec![outcome(
        "rolled-back",
        &["internet"],
        "running slot A again (wan down)",
    )];
    edge(from, Event::RolledBack, want);
}

#[test]
fn rolling_back_retry_boot() {
    edge(with(rolling(1)), Event::RetryBoot, with(rolling(2)));
}

#[test]
fn rolling_back_failed() {
    let mut want = base();
    want.history = vec![entry(
        HistoryEvent::RollbackFailed,
        Slot::B,
        "the bootloader kept booting slot B after 3 reboots into slot A: it does not read the environment fwguard writes (check its location with `fwguard doctor`); staying on slot B",
    )];
    edge(with(rolling(3)), Event::RollbackFailed, want);
}

#[test]
fn without_a_reporter_nothing_is_queued() {
    let mut st = with(trial());
    let quiet = Facts {
        at: AT,
        reporter: None,
    };
    let commit = Event::Commit {
        checks: Vec::new(),
        detail: "ok".into(),
    };
    st.apply(commit, &quiet).unwrap();
    assert!(st.outcomes.is_empty());
}

#[test]
fn pairs_that_are_not_edges_are_refused_and_change_nothing() {
    let begin = || Event::Begin {
        release: rel(),
        target: Slot::B,
    };
    let refused: Vec<(UpdateState, Event)> = vec![
        (armed(1), begin()),
        (trial(), begin()),
        (rolling(0), begin()),
        (UpdateState::Idle, Event::Verified),
        (
            UpdateState::Idle,
            Event::Commit {
                checks: Vec::new(),
                detail: String::new(),
            },
        ),
        (UpdateState::Idle, Event::RolledBack),
        (UpdateState::Idle, Event::RetryBoot),
        (staged(), Event::Arm { previous: Slot::B }),
        (trial(), Event::Verified),
        (
            trial(),
            Event::Rollback {
                to: Slot::B,
                version: v("1.1"),
                reason: "x".into(),
                checks: Vec::new(),
                by_owner: false,
            },
        ),
        (staged(), Event::RetryBoot),
        (trial(), Event::RollbackFailed),
        (
            UpdateState::Idle,
            Event::Interrupted {
                detail: String::new(),
            },
        ),
    ];
    for (state, event) in refused {
        let mut st = with(state);
        let before = st.clone();
        let name = event.name();
        let e = st.apply(event, &facts()).unwrap_err();
        assert_eq!(e.event, name);
        assert_eq!(st, before, "{name} changed the state");
    }
    let mut st = base();
    assert_eq!(
        st.apply(Event::RolledBack, &facts())
            .unwrap_err()
            .to_string(),
        "cannot finish a rollback while the update state is idle"
    );
}
