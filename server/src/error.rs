//! The one place errors become HTTP answers. An [`ApiError`] has an [`ErrorKind`], which
//! alone decides the status (a table conflict is 409 whatever the protocol), and a message.
//! Its body takes the shape of the protocol that answers ([`ErrorShape`]): Unity Catalog's
//! `{"error_code", "message", "details"}` by default, Delta Sharing's
//! `{"errorCode", "message"}` and the Iceberg REST catalog's
//! `{"error": {"message", "type", "code"}}` under the routes [`shaped`] wraps. 5xx answers
//! carry an error id and a generic message; the cause is logged, never sent. Errors of the
//! named-table steps ([`tarn_service::Error`]), of the catalog and of the table library map
//! here by their kind; the CLI, which runs the same steps in-process, maps them itself and
//! shows the cause.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// What went wrong, which decides the status and each protocol's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404: the thing named does not exist (or is not visible to the caller).
    NotFound,
    /// 409: a thing of that name exists already.
    AlreadyExists,
    /// 409: a concurrent change won; nothing was written.
    Conflict,
    /// 400: the request is wrong.
    InvalidInput,
    /// 400: the request is right but the state does not allow it (a non-empty schema...).
    FailedPrecondition,
    /// 401: no token, or not a valid one.
    Unauthenticated,
    /// 403: the token may not do this.
    PermissionDenied,
    /// 408: the request did not arrive in time.
    RequestTimeout,
    /// 413: the request is too large.
    TooLarge,
    /// 416: the byte range asked for is not in the file.
    RangeNotSatisfiable,
    /// 503: the catalog database cannot be reached; the same request may succeed later.
    Unavailable,
    /// 406: the server cannot do this for this protocol (an Iceberg write, a table the
    /// Iceberg projection cannot represent).
    Unsupported,
    /// 500: a fault of the server.
    Internal,
}

impl ErrorKind {
    /// The HTTP status of this kind, the same in every protocol.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists | ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::InvalidInput | ErrorKind::FailedPrecondition => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Unsupported => StatusCode::NOT_ACCEPTABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// How a protocol writes an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// Unity Catalog (and everything that is not Delta Sharing): [`UnityError`].
    Unity,
    /// Delta Sharing: [`SharingError`].
    Sharing,
    /// The Iceberg REST catalog: [`IcebergError`].
    Iceberg,
}

impl ErrorShape {
    /// This protocol's error code for `kind`.
    pub fn code(self, kind: ErrorKind) -> &'static str {
        use ErrorKind as K;
        match (self, kind) {
            (ErrorShape::Iceberg, _) => iceberg_type(kind),
            (ErrorShape::Unity, K::NotFound) => "NOT_FOUND",
            (ErrorShape::Sharing, K::NotFound) => "RESOURCE_DOES_NOT_EXIST",
            (ErrorShape::Unity, K::AlreadyExists) => "ALREADY_EXISTS",
            (ErrorShape::Sharing, K::AlreadyExists) => "RESOURCE_ALREADY_EXISTS",
            (_, K::Conflict) => "ABORTED",
            (ErrorShape::Unity, K::InvalidInput) => "INVALID_ARGUMENT",
            (ErrorShape::Sharing, K::InvalidInput | K::RangeNotSatisfiable) => {
                "INVALID_PARAMETER_VALUE"
            }
            (ErrorShape::Unity, K::RangeNotSatisfiable) => "INVALID_ARGUMENT",
            (ErrorShape::Unity, K::FailedPrecondition) => "FAILED_PRECONDITION",
            (ErrorShape::Sharing, K::FailedPrecondition) => "INVALID_PARAMETER_VALUE",
            (_, K::Unauthenticated) => "UNAUTHENTICATED",
            (_, K::PermissionDenied) => "PERMISSION_DENIED",
            (_, K::RequestTimeout) => "REQUEST_TIMEOUT",
            (_, K::TooLarge) => "RESOURCE_EXHAUSTED",
            (_, K::Unavailable) => "TEMPORARILY_UNAVAILABLE",
            (_, K::Unsupported) => "NOT_IMPLEMENTED",
            (ErrorShape::Unity, K::Internal) => "INTERNAL",
            (ErrorShape::Sharing, K::Internal) => "INTERNAL_ERROR",
        }
    }

    /// The body of an error of `kind` with `message`; `subtype` is a protocol's finer
    /// error type where it has one (Iceberg's `NoSuchTableException`...).
    fn body(self, kind: ErrorKind, message: &str, subtype: Option<&'static str>) -> Vec<u8> {
        let code = self.code(kind);
        let body = match self {
            ErrorShape::Iceberg => serde_json::to_vec(&IcebergError {
                error: IcebergErrorModel {
                    message: message.into(),
                    error_type: subtype.unwrap_or(code).into(),
                    code: kind.status().as_u16(),
                },
            }),
            ErrorShape::Unity => serde_json::to_vec(&UnityError {
                error_code: code.into(),
                message: message.into(),
                details: vec![ErrorDetail {
                    kind: "google.rpc.ErrorInfo".into(),
                    reason: code.into(),
                    metadata: Default::default(),
                }],
            }),
            ErrorShape::Sharing => serde_json::to_vec(&SharingError {
                error_code: code.into(),
                message: message.into(),
            }),
        };
        // Serializing strings into a Vec cannot fail.
        body.unwrap_or_default()
    }
}

/// The Iceberg REST catalog's error type of `kind` (a handler may name a finer one, see
/// [`ApiError::with_subtype`]).
fn iceberg_type(kind: ErrorKind) -> &'static str {
    use ErrorKind as K;
    match kind {
        K::NotFound => "NotFoundException",
        K::AlreadyExists => "AlreadyExistsException",
        K::Conflict => "CommitFailedException",
        K::InvalidInput | K::FailedPrecondition | K::RangeNotSatisfiable | K::TooLarge => {
            "BadRequestException"
        }
        K::Unauthenticated => "NotAuthorizedException",
        K::PermissionDenied => "ForbiddenException",
        K::RequestTimeout => "RequestTimeoutException",
        K::Unavailable => "ServiceUnavailableException",
        K::Unsupported => "UnsupportedOperationException",
        K::Internal => "InternalServerError",
    }
}

/// The Iceberg REST catalog's error body (`IcebergErrorResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IcebergError {
    /// The error.
    pub error: IcebergErrorModel,
}

/// The `error` of an [`IcebergError`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IcebergErrorModel {
    /// What went wrong, for a person.
    pub message: String,
    /// `NoSuchTableException`, `BadRequestException`, ...
    #[serde(rename = "type")]
    pub error_type: String,
    /// The HTTP status.
    pub code: u16,
}

/// Unity Catalog's error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UnityError {
    /// `NOT_FOUND`, `ALREADY_EXISTS`, `INVALID_ARGUMENT`, ...
    pub error_code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// One `google.rpc.ErrorInfo` whose `reason` is the error code.
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}

/// One entry of [`UnityError::details`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    /// Always `google.rpc.ErrorInfo`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// The error code.
    pub reason: String,
    /// Always empty.
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// Delta Sharing's error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharingError {
    /// `RESOURCE_DOES_NOT_EXIST`, `INVALID_PARAMETER_VALUE`, ...
    pub error_code: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    /// A protocol's finer error type, if any (see [`ApiError::with_subtype`]).
    subtype: Option<&'static str>,
}

impl ApiError {
    /// A new error answer.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            subtype: None,
        }
    }

    /// The same error with a finer type for protocols that have one (Iceberg's
    /// `NoSuchTableException`, `NoSuchNamespaceException`); others ignore it.
    pub fn with_subtype(mut self, subtype: &'static str) -> Self {
        self.subtype = Some(subtype);
        self
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// 400: bad input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// 401.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }

    /// 408: the client did not send its request in time.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RequestTimeout, message)
    }

    /// 500: logs `cause` under a fresh error id and answers with the id only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::with_error_id(ErrorKind::Internal, cause.to_string())
    }

    /// 503: the catalog database cannot be reached; the same request may succeed later.
    /// Logs `cause` under an error id, as [`ApiError::internal`].
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        Self::with_error_id(ErrorKind::Unavailable, cause.to_string())
    }

    /// An error whose cause is logged under a fresh id and never sent: the message names
    /// the id only.
    fn with_error_id(kind: ErrorKind, cause: String) -> Self {
        let id = uuid::Uuid::new_v4();
        let message = if kind == ErrorKind::Unavailable {
            tracing::warn!(error_id = %id, "catalog unavailable: {cause}");
            format!("the catalog database is unavailable; try again later (error id {id})")
        } else {
            tracing::error!(error_id = %id, "internal error: {cause}");
            format!("internal error (error id {id})")
        };
        Self {
            kind,
            message,
            subtype: None,
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The answer in `shape`.
    pub fn into_response_shaped(self, shape: ErrorShape) -> Response {
        let mut response = (
            self.status(),
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            shape.body(self.kind, &self.message, self.subtype),
        )
            .into_response();
        response.extensions_mut().insert(Shaped {
            kind: self.kind,
            message: self.message,
            subtype: self.subtype,
            shape,
        });
        response
    }
}

impl From<tarn_service::Error> for ApiError {
    fn from(err: tarn_service::Error) -> Self {
        use tarn_service::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::Conflict => ErrorKind::Conflict,
            K::InvalidInput | K::Unsupported => ErrorKind::InvalidInput,
            K::FailedPrecondition => ErrorKind::FailedPrecondition,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::Unavailable => return Self::unavailable(err.detail()),
            K::Internal => return Self::internal(err.detail()),
        };
        Self::new(kind, err.message())
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
    /// The answer in Unity Catalog's shape, which [`shaped`] rewrites for other protocols.
    fn into_response(self) -> Response {
        self.into_response_shaped(ErrorShape::Unity)
    }
}

/// What an error answer was made from, kept on the response so [`shaped`] can rewrite it.
#[derive(Debug, Clone)]
struct Shaped {
    kind: ErrorKind,
    message: String,
    subtype: Option<&'static str>,
    shape: ErrorShape,
}

/// Middleware for a protocol's routes: every [`ApiError`] they answer with (from handlers,
/// extractors or anything else) gets the body of `shape`; status and headers stay. So do
/// the `text/plain` answers axum's extractors make themselves (a query string, a path or a
/// body they cannot read): see [`rejection`].
pub async fn shaped(shape: ErrorShape, response: Response) -> Response {
    let mut response = match rejection(response).await {
        Ok(error) => return error.into_response_shaped(shape),
        Err(response) => response,
    };
    let Some(error) = response.extensions_mut().remove::<Shaped>() else {
        return response;
    };
    if error.shape == shape {
        response.extensions_mut().insert(error);
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let body = shape.body(error.kind, &error.message, error.subtype);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.extensions.insert(Shaped { shape, ..error });
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Longest text of an extractor's answer read into a message.
const MAX_REJECTION_BYTES: usize = 1024;

/// An answer that axum's extractors made themselves (`text/plain`, 400, 413 or 422: a query
/// string, path or JSON body they could not read), as an [`ApiError`] of its meaning, so
/// clients get their protocol's error shape. Anything else comes back untouched.
async fn rejection(response: Response) -> Result<ApiError, Response> {
    let kind = match response.status() {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ErrorKind::InvalidInput,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
        _ => return Err(response),
    };
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain || response.extensions().get::<Shaped>().is_some() {
        return Err(response);
    }
    let text = axum::body::to_bytes(response.into_body(), MAX_REJECTION_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.split_whitespace().collect::<Vec<_>>().join(" ") {
        m if m.is_empty() => "the request could not be read".to_string(),
        m => m,
    };
    Ok(ApiError::new(kind, message))
}

/// Middleware of the routes that answer in Unity Catalog's shape (Unity Catalog's and the
/// server's own): extractors' `text/plain` answers in that shape, as [`shaped`] does for
/// the other protocols.
pub async fn unity_shaped(response: Response) -> Response {
    shaped(ErrorShape::Unity, response).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_has_one_status_in_every_shape() {
        for (kind, status) in [
            (ErrorKind::Conflict, 409),
            (ErrorKind::AlreadyExists, 409),
            (ErrorKind::Unavailable, 503),
        ] {
            assert_eq!(ApiError::new(kind, "x").status().as_u16(), status);
        }
        assert_eq!(
            ErrorShape::Sharing.code(ErrorKind::NotFound),
            "RESOURCE_DOES_NOT_EXIST"
        );
        assert_eq!(ErrorShape::Unity.code(ErrorKind::NotFound), "NOT_FOUND");
    }

    #[tokio::test]
    async fn shaped_rewrites_the_body_and_keeps_status_and_headers() {
        let mut response = ApiError::new(ErrorKind::RangeNotSatisfiable, "no").into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_RANGE,
            axum::http::HeaderValue::from_static("bytes */5"),
        );
        let response = shaped(ErrorShape::Sharing, response).await;
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()["content-range"], "bytes */5");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: SharingError = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error_code, "INVALID_PARAMETER_VALUE");
        assert_eq!(body.message, "no");
    }
}
