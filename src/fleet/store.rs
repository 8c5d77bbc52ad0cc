//! The service's database: SQLite by default (a file, nothing to set up), or PostgreSQL for a
//! fleet (`--db postgres://...`), with the same schema: numbered migrations, each applied
//! once in a transaction, so a database of any earlier version is brought up to date when the
//! service starts. Both speak the same SQL here (`$N` parameters in order, `BIGINT`,
//! `ON CONFLICT DO NOTHING`); `sql.rs` runs it on either.
//!
//! A device is bound to the first key it reported with: a report by the same device id under
//! another key is refused (a forger cannot speak for a device it does not hold the key of).
//! A report is stored once by its id: a retried report counts once. A device's `hello` (its
//! daemon's check-in) stores no report: it makes the device known (`first_seen`), or says it
//! is still there and what it runs.

use super::sql::{Db, Val};
use super::FleetError;
use crate::agent::report::Hello;
use crate::state::Outcome;

/// Make `device` known at `at`, bound to `key` (base64), unless it is known already; refused
/// if it is bound to another key. The first key wins, also when two instances take a new
/// device's first reports at once.
fn bind(db: &mut Db, device: &str, board: &str, key: &str, at: u64) -> Result<(), FleetError> {
    db.exec(
        "INSERT INTO devices (device, key, board, first_seen) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        &[
            Val::T(device.to_string()),
            Val::T(key.to_string()),
            Val::T(board.to_string()),
            Val::I(at as i64),
        ],
    )?;
    let bound = db.query(
        "SELECT key FROM devices WHERE device = $1",
        &[Val::T(device.to_string())],
    )?;
    if bound.first().map(|row| text(&row[0])).as_deref() != Some(key) {
        return Err(FleetError::WrongKey {
            device: device.to_string(),
        });
    }
    Ok(())
}

/// The schema, one migration per version.
const MIGRATIONS: &[&str] = &[
    // 1: devices, their reports, the halts published.
    "CREATE TABLE devices (
         device TEXT PRIMARY KEY,
         key TEXT NOT NULL,
         board TEXT NOT NULL,
         first_seen BIGINT NOT NULL
     );
     CREATE TABLE reports (
         id TEXT PRIMARY KEY,
         device TEXT NOT NULL REFERENCES devices(device),
         board TEXT NOT NULL,
         release TEXT NOT NULL,
         result TEXT NOT NULL,
         failing TEXT NOT NULL,
         detail TEXT NOT NULL,
         at BIGINT NOT NULL,
         received BIGINT NOT NULL,
         deadline_s BIGINT
     );
     CREATE INDEX reports_by_release ON reports(release, device);
     CREATE TABLE halts (
         release TEXT PRIMARY KEY,
         reason TEXT NOT NULL,
         at BIGINT NOT NULL
     );",
    // 2: the devices' hellos (the release each said it runs, and when), and when each
    // release was first seen listed in the published index.
    "ALTER TABLE devices ADD COLUMN last_seen BIGINT;
     ALTER TABLE devices ADD COLUMN running TEXT;
     CREATE TABLE listed (
         release TEXT PRIMARY KEY,
         at BIGINT NOT NULL
     );",
];

/// The advisory lock of the instance that decides (PostgreSQL).
pub const DECIDER_LOCK: i64 = 0x6677_6775_6172_6401;

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// Its id was stored before: counted once.
    Duplicate,
    /// A hello: the device is known (now, or from before).
    Hello,
}

/// One device's reports of one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub device: String,
    /// When the device was first heard of.
    pub first_seen: u64,
    /// (result, received, deadline_s) of each report, oldest first.
    pub reports: Vec<(String, u64, Option<u64>)>,
    /// The checks that failed in its rollback.
    pub failing: Vec<String>,
}

pub struct Store {
    db: Db,
}

fn int(v: &Val) -> u64 {
    match v {
        Val::I(i) => *i as u64,
        _ => 0,
    }
}

fn text(v: &Val) -> String {
    match v {
        Val::T(s) => s.clone(),
        _ => String::new(),
    }
}

impl Store {
    /// Open (or create) the database `at` (a path: SQLite; `postgres://...`: PostgreSQL) and
    /// bring its schema up to date. PostgreSQL needs a tokio runtime (`handle`).
    pub fn open(at: &str, handle: Option<tokio::runtime::Handle>) -> Result<Store, FleetError> {
        let mut s = Store {
            db: Db::open(at, handle)?,
        };
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> Result<(), FleetError> {
        self.db
            .batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        let at = self.version()? as usize;
        if at > MIGRATIONS.len() {
            return Err(FleetError::Db(format!(
                "the database is of schema version {at}; this fwguard-fleet knows {} at most",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(at) {
            self.db.transaction(|db| {
                db.batch(sql)?;
                db.exec("DELETE FROM schema_version", &[])?;
                db.exec(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[Val::I(i as i64 + 1)],
                )?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The schema version of the database (0: none yet).
    pub fn version(&mut self) -> Result<u32, FleetError> {
        let rows = self.db.query("SELECT version FROM schema_version", &[])?;
        Ok(rows.first().map_or(0, |r| int(&r[0]) as u32))
    }

    /// Store report `r` signed by `key` (base64), received at `received`.
    pub fn add(&mut self, r: &Outcome, key: &str, received: u64) -> Result<Added, FleetError> {
        self.db.transaction(|db| {
            bind(db, &r.device, &r.board, key, received)?;
            let n = db.exec(
                "INSERT INTO reports (id, device, board, release, result, failing, detail, at, received, deadline_s)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                &[
                    Val::T(r.id.clone()),
                    Val::T(r.device.clone()),
                    Val::T(r.board.clone()),
                    Val::T(r.release.to_string()),
                    Val::T(r.result.clone()),
                    Val::T(r.failing.join("\n")),
                    Val::T(r.detail.clone()),
                    Val::I(r.at as i64),
                    Val::I(received as i64),
                    r.deadline_s.map_or(Val::N, |d| Val::I(d as i64)),
                ],
            )?;
            Ok(if n == 0 { Added::Duplicate } else { Added::New })
        })
    }

    /// Take device `h`'s hello, signed by `key`, received at `received`: the device is known
    /// from its first (bound to that key), and runs `h.release` as of now.
    pub fn hello(&mut self, h: &Hello, key: &str, received: u64) -> Result<Added, FleetError> {
        self.db.transaction(|db| {
            bind(db, &h.device, &h.board, key, received)?;
            db.exec(
                // Parameters are numbered in the order they appear (SQLite binds them so).
                "UPDATE devices SET last_seen = $1, running = $2 WHERE device = $3",
                &[
                    Val::I(received as i64),
                    h.release.as_ref().map_or(Val::N, |v| Val::T(v.to_string())),
                    Val::T(h.device.clone()),
                ],
            )?;
            Ok(Added::Hello)
        })
    }

    /// The devices known, by the release they said they run (None: unidentified, or no hello
    /// yet), most devices first.
    pub fn running(&mut self) -> Result<Vec<(Option<String>, u32)>, FleetError> {
        let rows = self.db.query(
            "SELECT running, COUNT(*) FROM devices GROUP BY running ORDER BY COUNT(*) DESC, running",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let running = match &r[0] {
                    Val::T(s) => Some(s.clone()),
                    _ => None,
                };
                (running, int(&r[1]) as u32)
            })
            .collect())
    }

    /// Record that `release` is listed in the published index as of `at`, unless it was seen
    /// listed before.
    pub fn list(&mut self, release: &str, at: u64) -> Result<(), FleetError> {
        self.db.exec(
            "INSERT INTO listed (release, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[Val::T(release.to_string()), Val::I(at as i64)],
        )?;
        Ok(())
    }

    /// When `release` was first seen listed in the published index (None: never).
    pub fn listed_at(&mut self, release: &str) -> Result<Option<u64>, FleetError> {
        let rows = self.db.query(
            "SELECT at FROM listed WHERE release = $1",
            &[Val::T(release.to_string())],
        )?;
        Ok(rows.first().map(|r| int(&r[0])))
    }

    /// The releases reported on, newest report first.
    pub fn releases(&mut self) -> Result<Vec<String>, FleetError> {
        let rows = self.db.query(
            "SELECT release FROM reports GROUP BY release ORDER BY MAX(received) DESC, release",
            &[],
        )?;
        Ok(rows.iter().map(|r| text(&r[0])).collect())
    }

    /// Each device's reports of `release`, oldest report first.
    pub fn reports_of(&mut self, release: &str) -> Result<Vec<DeviceRow>, FleetError> {
        let rows = self.db.query(
            "SELECT r.device, r.result, r.received, r.deadline_s, r.failing, d.first_seen
             FROM reports r JOIN devices d ON d.device = r.device
             WHERE r.release = $1 ORDER BY r.device, r.received, r.at, r.id",
            &[Val::T(release.to_string())],
        )?;
        let mut out: Vec<DeviceRow> = Vec::new();
        for row in rows {
            let device = text(&row[0]);
            if out.last().is_none_or(|d| d.device != device) {
                out.push(DeviceRow {
                    device,
                    first_seen: int(&row[5]),
                    reports: Vec::new(),
                    failing: Vec::new(),
                });
            }
            let last = out.last_mut().expect("pushed");
            let result = text(&row[1]);
            if result == "rolled-back" {
                last.failing = text(&row[4]).lines().map(str::to_string).collect();
            }
            let deadline = match row[3] {
                Val::I(d) => Some(d as u64),
                _ => None,
            };
            last.reports.push((result, int(&row[2]), deadline));
        }
        Ok(out)
    }

    /// When `device` was first heard of (None: never).
    pub fn first_seen(&mut self, device: &str) -> Result<Option<u64>, FleetError> {
        let rows = self.db.query(
            "SELECT first_seen FROM devices WHERE device = $1",
            &[Val::T(device.to_string())],
        )?;
        Ok(rows.first().map(|r| int(&r[0])))
    }

    /// Run `f` as the one instance deciding (halting, publishing), in a transaction: on
    /// PostgreSQL under an advisory lock that instances sharing the database take in turn
    /// (None: another holds it now); on SQLite, whose file has one writer at a time, always.
    pub fn decide<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, FleetError>,
    ) -> Result<Option<T>, FleetError> {
        self.db.begin_writing()?;
        let r = match self.db.try_lock(DECIDER_LOCK) {
            Ok(true) => f(self).map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        match r {
            Ok(v) => {
                self.db.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Record that `release` was halted, for `reason`, at `at`.
    pub fn record_halt(&mut self, release: &str, reason: &str, at: u64) -> Result<(), FleetError> {
        self.db.exec(
            "INSERT INTO halts (release, reason, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[
                Val::T(release.to_string()),
                Val::T(reason.to_string()),
                Val::I(at as i64),
            ],
        )?;
        Ok(())
    }

    /// The halts published: (release, reason, at), oldest first.
    pub fn halts(&mut self) -> Result<Vec<(String, String, u64)>, FleetError> {
        let rows = self.db.query(
            "SELECT release, reason, at FROM halts ORDER BY at, release",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (text(&r[0]), text(&r[1]), int(&r[2])))
            .collect())
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

    fn hello(device: &str, release: Option<&str>) -> Hello {
        Hello {
            schema: 1,
            device: device.into(),
            board: "b".into(),
            result: "hello".into(),
            release: release.map(|r| r.parse().unwrap()),
            at: 1,
            id: "h".into(),
        }
    }

    #[test]
    fn a_hello_makes_a_device_known_once_by_its_key_and_stores_no_report() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path().join("f.sqlite").to_str().unwrap(), None).unwrap();
        assert_eq!(
            s.hello(&hello("d1", Some("1.0")), "K", 10).unwrap(),
            Added::Hello
        );
        assert_eq!(
            s.hello(&hello("d1", Some("1.1")), "K", 20).unwrap(),
            Added::Hello
        );
        assert!(matches!(
            s.hello(&hello("d1", None), "other", 30),
            Err(FleetError::WrongKey { .. })
        ));
        s.hello(&hello("d2", None), "K2", 40).unwrap();
        // Known from the first hello; running what the last one said.
        assert_eq!(s.first_seen("d1").unwrap(), Some(10));
        assert_eq!(
            s.running().unwrap(),
            vec![(None, 1), (Some("1.1".to_string()), 1)]
        );
        assert!(s.releases().unwrap().is_empty());
        // The device's reports are taken under the same key only.
        assert_eq!(
            s.add(&report("a"), "other", 50)
                .err()
                .map(|e| e.to_string()),
            Some("report refused: device d1 reported with another key before".into())
        );
        assert_eq!(s.add(&report("a"), "K", 50).unwrap(), Added::New);
        // A release is listed once: its first time stays.
        assert_eq!(s.listed_at("2.0").unwrap(), None);
        s.list("2.0", 100).unwrap();
        s.list("2.0", 200).unwrap();
        assert_eq!(s.listed_at("2.0").unwrap(), Some(100));
    }

    #[test]
    fn a_database_of_the_first_schema_is_brought_up_to_date_with_its_devices() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.sqlite");
        {
            let c = rusqlite::Connection::open(&p).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_version (version BIGINT NOT NULL);
                 INSERT INTO schema_version (version) VALUES (1);
                 INSERT INTO devices (device, key, board, first_seen) VALUES ('d1', 'K', 'b', 7);",
            )
            .unwrap();
        }
        let mut s = Store::open(p.to_str().unwrap(), None).unwrap();
        assert_eq!(s.version().unwrap(), 2);
        assert_eq!(s.first_seen("d1").unwrap(), Some(7));
        assert_eq!(s.running().unwrap(), vec![(None, 1)]);
        s.hello(&hello("d1", Some("1.0")), "K", 10).unwrap();
        assert_eq!(s.first_seen("d1").unwrap(), Some(7));
        assert_eq!(s.running().unwrap(), vec![(Some("1.0".to_string()), 1)]);
    }

    #[test]
    fn a_database_is_migrated_once_keeps_its_data_and_a_newer_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.sqlite");
        let at = p.to_str().unwrap();
        let mut s = Store::open(at, None).unwrap();
        assert_eq!(s.add(&report("a"), "K", 10).unwrap(), Added::New);
        assert_eq!(s.add(&report("a"), "K", 11).unwrap(), Added::Duplicate);
        assert!(matches!(
            s.add(&report("b"), "other", 12),
            Err(FleetError::WrongKey { .. })
        ));
        drop(s);
        let mut s = Store::open(at, None).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len() as u32);
        let got = s.reports_of("2.0").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].reports, vec![("armed".to_string(), 10, Some(600))]);
        assert_eq!(got[0].first_seen, 10);
        s.db.exec("UPDATE schema_version SET version = 99", &[])
            .unwrap();
        drop(s);
        let e = Store::open(at, None).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }
}
