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

use crate::pg_tokens::TokenMemory;
use crate::sql::{ColumnValue, Columns};

/// At most this many connections for the reads (PostgreSQL runs a process per connection;
/// more than a few per core only adds switching).
const MAX_CONNECTIONS: usize = 8;

/// How long one read may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to one PostgreSQL catalog for the per-request reads.
#[derive(Debug)]
pub(crate) struct PgReads {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Semaphore,
    /// [`TIMEOUT`], shorter in tests.
    timeout: Duration,
    /// Tokens found, remembered while revocations can be heard (pg_tokens.rs).
    pub(crate) tokens: std::sync::Arc<TokenMemory>,
}

impl PgReads {
    pub(crate) fn new(url: &str) -> sqlx::Result<Self> {
        let options = url.parse::<PgConnectOptions>()?.disable_statement_logging();
        Ok(Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(MAX_CONNECTIONS),
            timeout: TIMEOUT,
            tokens: TokenMemory::new(url),
        })
    }

    /// A new connection, or an error after [`TIMEOUT`].
    async fn connect(&self) -> sqlx::Result<PgConnection> {
        tokio::time::timeout(self.timeout, self.options.connect())
            .await
            .map_err(|_| timed_out("connecting to the catalog database", self.timeout))?
    }

    /// Runs `sql` with `params` and returns its one row, if any. The whole read (waiting
    /// for a connection, connecting, the query and its one retry) fails after [`TIMEOUT`],
    /// as sqlx's pool did: a database that stops answering makes requests fail, not hang.
    pub(crate) async fn fetch_optional(
        &self,
        sql: &'static str,
        params: &[&str],
    ) -> sqlx::Result<Option<PgRow>> {
        tokio::time::timeout(self.timeout, self.fetch_optional_now(sql, params))
            .await
            .map_err(|_| timed_out("reading the catalog database", self.timeout))?
    }

    async fn fetch_optional_now(
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
        // Owned here: if this future is dropped (timeout, client gone), so is the
        // connection, and it never goes back to the idle list half-way through a reply.
        let mut conn = match kept {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let mut result = run(&mut conn, sql, params).await;
        if reused && result.as_ref().is_err_and(retry_on_new_connection) {
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
}

/// Whether a read that failed with `err` on a connection kept from earlier should be tried
/// again on a new one: the connection is gone (an I/O or protocol error; SQLSTATE 57P01-
/// 57P03, PostgreSQL ending the session after `pg_terminate_backend` or at a shutdown;
/// class 08, connection exception), or it holds a prepared statement whose result type a
/// migration changed (0A000, "cached plan must not change result type"). A cancelled or
/// timed-out statement (57014) is not retried: it would only add load.
fn retry_on_new_connection(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "0A000") || code.starts_with("08")
        }),
        _ => false,
    }
}

fn timed_out(what: &str, limit: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} took more than {} ms", limit.as_millis()),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A "database" that accepts connections and never answers: reads fail after the
    /// timeout instead of hanging, and a later read does not wait behind them.
    #[tokio::test]
    async fn reads_from_a_database_that_never_answers_fail_after_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let mut reads = PgReads::new(&format!("postgres://u@127.0.0.1:{port}/db")).unwrap();
        reads.timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let (a, b) = tokio::join!(
            reads.fetch_optional(crate::sql::FIND_TOKEN_SQL, &["x"]),
            reads.fetch_optional(crate::sql::GET_TABLE_SQL, &["c", "s", "t"])
        );
        for err in [a.unwrap_err(), b.unwrap_err()] {
            assert!(err.to_string().contains("took more than 300 ms"), "{err}");
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        held.abort();
    }
}
