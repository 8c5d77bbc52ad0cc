//! Changes that are not moves of the update state: what each note leaves.

use super::*;
use crate::index::LastIndex;

fn last(version: u64, issued_at: u64) -> LastIndex {
    LastIndex {
        version,
        sha256: "cc".into(),
        issued_at,
        ..Default::default()
    }
}

#[test]
fn an_accepted_index_moves_replay_protection_and_the_time_floor_up_only() {
    let mut st = base();
    st.time_floor = AT;
    st.note(
        Note::IndexAccepted {
            last: last(3, AT + 10),
        },
        &facts(),
    );
    let mut want = base();
    want.time_floor = AT + 10;
    want.last_index = Some(last(3, AT + 10));
    assert_eq!(st, want);
    // An index issued before the floor (the floor was reset above it) leaves the floor.
    st.note(
        Note::IndexAccepted {
            last: last(4, AT + 5),
        },
        &facts(),
    );
    assert_eq!(
        (st.time_floor, st.last_index.unwrap().version),
        (AT + 10, 4)
    );
}

#[test]
fn a_rotated_root_starts_a_new_epoch_of_index_versions() {
    let mut st = base();
    st.last_index = Some(last(9, AT));
    st.time_floor = AT;
    st.note(
        Note::RootRotated {
            version: 2,
            text: Some("root v2".into()),
        },
        &facts(),
    );
    let mut want = base();
    want.root = Some("root v2".into());
    want.time_floor = AT;
    want.history = vec![HistoryEntry::new(
        AT,
        HistoryEvent::RootRotated,
        None,
        None,
        "trust root version 2 accepted",
    )];
    assert_eq!(st, want);
}

#[test]
fn a_checkpoint_is_kept_or_dropped_without_a_history_entry() {
    let p = Partial {
        version: v("1.1"),
        sha256: hex::encode([7u8; 32]),
        target: Slot::B,
        written: 65536,
        head: "00".into(),
    };
    let mut st = with(staged());
    st.note(
        Note::Checkpoint {
            partial: Some(p.clone()),
        },
        &facts(),
    );
    assert_eq!(st.partial, Some(p));
    st.note(Note::Checkpoint { partial: None }, &facts());
    assert_eq!(st, with(staged()));
}
