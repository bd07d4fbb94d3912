//! [`Recipient`]: who makes a Delta Sharing request, from its bearer token (a recipient's
//! token, not a catalog token). Missing, unknown, revoked or expired: 401.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tarn_catalog::{hash_token, RecipientInfo};

use super::{now_ms, sharing_of, Result};
use crate::auth::bearer_token;
use crate::error::ApiError;
use crate::AppState;

/// The recipient making the request.
pub struct Recipient(pub RecipientInfo);

impl FromRequestParts<AppState> for Recipient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let secret = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::unauthenticated(
                "missing bearer token (send `Authorization: Bearer <token>` from the profile file)",
            )
        })?;
        let found = match sharing_of(state)?.find_recipient(&hash_token(secret)).await {
            Ok(r) => r,
            Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => {
                return Err(ApiError::unauthenticated("invalid token"))
            }
            Err(e) => return Err(e.into()),
        };
        if found.revoked_at.is_some() {
            return Err(ApiError::unauthenticated("this token has been revoked"));
        }
        if !found.is_active(now_ms()) {
            return Err(ApiError::unauthenticated("this token has expired"));
        }
        Ok(Recipient(found))
    }
}
