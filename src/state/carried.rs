//! What travels between the two slots' fwguards in the bootloader environment, on boards
//! whose slots share nothing else (the Linksys WRT32X: u_env and s_env only; each firmware
//! has its own overlay). It is written in the same env write that arms a trial, commits it
//! or rolls it back, and never on a healthy boot:
//! - a trial armed: the release in the target slot (size and hash), the slot left and what
//!   it holds, the health groups the new firmware must pass, the device id: the fwguard of
//!   the new firmware, which has no state of its own about it, takes the trial over from it;
//! - how the last trial ended (committed, or rolled back and why): the fwguard of the slot
//!   it left learns it when that slot runs again, and denylists a release rolled back;
//! - the monotonic trust data (the newest signed index accepted and the time floor, with the
//!   trust root version they belong to), so that neither slot goes backwards after a switch;
//!   taken in only within the same root epoch (a rotation may lower them on purpose);
//! - the arming firmware's denylist, taken in with the trial only.
//!
//! Every trial carries a random arm id, kept in the state of the fwguard that armed it and of
//! the one that took it over: a carried trial or outcome is matched by it, never by slot and
//! version alone (a slot's own state may hold a stale trial of an earlier arm).
//!
//! The environment is as trusted as the state file (only root writes either); a carried
//! trial is still checked against the slot's bytes before it is taken over (`recover.rs`).
//! One JSON object in one variable ([`CARRY_VAR`]); a newer fwguard adds fields only.

use super::history::HistoryEvent as H;
use super::machine::UpdateState;
use super::{DenyEntry, Facts, PersistedState, ReleaseRef, SlotRecord, Unidentified};
use crate::index::LastIndex;
use crate::slot::Slot;
use crate::version::Version;
use serde::{Deserialize, Serialize};

/// The env variable that holds it.
pub const CARRY_VAR: &str = "fwguard_carry";
/// Its format.
pub const CARRY_SCHEMA: u32 = 1;
/// Most denylist entries carried (the newest).
const DENY_CARRIED: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    pub schema: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<CarriedTrial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CarriedOutcome>,
    /// The trust root version `last_index` and `time_floor` were accepted under.
    #[serde(default)]
    pub root_version: u64,
    /// Version, hash and issue time of the newest index accepted (what replay protection
    /// needs; the rest comes with the next check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_index: Option<LastIndex>,
    #[serde(default)]
    pub time_floor: u64,
}

/// A trial armed by the fwguard of `previous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedTrial {
    /// Random, one per arm.
    pub arm_id: String,
    pub release: ReleaseRef,
    pub slot: Slot,
    pub previous: Slot,
    /// What `previous` holds: a release on record, or unidentified firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_record: Option<SlotRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_unidentified: Option<Unidentified>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Vec<String>>,
    pub device_id: String,
    /// The seed of the device's report key (`PersistedState::report_key`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub report_key: String,
    /// The arming firmware's denylist (its newest entries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denylist: Vec<DenyEntry>,
}

/// How the trial of `version` in `slot`, armed as `arm_id`, ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedOutcome {
    pub arm_id: String,
    pub version: Version,
    pub slot: Slot,
    pub result: TrialResult,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrialResult {
    Committed,
    RolledBack,
}

#[derive(Debug, thiserror::Error)]
#[error("bootloader env {CARRY_VAR}: {0}")]
pub struct CarryError(String);

impl Carried {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// Read the variable's text; a schema this fwguard does not know is refused by name.
    pub fn decode(text: &str) -> Result<Carried, CarryError> {
        // From bytes, as the state file is read: one reader of the records they share.
        let c: Carried =
            serde_json::from_slice(text.as_bytes()).map_err(|e| CarryError(e.to_string()))?;
        if c.schema != CARRY_SCHEMA {
            return Err(CarryError(format!(
                "schema {} (this fwguard reads {CARRY_SCHEMA})",
                c.schema
            )));
        }
        Ok(c)
    }

    /// Whether it holds trust data `st` (under trust root `root_version`) has not seen: only
    /// within the same root epoch.
    pub fn is_news_for(&self, st: &PersistedState, root_version: u64) -> bool {
        if self.root_version != root_version {
            return false;
        }
        let newer_index = match (&self.last_index, &st.last_index) {
            (Some(c), Some(s)) => c.version > s.version,
            (Some(_), None) => true,
            _ => false,
        };
        newer_index || self.time_floor > st.time_floor
    }

    /// A new random arm id.
    pub fn new_arm_id() -> String {
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id).expect("the kernel provides randomness");
        hex::encode(id)
    }
}

impl PersistedState {
    /// What travels with the env write this state is about to make: the trial it arms
    /// (in `Armed`, as [`PersistedState::carried_arm`]), with `outcome` of the trial before,
    /// and the trust data (under trust root `root_version`).
    pub fn carry(&self, outcome: Option<CarriedOutcome>, root_version: u64) -> Carried {
        let trial = match (&self.update, &self.carried_arm) {
            (
                UpdateState::Armed {
                    release,
                    target,
                    previous,
                    ..
                },
                Some(arm_id),
            ) => Some(CarriedTrial {
                arm_id: arm_id.clone(),
                release: release.clone(),
                slot: *target,
                previous: *previous,
                previous_record: self.slot(*previous).cloned(),
                previous_unidentified: self.unidentified_in(*previous).cloned(),
                baseline: self.baseline.clone(),
                device_id: self.device_id.clone(),
                report_key: self.report_key.clone(),
                denylist: newest(&self.denylist),
            }),
            _ => None,
        };
        Carried {
            schema: CARRY_SCHEMA,
            trial,
            outcome,
            root_version,
            last_index: self.last_index.as_ref().map(|l| LastIndex {
                version: l.version,
                sha256: l.sha256.clone(),
                issued_at: l.issued_at,
                security_floor: None,
                pulled: Default::default(),
            }),
            time_floor: self.time_floor,
        }
    }

    /// Take in the trust data another slot's fwguard carried (the caller checked it is of
    /// this state's root epoch): the newer index, the later floor.
    pub(super) fn merge_carried(&mut self, c: &Carried) {
        if let Some(ci) = &c.last_index {
            if self
                .last_index
                .as_ref()
                .is_none_or(|s| ci.version > s.version)
            {
                self.last_index = Some(ci.clone());
            }
        }
        self.time_floor = self.time_floor.max(c.time_floor);
    }

    /// The bookkeeping of taking over the trial `t`, armed by the other slot's fwguard: the
    /// records of both slots as it had them, its device id and baseline.
    pub(super) fn take_trial(&mut self, t: &CarriedTrial, facts: &Facts) {
        self.set_slot(t.slot, Some(SlotRecord::installed(&t.release, false)));
        self.set_slot(t.previous, t.previous_record.clone());
        if let Some(u) = &t.previous_unidentified {
            self.unidentified = Some(u.clone());
        }
        self.known_good = Some(t.previous);
        self.baseline = t.baseline.clone();
        self.device_id = t.device_id.clone();
        if !t.report_key.is_empty() {
            self.report_key = t.report_key.clone();
        }
        self.carried_arm = Some(t.arm_id.clone());
        self.partial = None;
        for d in &t.denylist {
            if !self.is_denylisted(&d.version) {
                self.denylist.push(d.clone());
            }
        }
        let detail = format!(
            "trial of slot {} taken over from the firmware in slot {}, which armed it (carried in the bootloader environment)",
            t.slot, t.previous
        );
        self.entry(
            facts,
            H::TrialCarried,
            &t.release.version,
            t.slot,
            detail,
            Vec::new(),
        );
    }

    /// The bookkeeping of learning how the trial this firmware armed ended, in the other slot.
    pub(super) fn take_outcome(&mut self, o: &CarriedOutcome, booted: Slot, facts: &Facts) {
        self.carried_arm = None;
        if o.result == TrialResult::Committed {
            let detail = format!(
                "committed in slot {} (learned from the bootloader environment)",
                o.slot
            );
            self.entry(facts, H::Committed, &o.version, o.slot, detail, Vec::new());
            return;
        }
        self.deny(o.version.clone(), o.reason.clone(), facts.at);
        self.rollbacks_in_a_row += 1;
        self.known_good = Some(booted);
        let detail = format!("running slot {booted} again ({})", o.reason);
        self.entry(facts, H::RolledBack, &o.version, booted, detail, Vec::new());
        self.queue_outcome(facts, "rolled-back", None);
    }
}

/// The newest entries of a denylist, at most [`DENY_CARRIED`].
fn newest(list: &[DenyEntry]) -> Vec<DenyEntry> {
    list[list.len().saturating_sub(DENY_CARRIED)..].to_vec()
}
