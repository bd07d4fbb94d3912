//! [`Signer`]: the pre-signed file URLs of one answer, all for one shared table and
//! recipient and all expiring at once.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use tarn_catalog::RecipientInfo;

use super::resolve::Resolved;
use super::{now_ms, Result, PREFIX, URL_TTL_MS};
use crate::error::ApiError;
use crate::signing::{self, FileTicket};
use crate::AppState;

/// Signs file URLs for one request.
#[derive(Clone)]
pub(super) struct Signer {
    pub(super) secret: Vec<u8>,
    base: String,
    pub(super) shared_table: String,
    pub(super) recipient: String,
    pub(super) expires_at: i64,
}

impl Signer {
    /// For `resolved` and `recipient`, at the server's public URL (or the request's `Host`).
    pub(super) async fn new(
        state: &AppState,
        headers: &HeaderMap,
        resolved: &Resolved,
        recipient: &RecipientInfo,
    ) -> Result<Signer> {
        let secret = state.sharing_secret().await?;
        let base = match &state.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| {
                        !h.is_empty()
                            && h.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                    })
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "missing or malformed Host header (or start the server with --public-url)",
                        )
                    })?;
                format!("http://{host}")
            }
        };
        Ok(Signer {
            secret,
            base,
            shared_table: resolved.shared.id.clone(),
            recipient: recipient.id.clone(),
            expires_at: now_ms() + URL_TTL_MS,
        })
    }

    /// The URL of the file at `path` (relative to the table root).
    pub(super) fn url(&self, path: &str) -> String {
        let token = signing::sign(
            &self.secret,
            &FileTicket {
                shared_table: self.shared_table.clone(),
                recipient: self.recipient.clone(),
                path: path.into(),
                expires_at: self.expires_at,
            },
        );
        format!("{}{PREFIX}/files/{token}", self.base)
    }
}

/// A stable id for a file of a table (the same path always gets the same id).
pub(super) fn file_id(path: &str) -> String {
    hex16(&Sha256::digest(path.as_bytes()))
}

/// The first 16 bytes of a digest, in hex.
pub(super) fn hex16(digest: &[u8]) -> String {
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
