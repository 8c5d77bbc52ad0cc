//! Writing the halt file: the releases halted, as the next version of `halt.toml` in the
//! published index directory, signed with the halt key. The file is written first and its
//! signature after, each atomically: a device that reads the new file with the old signature
//! refuses it and keeps the halt it had, and takes the new one at its next check.

use super::{FleetConfig, FleetError};
use crate::index::build::sign_bytes;
use crate::index::halt::{HaltDraft, Halts};

/// Publish `halts` (release, reason, at) as the next halt file at `now`. Halts already in the
/// file (a vendor's own, by `fwguard-index halt`) are kept.
pub fn write_halts(
    cfg: &FleetConfig,
    halts: &[(String, String, u64)],
    now: u64,
) -> Result<(), FleetError> {
    let path = cfg.index_dir.join(crate::index::halt::HALT_FILE);
    let mut draft = match std::fs::read_to_string(&path) {
        Ok(text) => HaltDraft::parse(&text)
            .map_err(|e| FleetError::Publish(format!("{}: {e}", path.display())))?,
        Err(_) => HaltDraft::default(),
    };
    for (release, reason, _) in halts {
        let v = release
            .parse()
            .map_err(|e| FleetError::Publish(format!("release {release:?}: {e}")))?;
        if !draft.entries.iter().any(|h| h.release == v) {
            draft.halt(
                v,
                Vec::new(),
                format!("halted by the fleet service: {reason}"),
            );
        }
    }
    let text = draft.next_toml(now, now + cfg.halt_valid);
    let sig = sign_bytes(&cfg.halt_key, text.as_bytes(), "the halt key");
    let write = |p: &std::path::Path, b: &[u8]| {
        crate::fsutil::write_atomic(p, b)
            .map_err(|e| FleetError::Publish(format!("{}: {e}", p.display())))
    };
    write(&path, text.as_bytes())?;
    write(
        &path.with_file_name(format!("{}.sig", crate::index::halt::HALT_FILE)),
        sig.as_bytes(),
    )?;
    tracing::info!("published {} version {}", path.display(), draft.version);
    Ok(())
}

/// Sign the halt file again when half its validity has passed, while halts stand.
pub fn refresh(
    cfg: &FleetConfig,
    halts: &[(String, String, u64)],
    now: u64,
) -> Result<(), FleetError> {
    if halts.is_empty() {
        return Ok(());
    }
    let path = cfg.index_dir.join(crate::index::halt::HALT_FILE);
    let expires = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| Halts::accepted(&t, 0))
        .map_or(0, |h| h.expires);
    if expires.saturating_sub(now) > cfg.halt_valid / 2 {
        return Ok(());
    }
    write_halts(cfg, halts, now)
}
