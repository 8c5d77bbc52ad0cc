//! Staged rollouts. A device's bucket for a release is a hash of its stable device id and the
//! release version, so the same device lands in the same wave at every check, and different
//! releases reach different devices first.

use super::Rollout;
use crate::time::format_time;
use crate::version::Version;
use sha2::{Digest, Sha256};

/// The device's bucket for `version`, in 0..100.
pub fn bucket(device_id: &str, version: &Version) -> u8 {
    let h = Sha256::new()
        .chain_update(device_id.as_bytes())
        .chain_update([0u8])
        .chain_update(version.as_str().as_bytes())
        .finalize();
    (u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % 100) as u8
}

/// Whether a device in `bucket` may install the release at trusted time `now`; if not, why.
pub fn admitted(r: &Rollout, bucket: u8, now: u64) -> Result<(), String> {
    if r.halted {
        return Err("its rollout is halted".into());
    }
    let open = r
        .waves
        .iter()
        .filter(|w| r.start.saturating_add(w.after) <= now)
        .map(|w| w.percent)
        .max()
        .unwrap_or(0);
    if bucket < open {
        return Ok(());
    }
    match r.waves.iter().find(|w| bucket < w.percent) {
        Some(w) => Err(format!(
            "this device is in rollout bucket {bucket}, reached from {}",
            format_time(r.start.saturating_add(w.after))
        )),
        None => Err(format!(
            "this device is in rollout bucket {bucket}, which no wave reaches yet"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Wave;

    fn rollout(halted: bool) -> Rollout {
        Rollout {
            start: 1000,
            waves: vec![
                Wave {
                    after: 0,
                    percent: 10,
                },
                Wave {
                    after: 3600,
                    percent: 50,
                },
                Wave {
                    after: 7200,
                    percent: 100,
                },
            ],
            halted,
        }
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        let v: Version = "2.0".parse().unwrap();
        assert_eq!(bucket("dev-1", &v), bucket("dev-1", &v));
        let spread: std::collections::BTreeSet<u8> = (0..400)
            .map(|i| bucket(&format!("dev-{i}"), &v) / 10)
            .collect();
        assert_eq!(spread.len(), 10, "400 devices cover every tenth");
        let other: Version = "2.1".parse().unwrap();
        assert!((0..50).any(|i| bucket(&format!("d{i}"), &v) != bucket(&format!("d{i}"), &other)));
    }

    #[test]
    fn waves_open_in_time() {
        let r = rollout(false);
        assert!(admitted(&r, 5, 999).is_err(), "before the start");
        assert!(admitted(&r, 5, 1000).is_ok());
        assert!(admitted(&r, 30, 1000).is_err());
        assert!(admitted(&r, 30, 4600).is_ok());
        assert!(admitted(&r, 99, 4600).unwrap_err().contains("bucket 99"));
        assert!(admitted(&r, 99, 8200).is_ok());
        assert_eq!(
            admitted(&rollout(true), 0, 9999).unwrap_err(),
            "its rollout is halted"
        );
    }
}
