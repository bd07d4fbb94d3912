//! The reads a server makes on every request (the bearer token, the table asked for, the
//! tables of a schema), on the embedded SQLite catalog, done on the calling thread with a
//! plain SQLite connection.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and talks to it over
//! channels: every query costs several thread hand-offs, which on a 2-core machine took most
//! of a get-table request's time (`perf`: futex wake-ups and context switches, 3% in SQLite
//! itself). A read of a few pages in WAL mode takes microseconds, less than one hand-off, so
//! these reads run where they are asked for. Writes still go through sqlx.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};
use crate::model::{TableInfo, TokenInfo};
use crate::names::{SchemaName, TableName};
use crate::sql::{
    not_found, table_from_row, token_from_row, ColumnValue, Columns, FIND_TOKEN_SQL, GET_TABLE_SQL,
    LIST_TABLES_SQL, SCHEMA_EXISTS_SQL,
};

/// Idle read-only connections kept for reuse (more are opened under load, then closed).
const KEEP_IDLE: usize = 8;

/// Read-only connections to one SQLite catalog file.
#[derive(Debug)]
pub(crate) struct SqliteReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteReads {
    /// For the catalog file at `path`, or `None` for an in-memory database (which another
    /// connection cannot see).
    pub(crate) fn new(path: &str) -> Option<Self> {
        if path.is_empty() || path.contains(":memory:") || path.contains('?') {
            return None;
        }
        Some(Self {
            path: PathBuf::from(path),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn with<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().map_err(|e| Error::from_sqlite(e, "catalog"))?,
        };
        let result = read(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < KEEP_IDLE {
                idle.push(conn);
            }
        }
        result.map_err(|e| Error::from_sqlite(e, "catalog"))
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Only a WAL recovery or a checkpoint that resets the log makes a reader wait.
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(conn)
    }

    pub(crate) fn get_table(&self, name: &TableName) -> Result<TableInfo> {
        self.with(|conn| {
            conn.prepare_cached(GET_TABLE_SQL)?
                .query_row((&name.catalog, &name.schema, &name.table), |row| {
                    Ok(table_from_row(row))
                })
                .optional()
        })?
        .transpose()
        .map_err(|e| Error::from_db(e, "table"))?
        .ok_or_else(|| not_found(format!("table `{name}` does not exist")))
    }

    /// The tables of `schema`, by name (`NotFound` if the schema does not exist).
    pub(crate) fn list_tables(&self, schema: &SchemaName) -> Result<Vec<TableInfo>> {
        let (exists, rows) = self.with(|conn| {
            let key = (&schema.catalog, &schema.schema);
            let exists = conn.prepare_cached(SCHEMA_EXISTS_SQL)?.exists(key)?;
            let mut tables = conn.prepare_cached(LIST_TABLES_SQL)?;
            let rows = tables
                .query_map(key, |row| Ok(table_from_row(row)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((exists, rows))
        })?;
        if !exists {
            return Err(not_found(format!("schema `{schema}` does not exist")));
        }
        rows.into_iter()
            .collect::<sqlx::Result<_>>()
            .map_err(|e| Error::from_db(e, "table"))
    }

    pub(crate) fn find_token(&self, secret_hash: &str) -> Result<TokenInfo> {
        self.with(|conn| {
            conn.prepare_cached(FIND_TOKEN_SQL)?
                .query_row([secret_hash], |row| Ok(token_from_row(row)))
                .optional()
        })?
        .transpose()
        .map_err(|e| Error::from_db(e, "token"))?
        .ok_or_else(|| not_found("unknown token".into()))
    }
}

impl Columns for rusqlite::Row<'_> {
    fn column<T: ColumnValue>(&self, name: &str) -> sqlx::Result<T> {
        T::from_sqlite(self, name)
    }
}

fn decode_error(name: &str, e: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: name.to_string(),
        source: Box::new(e),
    }
}

macro_rules! column_value {
    ($($t:ty),*) => {$(
        impl ColumnValue for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, name: &str) -> sqlx::Result<Self> {
                row.get(name).map_err(|e| decode_error(name, e))
            }
        }
    )*};
}

column_value!(String, Option<String>, i64, Option<i64>);
