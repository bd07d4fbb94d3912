//! Bearer-token auth. [`bearer_token`] reads the `Authorization` header for every protocol;
//! catalog tokens carry scopes: reads need `read`, table changes `write`, catalog and
//! schema changes `admin`. Missing or bad token: 401; too small a scope: 403. (Delta
//! Sharing checks its recipients' tokens itself, in `sharing::recipient`.)

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use tarn_catalog::{hash_token, ErrorKind, Scope};

use crate::error::{ApiError, ErrorShape};
use crate::AppState;

/// Whether requests need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request needs a valid bearer token with the right scope.
    Tokens,
    /// No checks (only allowed when listening on loopback).
    Disabled,
}

/// The token of an `Authorization: Bearer <token>` header, if there is a non-empty one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The scope a request needs.
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    // Delta Sharing checks recipients' own tokens (and signed URLs) itself.
    if path == "/health"
        || path == "/openapi.json"
        || path.starts_with(&format!("{}/", crate::sharing::PREFIX))
    {
        return None;
    }
    let uc = path.strip_prefix("/api/2.1/unity-catalog");
    Some(match (method, uc) {
        (&Method::GET | &Method::HEAD, _) => Scope::Read,
        // The Iceberg catalog is read-only: a read token gets its 406, not a 403.
        _ if crate::iceberg::owns(path) => Scope::Read,
        (_, Some(p)) if p.starts_with("/temporary-") => Scope::Read,
        (_, Some(p)) if p.starts_with("/tables") => Scope::Write,
        _ => Scope::Admin,
    })
}

/// Axum middleware enforcing [`required_scope`].
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.auth == AuthMode::Disabled {
        return next.run(request).await;
    }
    let Some(needed) = required_scope(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    // Refusals take the shape of the protocol asked.
    let shape = if crate::iceberg::owns(request.uri().path()) {
        ErrorShape::Iceberg
    } else {
        ErrorShape::Unity
    };
    let Some(secret) = bearer_token(request.headers()) else {
        return ApiError::unauthenticated(
            "missing bearer token (send `Authorization: Bearer <token>`)",
        )
        .into_response_shaped(shape);
    };
    let token = match state.store.find_token(&hash_token(secret)).await {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return ApiError::unauthenticated("invalid token").into_response_shaped(shape)
        }
        Err(e) => return ApiError::from(e).into_response_shaped(shape),
    };
    if token
        .expires_at
        .is_some_and(|t| t <= chrono::Utc::now().timestamp_millis())
    {
        return ApiError::unauthenticated("token expired").into_response_shaped(shape);
    }
    if token.scope < needed {
        return ApiError::forbidden(format!(
            "this needs a `{}` token; `{}` has scope `{}`",
            needed.as_str(),
            token.name,
            token.scope.as_str()
        ))
        .into_response_shaped(shape);
    }
    next.run(request).await
}
