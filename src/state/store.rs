//! Atomic persistence (temp file, fsync, rename, fsync dir) and the agent lock.

use super::{PersistedState, StateError, SCHEMA};
use crate::safedir::SafeDir;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::{Path, PathBuf};

pub struct StateStore {
    dir: PathBuf,
}

/// Held while a process changes the state or the slots; released on drop.
pub struct Lock {
    _flock: Flock<File>,
}

impl StateStore {
    pub fn new(dir: impl Into<PathBuf>) -> StateStore {
        StateStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn io(&self, path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The state directory, created if missing and opened without following links (a
    /// symlinked state directory, or a link planted inside it, is refused).
    fn root(&self) -> Result<SafeDir, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        SafeDir::open_root(&self.dir).map_err(|e| self.io(&self.dir, e))
    }

    /// Take the lock; `wait` blocks until it is free, else a held lock is an error.
    pub fn lock(&self, wait: bool) -> Result<Option<Lock>, StateError> {
        let path = self.dir.join("lock");
        let f = self
            .root()?
            .open_or_create("lock")
            .map_err(|e| self.io(&path, e))?;
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        match Flock::lock(f, arg) {
            Ok(flock) => Ok(Some(Lock { _flock: flock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(self.io(&path, e.into())),
        }
    }

    /// The state file's bytes (None: there is none yet).
    fn read(&self) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.path();
        let root = match SafeDir::open_root(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&self.dir, e)),
        };
        let mut bytes = Vec::new();
        match root.open("state.json") {
            Ok(f) => {
                use std::io::Read;
                (&f).read_to_end(&mut bytes)
                    .map_err(|e| self.io(&path, e))?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path, e)),
        }
    }

    /// Load the state; a missing file is a fresh device.
    pub fn load(&self) -> Result<PersistedState, StateError> {
        let path = self.path();
        let Some(bytes) = self.read()? else {
            return Ok(PersistedState::default());
        };
        // The schema first, so that a file of another schema is refused as that, whatever
        // else it holds; then the file itself, straight from its bytes (through a
        // `serde_json::Value` every record would need a second reader in the router build).
        #[derive(serde::Deserialize)]
        struct Schema {
            schema: Option<u64>,
        }
        let corrupt = |e: serde_json::Error| StateError::Corrupt {
            path: path.clone(),
            problem: e.to_string(),
        };
        let schema = serde_json::from_slice::<Schema>(&bytes).map_err(corrupt)?;
        let found = schema.schema.unwrap_or(0);
        if found != u64::from(SCHEMA) {
            return Err(StateError::Schema {
                path,
                found: found.min(u64::from(u32::MAX)) as u32,
            });
        }
        serde_json::from_slice(&bytes).map_err(corrupt)
    }

    /// Whether the device's identity (its id and its report key) is in the state file: a
    /// missing file, or one written by an fwguard that had no report key yet, gives a new
    /// random one at every load until the state is next written.
    pub fn identity_saved(&self) -> Result<bool, StateError> {
        #[derive(serde::Deserialize)]
        struct Identity {
            device_id: Option<serde::de::IgnoredAny>,
            report_key: Option<serde::de::IgnoredAny>,
        }
        let Some(bytes) = self.read()? else {
            return Ok(false);
        };
        let i = serde_json::from_slice::<Identity>(&bytes).map_err(|e| StateError::Corrupt {
            path: self.path(),
            problem: e.to_string(),
        })?;
        Ok(i.device_id.is_some() && i.report_key.is_some())
    }

    /// Write the whole state atomically and durably.
    pub fn save(&self, state: &PersistedState) -> Result<(), StateError> {
        let root = self.root()?;
        let path = self.path();
        let mut bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        bytes.push(b'\n');
        root.write_atomic("state.json", &bytes)
            .map_err(|e| self.io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s"));
        assert_eq!(
            store.load().unwrap().update,
            crate::state::UpdateState::Idle
        );
        let st = PersistedState {
            time_floor: 42,
            ..Default::default()
        };
        store.save(&st).unwrap();
        assert_eq!(store.load().unwrap(), st);
        assert!(!dir.path().join("s/state.json.new").exists());
        let held = store.lock(false).unwrap();
        assert!(held.is_some());
        // flock is per open file description, so a second open in the same process conflicts.
        assert!(store.lock(false).unwrap().is_none());
        drop(held);
        assert!(store.lock(false).unwrap().is_some());
    }

    #[test]
    fn the_identity_counts_as_saved_only_once_it_is_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().join("s"));
        // No file: a new id and key at each load.
        assert!(!store.identity_saved().unwrap());
        assert_ne!(
            store.load().unwrap().report_key,
            store.load().unwrap().report_key
        );
        let st = PersistedState::default();
        store.save(&st).unwrap();
        assert!(store.identity_saved().unwrap());
        assert_eq!(store.load().unwrap().report_key, st.report_key);
        // A file of an fwguard that had no report key yet.
        let text = std::fs::read_to_string(store.path()).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("report_key");
        std::fs::write(store.path(), v.to_string()).unwrap();
        assert!(!store.identity_saved().unwrap());
        assert_ne!(store.load().unwrap().report_key, st.report_key);
    }

    #[test]
    fn links_in_the_state_directory_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let store = StateStore::new(dir.path().join("s"));
        std::fs::create_dir_all(store.dir()).unwrap();
        for name in ["state.json.new", "lock"] {
            std::os::unix::fs::symlink(&victim, store.dir().join(name)).unwrap();
        }
        // The planted temporary is replaced, not written through.
        store.save(&PersistedState::default()).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        // A linked lock file or state file is refused, the target untouched.
        assert!(store.lock(false).is_err());
        std::fs::remove_file(store.dir().join("state.json")).unwrap();
        std::os::unix::fs::symlink(&victim, store.dir().join("state.json")).unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        // A symlinked state directory is refused.
        let linked = StateStore::new(dir.path().join("linked"));
        std::os::unix::fs::symlink(dir.path().join("s"), dir.path().join("linked")).unwrap();
        assert!(linked.save(&PersistedState::default()).is_err());
    }

    #[test]
    fn corrupt_and_wrong_schema_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(StateError::Corrupt { .. })));
        std::fs::write(store.path(), b"{\"schema\": 99}").unwrap();
        assert!(matches!(
            store.load(),
            Err(StateError::Schema { found: 99, .. })
        ));
    }
}
