//! The one error type of tarn-service: an [`ErrorKind`] each edge (the CLI, every protocol)
//! maps to what it shows, a message that says what to do, and the whole chain of causes.
//! The catalog's and the table library's errors convert here with their kinds kept.

use std::fmt;

/// What went wrong, in the terms the CLI and the protocols branch on. It mirrors the kinds
/// of tarn-catalog and tarn-table, plus [`ErrorKind::PermissionDenied`] for locations a
/// caller may not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The catalog, schema or table does not exist.
    NotFound,
    /// The name, or the table at a location, already exists.
    AlreadyExists,
    /// A concurrent change conflicts with this one; nothing was written.
    Conflict,
    /// The caller's input is wrong (a bad name, schema, location or option).
    InvalidInput,
    /// The state forbids it (e.g. the schema was dropped while this ran).
    FailedPrecondition,
    /// Valid, but not something Tarn does.
    Unsupported,
    /// The caller may not use this location (outside the allowed locations).
    PermissionDenied,
    /// The catalog database cannot be reached right now: the same step may succeed later.
    Unavailable,
    /// Storage, the database or a bug: not the caller's fault. The causes say what.
    Internal,
}

/// An error of a named-table step.
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

    /// The message, without the causes: safe to send to a remote client for every kind
    /// but [`ErrorKind::Internal`] and [`ErrorKind::Unavailable`], whose messages may name
    /// paths and database errors.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message and every cause under it, on one line ("cannot create …: Not a
    /// directory (os error 20)"): what the CLI prints and a server logs. Never send it to a
    /// remote client.
    pub fn detail(&self) -> String {
        with_causes(self)
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

impl From<tarn_catalog::Error> for Error {
    fn from(err: tarn_catalog::Error) -> Self {
        use tarn_catalog::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::InvalidInput => ErrorKind::InvalidInput,
            K::FailedPrecondition => ErrorKind::FailedPrecondition,
            K::Unavailable => ErrorKind::Unavailable,
            K::Internal => ErrorKind::Internal,
        };
        Error::new(kind, err.message().to_string()).with_source(err)
    }
}

impl From<tarn_table::Error> for Error {
    fn from(err: tarn_table::Error) -> Self {
        use tarn_table::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::Conflict => ErrorKind::Conflict,
            K::InvalidInput => ErrorKind::InvalidInput,
            K::Unsupported => ErrorKind::Unsupported,
            K::Internal => ErrorKind::Internal,
        };
        Error::new(kind, err.message().to_string()).with_source(err)
    }
}

/// `err` and its sources, as one line: "cannot create …: Permission denied (os error 13)".
/// A source whose text the line already holds is left out.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_holds_every_cause_once_on_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory");
        let table = tarn_table::Error::new(tarn_table::ErrorKind::Internal, "`t`: cannot write")
            .with_source(io);
        let err = Error::from(table);
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.message(), "`t`: cannot write");
        assert_eq!(err.detail(), "`t`: cannot write: Not a directory");
        let wrapped = Error::internal("cannot create `m.s.t` under the warehouse").with_source(err);
        assert_eq!(
            wrapped.detail(),
            "cannot create `m.s.t` under the warehouse: `t`: cannot write: Not a directory"
        );
    }

    #[test]
    fn catalog_and_table_kinds_are_kept() {
        let e = Error::from(tarn_catalog::Error::new(
            tarn_catalog::ErrorKind::Unavailable,
            "down",
        ));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = Error::from(tarn_table::Error::new(tarn_table::ErrorKind::Conflict, "c"));
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }
}
