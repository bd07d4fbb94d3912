//! The one error type of tarn-import: an [`ErrorKind`] callers branch on, a one-line message
//! users read, and the cause kept (a tarn-table error keeps its kind too).

use std::fmt;

/// What went wrong, in the terms a caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The options, the URL, the query or the source's data are wrong for an import (e.g.
    /// `--cursor` on a text column, a key that is not unique, a wrong password).
    InvalidInput,
    /// A column, table, schema or database named does not exist.
    NotFound,
    /// Something already exists where it should not.
    AlreadyExists,
    /// A concurrent run or commit conflicts with this one; nothing was written.
    Conflict,
    /// Valid, but not something an import does (a column type with no faithful mapping).
    Unsupported,
    /// The source cannot be reached, does not answer, or its connection broke.
    Unavailable,
    /// Local I/O, a source that breaks its protocol, or a bug: not the caller's fault.
    Internal,
}

/// An error from tarn-import.
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

    /// Shorthand for [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
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

/// A tarn-table error keeps its message and kind, and stays the cause (callers can
/// downcast to it).
impl From<tarn_table::Error> for Error {
    fn from(e: tarn_table::Error) -> Self {
        use tarn_table::ErrorKind as T;
        let kind = match e.kind() {
            T::NotFound => ErrorKind::NotFound,
            T::AlreadyExists => ErrorKind::AlreadyExists,
            T::Conflict => ErrorKind::Conflict,
            T::InvalidInput => ErrorKind::InvalidInput,
            T::Unsupported => ErrorKind::Unsupported,
            T::Internal => ErrorKind::Internal,
        };
        Error::new(kind, e.message().to_string()).with_source(e)
    }
}

/// The kind of a database error with SQLSTATE `code` (PostgreSQL's, and MySQL's where it
/// gives one): the one place that knows what a source's error codes mean.
pub(crate) fn kind_of_sqlstate(code: &str) -> ErrorKind {
    match code {
        // undefined_table, _column, _function, _object; schema, database; MySQL's table and
        // column.
        "42P01" | "42703" | "42883" | "42704" | "3F000" | "3D000" | "42S02" | "42S22" => {
            ErrorKind::NotFound
        }
        // unique_violation, duplicate_object.
        "23505" | "42710" => ErrorKind::AlreadyExists,
        // serialization_failure, deadlock_detected.
        "40001" | "40P01" => ErrorKind::Conflict,
        _ => match code.get(..2) {
            // feature_not_supported.
            Some("0A") => ErrorKind::Unsupported,
            // Connection exceptions, insufficient resources, operator intervention (a
            // server shutting down), system errors.
            Some("08" | "53" | "57" | "58") => ErrorKind::Unavailable,
            // Syntax and access rules, data exceptions, constraint violations, invalid
            // transaction state (a write in the read-only snapshot), invalid authorization
            // (a wrong password), cardinality.
            Some("42" | "22" | "23" | "25" | "28" | "21") => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_error_keeps_its_kind_message_and_source() {
        let table = tarn_table::Error::new(tarn_table::ErrorKind::Conflict, "`t`: a conflict");
        let e = Error::from(table);
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.to_string(), "`t`: a conflict");
        let source = std::error::Error::source(&e).expect("the table error is the source");
        let table = source
            .downcast_ref::<tarn_table::Error>()
            .expect("a tarn-table error");
        assert_eq!(table.kind(), tarn_table::ErrorKind::Conflict);
    }

    #[test]
    fn sqlstates_map_to_kinds() {
        for (code, kind) in [
            ("42P01", ErrorKind::NotFound),
            ("42S02", ErrorKind::NotFound),
            ("3D000", ErrorKind::NotFound),
            ("42601", ErrorKind::InvalidInput),
            ("25006", ErrorKind::InvalidInput),
            ("28P01", ErrorKind::InvalidInput),
            ("22012", ErrorKind::InvalidInput),
            ("40001", ErrorKind::Conflict),
            ("23505", ErrorKind::AlreadyExists),
            ("0A000", ErrorKind::Unsupported),
            ("57P01", ErrorKind::Unavailable),
            ("08006", ErrorKind::Unavailable),
            ("XX000", ErrorKind::Internal),
            ("HY000", ErrorKind::Internal),
        ] {
            assert_eq!(kind_of_sqlstate(code), kind, "{code}");
        }
    }
}
