//! `fwguard status`: one read-only snapshot of the device, as text or JSON.

use super::Agent;
use crate::boot::BootState;
use crate::error::Result;
use crate::slot::Slot;
use crate::state::{
    Decision, DenyEntry, Gate, PersistedState, ReleaseKey, SlotRecord, Unidentified, UpdateState,
    Verdict,
};
use crate::time::format_time;
use crate::version::Version;
use serde::Serialize;
use std::fmt;

/// Version of the `status --json` schema.
pub const STATUS_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    pub slot: Slot,
    pub device: String,
    pub booted: bool,
    pub known_good: bool,
    /// The release fwguard knows is in the slot.
    pub record: Option<SlotRecord>,
    /// How the content is known: `installed` (fwguard wrote it), `adopted` (it matched a
    /// release of the signed index), `unidentified` (no release matched; checked by its boot
    /// image, if it has one), or `unknown` (nothing on record).
    pub identified: &'static str,
    /// The unidentified firmware in the slot.
    pub unidentified: Option<Unidentified>,
    /// Whether the slot still holds what is on record (read back now): None when there is
    /// nothing to compare it with.
    pub verifies: Option<bool>,
    /// Why it does not verify, or what cannot be checked.
    pub verify_detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema: u32,
    pub board: String,
    pub bootloader: String,
    pub booted_slot: Slot,
    pub running_version: Option<Version>,
    pub update: UpdateState,
    pub boot: BootState,
    pub slots: Vec<SlotStatus>,
    pub policy: crate::config::Policy,
    pub channel: String,
    /// The owner holds the running version.
    pub held: bool,
    pub pinned: Option<Version>,
    pub denylist: Vec<DenyEntry>,
    pub index_version: Option<u64>,
    pub root_version: u64,
    pub time_floor: u64,
    /// Things the owner should know: a pulled release running, a version below the floor.
    pub notices: Vec<String>,
    /// Automatic rollbacks since the last commit.
    pub rollbacks_in_a_row: u32,
    /// The latest round of health checks (kept in RAM, in the runtime directory).
    pub last_health: Option<super::HealthRecord>,
    /// The staged release and where it stands with the owner (policy approve).
    pub staged: Option<StagedStatus>,
    /// The owner's approvals (of exact bytes) and denials (of versions).
    pub decisions: Vec<Decision>,
    /// The newer release the daemon's latest round found and left (kept in RAM).
    pub available: Option<AvailableStatus>,
    /// Releases the vendor halted for this board (`halt.toml`, unexpired at the trusted time).
    pub halted: Vec<crate::index::halt::Halt>,
}

/// A newer release the latest round found and did not install.
#[derive(Debug, Clone, Serialize)]
pub struct AvailableStatus {
    pub version: Version,
    /// Only the owner can install it (its configuration format breaks with the running
    /// firmware's); `text` says why and how.
    pub needs_owner: bool,
    pub text: String,
}

/// A staged release and the owner's gate before the daemon boots it.
#[derive(Debug, Clone, Serialize)]
pub struct StagedStatus {
    pub version: Version,
    /// The release file's signed hash.
    pub sha256: String,
    /// `approved`, `denied` or `waiting`.
    pub gate: &'static str,
    /// Since when it waits for the owner (Unix seconds).
    pub since: Option<u64>,
    /// When it is approved without the owner (`approve_after`; None: never).
    pub automatic_at: Option<u64>,
    /// Staged with `--no-settings`: it will boot on its own defaults, no settings carried.
    pub own_defaults: bool,
    /// The same, in a sentence with what the owner can do.
    pub text: String,
}

impl Agent {
    /// Read everything without writing anything.
    pub fn status(&self) -> Result<Status> {
        let st = self.load()?;
        let booted = self.board.platform.booted_slot()?;
        let boot = self.board.bootloader.read_state()?;
        let running_version = Agent::version_in(&st, booted);
        let mut notices = Vec::new();
        if let (Some(v), Some(last)) = (&running_version, &st.last_index) {
            if let Some(why) = last.pulled.get(v.as_str()) {
                notices.push(format!(
                    "the running version {v} was pulled by the vendor: {why}"
                ));
            }
            if let Some(floor) = last.security_floor.as_ref().filter(|f| v < *f) {
                notices.push(format!(
                    "the running version {v} is below the security floor {floor}; update"
                ));
            }
        }
        if st.rollbacks_in_a_row >= self.settings.max_rollbacks {
            notices.push(format!(
                "automatic installs are stopped after {} rollbacks in a row; `fwguard update`, `pin` or `unpin` resumes them",
                st.rollbacks_in_a_row
            ));
        }
        if !super::plan::trial_explained(&st, &boot) {
            notices.push(format!(
                "the bootloader has a trial of slot {} armed that fwguard did not arm (state lost, or the environment changed by hand): fwguard writes nothing until the boot counter settles it; slot {} is its fallback",
                boot.primary, !boot.primary
            ));
        }
        if st.pin_insecure {
            notices.push("the pinned version was forced below the security floor".into());
        }
        Ok(Status {
            schema: STATUS_SCHEMA,
            board: self.board.id.clone(),
            bootloader: self.board.bootloader.describe(),
            booted_slot: booted,
            running_version,
            update: st.update.clone(),
            boot,
            slots: Slot::ALL
                .iter()
                .map(|&s| self.slot_status(&st, s, booted))
                .collect(),
            policy: self.policy(&st),
            channel: self.channel(&st).to_string(),
            held: st.hold,
            pinned: st.pin.clone(),
            denylist: st.denylist.clone(),
            index_version: st.last_index.as_ref().map(|l| l.version),
            root_version: self.trust_root(&st)?.version,
            time_floor: st.time_floor,
            notices,
            rollbacks_in_a_row: st.rollbacks_in_a_row,
            last_health: self.last_health(),
            staged: self.staged_status(&st),
            decisions: st.decisions.clone(),
            available: self.available_status(),
            halted: self.halted(&st),
        })
    }

    fn halted(&self, st: &PersistedState) -> Vec<crate::index::halt::Halt> {
        let now = self.now().max(st.time_floor);
        let board = &self.board.id;
        st.halts()
            .iter()
            .filter(|h| h.expires > now)
            .flat_map(|h| &h.entries)
            .filter(|e| e.boards.is_empty() || e.boards.contains(board))
            .cloned()
            .collect()
    }

    fn available_status(&self) -> Option<AvailableStatus> {
        let r = self.last_round()?;
        let needs_owner = match r.result {
            super::RoundResult::NeedsOwner => true,
            super::RoundResult::Available => false,
            _ => return None,
        };
        Some(AvailableStatus {
            version: r.release?,
            needs_owner,
            text: r.outcome,
        })
    }

    fn staged_status(&self, st: &PersistedState) -> Option<StagedStatus> {
        let UpdateState::Staged { release, .. } = &st.update else {
            return None;
        };
        let (gate, since, automatic_at) = match self.gate_for(st, &ReleaseKey::from(release)) {
            Gate::Approved { .. } => ("approved", None, None),
            Gate::Denied { .. } => ("denied", None, None),
            Gate::Waiting {
                since,
                automatic_at,
                ..
            } => ("waiting", since, automatic_at),
        };
        Some(StagedStatus {
            version: release.version.clone(),
            sha256: release.sha256.clone(),
            gate,
            since,
            automatic_at,
            own_defaults: release.own_defaults,
            text: self.staged_text(st)?,
        })
    }
}

impl Agent {
    /// What slot `s` holds, how that is known, and whether it still verifies.
    fn slot_status(&self, st: &PersistedState, s: Slot, booted: Slot) -> SlotStatus {
        let record = st.slot(s).cloned();
        let unidentified = st.unidentified_in(s).cloned();
        let identified = match (&record, &unidentified) {
            (Some(r), _) => match r.origin {
                crate::state::Origin::Installed => "installed",
                crate::state::Origin::Adopted => "adopted",
            },
            (None, Some(_)) => "unidentified",
            (None, None) => "unknown",
        };
        let (verifies, verify_detail) = if record.is_none() && unidentified.is_none() {
            (None, None)
        } else {
            match self.verify_recorded(st, s) {
                Ok(_) => (Some(true), None),
                Err(crate::Error::Refused(why)) => (None, Some(why)),
                Err(e) => (Some(false), Some(e.to_string())),
            }
        };
        SlotStatus {
            slot: s,
            device: self.board.slot(s).describe(),
            booted: s == booted,
            known_good: st.known_good == Some(s),
            record,
            identified,
            unidentified,
            verifies,
            verify_detail,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = |o: &Option<Version>| {
            o.as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        writeln!(f, "board:        {} ({})", self.board, self.bootloader)?;
        writeln!(
            f,
            "running:      {} in slot {}",
            v(&self.running_version),
            self.booted_slot
        )?;
        let detail = match &self.update {
            UpdateState::Idle => String::new(),
            UpdateState::Installing { release, target } => {
                format!(" ({} into slot {target})", release.version)
            }
            UpdateState::Staged {
                release, target, ..
            } => format!(" ({} verified in slot {target})", release.version),
            UpdateState::Armed {
                release, target, ..
            } => format!(" ({} in slot {target}, reboot pending)", release.version),
            UpdateState::Trial {
                release,
                slot,
                previous,
                ..
            } => {
                format!(
                    " ({} in slot {slot}; falls back to slot {previous})",
                    release.version
                )
            }
            UpdateState::RollingBack {
                from, to, reason, ..
            } => format!(" (slot {from} -> {to}: {reason})"),
        };
        writeln!(f, "state:        {}{detail}", self.update.name())?;
        writeln!(
            f,
            "bootloader:   next boot slot {}{}",
            self.boot.primary,
            if self.boot.trial {
                format!(
                    " on trial (bootcount {}/{})",
                    self.boot.bootcount, self.boot.bootlimit
                )
            } else {
                " (committed)".into()
            }
        )?;
        for s in &self.slots {
            let mut tags = Vec::new();
            if s.booted {
                tags.push("booted");
            }
            if s.known_good {
                tags.push("known-good");
            }
            let content = match (&s.record, &s.unidentified) {
                (Some(r), _) => format!(
                    "{}{}, {}",
                    r.version,
                    if r.good { "" } else { " (never committed)" },
                    r.origin.as_str()
                ),
                (None, Some(u)) => match &u.boot_image {
                    Some(b) => format!(
                        "unidentified firmware (no release of the signed index), checked by its boot image {}",
                        b.describe
                    ),
                    None => "unidentified firmware without a boot image fwguard reads: only the bootloader's fallback returns to it".into(),
                },
                (None, None) => "no verified image".into(),
            };
            let check = match (s.verifies, &s.verify_detail) {
                (Some(true), _) => ", verifies".to_string(),
                (Some(false), Some(why)) => format!(", DOES NOT VERIFY: {why}"),
                _ => String::new(),
            };
            writeln!(
                f,
                "slot {}:       {content}{check} [{}] {}",
                s.slot,
                tags.join(", "),
                s.device
            )?;
            for p in s.record.iter().flat_map(|r| &r.parts) {
                writeln!(
                    f,
                    "              part {}: {} bytes in target {}",
                    p.name, p.size, p.target
                )?;
            }
        }
        writeln!(
            f,
            "policy:       {}, channel {}",
            self.policy.as_str(),
            self.channel
        )?;
        if let Some(p) = &self.pinned {
            writeln!(f, "pinned:       {p}")?;
        }
        if let Some(a) = &self.available {
            writeln!(f, "available:    {}: {}", a.version, a.text)?;
        }
        if let Some(s) = &self.staged {
            writeln!(f, "staged:       {}", s.text)?;
        }
        for d in &self.decisions {
            match d.verdict {
                Verdict::Approved => writeln!(
                    f,
                    "approved:     {} (sha256 {}) at {}",
                    d.key.version,
                    d.key.sha256,
                    format_time(d.at)
                )?,
                Verdict::Denied => writeln!(
                    f,
                    "denied:       {} since {}: the daemon does not install it",
                    d.key.version,
                    format_time(d.at)
                )?,
            }
        }
        for d in &self.denylist {
            writeln!(
                f,
                "denylisted:   {} since {}: {}",
                d.version,
                format_time(d.at),
                d.reason
            )?;
        }
        match self.index_version {
            Some(i) => writeln!(
                f,
                "index:        version {i} accepted (trust root version {})",
                self.root_version
            )?,
            None => writeln!(
                f,
                "index:        none accepted yet (trust root version {})",
                self.root_version
            )?,
        }
        if let Some(h) = &self.last_health {
            let failing = h.report.results.iter().filter(|r| !r.passed).count();
            writeln!(
                f,
                "health:       {} round at {}: {} of {} checks pass{}",
                h.phase,
                crate::time::format_time(h.at),
                h.report.results.len() - failing,
                h.report.results.len(),
                if h.verdict.failing.is_empty() {
                    String::new()
                } else {
                    format!("; failing: {}", h.verdict.failing.join("; "))
                }
            )?;
        }
        for h in &self.halted {
            writeln!(f, "halted:       {} by the vendor: {}", h.release, h.reason)?;
        }
        for n in &self.notices {
            writeln!(f, "NOTICE:       {n}")?;
        }
        Ok(())
    }
}
