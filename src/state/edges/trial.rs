//! The edges of a trial and a rollback, and the pairs that are not edges.

use super::*;

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
        release: Box::new(rel()),
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
