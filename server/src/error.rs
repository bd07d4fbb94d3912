//! The one place errors become HTTP answers: Unity Catalog's error body
//! `{"error_code", "message", "details"}` with the matching status. 5xx answers carry an
//! error id and a generic message; the cause is logged, never sent. The named-table steps'
//! errors ([`tarn_service::Error`]) are mapped here by their kind, and so are the catalog's
//! and the table library's, through the same kinds.

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
        let cause = cause.to_string();
        tracing::error!(error_id = %id, "internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("internal error (error id {id})"),
        )
    }

    /// 503 TEMPORARILY_UNAVAILABLE: the catalog database cannot be reached; the same
    /// request may succeed later. Logs `cause` under an error id, as [`ApiError::internal`].
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        let cause = cause.to_string();
        tracing::warn!(error_id = %id, "catalog unavailable: {cause}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            format!("the catalog database is unavailable; try again later (error id {id})"),
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

impl From<tarn_service::Error> for ApiError {
    fn from(err: tarn_service::Error) -> Self {
        use tarn_service::ErrorKind as K;
        match err.kind() {
            K::NotFound => Self::not_found(err.message()),
            K::AlreadyExists => Self::new(StatusCode::CONFLICT, "ALREADY_EXISTS", err.message()),
            K::Conflict => Self::new(StatusCode::CONFLICT, "ABORTED", err.message()),
            K::InvalidInput | K::Unsupported => Self::invalid(err.message()),
            K::FailedPrecondition => Self::new(
                StatusCode::BAD_REQUEST,
                "FAILED_PRECONDITION",
                err.message(),
            ),
            K::PermissionDenied => Self::forbidden(err.message()),
            K::Unavailable => Self::unavailable(err.detail()),
            K::Internal => Self::internal(err.detail()),
        }
    }
}

impl From<tarn_catalog::Error> for ApiError {
    fn from(err: tarn_catalog::Error) -> Self {
        tarn_service::Error::from(err).into()
    }
}

impl From<tarn_table::Error> for ApiError {
    fn from(err: tarn_table::Error) -> Self {
        tarn_service::Error::from(err).into()
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
