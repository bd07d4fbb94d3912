//! The bounds that keep clients from taking the whole server: how many tables are opened at
//! once (for every protocol), how many connections are served at once, and how long a
//! connection may take to send a request or sit idle. See `docs/server.md` ("Limits").

use std::time::Duration;

use tarn_table::{Table, TableLocation, TimeTravel};
use tokio::sync::Semaphore;

/// How many tables the whole server opens at once, for Unity Catalog and Delta Sharing
/// requests alike. Opening a table runs the Delta kernel, which parks its thread in tokio's
/// blocking pool while its file reads run on other threads of the same pool: with 512 opens
/// at once (32 list-tables requests on a cold cache, each checking 16 tables; or a few
/// hundred Delta Sharing queries) every thread of the pool was parked, waiting for reads
/// that had no thread left to run on, and the server stopped answering for good.
pub const MAX_TABLE_OPENS: usize = 16;

/// The server-wide bound on tables being opened ([`MAX_TABLE_OPENS`]).
#[derive(Debug)]
pub struct TableOpens {
    permits: Semaphore,
    /// Tables opened so far.
    opened: std::sync::atomic::AtomicU64,
}

impl Default for TableOpens {
    fn default() -> Self {
        Self {
            permits: Semaphore::new(MAX_TABLE_OPENS),
            opened: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl TableOpens {
    /// Opens the table at `location` as of `at`, waiting while [`MAX_TABLE_OPENS`] other
    /// opens are running.
    pub async fn open(
        &self,
        location: &TableLocation,
        at: &TimeTravel,
    ) -> Result<Table, tarn_table::Error> {
        let _permit = self.permit().await;
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Table::open(location, at).await
    }

    /// How many tables (a snapshot each) have been opened through this bound.
    pub fn opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for the right to open a table; it lasts until the permit is dropped.
    pub async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed: `acquire` cannot fail.
        self.permits.acquire().await.ok()
    }
}

/// How `tarn serve` treats connections. Every bound has a default (see
/// [`ServerLimits::default`]) and a `tarn serve` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once. When all are taken, a new client is served in place of
    /// the connection that has waited longest on its client (idle, or still sending a
    /// request's head or body), which is closed; only when the server is working on a
    /// request on every connection do new clients wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client has to send a request's line and headers: for the first request
    /// of a connection, counted from the moment it was accepted (a client that connects and
    /// sends nothing is closed after it); for later ones, from the request's first byte. A
    /// slower client is disconnected.
    pub header_read_timeout: Duration,
    /// How long a client has to send a request's body once its headers are in (`408`
    /// after it).
    pub body_read_timeout: Duration,
    /// How long a connection may stay open without a request in flight after an answer,
    /// before the next request starts (keep-alive).
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    /// 1,000 connections; 10 s for headers, 60 s for a body, 60 s idle.
    fn default() -> Self {
        Self {
            max_connections: 1000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        }
    }
}
