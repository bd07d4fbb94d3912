//! The list endpoints: shares granted to the recipient, a share, its schemas and tables,
//! paged with `maxResults` and `pageToken` ([`crate::pagination`]).

use axum::extract::{Path, Query, State};
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use tarn_catalog::{RecipientInfo, ShareInfo, SharedTable};

use super::wire::{self, GetShare, ListPage, Share};
use super::{sharing_of, Recipient, Result};
use crate::error::ApiError;
use crate::pagination::{paginate, Page};
use crate::AppState;

/// `maxResults` and `pageToken` as sent (numbers are read here, to word their errors).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageQuery {
    /// Page size; 0 or absent: everything.
    #[schemars(with = "Option<i64>")]
    max_results: Option<String>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
}

impl PageQuery {
    /// The page asked for: `maxResults` items (all of them when absent or 0) after the
    /// one `pageToken` names.
    fn page(&self) -> Result<Page> {
        let size = match self.max_results.as_deref() {
            None | Some("") => usize::MAX,
            Some(text) => match text.parse::<i64>() {
                Ok(0) => usize::MAX,
                Ok(n) if n > 0 => n as usize,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "maxResults must be a non-negative integer, not `{text}`"
                    )))
                }
            },
        };
        let after = match self.page_token.as_deref() {
            Some(token) if !token.is_empty() => Some(decode_page_token(token)?),
            _ => None,
        };
        Ok(Page { size, after })
    }
}

/// Pages `items` by `key`, with the next page's key as an opaque token.
fn page_of<T>(
    items: Vec<T>,
    query: &PageQuery,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>)> {
    let (items, next) = paginate(items, &query.page()?, key);
    Ok((items, next.as_deref().map(encode_page_token)))
}

fn encode_page_token(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_page_token(token: &str) -> Result<String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::invalid("malformed pageToken"))
}

/// The share if it is granted to `recipient`; otherwise 404, as if it did not exist.
pub(super) async fn granted_share(
    state: &AppState,
    recipient: &RecipientInfo,
    share: &str,
) -> Result<ShareInfo> {
    if !recipient.shares.iter().any(|s| s == share) {
        return Err(ApiError::not_found(format!(
            "share `{share}` does not exist"
        )));
    }
    Ok(sharing_of(state)?.get_share(share).await?)
}

fn share_answer(s: ShareInfo) -> Share {
    Share {
        name: s.name,
        id: s.id,
    }
}

pub(super) async fn list_shares(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Query(query): Query<PageQuery>,
) -> Result<Json<ListPage<Share>>> {
    let sharing = sharing_of(&state)?;
    let mut shares = Vec::new();
    for name in &recipient.shares {
        shares.push(sharing.get_share(name).await?);
    }
    let (shares, next_page_token) = page_of(shares, &query, |s| s.name.clone())?;
    Ok(Json(ListPage {
        items: shares.into_iter().map(share_answer).collect(),
        next_page_token,
    }))
}

pub(super) async fn get_share(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path(share): Path<String>,
) -> Result<Json<GetShare>> {
    let share = granted_share(&state, &recipient, &share).await?;
    Ok(Json(GetShare {
        share: share_answer(share),
    }))
}

pub(super) async fn list_schemas(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path(share): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<ListPage<wire::Schema>>> {
    granted_share(&state, &recipient, &share).await?;
    let mut schemas: Vec<String> = sharing_of(&state)?
        .list_shared_tables(&share)
        .await?
        .into_iter()
        .map(|t| t.schema_name)
        .collect();
    schemas.dedup();
    let (schemas, next_page_token) = page_of(schemas, &query, String::clone)?;
    Ok(Json(ListPage {
        items: schemas
            .into_iter()
            .map(|name| wire::Schema {
                name,
                share: share.clone(),
            })
            .collect(),
        next_page_token,
    }))
}

fn table_answer(share: &ShareInfo, t: SharedTable) -> wire::Table {
    wire::Table {
        name: t.name,
        schema: t.schema_name,
        share: share.name.clone(),
        share_id: share.id.clone(),
        id: t.id,
    }
}

pub(super) async fn list_tables(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path((share, schema)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Result<Json<ListPage<wire::Table>>> {
    let info = granted_share(&state, &recipient, &share).await?;
    let tables: Vec<SharedTable> = sharing_of(&state)?
        .list_shared_tables(&share)
        .await?
        .into_iter()
        .filter(|t| t.schema_name == schema)
        .collect();
    if tables.is_empty() {
        return Err(ApiError::not_found(format!(
            "schema `{schema}` does not exist in share `{share}`"
        )));
    }
    let (tables, next_page_token) = page_of(tables, &query, |t| t.name.clone())?;
    Ok(Json(ListPage {
        items: tables.into_iter().map(|t| table_answer(&info, t)).collect(),
        next_page_token,
    }))
}

pub(super) async fn list_all_tables(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path(share): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<ListPage<wire::Table>>> {
    let info = granted_share(&state, &recipient, &share).await?;
    let tables = sharing_of(&state)?.list_shared_tables(&share).await?;
    let (tables, next_page_token) = page_of(tables, &query, |t| {
        format!("{}\u{0}{}", t.schema_name, t.name)
    })?;
    Ok(Json(ListPage {
        items: tables.into_iter().map(|t| table_answer(&info, t)).collect(),
        next_page_token,
    }))
}
