//! One SQL connection, SQLite or PostgreSQL, behind the few calls the store makes: a batch of
//! statements, a statement with parameters (rows changed), a query (rows of values), and a
//! transaction. Values are integers (BIGINT), text or NULL, which is all the schema holds.
//!
//! PostgreSQL's client is async; its calls are run to completion on the service's runtime
//! from the blocking threads the store is used on (never from an async task).

use super::FleetError;

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    I(i64),
    T(String),
    N,
}

pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres {
        client: tokio_postgres::Client,
        handle: tokio::runtime::Handle,
    },
}

fn lite(e: rusqlite::Error) -> FleetError {
    FleetError::Db(e.to_string())
}

fn pg(e: tokio_postgres::Error) -> FleetError {
    FleetError::Db(match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None => e.to_string(),
    })
}

impl Db {
    /// `at`: `postgres://...` (or `postgresql://`), else a SQLite file's path.
    pub fn open(at: &str, handle: Option<tokio::runtime::Handle>) -> Result<Db, FleetError> {
        if at.starts_with("postgres://") || at.starts_with("postgresql://") {
            let handle =
                handle.ok_or_else(|| FleetError::Db("PostgreSQL needs a runtime".into()))?;
            let (client, conn) = handle
                .block_on(tokio_postgres::connect(at, tokio_postgres::NoTls))
                .map_err(|e| FleetError::Db(format!("connecting to PostgreSQL: {e}")))?;
            handle.spawn(async move {
                if let Err(e) = conn.await {
                    tracing::error!("PostgreSQL connection: {e}");
                }
            });
            return Ok(Db::Postgres { client, handle });
        }
        let c = rusqlite::Connection::open(at).map_err(|e| FleetError::Db(format!("{at}: {e}")))?;
        Ok(Db::Sqlite(c))
    }

    pub fn batch(&mut self, sql: &str) -> Result<(), FleetError> {
        match self {
            Db::Sqlite(c) => c.execute_batch(sql).map_err(lite),
            Db::Postgres { client, handle } => {
                handle.block_on(client.batch_execute(sql)).map_err(pg)
            }
        }
    }

    /// Run one statement; the rows it changed.
    pub fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, FleetError> {
        match self {
            Db::Sqlite(c) => c
                .execute(sql, rusqlite::params_from_iter(params.iter().map(to_lite)))
                .map(|n| n as u64)
                .map_err(lite),
            Db::Postgres { client, handle } => {
                let p = to_pg(params);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                handle.block_on(client.execute(sql, &refs)).map_err(pg)
            }
        }
    }

    /// Run a query; its rows, each a value per column.
    pub fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, FleetError> {
        match self {
            Db::Sqlite(c) => {
                let mut q = c.prepare(sql).map_err(lite)?;
                let n = q.column_count();
                let rows = q
                    .query_map(
                        rusqlite::params_from_iter(params.iter().map(to_lite)),
                        |row| {
                            (0..n)
                                .map(|i| {
                                    Ok(match row.get_ref(i)? {
                                        rusqlite::types::ValueRef::Integer(v) => Val::I(v),
                                        rusqlite::types::ValueRef::Text(t) => {
                                            Val::T(String::from_utf8_lossy(t).into_owned())
                                        }
                                        _ => Val::N,
                                    })
                                })
                                .collect::<Result<Vec<Val>, rusqlite::Error>>()
                        },
                    )
                    .map_err(lite)?;
                rows.collect::<Result<_, _>>().map_err(lite)
            }
            Db::Postgres { client, handle } => {
                use tokio_postgres::types::Type;
                let p = to_pg(params);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                let rows = handle.block_on(client.query(sql, &refs)).map_err(pg)?;
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                let t = row.columns()[i].type_();
                                Ok(if *t == Type::BOOL {
                                    row.try_get::<_, Option<bool>>(i)
                                        .map_err(pg)?
                                        .map_or(Val::N, |b| Val::I(b as i64))
                                } else if *t == Type::INT8 {
                                    row.try_get::<_, Option<i64>>(i)
                                        .map_err(pg)?
                                        .map_or(Val::N, Val::I)
                                } else if *t == Type::INT4 {
                                    row.try_get::<_, Option<i32>>(i)
                                        .map_err(pg)?
                                        .map_or(Val::N, |v| Val::I(v as i64))
                                } else {
                                    row.try_get::<_, Option<String>>(i)
                                        .map_err(pg)?
                                        .map_or(Val::N, Val::T)
                                })
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Begin a transaction that will write (SQLite: take the file's write lock now).
    pub fn begin_writing(&mut self) -> Result<(), FleetError> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE"),
            Db::Postgres { .. } => self.batch("BEGIN"),
        }
    }

    /// Within a transaction: take advisory lock `key` until it ends, if no other session
    /// holds it (PostgreSQL); SQLite has no other writer, so: yes.
    pub fn try_lock(&mut self, key: i64) -> Result<bool, FleetError> {
        match self {
            Db::Sqlite(_) => Ok(true),
            Db::Postgres { .. } => {
                let rows = self.query("SELECT pg_try_advisory_xact_lock($1)", &[Val::I(key)])?;
                Ok(rows.first().is_some_and(|r| r[0] == Val::I(1)))
            }
        }
    }

    /// Run `f` in a transaction: committed if it returns Ok, rolled back if not.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Db) -> Result<T, FleetError>,
    ) -> Result<T, FleetError> {
        self.batch("BEGIN")?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn to_lite(v: &Val) -> rusqlite::types::Value {
    match v {
        Val::I(i) => rusqlite::types::Value::Integer(*i),
        Val::T(s) => rusqlite::types::Value::Text(s.clone()),
        Val::N => rusqlite::types::Value::Null,
    }
}

/// A NULL of whatever type the column has (an `Option<i64>` would be refused for a TEXT
/// column).
#[derive(Debug)]
struct Null;

impl tokio_postgres::types::ToSql for Null {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        _: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(tokio_postgres::types::IsNull::Yes)
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn to_pg(params: &[Val]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn tokio_postgres::types::ToSql + Sync> {
            match v {
                Val::I(i) => Box::new(*i),
                Val::T(s) => Box::new(s.clone()),
                Val::N => Box::new(Null),
            }
        })
        .collect()
}
