//! The recovery table: every update state against every combination of what the bootloader
//! reports (a trial armed or not, on which slot, booted the target or the previous slot, a
//! fallback or not, the env unreadable), each row with the plan it must give. Then, over
//! the whole product, what no plan may ever do.

use super::*;
use crate::index::Release;
use crate::state::{Partial, UpdateState as S};
use Slot::{A, B};

fn rel() -> crate::state::ReleaseRef {
    (&Release::sample()).into()
}

fn states() -> Vec<(&'static str, S)> {
    vec![
        ("idle", S::Idle),
        (
            "installing",
            S::Installing {
                release: rel(),
                target: B,
            },
        ),
        (
            "staged",
            S::Staged {
                release: rel(),
                target: B,
                arm_attempts: 0,
            },
        ),
        (
            "armed",
            S::Armed {
                release: rel(),
                target: B,
                previous: A,
                arm_attempts: 1,
            },
        ),
        (
            "armed3",
            S::Armed {
                release: rel(),
                target: B,
                previous: A,
                arm_attempts: 3,
            },
        ),
        (
            "trial",
            S::Trial {
                release: rel(),
                slot: B,
                previous: A,
                boot_id: "b1".into(),
                started_ms: 0,
                boots: 1,
            },
        ),
        (
            "rolling",
            S::RollingBack {
                version: "1.1".parse().unwrap(),
                from: B,
                to: A,
                reason: "wan".into(),
                attempts: 0,
            },
        ),
        (
            "rolling3",
            S::RollingBack {
                version: "1.1".parse().unwrap(),
                from: B,
                to: A,
                reason: "wan".into(),
                attempts: 3,
            },
        ),
    ]
}

/// (name, booted, next boot slot, trial armed, fell back from, same boot id as the trial's)
type Boot = (&'static str, Slot, Slot, bool, Option<Slot>, bool);

fn boots() -> Vec<Boot> {
    vec![
        ("A committed", A, A, false, None, false),
        ("A, B armed", A, B, true, None, false),
        ("A, B given up", A, A, false, Some(B), false),
        ("A, A armed", A, A, true, None, false),
        ("B on trial", B, B, true, None, false),
        ("B on trial, same boot", B, B, true, None, true),
        ("B committed", B, B, false, None, false),
        ("B, A armed", B, A, true, None, false),
    ]
}

fn facts(b: &Boot) -> BootFacts {
    BootFacts {
        booted: b.1,
        boot: Ok(BootState {
            primary: b.2,
            trial: b.3,
            bootcount: 1,
            bootlimit: 3,
            fell_back_from: b.4,
        }),
        boot_id: if b.5 { "b1".into() } else { "b2".into() },
        now_ms: 7,
        carried: None,
        root_version: 1,
    }
}

/// A short name for a plan: its steps, then the situation.
fn shape(p: &Plan) -> String {
    let steps: Vec<String> = p
        .steps
        .iter()
        .map(|s| match s {
            Step::Apply(e) => match e {
                Event::Abandoned {
                    by_bootloader: true,
                    ..
                } => "gave-up".to_string(),
                Event::Abandoned { .. } => "abandon".to_string(),
                Event::Commit { .. } => "commit".to_string(),
                Event::Interrupted { .. } => "interrupted".to_string(),
                Event::Arm { previous } => format!("arm({previous})"),
                Event::BootedTrial { .. } => "booted".to_string(),
                Event::RetryBoot => "retry".to_string(),
                Event::Rearm => "rearm".to_string(),
                Event::RolledBack => "rolled-back".to_string(),
                Event::RollbackFailed => "rollback-failed".to_string(),
                Event::TakeTrial { .. } => "take-trial".to_string(),
                Event::Returned { .. } => "returned".to_string(),
                other => other.name().to_string(),
            },
            Step::Save => "save".into(),
            Step::CommitEnv(s) => format!("env-commit({s})"),
            Step::SwitchTo(s) => format!("switch({s})"),
            Step::Adopt(s) => format!("adopt({s})"),
            Step::Note(_) => "note".into(),
        })
        .collect();
    let situation = match &p.situation {
        Situation::Idle => "idle",
        Situation::Trial => "trial",
        Situation::NeedsReboot(_) => "reboot",
        Situation::Unexplained(_) => "unexplained",
    };
    format!("{} => {situation}", steps.join(" "))
}

#[test]
fn the_recovery_table() {
    #[rustfmt::skip]
    let table: &[(&str, &str, &str)] = &[
        ("idle", "A committed", "adopt(A) => idle"),
        ("idle", "A, B armed", " => unexplained"),
        ("idle", "A, B given up", "adopt(A) => idle"),
        ("idle", "A, A armed", " => unexplained"),
        ("idle", "B on trial", " => unexplained"),
        ("idle", "B on trial, same boot", " => unexplained"),
        ("idle", "B committed", "adopt(B) => idle"),
        ("idle", "B, A armed", " => unexplained"),
        ("installing", "A committed", "interrupted save => idle"),
        ("installing", "A, B armed", " => unexplained"),
        ("installing", "A, B given up", "interrupted save => idle"),
        ("installing", "A, A armed", " => unexplained"),
        ("installing", "B on trial", " => unexplained"),
        ("installing", "B on trial, same boot", " => unexplained"),
        ("installing", "B committed", "interrupted save => idle"),
        ("installing", "B, A armed", " => unexplained"),
        ("staged", "A committed", " => idle"),
        ("staged", "A, B armed", "arm(A) retry save => reboot"),
        ("staged", "A, B given up", " => idle"),
        ("staged", "A, A armed", " => unexplained"),
        ("staged", "B on trial", "arm(A) booted save => trial"),
        ("staged", "B on trial, same boot", "arm(A) booted save => trial"),
        ("staged", "B committed", " => idle"),
        ("staged", "B, A armed", " => unexplained"),
        ("armed", "A committed", "rearm save => idle"),
        ("armed", "A, B armed", "retry save => reboot"),
        ("armed", "A, B given up", "gave-up save => idle"),
        ("armed", "A, A armed", " => unexplained"),
        ("armed", "B on trial", "booted save => trial"),
        ("armed", "B on trial, same boot", "booted save => trial"),
        ("armed", "B committed", "booted save => trial"),
        ("armed", "B, A armed", " => unexplained"),
        ("armed3", "A committed", "abandon save => idle"),
        ("armed3", "A, B armed", "env-commit(A) abandon save => idle"),
        ("armed3", "A, B given up", "gave-up save => idle"),
        ("armed3", "A, A armed", " => unexplained"),
        ("armed3", "B on trial", "booted save => trial"),
        ("armed3", "B on trial, same boot", "booted save => trial"),
        ("armed3", "B committed", "booted save => trial"),
        ("armed3", "B, A armed", " => unexplained"),
        ("trial", "A committed", "gave-up save => idle"),
        ("trial", "A, B armed", "gave-up save => idle"),
        ("trial", "A, B given up", "gave-up save => idle"),
        ("trial", "A, A armed", " => unexplained"),
        ("trial", "B on trial", "booted save => trial"),
        ("trial", "B on trial, same boot", " => trial"),
        ("trial", "B committed", "env-commit(B) commit save => idle"),
        ("trial", "B, A armed", " => unexplained"),
        ("rolling", "A committed", "rolled-back save => idle"),
        ("rolling", "A, B armed", "rolled-back save => idle"),
        ("rolling", "A, B given up", "rolled-back save => idle"),
        ("rolling", "A, A armed", " => unexplained"),
        ("rolling", "B on trial", "retry save switch(A) => reboot"),
        ("rolling", "B on trial, same boot", "retry save switch(A) => reboot"),
        ("rolling", "B committed", "retry save switch(A) => reboot"),
        ("rolling", "B, A armed", " => unexplained"),
        ("rolling3", "A committed", "rolled-back save => idle"),
        ("rolling3", "A, B armed", "rolled-back save => idle"),
        ("rolling3", "A, B given up", "rolled-back save => idle"),
        ("rolling3", "A, A armed", " => unexplained"),
        ("rolling3", "B on trial", "rollback-failed save => idle"),
        ("rolling3", "B on trial, same boot", "rollback-failed save => idle"),
        ("rolling3", "B committed", "rollback-failed save => idle"),
        ("rolling3", "B, A armed", " => unexplained"),
    ];
    let states = states();
    let boots = boots();
    assert_eq!(
        table.len(),
        states.len() * boots.len(),
        "every combination has a row"
    );
    for (state, boot, want) in table {
        let st = PersistedState {
            update: states.iter().find(|(n, _)| n == state).unwrap().1.clone(),
            ..Default::default()
        };
        let b = boots.iter().find(|b| b.0 == *boot).unwrap();
        assert_eq!(shape(&plan(&st, &facts(b))), *want, "{state} / {boot}");
    }
}

#[test]
fn an_unreadable_env_writes_nothing_in_any_state() {
    for (name, state) in states() {
        let st = PersistedState {
            update: state,
            ..Default::default()
        };
        let f = BootFacts {
            booted: A,
            boot: Err("bad CRC".into()),
            boot_id: "b2".into(),
            now_ms: 0,
            carried: None,
            root_version: 1,
        };
        let p = plan(&st, &f);
        assert!(p.steps.is_empty(), "{name}: {:?}", p.steps);
        assert!(
            matches!(p.situation, Situation::Unexplained(ref w) if w.contains("bad CRC")),
            "{name}"
        );
    }
}

#[test]
fn no_plan_writes_what_it_must_not() {
    for (name, state) in states() {
        for b in boots() {
            let st = PersistedState {
                update: state.clone(),
                ..Default::default()
            };
            let p = plan(&st, &facts(&b));
            for step in &p.steps {
                match step {
                    // The bootloader is only ever pointed at the running slot or a rollback's
                    // known-good target, never at the slot a trial would fall back from.
                    Step::CommitEnv(s) => assert_eq!(*s, b.1, "{name} / {}", b.0),
                    Step::SwitchTo(s) => assert!(
                        matches!(state, S::RollingBack { to, .. } if to == *s),
                        "{name} / {}",
                        b.0
                    ),
                    Step::Adopt(s) => assert!(*s == b.1 && state == S::Idle, "{name} / {}", b.0),
                    _ => {}
                }
            }
            // Every event is one the state machine takes, in order.
            let mut scratch = st.clone();
            let f = crate::state::Facts {
                at: 0,
                reporter: None,
            };
            for step in &p.steps {
                if let Step::Apply(e) = step {
                    scratch
                        .apply(e.clone(), &f)
                        .unwrap_or_else(|d| panic!("{name} / {}: {d}", b.0));
                }
            }
            // A state change is always saved before a bootloader switch.
            if let Some(i) = p.steps.iter().position(|s| matches!(s, Step::SwitchTo(_))) {
                assert!(p.steps[..i].contains(&Step::Save), "{name} / {}", b.0);
            }
        }
    }
}

#[test]
fn an_interrupted_install_says_where_it_resumes() {
    let mut st = PersistedState {
        update: S::Installing {
            release: rel(),
            target: B,
        },
        ..Default::default()
    };
    st.partial = Some(Partial {
        version: "1.1".parse().unwrap(),
        sha256: hex::encode([7u8; 32]),
        target: B,
        written: 4096,
        head: String::new(),
    });
    let p = plan(&st, &facts(&boots()[0]));
    assert!(
        matches!(&p.steps[0], Step::Apply(Event::Interrupted { detail }) if detail.contains("after byte 4096"))
    );
}

#[test]
fn what_the_other_slot_carried_in_the_env() {
    use crate::state::{Carried, CarriedOutcome, CarriedTrial, TrialResult};
    let none = Carried {
        schema: 1,
        trial: None,
        outcome: None,
        root_version: 1,
        last_index: None,
        time_floor: 0,
    };
    let trial_b = Carried {
        trial: Some(CarriedTrial {
            arm_id: "x".into(),
            release: rel(),
            slot: B,
            previous: A,
            previous_record: None,
            previous_unidentified: None,
            baseline: None,
            device_id: "d".into(),
            report_key: String::new(),
            denylist: Vec::new(),
        }),
        ..none.clone()
    };
    let rolled_back = Carried {
        outcome: Some(CarriedOutcome {
            arm_id: "x".into(),
            version: rel().version,
            slot: B,
            result: TrialResult::RolledBack,
            reason: "wan down".into(),
        }),
        ..none.clone()
    };
    let floor = Carried {
        time_floor: 99,
        ..none.clone()
    };
    let other_epoch = Carried {
        root_version: 2,
        ..floor.clone()
    };
    #[rustfmt::skip]
    let table: &[(&str, Option<&str>, &str, &Carried, &str)] = &[
        // The new firmware's own state never heard of the trial: it takes it over.
        ("idle", None, "B on trial", &trial_b, "take-trial save booted save => trial"),
        ("staged", None, "B on trial", &trial_b, "take-trial save booted save => trial"),
        // Its own state explains it already (the same arm): nothing is taken over.
        ("armed", Some("x"), "B on trial", &trial_b, "booted save => trial"),
        ("rolling", Some("x"), "B on trial", &trial_b, "retry save switch(A) => reboot"),
        // A trial or rollback of an earlier arm left in this slot's state is stale.
        ("rolling", Some("old"), "B on trial", &trial_b, "take-trial save booted save => trial"),
        ("trial", None, "B on trial", &trial_b, "take-trial save booted save => trial"),
        // Only the trial's own slot takes it over, and only while it is armed.
        ("idle", None, "A, B armed", &trial_b, " => unexplained"),
        ("idle", None, "B committed", &trial_b, "adopt(B) => idle"),
        // The old firmware learns how the trial it armed (by its id) ended.
        ("armed", Some("x"), "A committed", &rolled_back, "returned save adopt(A) => idle"),
        ("armed", Some("y"), "A committed", &rolled_back, "rearm save => idle"),
        ("armed", Some("x"), "B on trial", &rolled_back, "booted save => trial"),
        ("idle", Some("x"), "A committed", &rolled_back, "adopt(A) => idle"),
        // Trust data: taken in when it is news of this root epoch, else nothing is written.
        ("idle", None, "A committed", &floor, "note save adopt(A) => idle"),
        ("idle", None, "A committed", &other_epoch, "adopt(A) => idle"),
        ("idle", None, "A committed", &none, "adopt(A) => idle"),
    ];
    let states = states();
    let boots = boots();
    for (state, arm, boot, carried, want) in table {
        let st = PersistedState {
            update: states.iter().find(|(n, _)| n == state).unwrap().1.clone(),
            carried_arm: arm.map(str::to_string),
            ..Default::default()
        };
        let b = boots.iter().find(|b| b.0 == *boot).unwrap();
        let f = BootFacts {
            carried: Some((*carried).clone()),
            ..facts(b)
        };
        assert_eq!(
            shape(&plan(&st, &f)),
            *want,
            "{state} {arm:?} / {boot} / {carried:?}"
        );
    }
}
