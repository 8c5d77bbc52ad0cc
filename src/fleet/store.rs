//! The service's database: SQLite, a file, nothing to set up. The schema is made by numbered
//! migrations, each applied once in a transaction, so a database of any earlier version is
//! brought up to date when the service starts.
//!
//! A device is bound to the first key it reported with: a report by the same device id under
//! another key is refused (a forger cannot speak for a device it does not hold the key of).
//! A report is stored once by its id: a retried report counts once.

use super::FleetError;
use crate::state::Outcome;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// The schema, one migration per version.
const MIGRATIONS: &[&str] = &[
    // 1: devices, their reports, the halts published.
    "CREATE TABLE devices (
         device TEXT PRIMARY KEY,
         key TEXT NOT NULL,
         board TEXT NOT NULL,
         first_seen INTEGER NOT NULL
     );
     CREATE TABLE reports (
         id TEXT PRIMARY KEY,
         device TEXT NOT NULL REFERENCES devices(device),
         board TEXT NOT NULL,
         release TEXT NOT NULL,
         result TEXT NOT NULL,
         failing TEXT NOT NULL,
         detail TEXT NOT NULL,
         at INTEGER NOT NULL,
         received INTEGER NOT NULL,
         deadline_s INTEGER
     );
     CREATE INDEX reports_by_release ON reports(release, device);
     CREATE TABLE halts (
         release TEXT PRIMARY KEY,
         reason TEXT NOT NULL,
         at INTEGER NOT NULL
     );",
];

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// Its id was stored before: counted once.
    Duplicate,
}

pub struct Store {
    db: Connection,
}

fn db_err(e: rusqlite::Error) -> FleetError {
    FleetError::Db(e.to_string())
}

impl Store {
    /// Open (or create) the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Store, FleetError> {
        let db = Connection::open(path)
            .map_err(|e| FleetError::Db(format!("{}: {e}", path.display())))?;
        let mut s = Store { db };
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> Result<(), FleetError> {
        self.db
            .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(db_err)?;
        let at: Option<i64> = self
            .db
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        let at = at.unwrap_or(0) as usize;
        if at > MIGRATIONS.len() {
            return Err(FleetError::Db(format!(
                "the database is of schema version {at}; this fwguard-fleet knows {} at most",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(at) {
            let tx = self.db.transaction().map_err(db_err)?;
            tx.execute_batch(sql).map_err(db_err)?;
            tx.execute("DELETE FROM schema_version", [])
                .map_err(db_err)?;
            tx.execute("INSERT INTO schema_version VALUES (?1)", [i as i64 + 1])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
        }
        Ok(())
    }

    /// The schema version of the database.
    pub fn version(&self) -> Result<u32, FleetError> {
        self.db
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .map_err(db_err)
    }

    /// Store report `r` signed by `key` (base64), received at `received`.
    pub fn add(&mut self, r: &Outcome, key: &str, received: u64) -> Result<Added, FleetError> {
        let tx = self.db.transaction().map_err(db_err)?;
        let bound: Option<String> = tx
            .query_row(
                "SELECT key FROM devices WHERE device = ?1",
                [&r.device],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_err)?;
        match bound {
            Some(k) if k != key => {
                return Err(FleetError::WrongKey {
                    device: r.device.clone(),
                })
            }
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO devices (device, key, board, first_seen) VALUES (?1, ?2, ?3, ?4)",
                    params![r.device, key, r.board, received as i64],
                )
                .map_err(db_err)?;
            }
        }
        let failing = r.failing.join("\n");
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO reports (id, device, board, release, result, failing, detail, at, received, deadline_s)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    r.id,
                    r.device,
                    r.board,
                    r.release.as_str(),
                    r.result,
                    failing,
                    r.detail,
                    r.at as i64,
                    received as i64,
                    r.deadline_s.map(|d| d as i64)
                ],
            )
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(if n == 0 { Added::Duplicate } else { Added::New })
    }

    /// The releases reported on, newest report first.
    pub fn releases(&self) -> Result<Vec<String>, FleetError> {
        let mut q = self
            .db
            .prepare(
                "SELECT release FROM reports GROUP BY release ORDER BY MAX(received) DESC, release",
            )
            .map_err(db_err)?;
        let rows = q.query_map([], |r| r.get(0)).map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// Each device's reports of `release`: (device, [(result, received, deadline_s)], the
    /// checks that failed in its rollback), oldest report first.
    #[allow(clippy::type_complexity)]
    pub fn reports_of(
        &self,
        release: &str,
    ) -> Result<Vec<(String, Vec<(String, u64, Option<u64>)>, Vec<String>)>, FleetError> {
        let mut q = self
            .db
            .prepare(
                "SELECT device, result, received, deadline_s, failing FROM reports
                 WHERE release = ?1 ORDER BY device, received, rowid",
            )
            .map_err(db_err)?;
        let rows = q
            .query_map([release], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, Option<i64>>(3)?.map(|d| d as u64),
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db_err)?;
        let mut out: Vec<(String, Vec<(String, u64, Option<u64>)>, Vec<String>)> = Vec::new();
        for row in rows {
            let (device, result, received, deadline, failing) = row.map_err(db_err)?;
            if out.last().is_none_or(|(d, ..)| *d != device) {
                out.push((device.clone(), Vec::new(), Vec::new()));
            }
            let last = out.last_mut().expect("pushed");
            if result == "rolled-back" {
                last.2 = failing.lines().map(str::to_string).collect();
            }
            last.1.push((result, received, deadline));
        }
        Ok(out)
    }

    /// When each device was first heard of (its first report's arrival).
    pub fn first_seen(&self) -> Result<std::collections::HashMap<String, u64>, FleetError> {
        let mut q = self
            .db
            .prepare("SELECT device, first_seen FROM devices")
            .map_err(db_err)?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// Record that `release` was halted, for `reason`, at `at`.
    pub fn record_halt(&mut self, release: &str, reason: &str, at: u64) -> Result<(), FleetError> {
        self.db
            .execute(
                "INSERT OR IGNORE INTO halts (release, reason, at) VALUES (?1, ?2, ?3)",
                params![release, reason, at as i64],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// The halts published: (release, reason, at), oldest first.
    pub fn halts(&self) -> Result<Vec<(String, String, u64)>, FleetError> {
        let mut q = self
            .db
            .prepare("SELECT release, reason, at FROM halts ORDER BY at, release")
            .map_err(db_err)?;
        let rows = q
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> Outcome {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "device": "d1", "board": "b", "release": "2.0", "result": "armed",
            "failing": [], "detail": "", "at": 5, "id": id, "deadline_s": 600
        }))
        .unwrap()
    }

    #[test]
    fn a_database_is_migrated_once_keeps_its_data_and_a_newer_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.sqlite");
        let mut s = Store::open(&p).unwrap();
        assert_eq!(s.add(&report("a"), "K", 10).unwrap(), Added::New);
        assert_eq!(s.add(&report("a"), "K", 11).unwrap(), Added::Duplicate);
        assert!(matches!(
            s.add(&report("b"), "other", 12),
            Err(FleetError::WrongKey { .. })
        ));
        drop(s);
        let s = Store::open(&p).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len() as u32);
        let got = s.reports_of("2.0").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, vec![("armed".to_string(), 10, Some(600))]);
        drop(s);
        let db = Connection::open(&p).unwrap();
        db.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(db);
        let e = Store::open(&p).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }
}
