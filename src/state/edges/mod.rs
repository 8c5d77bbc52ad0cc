//! One test per edge of the update state graph, each asserting the whole state that
//! [`PersistedState::apply`] leaves: the tag, the slot records, known-good, the denylist,
//! the rollback counter, the history entry and the queued outcome. And the pairs that are
//! not edges are refused with nothing changed.

use super::*;

mod carried;
mod install;
mod notes;
mod trial;
use crate::index::Release;

const AT: u64 = 1_800_000_000;

fn rel() -> ReleaseRef {
    (&Release::sample()).into()
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
            trial_seconds: 900,
        }),
    }
}

fn good_a() -> SlotRecord {
    SlotRecord {
        version: v("1.0"),
        size: 5,
        sha256: "aa".into(),
        good: true,
        origin: Origin::Installed,
        parts: Vec::new(),
        verify: Vec::new(),
    }
}

/// Running 1.0 from slot A, known-good, with one earlier rollback counted.
fn base() -> PersistedState {
    PersistedState {
        device_id: "dev1".into(),
        report_key: "11".repeat(32),
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
        origin: Origin::Installed,
        parts: Vec::new(),
        verify: Vec::new(),
    })
}

fn entry(event: HistoryEvent, slot: Slot, detail: &str) -> HistoryEntry {
    HistoryEntry::new(AT, event, Some(&v("1.1")), Some(slot), detail)
}

fn check(name: &str, passed: bool) -> CheckRecord {
    CheckRecord {
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
        id: String::new(),
        deadline_s: (result == "armed").then_some(900),
    }
}

/// Apply `event` to `from` and compare the whole result with `want`.
fn edge(from: PersistedState, event: Event, want: PersistedState) {
    let mut st = from;
    st.apply(event, &facts()).unwrap();
    // Each queued report has an id of its own (random): there, and not compared.
    for o in &mut st.outcomes {
        assert_eq!(o.id.len(), 16, "{o:?}");
        o.id.clear();
    }
    assert_eq!(st, want);
}
