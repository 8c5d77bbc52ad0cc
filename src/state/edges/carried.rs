//! The edges of a trial carried between the slots' fwguards in the bootloader environment,
//! and the merge of carried trust data.

use super::*;
use crate::state::carried::{Carried, CarriedOutcome, CarriedTrial, TrialResult, CARRY_SCHEMA};

fn carried_trial() -> CarriedTrial {
    CarriedTrial {
        arm_id: "arm1".into(),
        release: rel(),
        slot: Slot::B,
        previous: Slot::A,
        previous_record: Some(good_a()),
        previous_unidentified: None,
        baseline: Some(vec!["internet".into()]),
        device_id: "dev-of-a".into(),
        report_key: String::new(),
        denylist: vec![DenyEntry {
            version: v("0.8"),
            reason: "rolled back on A".into(),
            at: 3,
        }],
    }
}

#[test]
fn a_carried_trial_is_taken_over_by_a_state_that_knew_nothing_of_it() {
    // The new firmware's own state: a stale record of slot B from its earlier life, another
    // device id, a checkpoint.
    let mut from = PersistedState {
        device_id: "dev-of-b".into(),
        slot_b: Some(SlotRecord {
            version: v("0.9"),
            size: 3,
            sha256: "ab".into(),
            good: true,
            origin: Origin::Installed,
            parts: Vec::new(),
            verify: Vec::new(),
        }),
        known_good: Some(Slot::B),
        ..Default::default()
    };
    from.partial = None;
    let mut want = from.clone();
    want.update = armed(0);
    want.slot_a = Some(good_a());
    want.slot_b = b_record(false);
    want.slot_b.as_mut().unwrap().size = rel().size;
    want.slot_b.as_mut().unwrap().sha256 = rel().sha256;
    want.known_good = Some(Slot::A);
    want.baseline = Some(vec!["internet".into()]);
    want.device_id = "dev-of-a".into();
    want.carried_arm = Some("arm1".into());
    want.denylist = carried_trial().denylist;
    want.history = vec![entry(
        HistoryEvent::TrialCarried,
        Slot::B,
        "trial of slot B taken over from the firmware in slot A, which armed it (carried in the bootloader environment)",
    )];
    let e = Event::TakeTrial {
        trial: Box::new(carried_trial()),
    };
    edge(from, e, want);
}

#[test]
fn a_carried_rollback_of_the_trial_this_firmware_armed_is_recorded_and_reported() {
    let mut want = base();
    want.rollbacks_in_a_row = 2;
    want.denylist = vec![DenyEntry {
        version: v("1.1"),
        reason: "wan down".into(),
        at: AT,
    }];
    want.history = vec![entry(
        HistoryEvent::RolledBack,
        Slot::A,
        "running slot A again (wan down)",
    )];
    want.outcomes = vec![outcome(
        "rolled-back",
        &[],
        "running slot A again (wan down)",
    )];
    let e = Event::Returned {
        outcome: CarriedOutcome {
            arm_id: "arm1".into(),
            version: v("1.1"),
            slot: Slot::B,
            result: TrialResult::RolledBack,
            reason: "wan down".into(),
        },
    };
    edge(with(armed(1)), e, want);
}

#[test]
fn a_carried_commit_is_recorded_without_a_report() {
    let mut want = base();
    want.history = vec![entry(
        HistoryEvent::Committed,
        Slot::B,
        "committed in slot B (learned from the bootloader environment)",
    )];
    let e = Event::Returned {
        outcome: CarriedOutcome {
            arm_id: "arm1".into(),
            version: v("1.1"),
            slot: Slot::B,
            result: TrialResult::Committed,
            reason: String::new(),
        },
    };
    edge(with(armed(1)), e, want);
}

#[test]
fn an_outcome_of_another_trial_is_not_an_edge() {
    let other = CarriedOutcome {
        arm_id: "arm1".into(),
        version: v("1.0.5"),
        slot: Slot::B,
        result: TrialResult::RolledBack,
        reason: "x".into(),
    };
    for from in [with(armed(1)), with(UpdateState::Idle), with(trial())] {
        let e = Event::Returned {
            outcome: other.clone(),
        };
        assert!(transition(&from.update, &e).is_err(), "{:?}", from.update);
    }
    let mut same_slot = carried_trial();
    same_slot.previous = Slot::B;
    let e = Event::TakeTrial {
        trial: Box::new(same_slot),
    };
    assert!(transition(&UpdateState::Idle, &e).is_err());
}

#[test]
fn carried_trust_data_only_raises_and_only_within_its_root_epoch() {
    let index = |version, issued_at| crate::index::LastIndex {
        version,
        sha256: "aa".into(),
        issued_at,
        security_floor: None,
        pulled: Default::default(),
    };
    let mut st = base();
    st.time_floor = 100;
    st.last_index = Some(index(5, 100));
    let older = Carried {
        schema: CARRY_SCHEMA,
        trial: None,
        outcome: None,
        root_version: 1,
        last_index: Some(index(4, 90)),
        time_floor: 90,
    };
    assert!(!older.is_news_for(&st, 1));
    let before = st.clone();
    st.note(
        Note::CarriedTrust {
            carried: Box::new(older.clone()),
        },
        &facts(),
    );
    assert_eq!(st, before, "nothing goes backwards");
    let mut newer = older;
    newer.last_index = Some(index(6, 150));
    newer.time_floor = 200;
    // Of another root epoch (a rotation here or there), it is not news: a rotation may
    // lower the floor and restart index versions on purpose.
    assert!(!newer.is_news_for(&st, 2));
    assert!(newer.is_news_for(&st, 1));
    st.note(
        Note::CarriedTrust {
            carried: Box::new(newer.clone()),
        },
        &facts(),
    );
    assert_eq!(st.last_index, newer.last_index);
    assert_eq!(st.time_floor, 200);
    assert!(st.history.is_empty());
    assert!(!newer.is_news_for(&st, 1), "taken in once");
}

#[test]
fn carried_text_round_trips_and_a_newer_schema_is_refused_by_name() {
    let mut st = with(armed(1));
    st.time_floor = 42;
    st.carried_arm = Some("arm1".into());
    let c = st.carry(None, 1);
    assert_eq!(c.trial.as_ref().unwrap().slot, Slot::B);
    assert_eq!(Carried::decode(&c.encode()).unwrap(), c);
    assert!(!c.encode().contains('\n'), "one env line");
    let e = Carried::decode(r#"{"schema":2}"#).unwrap_err();
    assert!(e.to_string().contains("schema 2"), "{e}");
    assert!(Carried::decode("not json").is_err());
}
