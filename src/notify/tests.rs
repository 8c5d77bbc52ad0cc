use super::*;
use crate::state::CheckRecord;

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn entry(at: u64, event: H, version: &str, slot: Slot) -> HistoryEntry {
    HistoryEntry::new(at, event, Some(&v(version)), Some(slot), "detail")
}

fn facts<'a>(history: &'a [HistoryEntry], running: &'a Version, rollbacks: u32) -> Facts<'a> {
    Facts {
        device: "dev",
        board: "sim",
        booted: Slot::A,
        running: Some(running),
        at: 7,
        history,
        rollbacks_in_a_row: rollbacks,
        max_rollbacks: 2,
    }
}

#[test]
fn each_event_is_told_once_from_where_the_history_was() {
    let mut history = vec![entry(1, H::Armed, "1.1", Slot::B)];
    let mut told = Told::at(&history);
    assert!(told.news(&history).is_empty());
    history.push(entry(2, H::TrialStarted, "1.1", Slot::B));
    history.push(entry(3, H::Committed, "1.1", Slot::B));
    let news: Vec<_> = told.news(&history).iter().map(|e| e.at).collect();
    assert_eq!(news, [2, 3]);
    assert!(told.news(&history).is_empty());
    // The history kept to its newest entries: the last one told is looked for.
    history.remove(0);
    history.push(entry(4, H::Install, "1.2", Slot::A));
    let news: Vec<_> = told.news(&history).iter().map(|e| e.at).collect();
    assert_eq!(news, [4]);
    // Lost altogether (a state file replaced): nothing is told again.
    let mut told = Told {
        seen: 1,
        last: Some("99 committed 9.9".into()),
        ..Told::default()
    };
    assert!(told.news(&history).is_empty());
    assert_eq!(told.seen, history.len());
    // Announced updates, once each, the newest few remembered.
    assert!(told.announce("1.2".into()) && !told.announce("1.2".into()));
    for i in 0..AVAILABLE_MAX {
        told.announce(format!("2.{i}"));
    }
    assert!(told.announce("1.2".into()), "the oldest is forgotten");
    told.floor = Some("1.1".into());
    assert_eq!(Told::from_text(&told.to_text()), Some(told.clone()));
    assert_eq!(
        Told::from_text(&Told::default().to_text()),
        Some(Told::default())
    );
    for bad in ["", "seen x\n", "last 1 a b\n", "seen 1\nnext 2\n", "seen"] {
        assert_eq!(Told::from_text(bad), None, "{bad:?}");
    }
}

#[test]
fn the_events_say_what_happened_and_what_the_owner_can_do() {
    let running = v("1.0");
    let failed = CheckRecord {
        name: "wan".into(),
        passed: false,
        duration_ms: 1,
        detail: "no carrier".into(),
    };
    let history = vec![
        // A carried trial is taken over and started in one recovery: told once.
        entry(1, H::TrialCarried, "1.1", Slot::B),
        entry(1, H::TrialStarted, "1.1", Slot::B),
        entry(2, H::Rollback, "1.1", Slot::B).with_checks(vec![failed]),
        entry(3, H::RolledBack, "1.1", Slot::A),
        entry(4, H::TrialFailed, "1.2", Slot::B),
        entry(5, H::AwaitingApproval, "1.3", Slot::B),
        // Learned from the other slot later: that slot's fwguard told it.
        entry(6, H::Committed, "1.1", Slot::B),
        entry(7, H::Committed, "1.4", Slot::A),
        entry(8, H::Verified, "1.4", Slot::B),
    ];
    let f = facts(&history, &running, 2);
    let n = f.from_history(&history);
    let kinds: Vec<_> = n.iter().map(|n| n.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "installed",
            "rolled-back",
            "paused",
            "given-up",
            "paused",
            "needs-owner",
            "committed"
        ]
    );
    assert_eq!(n[1].failing, ["wan"]);
    assert!(
        n[1].message.contains("its health checks failed: wan"),
        "{}",
        n[1].message
    );
    assert!(
        n[1].message.contains("`fwguard pin 1.1`"),
        "{}",
        n[1].message
    );
    assert!(
        n[5].message.contains("`fwguard approve 1.3`"),
        "{}",
        n[5].message
    );
    assert_eq!(n[6].version, Some(v("1.4")));
    for n in &n {
        assert_eq!(
            (n.device.as_str(), n.board.as_str(), n.at),
            ("dev", "sim", 7)
        );
        assert!(n.title.starts_with("fwguard: "), "{}", n.title);
    }
    // Below the limit: no pause.
    let f = facts(&history, &running, 1);
    assert!(f
        .from_history(&history)
        .iter()
        .all(|n| n.event != Kind::Paused));
    let json = serde_json::to_value(&n[1]).unwrap();
    assert_eq!(json["event"], "rolled-back");
    assert_eq!(json["schema"], NOTICE_SCHEMA);
    assert!(serde_json::to_value(&n[0])
        .unwrap()
        .get("failing")
        .is_none());
}

#[test]
fn secrets_in_urls_do_not_reach_a_message() {
    let running = v("1.0");
    let history = vec![HistoryEntry::new(
        1,
        H::TrialFailed,
        Some(&v("1.1")),
        Some(Slot::B),
        "x",
    )];
    let mut e = history[0].clone();
    e.detail = "fetching https://u:p@host/fw?token=abc failed".into();
    let n = facts(&history, &running, 0).from_history(&[e]);
    assert!(
        !n[0].message.contains("u:p") && !n[0].message.contains("abc"),
        "{}",
        n[0].message
    );
    assert_eq!(Kind::parse("given-up"), Some(Kind::GivenUp));
    assert_eq!(Kind::parse("rebooting"), None);
}
