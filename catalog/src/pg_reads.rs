//! The reads a server makes on every request (the bearer token, the table asked for), on a
//! PostgreSQL catalog: one round trip each, on a few connections kept for them alone.
//!
//! Through sqlx's pool each query cost three round trips: the pool checks a connection
//! with a ping when it hands it out and again when it takes it back. With the two reads
//! every request makes, that was six round trips, each one waking a PostgreSQL backend that
//! shares the machine's cores with the server. Here a connection is taken from a small
//! idle list and put back after the query, without pings. A connection that fails is
//! dropped; a read that failed on a connection kept from earlier (say, after PostgreSQL
//! restarted) is tried once more on a new connection. Writes still go through sqlx's pool.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{ConnectOptions, PgConnection, Row};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::model::{TableInfo, TokenInfo};
use crate::names::TableName;
use crate::sql::{
    not_found, table_from_row, token_from_row, ColumnValue, Columns, FIND_TOKEN_SQL, GET_TABLE_SQL,
};

/// At most this many connections for the reads (PostgreSQL runs a process per connection;
/// more than a few per core only adds switching).
const MAX_CONNECTIONS: usize = 8;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to one PostgreSQL catalog for the per-request reads.
#[derive(Debug)]
pub(crate) struct PgReads {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Semaphore,
}

impl PgReads {
    pub(crate) fn new(url: &str) -> sqlx::Result<Self> {
        let options = url.parse::<PgConnectOptions>()?.disable_statement_logging();
        Ok(Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(MAX_CONNECTIONS),
        })
    }

    /// A new connection, or an error after [`CONNECT_TIMEOUT`] (as sqlx's pool does).
    async fn connect(&self) -> sqlx::Result<PgConnection> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    /// Runs `sql` with `params` and returns its one row, if any.
    async fn fetch_optional(
        &self,
        sql: &'static str,
        params: &[&str],
    ) -> sqlx::Result<Option<PgRow>> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let reused = kept.is_some();
        let mut conn = match kept {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let mut result = run(&mut conn, sql, params).await;
        if reused && result.as_ref().is_err_and(connection_lost) {
            // A connection kept from earlier may have been closed by the server meanwhile.
            drop(conn);
            conn = self.connect().await?;
            result = run(&mut conn, sql, params).await;
        }
        if result.is_ok() {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(conn);
            }
        }
        // A connection whose query failed is dropped: it may be mid-way through a reply.
        result
    }

    pub(crate) async fn get_table(&self, name: &TableName) -> Result<TableInfo> {
        let db = |e| Error::from_db(e, "table");
        self.fetch_optional(GET_TABLE_SQL, &[&name.catalog, &name.schema, &name.table])
            .await
            .map_err(db)?
            .map(|r| table_from_row(&r))
            .transpose()
            .map_err(db)?
            .ok_or_else(|| not_found(format!("table `{name}` does not exist")))
    }

    pub(crate) async fn find_token(&self, secret_hash: &str) -> Result<TokenInfo> {
        let db = |e| Error::from_db(e, "token");
        self.fetch_optional(FIND_TOKEN_SQL, &[secret_hash])
            .await
            .map_err(db)?
            .map(|r| token_from_row(&r))
            .transpose()
            .map_err(db)?
            .ok_or_else(|| not_found("unknown token".into()))
    }
}

/// Whether `err` says the connection is gone rather than that the query failed: an I/O
/// error, or PostgreSQL's own notice that it ended the session (SQLSTATE class 57,
/// "operator intervention", e.g. 57P01 after `pg_terminate_backend` or a shutdown; class
/// 08, "connection exception").
fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57") || code.starts_with("08")),
        _ => false,
    }
}

async fn run(
    conn: &mut PgConnection,
    sql: &'static str,
    params: &[&str],
) -> sqlx::Result<Option<PgRow>> {
    let mut query = sqlx::query(sql);
    for p in params {
        query = query.bind(*p);
    }
    query.fetch_optional(&mut *conn).await
}

impl Columns for PgRow {
    fn column<T: ColumnValue>(&self, name: &str) -> sqlx::Result<T> {
        self.try_get(name)
    }
}
