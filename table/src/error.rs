//! The one error type of tarn-table: a [`ErrorKind`] callers branch on, a message users read,
//! and the underlying cause kept for logs.

use std::fmt;

use deltalake::kernel::transaction::TransactionError;
use deltalake::DeltaTableError;

/// What went wrong, in the terms a caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The table, version or file does not exist.
    NotFound,
    /// Something already exists where it should not (e.g. `create` on an existing table).
    AlreadyExists,
    /// A concurrent commit conflicts with this one; nothing was written.
    Conflict,
    /// The caller's input is wrong: bad schema text, bad file, bad SQL, wrong types.
    InvalidInput,
    /// Valid, but not something Tarn does.
    Unsupported,
    /// Storage, I/O or a bug: not the caller's fault.
    Internal,
}

/// An error from tarn-table.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message for users.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Keeps `source` as the cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with context, e.g. the table or file it concerns.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Maps an error from the `deltalake` crate, naming the table it concerns.
    pub fn from_delta(table: &str, err: DeltaTableError) -> Self {
        let text = one_line(&err.to_string());
        let kind = match &err {
            DeltaTableError::NotATable(_) => {
                return Error::not_found(format!("no Delta table at `{table}`")).with_source(err)
            }
            DeltaTableError::InvalidVersion(v) => {
                return Error::not_found(format!("table `{table}` has no version {v}"))
                    .with_source(err)
            }
            DeltaTableError::Transaction { source } => match source {
                TransactionError::CommitConflict(conflict) => {
                    return Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "a concurrent commit to `{table}` conflicts with this one ({}); nothing was written, re-run the command",
                            one_line(&conflict.to_string())
                        ),
                    )
                    .with_source(err)
                }
                TransactionError::MaxCommitAttempts(n) => {
                    return Error::new(
                        ErrorKind::Conflict,
                        format!("gave up committing to `{table}` after {n} attempts against concurrent writers; nothing was written"),
                    )
                    .with_source(err)
                }
                TransactionError::VersionAlreadyExists(_) => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
            DeltaTableError::VersionAlreadyExists(_) => ErrorKind::Conflict,
            DeltaTableError::SchemaMismatch { .. }
            | DeltaTableError::InvalidData { .. }
            | DeltaTableError::InvalidPartitionFilter { .. }
            | DeltaTableError::PartitionError { .. }
            | DeltaTableError::InvalidDateTimeString { .. }
            | DeltaTableError::Arrow { .. }
            | DeltaTableError::Generic(_)
            | DeltaTableError::MetadataError(_) => ErrorKind::InvalidInput,
            DeltaTableError::ObjectStore {
                source: deltalake::ObjectStoreError::NotFound { .. },
            } => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("`{table}`: {text}")).with_source(err)
    }
}

/// Collapses a multi-line message into one line (every run of white space becomes one
/// space), as every error message of Tarn is shown.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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

impl From<deltalake::datafusion::error::DataFusionError> for Error {
    fn from(err: deltalake::datafusion::error::DataFusionError) -> Self {
        use deltalake::datafusion::error::DataFusionError as D;
        let kind = match err.find_root() {
            D::SQL(..)
            | D::Plan(_)
            | D::SchemaError(..)
            | D::ArrowError(..)
            | D::NotImplemented(_) => ErrorKind::InvalidInput,
            D::Execution(_) => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        };
        let message = one_line(&err.find_root().to_string());
        Error::new(kind, message).with_source(err)
    }
}

impl From<deltalake::arrow::error::ArrowError> for Error {
    fn from(err: deltalake::arrow::error::ArrowError) -> Self {
        Error::invalid(one_line(&err.to_string())).with_source(err)
    }
}
