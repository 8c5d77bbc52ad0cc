//! The edges of an install: begin, verified, failed, interrupted, arm, re-arm.

use super::*;

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
    // The receiver hears of the install as it begins.
    want.outcomes = vec![outcome("installing", &[], "writing 10 bytes into slot B")];
    let begin = Event::Begin {
        release: Box::new(rel()),
        target: Slot::B,
    };
    // The checkpoint of an earlier download is consumed by the install that begins.
    let mut from = base();
    from.partial = Some(Partial {
        version: v("1.1"),
        sha256: hex::encode([7u8; 32]),
        target: Slot::B,
        written: 4,
        head: "00".into(),
    });
    edge(from, begin, want);
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
    want.outcomes = vec![outcome("installing", &[], "writing 10 bytes into slot B")];
    let begin = Event::Begin {
        release: Box::new(rel()),
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
    // With the seconds the trial has to commit: silence after that is a failure.
    want.outcomes = vec![outcome(
        "armed",
        &[],
        "trial boot of slot B armed; previous slot A",
    )];
    assert_eq!(want.outcomes[0].deadline_s, Some(900));
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
