//! The one place errors become HTTP answers: Unity Catalog's error body
//! `{"error_code", "message", "details"}` with the matching status. 5xx answers carry an
//! error id and a generic message; the cause is logged, never sent. The CLI, which runs
//! the same steps in-process, shows the cause instead ([`ApiError::detail`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// A 5xx's cause: logged, and shown by a local caller, never sent.
    cause: Option<String>,
}

impl ApiError {
    /// A new error answer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// 404 NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 400 INVALID_ARGUMENT.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// 401 UNAUTHENTICATED.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    /// 403 PERMISSION_DENIED.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
    }

    /// 500 INTERNAL: logs `cause` under a fresh error id and answers with the id only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        let cause = cause.to_string();
        tracing::error!(error_id = %id, "internal error: {cause}");
        let mut err = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("internal error (error id {id})"),
        );
        err.cause = Some(cause);
        err
    }

    /// 503 TEMPORARILY_UNAVAILABLE: the catalog database cannot be reached; the same
    /// request may succeed later. Logs `cause` under an error id, as [`ApiError::internal`].
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        let cause = cause.to_string();
        tracing::warn!(error_id = %id, "catalog unavailable: {cause}");
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            format!("the catalog database is unavailable; try again later (error id {id})"),
        );
        err.cause = Some(cause);
        err
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What went wrong, for a caller in the same process (the CLI): a 5xx's cause, which
    /// its HTTP answer leaves out, else the message. Never put this in an HTTP answer.
    pub fn detail(&self) -> &str {
        self.cause.as_deref().unwrap_or(&self.message)
    }
}

impl From<tarn_catalog::Error> for ApiError {
    fn from(err: tarn_catalog::Error) -> Self {
        use tarn_catalog::ErrorKind as K;
        match err.kind() {
            K::NotFound => Self::not_found(err.message()),
            K::AlreadyExists => Self::new(StatusCode::CONFLICT, "ALREADY_EXISTS", err.message()),
            K::InvalidInput => Self::invalid(err.message()),
            K::FailedPrecondition => Self::new(
                StatusCode::BAD_REQUEST,
                "FAILED_PRECONDITION",
                err.message(),
            ),
            K::Unavailable => Self::unavailable(&err),
            K::Internal => Self::internal(&err),
        }
    }
}

impl From<tarn_table::Error> for ApiError {
    fn from(err: tarn_table::Error) -> Self {
        use tarn_table::ErrorKind as K;
        match err.kind() {
            K::NotFound => Self::not_found(err.message()),
            K::AlreadyExists => Self::new(StatusCode::CONFLICT, "ALREADY_EXISTS", err.message()),
            K::InvalidInput | K::Unsupported => Self::invalid(err.message()),
            K::Conflict => Self::new(StatusCode::CONFLICT, "ABORTED", err.message()),
            K::Internal => Self::internal(with_causes(&err)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error_code": self.code,
            "message": self.message,
            "details": [{"@type": "google.rpc.ErrorInfo", "reason": self.code, "metadata": {}}],
        });
        (self.status, Json(body)).into_response()
    }
}

/// `err` and its sources, as one line: "cannot create …: Permission denied (os error 13)".
/// A source whose text the line already holds is left out.
pub fn with_causes(err: &dyn std::error::Error) -> String {
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
