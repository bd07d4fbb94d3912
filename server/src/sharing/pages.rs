//! Paging of query and changes answers: `maxFiles`, and [`PageToken`], where the next
//! page starts, sealed with the URL-signing key so a client can neither forge one nor
//! reuse one for another table, recipient or query.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tarn_catalog::RecipientInfo;

use super::resolve::Resolved;
use super::signer::{hex16, Signer};
use super::{now_ms, Result, URL_TTL_MS};
use crate::error::ApiError;
use crate::signing;
use crate::AppState;

/// How long a `nextPageToken` stays valid.
pub const PAGE_TOKEN_TTL_MS: i64 = URL_TTL_MS;

/// The purpose page tokens are sealed for (see [`signing::seal`]).
const PAGE_TOKEN: &str = "delta-sharing-page";

/// Where the next page of a query or changes answer starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PageToken {
    /// The shared table.
    pub(super) t: String,
    /// The recipient.
    pub(super) r: String,
    /// The query's [`fingerprint`].
    pub(super) q: String,
    /// A snapshot: its version. History: the commit to resume at.
    pub(super) v: u64,
    /// History: the first and last versions of the range.
    #[serde(default)]
    pub(super) s: u64,
    #[serde(default)]
    pub(super) e: u64,
    /// History: how many actions of commit `v` were sent already.
    #[serde(default)]
    pub(super) i: usize,
    /// A snapshot: the path of the last file sent (files go out sorted by path).
    #[serde(default)]
    pub(super) a: String,
    /// Expiry, ms since the epoch.
    pub(super) x: i64,
}

impl PageToken {
    /// A token for the next page of query `query`, signed by `signer`.
    pub(super) fn new(signer: &Signer, query: &str) -> Self {
        Self {
            t: signer.shared_table.clone(),
            r: signer.recipient.clone(),
            q: query.to_string(),
            x: now_ms() + PAGE_TOKEN_TTL_MS,
            ..Self::default()
        }
    }

    /// The token's text.
    pub(super) fn seal(&self, secret: &[u8]) -> String {
        signing::seal(
            secret,
            PAGE_TOKEN,
            &serde_json::to_value(self).unwrap_or_default(),
        )
    }

    /// The token a request sent, checked against the table, recipient and query it is for.
    pub(super) async fn open(
        state: &AppState,
        token: Option<&str>,
        r: &Resolved,
        recipient: &RecipientInfo,
        query: &str,
    ) -> Result<Option<Self>> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let secret = state.sharing_secret().await?;
        let page: PageToken = signing::unseal(&secret, PAGE_TOKEN, token)
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    "malformed pageToken: pass the nextPageToken of the previous page unchanged",
                )
            })?;
        if page.x <= now_ms() {
            return Err(ApiError::invalid(
                "this pageToken has expired: run the query again from its first page",
            ));
        }
        if page.t != r.shared.id || page.r != recipient.id || page.q != query {
            return Err(ApiError::invalid(
                "this pageToken belongs to another query: send the same parameters as for the first page, or start again without pageToken",
            ));
        }
        Ok(Some(page))
    }
}

/// A short, stable digest of a query's parameters: a page token only continues a query
/// with the same parameters.
pub(super) fn fingerprint(params: &impl Serialize) -> String {
    let text = serde_json::to_string(params).unwrap_or_default();
    hex16(&Sha256::digest(text.as_bytes()))
}

/// `maxFiles` from a query string: a positive integer, if given.
pub(super) fn max_files_param(text: Option<&str>) -> Result<Option<i64>> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => match t.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(ApiError::invalid(format!(
                "maxFiles must be a positive integer, not `{t}`"
            ))),
        },
    }
}
