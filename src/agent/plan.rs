//! Restart recovery as a pure decision: from the persisted state and what the bootloader and
//! the platform report at this boot, the [`Plan`] of what to record, what to write to the
//! bootloader, and what this boot then is. No I/O here; `recover.rs` gathers the facts and
//! carries the plan out, step by step, in order.

use crate::boot::BootState;
use crate::slot::Slot;
use crate::state::{transition, Carried, Event, Note, PersistedState, UpdateState};

/// Boots that may pass without the bootloader acting on an armed trial or a rollback before
/// fwguard gives it up (the bootloader then reads another environment than fwguard writes).
pub const MAX_ARM_ATTEMPTS: u8 = 3;

/// What this boot is, once reconciled with the persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Situation {
    /// A committed firmware is running.
    Idle,
    /// A trial boot is running: health checks decide.
    Trial,
    /// An announced action needs a reboot to complete (it was cut off before the reboot).
    NeedsReboot(String),
    /// The bootloader has a trial armed that the state does not explain, or its environment
    /// cannot be read: fwguard writes nothing and leaves the decision to the bootloader's
    /// boot counter.
    Unexplained(String),
}

/// What the bootloader and the platform report at this boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFacts {
    pub booted: Slot,
    /// The bootloader's state, or why it cannot be read.
    pub boot: Result<BootState, String>,
    pub boot_id: String,
    /// Milliseconds of boot time now.
    pub now_ms: u64,
    /// What the other slot's fwguard carried in the bootloader environment (boards whose
    /// slots share nothing else); a trial in it was checked against the slot's bytes.
    pub carried: Option<Carried>,
    /// The version of the trust root in force (carried trust data of another root epoch is
    /// not taken in).
    pub root_version: u64,
}

/// One step of a recovery, carried out in order. (A plan holds a few steps, once per
/// boot: the size of an event inline costs nothing worth a box.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// Record this event, with its bookkeeping.
    Apply(Event),
    /// Persist the state now, before the bootloader step that follows.
    Save,
    /// Commit `slot` in the bootloader (a commit the state had not recorded yet, or pointing
    /// the env back at the running slot).
    CommitEnv(Slot),
    /// Verify the recorded image of `slot`, then make the bootloader boot it.
    SwitchTo(Slot),
    /// Record the running slot as known-good, if it is not on record yet (hashes it).
    Adopt(Slot),
    /// Record a change that is not a move of the update state.
    Note(Note),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub situation: Situation,
}

/// Whether the persisted state accounts for the bootloader's armed trial (if any): the trial
/// is the one fwguard armed (or was arming, when its read-back failed), or the one a
/// rollback is leaving.
pub fn trial_explained(st: &PersistedState, boot: &BootState) -> bool {
    explains(&st.update, boot)
}

fn explains(update: &UpdateState, boot: &BootState) -> bool {
    if !boot.trial {
        return true;
    }
    match update {
        UpdateState::Armed { target, .. } | UpdateState::Staged { target, .. } => {
            boot.primary == *target
        }
        UpdateState::Trial { slot, .. } => boot.primary == *slot,
        // Cut off between persisting the rollback and the env switch: the trial left.
        UpdateState::RollingBack { from, .. } => boot.primary == *from,
        UpdateState::Idle | UpdateState::Installing { .. } => false,
    }
}

fn done(steps: Vec<Step>, situation: Situation) -> Plan {
    Plan { steps, situation }
}

/// What recovery does at this boot.
pub fn plan(st: &PersistedState, f: &BootFacts) -> Plan {
    let boot = match &f.boot {
        Ok(b) => b,
        Err(e) => {
            return done(
                Vec::new(),
                Situation::Unexplained(format!(
                    "the bootloader environment cannot be read ({e}); nothing is written and the bootloader's counter decides"
                )),
            )
        }
    };
    // What the other slot's fwguard carried: its trust data; how the trial this firmware
    // armed ended there; a trial of this slot that it armed. Matched by arm id.
    let mut pre = Vec::new();
    let mut probe = None;
    if let Some(c) = &f.carried {
        if c.is_news_for(st, f.root_version) {
            let carried = Box::new(c.clone());
            pre.push(Step::Note(Note::CarriedTrust { carried }));
        }
        let mine = |arm: &str| st.carried_arm.as_deref() == Some(arm);
        let mut events = Vec::new();
        if let (
            Some(o),
            UpdateState::Armed {
                release, target, ..
            },
        ) = (&c.outcome, &st.update)
        {
            if mine(&o.arm_id)
                && o.slot == *target
                && o.version == release.version
                && f.booted != *target
            {
                events.push(Event::Returned { outcome: o.clone() });
            }
        }
        let mut update = st.update.clone();
        for e in &events {
            update = transition(&update, e).unwrap_or(update);
        }
        if let Some(t) = &c.trial {
            // This state's own trial or rollback of the slot explains it only if it is of
            // the same arm: anything else is left from an earlier life of this firmware.
            if boot.trial
                && boot.primary == t.slot
                && f.booted == t.slot
                && (!mine(&t.arm_id) || !explains(&update, boot))
            {
                let e = Event::TakeTrial {
                    trial: Box::new(t.clone()),
                };
                update = transition(&update, &e).unwrap_or(update);
                events.push(e);
            }
        }
        if !events.is_empty() {
            pre.extend(events.into_iter().map(Step::Apply));
            let mut p = st.clone();
            p.update = update;
            probe = Some(p);
        }
    }
    if !pre.is_empty() {
        pre.push(Step::Save);
        let Plan { steps, situation } = plan_settled(probe.as_ref().unwrap_or(st), f, boot);
        pre.extend(steps);
        return done(pre, situation);
    }
    plan_settled(st, f, boot)
}

/// [`plan`] once what was carried is taken in.
fn plan_settled(st: &PersistedState, f: &BootFacts, boot: &BootState) -> Plan {
    if !trial_explained(st, boot) {
        return done(
            Vec::new(),
            Situation::Unexplained(format!(
                "the bootloader has a trial of slot {} armed that fwguard's state does not explain (state lost, or the environment changed by hand); nothing is written and the bootloader's counter decides; slot {} is its fallback and stays untouched",
                boot.primary, !boot.primary
            )),
        );
    }
    use Step::Apply;
    match &st.update {
        UpdateState::Idle => done(vec![Step::Adopt(f.booted)], Situation::Idle),
        UpdateState::Installing { release, target } => {
            let detail = match &st.partial {
                Some(p) if p.target == *target && p.version == release.version => format!(
                    "write was cut off; slot left invalid; the next install resumes after byte {}",
                    p.written
                ),
                _ => "write was cut off; slot left invalid, will install again".into(),
            };
            done(
                vec![Apply(Event::Interrupted { detail }), Step::Save],
                Situation::Idle,
            )
        }
        UpdateState::Staged {
            release,
            target,
            arm_attempts,
        } if boot.trial => {
            // Arming wrote the env but its read-back failed, so the state went back to
            // staged: the bootloader will boot (or booted) the staged slot on trial.
            let previous = !boot.primary;
            let mut steps = vec![Apply(Event::Arm { previous })];
            let attempts = arm_attempts.saturating_add(1);
            let (more, situation) = armed(release, *target, attempts, boot, f);
            steps.extend(more);
            done(steps, situation)
        }
        UpdateState::Staged { .. } => done(Vec::new(), Situation::Idle),
        UpdateState::Armed {
            release,
            target,
            arm_attempts,
            ..
        } => {
            let (steps, situation) = armed(release, *target, *arm_attempts, boot, f);
            done(steps, situation)
        }
        UpdateState::Trial {
            slot,
            previous,
            boot_id,
            ..
        } => {
            if f.booted != *slot {
                let why = format!("trial of slot {slot} ended without a commit: the bootloader returned to slot {previous}");
                let by_bootloader = true;
                let e = Event::Abandoned { why, by_bootloader };
                done(vec![Apply(e), Step::Save], Situation::Idle)
            } else if !boot.trial {
                // The env was committed but the state was not: finish the commit.
                let commit = Event::Commit {
                    checks: Vec::new(),
                    detail: "commit completed after restart".into(),
                };
                done(
                    vec![Step::CommitEnv(*slot), Apply(commit), Step::Save],
                    Situation::Idle,
                )
            } else if *boot_id != f.boot_id {
                let e = Event::BootedTrial {
                    boot_id: f.boot_id.clone(),
                    started_ms: f.now_ms,
                    bootcount: boot.bootcount,
                };
                done(vec![Apply(e), Step::Save], Situation::Trial)
            } else {
                done(Vec::new(), Situation::Trial)
            }
        }
        UpdateState::RollingBack {
            from, to, attempts, ..
        } => {
            if f.booted == *to {
                done(vec![Apply(Event::RolledBack), Step::Save], Situation::Idle)
            } else if *attempts >= MAX_ARM_ATTEMPTS {
                done(
                    vec![Apply(Event::RollbackFailed), Step::Save],
                    Situation::Idle,
                )
            } else {
                let why = format!(
                    "rollback from slot {from} to {to} was not finished (reboot {} of at most {MAX_ARM_ATTEMPTS})",
                    attempts + 1
                );
                done(
                    vec![Apply(Event::RetryBoot), Step::Save, Step::SwitchTo(*to)],
                    Situation::NeedsReboot(why),
                )
            }
        }
    }
}

/// The state is Armed (with `arm_attempts`): this boot is the trial, the reboot into it is
/// still to come, or the switch never took effect. Every boot that does not land in the armed
/// slot counts, and past the limit the release is given up and the env points at the running
/// slot again, so a bootloader that reads another env than fwguard writes cannot loop.
fn armed(
    release: &crate::state::ReleaseRef,
    target: Slot,
    arm_attempts: u8,
    boot: &BootState,
    f: &BootFacts,
) -> (Vec<Step>, Situation) {
    use Step::Apply;
    if f.booted == target {
        let e = Event::BootedTrial {
            boot_id: f.boot_id.clone(),
            started_ms: f.now_ms,
            bootcount: boot.bootcount,
        };
        return (vec![Apply(e), Step::Save], Situation::Trial);
    }
    let gave_up = boot.fell_back_from == Some(target);
    if gave_up || arm_attempts >= MAX_ARM_ATTEMPTS {
        let why = if gave_up {
            format!(
                "slot {target} never reached userspace; the bootloader gave it up after {} tries",
                boot.bootlimit
            )
        } else {
            format!("the boot switch to slot {target} did not take effect after {arm_attempts} attempts: the bootloader does not read the environment fwguard writes (check its location with `fwguard doctor`)")
        };
        let mut steps = Vec::new();
        if !gave_up && boot.trial {
            // Point the env back at the running slot, so that fwguard and the bootloader
            // agree again.
            steps.push(Step::CommitEnv(f.booted));
        }
        let by_bootloader = gave_up;
        steps.push(Apply(Event::Abandoned { why, by_bootloader }));
        steps.push(Step::Save);
        return (steps, Situation::Idle);
    }
    if boot.primary == target && boot.trial {
        let why = format!(
            "trial boot of {} was armed but not yet booted (boot {} of at most {MAX_ARM_ATTEMPTS})",
            release.version,
            arm_attempts + 1
        );
        return (
            vec![Apply(Event::RetryBoot), Step::Save],
            Situation::NeedsReboot(why),
        );
    }
    (vec![Apply(Event::Rearm), Step::Save], Situation::Idle)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
