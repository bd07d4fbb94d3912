//! The one place errors become HTTP answers: Unity Catalog's error body
//! `{"error_code", "message", "details"}` with the matching status. 5xx answers carry an
//! error id and a generic message; the cause is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// A new error answer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
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

    /// 408 REQUEST_TIMEOUT: the client did not send its request in time.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", message)
    }

    /// 500 INTERNAL: logs `cause` under a fresh error id and answers with the id only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, "internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("internal error (error id {id})"),
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
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
            K::Internal => Self::internal(format!(
                "{err} ({:?})",
                std::error::Error::source(&err).map(|s| s.to_string())
            )),
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
