//! The one error type of tarn-catalog, with a [`ErrorKind`] callers (and the HTTP layer)
//! branch on. Database errors are mapped in one place, [`Error::from_db`].

use std::fmt;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The catalog, schema, table or token does not exist.
    NotFound,
    /// The name is taken.
    AlreadyExists,
    /// The request is malformed (bad name, bad argument).
    InvalidInput,
    /// The state forbids it (e.g. dropping a non-empty catalog without force).
    FailedPrecondition,
    /// The catalog database cannot be reached right now (refused, timed out, restarting):
    /// the same request may succeed later.
    Unavailable,
    /// The database failed; not the caller's fault.
    Internal,
}

/// An error from the catalog.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message for users.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An error of a plain SQLite connection (see `sqlite_reads`).
    pub(crate) fn from_sqlite(err: rusqlite::Error, what: &str) -> Self {
        Error {
            kind: ErrorKind::Internal,
            message: format!("{what} database error: {err}"),
            source: Some(Box::new(err)),
        }
    }

    /// Maps a database error; `what` names the object for "already exists" messages.
    /// A foreign-key violation (a parent dropped, or a child added, by a concurrent
    /// request) is `FailedPrecondition` here; the writes that can meet one map it to a more
    /// precise message first (sql.rs).
    pub(crate) fn from_db(err: sqlx::Error, what: &str) -> Self {
        if is_unavailable(&err) {
            return Error {
                kind: ErrorKind::Unavailable,
                message: format!("the catalog database is unavailable ({err}): try again later"),
                source: Some(Box::new(err)),
            };
        }
        let kind = match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                return Error::new(ErrorKind::AlreadyExists, format!("{what} already exists"));
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                return Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("{what} changed while this request ran (a catalog or schema was created or dropped at the same time): try again"),
                );
            }
            sqlx::Error::RowNotFound => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        };
        Error {
            kind,
            message: format!("catalog database error: {err}"),
            source: Some(Box::new(err)),
        }
    }
}

/// Whether `err` says the database could not be reached or went away (rather than that
/// the request was wrong): the pool timed out waiting for a connection, the connection
/// failed or was cut, or PostgreSQL is shutting down, starting up or out of connections
/// (SQLSTATE class 08, 57P01-57P03, 53300).
pub(crate) fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
