//! The Delta Sharing protocol (delta-io/delta-sharing `PROTOCOL.md`) under `/delta-sharing`:
//! recipients list the shares granted to them and read shared tables at any version the
//! share allows. Tarn serves the data files itself at pre-signed, expiring URLs
//! (`/delta-sharing/files/...`, see [`crate::signing`]) that answer `HEAD` and `Range`.
//!
//! Recipients authenticate with their own bearer tokens (not catalog tokens). A share that
//! is not granted to the caller, a schema or table not in the share: all answer 404 alike,
//! so nothing reveals what exists.

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tarn_catalog::{hash_token, RecipientInfo, SharedTable, SharingStore, TableInfo};
use tarn_table::{parse_timestamp, DataFile, Table, TableLocation, TimeTravel};

use crate::limits::TableOpens;
use crate::signing::{self, FileTicket, TicketError};
use crate::AppState;

/// Where the protocol lives; a profile's `endpoint` is the server URL plus this.
pub const PREFIX: &str = "/delta-sharing";

/// How long a pre-signed file URL stays valid.
pub const URL_TTL_MS: i64 = 60 * 60 * 1000;

const NDJSON: &str = "application/x-ndjson";
const TABLE_VERSION: &str = "delta-table-version";
const CAPABILITIES: &str = "delta-sharing-capabilities";

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    let t = format!("{PREFIX}/shares/{{share}}/schemas/{{schema}}/tables/{{table}}");
    Router::new()
        .route(&format!("{PREFIX}/shares"), get(list_shares))
        .route(&format!("{PREFIX}/shares/{{share}}"), get(get_share))
        .route(
            &format!("{PREFIX}/shares/{{share}}/schemas"),
            get(list_schemas),
        )
        .route(
            &format!("{PREFIX}/shares/{{share}}/schemas/{{schema}}/tables"),
            get(list_tables),
        )
        .route(
            &format!("{PREFIX}/shares/{{share}}/all-tables"),
            get(list_all_tables),
        )
        .route(&format!("{t}/version"), get(table_version))
        .route(&format!("{t}/metadata"), get(table_metadata))
        .route(&format!("{t}/query"), axum::routing::post(query_table))
        .route(&format!("{t}/changes"), get(table_changes))
        .route(&format!("{PREFIX}/files/{{token}}"), get(serve_file))
}

// ---- errors ------------------------------------------------------------------------------

/// An error in Delta Sharing's shape: `{"errorCode", "message"}`.
#[derive(Debug)]
pub struct SharingError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl SharingError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }

    fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
    }

    fn internal(cause: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error_id = %id, "internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            format!("internal error (error id {id})"),
        )
    }
}

impl From<tarn_catalog::Error> for SharingError {
    fn from(err: tarn_catalog::Error) -> Self {
        use tarn_catalog::ErrorKind as K;
        match err.kind() {
            K::NotFound => Self::not_found(err.message()),
            K::InvalidInput | K::FailedPrecondition | K::AlreadyExists => {
                Self::invalid(err.message())
            }
            K::Internal | K::Unavailable => Self::internal(&err),
        }
    }
}

impl From<tarn_table::Error> for SharingError {
    fn from(err: tarn_table::Error) -> Self {
        use tarn_table::ErrorKind as K;
        match err.kind() {
            K::NotFound => Self::not_found(err.message()),
            K::InvalidInput | K::Unsupported | K::AlreadyExists | K::Conflict => {
                Self::invalid(err.message())
            }
            K::Internal => Self::internal(format!(
                "{err} ({:?})",
                std::error::Error::source(&err).map(|s| s.to_string())
            )),
        }
    }
}

impl IntoResponse for SharingError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"errorCode": self.code, "message": self.message})),
        )
            .into_response()
    }
}

type Result<T, E = SharingError> = std::result::Result<T, E>;

fn sharing_of(state: &AppState) -> Result<&dyn SharingStore> {
    state
        .store
        .sharing()
        .ok_or_else(|| SharingError::not_found("this server does not share tables"))
}

// ---- auth --------------------------------------------------------------------------------

/// The recipient making the request, from its bearer token.
pub struct Recipient(RecipientInfo);

impl FromRequestParts<AppState> for Recipient {
    type Rejection = SharingError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                SharingError::unauthenticated(
                    "missing bearer token (send `Authorization: Bearer <token>` from the profile file)",
                )
            })?;
        let found = match sharing_of(state)?.find_recipient(&hash_token(secret)).await {
            Ok(r) => r,
            Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => {
                return Err(SharingError::unauthenticated("invalid token"))
            }
            Err(e) => return Err(e.into()),
        };
        if found.revoked_at.is_some() {
            return Err(SharingError::unauthenticated("this token has been revoked"));
        }
        if !found.is_active(now_ms()) {
            return Err(SharingError::unauthenticated("this token has expired"));
        }
        Ok(Recipient(found))
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

// ---- listing -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    max_results: Option<String>,
    page_token: Option<String>,
}

/// Pages a list sorted by `key`: `maxResults` items after the one `pageToken` names.
fn paginate<T>(
    mut items: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>)> {
    items.sort_by_key(&key);
    let size = match page.max_results.as_deref() {
        None | Some("") => usize::MAX,
        Some(text) => match text.parse::<i64>() {
            Ok(0) => usize::MAX,
            Ok(n) if n > 0 => n as usize,
            _ => {
                return Err(SharingError::invalid(format!(
                    "maxResults must be a non-negative integer, not `{text}`"
                )))
            }
        },
    };
    let mut rest: Vec<T> = match page.page_token.as_deref() {
        Some(token) if !token.is_empty() => {
            let after = decode_page_token(token)?;
            items.into_iter().filter(|i| key(i) > after).collect()
        }
        _ => items,
    };
    let more = rest.len() > size;
    rest.truncate(size);
    let next = if more {
        rest.last().map(|i| encode_page_token(&key(i)))
    } else {
        None
    };
    Ok((rest, next))
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
        .ok_or_else(|| SharingError::invalid("malformed pageToken"))
}

fn page_json(items: Vec<Value>, next: Option<String>) -> Json<Value> {
    let mut body = json!({ "items": items });
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Json(body)
}

/// The share if it is granted to `recipient`; otherwise 404, as if it did not exist.
async fn granted_share(
    state: &AppState,
    recipient: &RecipientInfo,
    share: &str,
) -> Result<tarn_catalog::ShareInfo> {
    if !recipient.shares.iter().any(|s| s == share) {
        return Err(SharingError::not_found(format!(
            "share `{share}` does not exist"
        )));
    }
    Ok(sharing_of(state)?.get_share(share).await?)
}

async fn list_shares(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let sharing = sharing_of(&state)?;
    let mut shares = Vec::new();
    for name in &recipient.shares {
        shares.push(sharing.get_share(name).await?);
    }
    let (shares, next) = paginate(shares, &page, |s| s.name.clone())?;
    let items = shares
        .iter()
        .map(|s| json!({"name": s.name, "id": s.id}))
        .collect();
    Ok(page_json(items, next))
}

async fn get_share(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path(share): Path<String>,
) -> Result<Json<Value>> {
    let s = granted_share(&state, &recipient, &share).await?;
    Ok(Json(json!({"share": {"name": s.name, "id": s.id}})))
}

async fn list_schemas(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path(share): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    granted_share(&state, &recipient, &share).await?;
    let mut schemas: Vec<String> = sharing_of(&state)?
        .list_shared_tables(&share)
        .await?
        .into_iter()
        .map(|t| t.schema_name)
        .collect();
    schemas.dedup();
    let (schemas, next) = paginate(schemas, &page, String::clone)?;
    let items = schemas
        .iter()
        .map(|s| json!({"name": s, "share": share}))
        .collect();
    Ok(page_json(items, next))
}

fn table_json(share: &tarn_catalog::ShareInfo, t: &SharedTable) -> Value {
    json!({
        "name": t.name, "schema": t.schema_name, "share": share.name,
        "shareId": share.id, "id": t.id,
    })
}

async fn list_tables(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path((share, schema)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let info = granted_share(&state, &recipient, &share).await?;
    let tables: Vec<SharedTable> = sharing_of(&state)?
        .list_shared_tables(&share)
        .await?
        .into_iter()
        .filter(|t| t.schema_name == schema)
        .collect();
    if tables.is_empty() {
        return Err(SharingError::not_found(format!(
            "schema `{schema}` does not exist in share `{share}`"
        )));
    }
    let (tables, next) = paginate(tables, &page, |t| t.name.clone())?;
    let items = tables.iter().map(|t| table_json(&info, t)).collect();
    Ok(page_json(items, next))
}

async fn list_all_tables(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path(share): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let info = granted_share(&state, &recipient, &share).await?;
    let tables = sharing_of(&state)?.list_shared_tables(&share).await?;
    let (tables, next) = paginate(tables, &page, |t| {
        format!("{}\u{0}{}", t.schema_name, t.name)
    })?;
    let items = tables.iter().map(|t| table_json(&info, t)).collect();
    Ok(page_json(items, next))
}

// ---- tables ------------------------------------------------------------------------------

/// A shared table resolved for a request.
#[derive(Clone)]
struct Resolved {
    shared: SharedTable,
    location: TableLocation,
    label: String,
    /// The server-wide bound on tables being opened.
    opens: Arc<TableOpens>,
}

async fn resolve(
    state: &AppState,
    recipient: &RecipientInfo,
    share: &str,
    schema: &str,
    table: &str,
) -> Result<Resolved> {
    granted_share(state, recipient, share).await?;
    let sharing = sharing_of(state)?;
    let all = sharing.list_shared_tables(share).await?;
    if !all.iter().any(|t| t.schema_name == schema) {
        return Err(SharingError::not_found(format!(
            "schema `{schema}` does not exist in share `{share}`"
        )));
    }
    let label = format!("{share}.{schema}.{table}");
    let shared = all
        .into_iter()
        .find(|t| t.schema_name == schema && t.name == table)
        .ok_or_else(|| SharingError::not_found(format!("table `{label}` does not exist")))?;
    let info: TableInfo = match state.store.get_table_by_id(&shared.table_id).await {
        Ok(t) => t,
        Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => {
            return Err(SharingError::not_found(format!(
                "table `{label}` does not exist"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let location = state.location(&info.storage_location)?;
    Ok(Resolved {
        shared,
        location,
        label,
        opens: state.opens.clone(),
    })
}

impl Resolved {
    /// The latest version, or a clear 404 if the data is gone.
    async fn latest(&self) -> Result<Table> {
        self.opens
            .open(&self.location, &TimeTravel::Latest)
            .await
            .map_err(|e| match e.kind() {
                tarn_table::ErrorKind::NotFound => {
                    SharingError::not_found(format!("table `{}` has no data", self.label))
                }
                _ => e.into(),
            })
    }

    fn require_history(&self, what: &str) -> Result<()> {
        if self.shared.history {
            Ok(())
        } else {
            Err(SharingError::forbidden(format!(
                "table `{}` is shared without its history: {what} is not allowed (only the latest version)",
                self.label
            )))
        }
    }

    /// Version `v`, or 400 naming the versions that exist.
    async fn at_version(&self, latest: &Table, v: i64) -> Result<Table> {
        let (first, last) = latest.version_range().await?;
        if v < first as i64 || v > last as i64 {
            return Err(SharingError::invalid(format!(
                "table `{}` has no version {v}: valid versions are {first} to {last}",
                self.label
            )));
        }
        if v as u64 == latest.version() {
            return Ok(latest.clone());
        }
        Ok(self
            .opens
            .open(&self.location, &TimeTravel::Version(v as u64))
            .await?)
    }

    /// The version current at `text`, or 400 naming the time range of the history.
    async fn at_timestamp(&self, latest: &Table, text: &str) -> Result<Table> {
        let at = parse_time(text)?;
        let version = self.version_at(latest, at).await?;
        self.at_version(latest, version as i64).await
    }

    /// The latest version committed at or before `at`, or 400 naming the history's time
    /// range. Reading the commit log for it counts as opening the table (it reads every
    /// commit up to `at`), under the server-wide [`TableOpens`] bound.
    async fn version_at(&self, latest: &Table, at: DateTime<Utc>) -> Result<u64> {
        let _permit = self.opens.permit().await;
        latest.version_at(at).await.map_err(|e| match e.kind() {
            tarn_table::ErrorKind::NotFound => SharingError::invalid(e.message()),
            _ => e.into(),
        })
    }

    /// The earliest version committed at or after `at`, or 400; under the [`TableOpens`]
    /// bound like [`Resolved::version_at`].
    async fn first_version_since(&self, latest: &Table, at: DateTime<Utc>) -> Result<u64> {
        let _permit = self.opens.permit().await;
        latest
            .first_version_since(at)
            .await
            .map_err(|e| match e.kind() {
                tarn_table::ErrorKind::NotFound => SharingError::invalid(e.message()),
                _ => e.into(),
            })
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    parse_timestamp(text).map_err(|e| SharingError::invalid(e.message()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionParams {
    starting_timestamp: Option<String>,
}

async fn table_version(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    Path((share, schema, table)): Path<(String, String, String)>,
    Query(params): Query<VersionParams>,
) -> Result<Response> {
    let r = resolve(&state, &recipient, &share, &schema, &table).await?;
    let latest = r.latest().await?;
    let version = match params.starting_timestamp.as_deref() {
        None => latest.version(),
        Some(text) => {
            r.require_history("startingTimestamp")?;
            r.first_version_since(&latest, parse_time(text)?).await?
        }
    };
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(TABLE_VERSION, HeaderValue::from(version));
    Ok(response)
}

/// The response format: `parquet` (the default) or `delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Delta,
}

/// The formats a client accepts, from its `delta-sharing-capabilities: responseformat=...`
/// header (absent: `parquet` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Accepted {
    parquet: bool,
    delta: bool,
}

impl Accepted {
    fn from_headers(headers: &HeaderMap) -> Result<Self> {
        let parquet_only = Accepted {
            parquet: true,
            delta: false,
        };
        let Some(value) = headers.get(CAPABILITIES).and_then(|v| v.to_str().ok()) else {
            return Ok(parquet_only);
        };
        for part in value.split(';') {
            let Some((key, formats)) = part.split_once('=') else {
                continue;
            };
            if !key.trim().eq_ignore_ascii_case("responseformat") {
                continue;
            }
            let listed: Vec<String> = formats
                .split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            let accepted = Accepted {
                parquet: listed.iter().any(|f| f == "parquet"),
                delta: listed.iter().any(|f| f == "delta"),
            };
            if !accepted.parquet && !accepted.delta {
                return Err(SharingError::invalid(format!(
                    "unsupported responseformat `{}`: this server answers `parquet` or `delta`",
                    formats.trim()
                )));
            }
            return Ok(accepted);
        }
        Ok(parquet_only)
    }

    /// `parquet` when the client takes it and the table can be expressed in it (the
    /// simplest for clients), else `delta`.
    fn choose(self, table: &Table, label: &str, files: &[DataFile]) -> Result<Format> {
        if self.parquet {
            match check_parquet_readable(table, label, files) {
                Ok(()) => return Ok(Format::Parquet),
                Err(e) if !self.delta => return Err(e),
                Err(_) => {}
            }
        }
        Ok(Format::Delta)
    }
}

/// Whether the client asked for an `endStreamAction` line at the end of query and changes
/// answers (`delta-sharing-capabilities: includeendstreamaction=true`).
fn wants_end_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CAPABILITIES)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|value| {
            value.split(';').any(|part| {
                part.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("includeendstreamaction")
                        && v.trim().eq_ignore_ascii_case("true")
                })
            })
        })
}

fn ndjson_headers(response: &mut Response, version: u64, format: Format, end_stream: bool) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    headers.insert(TABLE_VERSION, HeaderValue::from(version));
    headers.insert(
        CAPABILITIES,
        HeaderValue::from_static(match (format, end_stream) {
            (Format::Parquet, false) => "responseformat=parquet",
            (Format::Delta, false) => "responseformat=delta",
            (Format::Parquet, true) => "responseformat=parquet;includeendstreamaction=true",
            (Format::Delta, true) => "responseformat=delta;includeendstreamaction=true",
        }),
    );
}

fn ndjson(lines: Vec<Value>, version: u64, format: Format) -> Response {
    let mut response = encode_lines(&lines).into_response();
    ndjson_headers(&mut response, version, format, false);
    response
}

fn encode_lines(lines: &[Value]) -> Bytes {
    let mut body = Vec::with_capacity(lines.len() * 256);
    for line in lines {
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, line);
        body.push(b'\n');
    }
    Bytes::from(body)
}

/// Lines of an answer after its head, made while the answer is sent.
type LineStream = futures::stream::BoxStream<'static, Result<Vec<Value>>>;

/// An NDJSON answer sent as it is made: `head` (checked before the `200`), then `rest`,
/// pulled only as fast as the client reads, so no answer is ever held whole in memory. An
/// error after the `200` ends the answer with an `endStreamAction` carrying `errorMessage`
/// and then breaks the connection, so no client takes a cut-off answer for a whole one.
fn ndjson_stream(
    head: Vec<Value>,
    rest: LineStream,
    version: u64,
    format: Format,
    end_stream: bool,
) -> Response {
    let head = futures::stream::once(async move { Ok(head) });
    let body = head.chain(rest).flat_map(|lines| {
        let chunks: futures::stream::BoxStream<'static, std::io::Result<Bytes>> = match lines {
            Ok(lines) if lines.is_empty() => futures::stream::empty().boxed(),
            Ok(lines) => futures::stream::once(async move { Ok(encode_lines(&lines)) }).boxed(),
            Err(e) => {
                let line = encode_lines(&[json!({"endStreamAction": {"errorMessage": e.message}})]);
                let message = e.message;
                futures::stream::once(async move { Ok(line) })
                    .chain(futures::stream::once(async move {
                        // Let the server send what it holds before the connection is broken.
                        tokio::task::yield_now().await;
                        Err(std::io::Error::other(message))
                    }))
                    .boxed()
            }
        };
        chunks
    });
    let mut response = Body::from_stream(body).into_response();
    ndjson_headers(&mut response, version, format, end_stream);
    response
}

/// The last line of a paged (or `includeendstreamaction`) answer: where the next page
/// starts, if there is one, and when the answer's file URLs expire.
fn end_stream_line(next_page_token: Option<String>, url_expiry: i64) -> Value {
    let mut end = json!({ "minUrlExpirationTimestamp": url_expiry });
    if let Some(token) = next_page_token {
        end["nextPageToken"] = json!(token);
    }
    json!({ "endStreamAction": end })
}

/// What a version of the table looks like to a reader.
fn protocol_line(table: &Table, format: Format) -> Result<Value> {
    Ok(match format {
        Format::Parquet => json!({"protocol": {"minReaderVersion": 1}}),
        Format::Delta => json!({"protocol": {"deltaProtocol": table.protocol_action()?}}),
    })
}

/// Refuses what the `parquet` format cannot express: column mapping, deletion vectors.
fn check_parquet_readable(table: &Table, label: &str, files: &[DataFile]) -> Result<()> {
    let metadata = table.metadata_action()?;
    let mapping = metadata
        .pointer("/configuration/delta.columnMapping.mode")
        .and_then(Value::as_str)
        .unwrap_or("none");
    if mapping != "none" {
        return Err(SharingError::invalid(format!(
            "table `{label}` uses column mapping: read it with responseformat=delta"
        )));
    }
    if files.iter().any(|f| f.has_deletion_vector) {
        return Err(SharingError::invalid(format!(
            "table `{label}` has deletion vectors: read it with responseformat=delta"
        )));
    }
    Ok(())
}

fn metadata_line(
    table: &Table,
    format: Format,
    version: Option<u64>,
    files: Option<&[DataFile]>,
) -> Result<Value> {
    let action = table.metadata_action()?;
    let mut inner = match format {
        Format::Parquet => {
            let mut m = json!({
                "id": action["id"],
                "format": {"provider": "parquet"},
                "schemaString": action["schemaString"],
                "partitionColumns": action["partitionColumns"],
                "configuration": action.get("configuration").cloned().unwrap_or(json!({})),
            });
            for key in ["name", "description", "createdTime"] {
                if let Some(v) = action.get(key).filter(|v| !v.is_null()) {
                    m[key] = v.clone();
                }
            }
            m
        }
        Format::Delta => json!({ "deltaMetadata": action }),
    };
    if let Some(v) = version {
        inner["version"] = json!(v);
    }
    if let Some(files) = files {
        inner["size"] = json!(files.iter().map(|f| f.size).sum::<i64>());
        inner["numFiles"] = json!(files.len());
    }
    Ok(json!({ "metaData": inner }))
}

async fn table_metadata(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    headers: HeaderMap,
    Path((share, schema, table)): Path<(String, String, String)>,
) -> Result<Response> {
    let accepted = Accepted::from_headers(&headers)?;
    let r = resolve(&state, &recipient, &share, &schema, &table).await?;
    let latest = r.latest().await?;
    let files = latest.data_files()?;
    let format = accepted.choose(&latest, &r.label, &files)?;
    let lines = vec![
        protocol_line(&latest, format)?,
        metadata_line(&latest, format, Some(latest.version()), Some(&files))?,
    ];
    Ok(ndjson(lines, latest.version(), format))
}

/// Signs file URLs for one request.
#[derive(Clone)]
struct Signer {
    secret: Vec<u8>,
    base: String,
    shared_table: String,
    recipient: String,
    expires_at: i64,
}

impl Signer {
    fn url(&self, path: &str) -> String {
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

async fn signer(
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
                    SharingError::invalid(
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

/// A stable id for a file of a table (the same path always gets the same id).
fn file_id(path: &str) -> String {
    let digest = Sha256::digest(path.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a file line comes from in the log (for history queries).
#[derive(Clone, Copy)]
struct Stamp {
    version: u64,
    timestamp: i64,
}

fn file_line(
    kind: &str,
    file: &DataFile,
    signer: &Signer,
    format: Format,
    stamp: Option<Stamp>,
) -> Value {
    let url = signer.url(&file.path);
    let stats = file.stats.clone();
    let mut line = match format {
        Format::Parquet => {
            let mut f = json!({
                "url": url,
                "id": file_id(&file.path),
                "partitionValues": file.partition_values,
                "size": file.size,
                "expirationTimestamp": signer.expires_at,
            });
            if let Some(stats) = stats {
                f["stats"] = json!(stats);
            }
            f
        }
        Format::Delta => {
            let mut action = json!({
                "path": url,
                "partitionValues": file.partition_values,
                "size": file.size,
                "modificationTime": file.modification_time,
                "dataChange": true,
            });
            if let Some(stats) = stats {
                action["stats"] = json!(stats);
            }
            if kind == "remove" {
                action["deletionTimestamp"] = json!(stamp.map(|s| s.timestamp));
            }
            let action_kind = if kind == "file" { "add" } else { kind };
            json!({
                "id": file_id(&file.path),
                "deltaSingleAction": { action_kind: action },
                "expirationTimestamp": signer.expires_at,
            })
        }
    };
    if let Some(stamp) = stamp {
        line["version"] = json!(stamp.version);
        line["timestamp"] = json!(stamp.timestamp);
    }
    let key = match format {
        Format::Parquet => kind,
        Format::Delta => "file",
    };
    json!({ key: line })
}

/// The query body. `predicateHints` (SQL text, which the protocol makes optional to honour)
/// and fields for features this server does not offer (refresh tokens, asynchronous
/// queries) are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryBody {
    #[serde(default)]
    json_predicate_hints: Option<String>,
    #[serde(default)]
    limit_hint: Option<i64>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    starting_version: Option<i64>,
    #[serde(default)]
    ending_version: Option<i64>,
    #[serde(default)]
    max_files: Option<i64>,
    #[serde(default)]
    page_token: Option<String>,
}

impl QueryBody {
    /// What makes one query's pages one answer: a page token only continues a query with
    /// the same parameters (`maxFiles` may change from page to page).
    fn fingerprint(&self) -> String {
        fingerprint(&json!([
            "query",
            self.json_predicate_hints,
            self.limit_hint,
            self.version,
            self.timestamp,
            self.starting_version,
            self.ending_version,
        ]))
    }
}

// ---- pages -------------------------------------------------------------------------------

/// How long a `nextPageToken` stays valid.
pub const PAGE_TOKEN_TTL_MS: i64 = URL_TTL_MS;

/// The purpose page tokens are sealed for (see [`signing::seal`]).
const PAGE_TOKEN: &str = "delta-sharing-page";

/// Where the next page of a query or changes answer starts. Sealed with the URL-signing key,
/// so a client can neither forge one nor reuse one for another table, recipient or query.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
struct PageToken {
    /// The shared table.
    t: String,
    /// The recipient.
    r: String,
    /// The query's [`fingerprint`].
    q: String,
    /// A snapshot: its version. History: the commit to resume at.
    v: u64,
    /// History: the first and last versions of the range.
    #[serde(default)]
    s: u64,
    #[serde(default)]
    e: u64,
    /// History: how many actions of commit `v` were sent already.
    #[serde(default)]
    i: usize,
    /// A snapshot: the path of the last file sent (files go out sorted by path).
    #[serde(default)]
    a: String,
    /// Expiry, ms since the epoch.
    x: i64,
}

impl PageToken {
    fn new(signer: &Signer, query: &str) -> Self {
        Self {
            t: signer.shared_table.clone(),
            r: signer.recipient.clone(),
            q: query.to_string(),
            x: now_ms() + PAGE_TOKEN_TTL_MS,
            ..Self::default()
        }
    }

    fn seal(&self, secret: &[u8]) -> String {
        signing::seal(
            secret,
            PAGE_TOKEN,
            &serde_json::to_value(self).unwrap_or_default(),
        )
    }

    /// The token a request sent, checked against the table, recipient and query it is for.
    async fn open(
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
                SharingError::invalid(
                    "malformed pageToken: pass the nextPageToken of the previous page unchanged",
                )
            })?;
        if page.x <= now_ms() {
            return Err(SharingError::invalid(
                "this pageToken has expired: run the query again from its first page",
            ));
        }
        if page.t != r.shared.id || page.r != recipient.id || page.q != query {
            return Err(SharingError::invalid(
                "this pageToken belongs to another query: send the same parameters as for the first page, or start again without pageToken",
            ));
        }
        Ok(Some(page))
    }
}

/// A short, stable digest of a query's parameters.
fn fingerprint(params: &Value) -> String {
    let digest = Sha256::digest(params.to_string().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn max_files_param(text: Option<&str>) -> Result<Option<i64>> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => match t.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(SharingError::invalid(format!(
                "maxFiles must be a positive integer, not `{t}`"
            ))),
        },
    }
}

// ---- query -------------------------------------------------------------------------------

async fn query_table(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    headers: HeaderMap,
    Path((share, schema, table)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let accepted = Accepted::from_headers(&headers)?;
    let q: QueryBody = if body.iter().all(u8::is_ascii_whitespace) {
        QueryBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| SharingError::invalid(format!("malformed query body: {e}")))?
    };
    let chosen = [
        q.version.is_some(),
        q.timestamp.is_some(),
        q.starting_version.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if chosen > 1 {
        return Err(SharingError::invalid(
            "give at most one of version, timestamp and startingVersion",
        ));
    }
    if q.ending_version.is_some() && q.starting_version.is_none() {
        return Err(SharingError::invalid("endingVersion needs startingVersion"));
    }
    if let Some(limit) = q.limit_hint.filter(|l| *l < 0) {
        return Err(SharingError::invalid(format!(
            "limitHint must be non-negative, not {limit}"
        )));
    }
    if q.max_files.is_some_and(|m| m <= 0) {
        return Err(SharingError::invalid("maxFiles must be positive"));
    }
    // Reading the hint is CPU work on a text of up to a MiB: not on the async threads.
    let hint = q
        .json_predicate_hints
        .clone()
        .filter(|h| !h.trim().is_empty());
    let predicate = match hint {
        None => None,
        Some(text) => tokio::task::spawn_blocking(move || crate::predicate::parse_hint(&text))
            .await
            .map_err(SharingError::internal)?
            .map_err(SharingError::invalid)?,
    };
    let r = resolve(&state, &recipient, &share, &schema, &table).await?;
    let query = q.fingerprint();
    let page = PageToken::open(&state, q.page_token.as_deref(), &r, &recipient, &query).await?;
    let end_stream = wants_end_stream(&headers);
    let latest = r.latest().await?;
    if let Some(start) = q.starting_version {
        r.require_history("startingVersion")?;
        let format = accepted.choose(&latest, &r.label, &[])?;
        let walk = HistoryWalk::start(
            &state,
            &headers,
            &recipient,
            r,
            latest,
            Feed::DataChanges,
            (start, q.ending_version),
            Paging {
                max_files: q.max_files,
                page,
                query,
                end_stream,
            },
            format,
        )
        .await?;
        return Ok(walk.into_response());
    }
    let snapshot = match (&page, &q.version, &q.timestamp) {
        // Every page of a query reads the version its first page read.
        (Some(page), _, _) => r.at_version(&latest, page.v as i64).await?,
        (None, Some(v), _) => {
            r.require_history("reading an older version")?;
            r.at_version(&latest, *v).await?
        }
        (None, None, Some(t)) => {
            r.require_history("reading an older version")?;
            r.at_timestamp(&latest, t).await?
        }
        (None, None, None) => latest.clone(),
    };
    drop(latest);
    let time_travel = q.version.is_some() || q.timestamp.is_some();
    let files = snapshot.data_files()?;
    let format = accepted.choose(&snapshot, &r.label, &files)?;
    let version = snapshot.version();
    let head = vec![
        protocol_line(&snapshot, format)?,
        metadata_line(&snapshot, format, Some(version), Some(&files))?,
    ];
    let stamp = if time_travel {
        Some(Stamp {
            version,
            timestamp: snapshot.commit_time(version).await?.timestamp_millis(),
        })
    } else {
        None
    };
    let partition_columns = snapshot.partition_columns()?;
    drop(snapshot);
    let paged = q.max_files.is_some() || page.is_some();
    let after = page.as_ref().map(|p| p.a.clone());
    let limit = q.limit_hint.map(|l| l as u64);
    // Pruning, sorting and limiting run over every file of the version: CPU work, not on
    // the async threads.
    let files = tokio::task::spawn_blocking(move || {
        let mut files = match &predicate {
            Some(p) => {
                crate::predicate::filter(p, &partition_columns, files, |f| &f.partition_values)
            }
            None => files,
        };
        if paged {
            files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        }
        if let Some(limit) = limit {
            files = limit_files(files, limit);
        }
        if let Some(after) = after {
            files.retain(|f| f.path > after);
        }
        files
    })
    .await
    .map_err(SharingError::internal)?;
    let signer = signer(&state, &headers, &r, &recipient).await?;
    let mut files = files;
    let next_page = match q.max_files {
        Some(max) if files.len() > max as usize => {
            files.truncate(max as usize);
            let mut next = PageToken::new(&signer, &query);
            next.v = version;
            next.a = files.last().map(|f| f.path.clone()).unwrap_or_default();
            Some(next.seal(&signer.secret))
        }
        _ => None,
    };
    let last = (q.max_files.is_some() || end_stream)
        .then(|| end_stream_line(next_page, signer.expires_at));
    let rest = file_lines(files, signer, format, stamp, last);
    Ok(ndjson_stream(head, rest, version, format, end_stream))
}

/// The lines of `files`, made in chunks as the answer is sent, then `last` if any.
fn file_lines(
    files: Vec<DataFile>,
    signer: Signer,
    format: Format,
    stamp: Option<Stamp>,
    mut last: Option<Value>,
) -> LineStream {
    const CHUNK: usize = 256;
    let mut files = files.into_iter();
    let chunks = std::iter::from_fn(move || {
        let lines: Vec<Value> = files
            .by_ref()
            .take(CHUNK)
            .map(|f| file_line("file", &f, &signer, format, stamp))
            .collect();
        if lines.is_empty() {
            last.take().map(|l| Ok(vec![l]))
        } else {
            Some(Ok(lines))
        }
    });
    futures::stream::iter(chunks).boxed()
}

/// The first files whose recorded row counts reach `limit` (all of them if a count is missing).
fn limit_files(files: Vec<DataFile>, limit: u64) -> Vec<DataFile> {
    let mut rows = 0u64;
    let mut kept = Vec::new();
    for f in files {
        if rows >= limit {
            break;
        }
        match f.num_records() {
            Some(n) => rows += n,
            // Without a count the limit cannot be honoured safely: keep every file.
            None => rows = 0,
        }
        kept.push(f);
    }
    kept
}

fn file_from_action(action: &Value) -> Option<DataFile> {
    let raw_path = action.get("path")?.as_str()?;
    let path = percent_decode(raw_path);
    let partition_values = action
        .get("partitionValues")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                .collect()
        })
        .unwrap_or_default();
    Some(DataFile {
        path,
        size: action.get("size").and_then(Value::as_i64).unwrap_or(0),
        modification_time: action
            .get("modificationTime")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        partition_values,
        stats: action
            .get("stats")
            .and_then(Value::as_str)
            .map(str::to_string),
        has_deletion_vector: action.get("deletionVector").is_some_and(|d| !d.is_null()),
    })
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Checks `[start, end]` against the log and returns it with `end` defaulted to the latest.
async fn version_span(
    r: &Resolved,
    latest: &Table,
    start: i64,
    end: Option<i64>,
) -> Result<(u64, u64)> {
    let (first, last) = latest.version_range().await?;
    let end = end.unwrap_or(last as i64);
    if start < first as i64 || start > last as i64 {
        return Err(SharingError::invalid(format!(
            "table `{}` has no version {start}: valid versions are {first} to {last}",
            r.label
        )));
    }
    if end < start || end > last as i64 {
        return Err(SharingError::invalid(format!(
            "endingVersion {end} must be between startingVersion {start} and the latest version {last}"
        )));
    }
    Ok((start as u64, end as u64))
}

/// What a history answer lists for each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// A query with `startingVersion`: the files each commit added and removed, with a
    /// metadata line where the schema changed.
    DataChanges,
    /// The change data feed: `cdf` files where a commit wrote change data, else its added
    /// files as inserts and removed files as deletes.
    ChangeData,
}

/// How a query or changes answer is paged.
struct Paging {
    /// At most this many files per answer (`maxFiles`).
    max_files: Option<i64>,
    /// Where this page starts (`pageToken`).
    page: Option<PageToken>,
    /// The query's [`fingerprint`], for the next page's token.
    query: String,
    /// Whether the client asked for an `endStreamAction` line.
    end_stream: bool,
}

/// A history answer being sent: the commits of a version range read one at a time, as the
/// client takes the lines.
struct HistoryWalk {
    resolved: Resolved,
    latest: Table,
    signer: Signer,
    format: Format,
    feed: Feed,
    /// The range asked for.
    start: u64,
    end: u64,
    /// The next commit to read, and how many of its actions were sent already.
    version: u64,
    skip: usize,
    /// Files this page may still hold (`None`: not paged).
    room: Option<usize>,
    query: String,
    /// Whether to end with an `endStreamAction` line.
    end_line: bool,
    done: bool,
}

/// A history answer: its head lines, checked before the `200`, and the walk for the rest.
struct HistoryAnswer {
    head: Vec<Value>,
    walk: HistoryWalk,
    end_stream: bool,
}

impl HistoryWalk {
    /// Checks the range (from the request, or from its page token) and makes the head.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        state: &AppState,
        headers: &HeaderMap,
        recipient: &RecipientInfo,
        r: Resolved,
        latest: Table,
        feed: Feed,
        (start, end): (i64, Option<i64>),
        paging: Paging,
        format: Format,
    ) -> Result<HistoryAnswer> {
        let (start, end, version, skip) = match &paging.page {
            Some(page) => {
                // The rest of the range must still be in the log.
                version_span(&r, &latest, page.v as i64, Some(page.e as i64)).await?;
                (page.s, page.e, page.v, page.i)
            }
            None => {
                let (start, end) = version_span(&r, &latest, start, end).await?;
                (start, end, start, 0)
            }
        };
        let at_start = r.at_version(&latest, start as i64).await?;
        let head = vec![
            protocol_line(&at_start, format)?,
            metadata_line(&at_start, format, Some(start), None)?,
        ];
        drop(at_start);
        let signer = signer(state, headers, &r, recipient).await?;
        Ok(HistoryAnswer {
            head,
            end_stream: paging.end_stream,
            walk: HistoryWalk {
                resolved: r,
                latest,
                signer,
                format,
                feed,
                start,
                end,
                version,
                skip,
                room: paging.max_files.map(|m| m as usize),
                query: paging.query,
                end_line: paging.max_files.is_some() || paging.end_stream,
                done: false,
            },
        })
    }

    /// The lines of the next commit (possibly none), or `None` when the answer is complete.
    async fn next_lines(&mut self) -> Result<Option<Vec<Value>>> {
        if self.done {
            return Ok(None);
        }
        if self.version > self.end {
            self.done = true;
            return Ok(self
                .end_line
                .then(|| vec![end_stream_line(None, self.signer.expires_at)]));
        }
        let version = self.version;
        let (commit, actions) = self.latest.commit_with_actions(version).await?;
        let stamp = Stamp {
            version,
            timestamp: commit.timestamp.timestamp_millis(),
        };
        let has_cdc =
            self.feed == Feed::ChangeData && actions.iter().any(|a| a.get("cdc").is_some());
        let mut lines = Vec::new();
        for (index, action) in actions.iter().enumerate().skip(self.skip) {
            if self.feed == Feed::DataChanges
                && version > self.start
                && action.get("metaData").is_some()
            {
                let at = self
                    .resolved
                    .at_version(&self.latest, version as i64)
                    .await?;
                lines.push(metadata_line(&at, self.format, Some(version), None)?);
                continue;
            }
            let (kind, a) = if has_cdc {
                match action.get("cdc") {
                    Some(a) => ("cdf", a),
                    None => continue,
                }
            } else if let Some(a) = action.get("add") {
                ("add", a)
            } else if let Some(a) = action.get("remove") {
                ("remove", a)
            } else {
                continue;
            };
            if kind != "cdf" && a.get("dataChange").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let Some(file) = file_from_action(a) else {
                continue;
            };
            check_servable(&file, &self.resolved.label, self.format)?;
            if let Some(room) = self.room.as_mut() {
                if *room == 0 {
                    let mut next = PageToken::new(&self.signer, &self.query);
                    (next.s, next.e, next.v, next.i) = (self.start, self.end, version, index);
                    let token = next.seal(&self.signer.secret);
                    lines.push(end_stream_line(Some(token), self.signer.expires_at));
                    self.done = true;
                    return Ok(Some(lines));
                }
                *room -= 1;
            }
            lines.push(file_line(
                kind,
                &file,
                &self.signer,
                self.format,
                Some(stamp),
            ));
        }
        self.version += 1;
        self.skip = 0;
        Ok(Some(lines))
    }
}

impl IntoResponse for HistoryAnswer {
    fn into_response(self) -> Response {
        let version = self.walk.start;
        let format = self.walk.format;
        let rest = futures::stream::try_unfold(self.walk, |mut walk| async move {
            Ok(walk.next_lines().await?.map(|lines| (lines, walk)))
        })
        .boxed();
        ndjson_stream(self.head, rest, version, format, self.end_stream)
    }
}

fn check_servable(file: &DataFile, label: &str, format: Format) -> Result<()> {
    if !tarn_table::is_table_relative(&file.path) {
        return Err(SharingError::invalid(format!(
            "table `{label}` refers to a file outside its location; it cannot be shared"
        )));
    }
    if format == Format::Parquet && file.has_deletion_vector {
        return Err(SharingError::invalid(format!(
            "table `{label}` has deletion vectors: read it with responseformat=delta"
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangesParams {
    starting_version: Option<String>,
    ending_version: Option<String>,
    starting_timestamp: Option<String>,
    ending_timestamp: Option<String>,
    include_historical_metadata: Option<String>,
    max_files: Option<String>,
    page_token: Option<String>,
}

impl ChangesParams {
    /// See [`QueryBody::fingerprint`].
    fn fingerprint(&self) -> String {
        fingerprint(&json!([
            "changes",
            self.starting_version,
            self.ending_version,
            self.starting_timestamp,
            self.ending_timestamp,
        ]))
    }
}

fn version_param(name: &str, text: Option<&str>) -> Result<Option<i64>> {
    text.map(|t| {
        t.parse::<i64>()
            .map_err(|_| SharingError::invalid(format!("{name} must be an integer, not `{t}`")))
    })
    .transpose()
}

/// The change data feed between two versions (or times): `cdf` files where a commit wrote
/// change data, else its added files as inserts and removed files as deletes. Sent as it is
/// read, one commit at a time; paged with `maxFiles` and `pageToken`.
async fn table_changes(
    State(state): State<AppState>,
    Recipient(recipient): Recipient,
    headers: HeaderMap,
    Path((share, schema, table)): Path<(String, String, String)>,
    Query(params): Query<ChangesParams>,
) -> Result<Response> {
    let accepted = Accepted::from_headers(&headers)?;
    let max_files = max_files_param(params.max_files.as_deref())?;
    let r = resolve(&state, &recipient, &share, &schema, &table).await?;
    r.require_history("reading the change data feed")?;
    let query = params.fingerprint();
    let page =
        PageToken::open(&state, params.page_token.as_deref(), &r, &recipient, &query).await?;
    let latest = r.latest().await?;
    let format = accepted.choose(&latest, &r.label, &[])?;
    let cdf_enabled = latest
        .metadata_action()?
        .pointer("/configuration/delta.enableChangeDataFeed")
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !cdf_enabled {
        return Err(SharingError::invalid(format!(
            "table `{}` does not have the change data feed enabled (set delta.enableChangeDataFeed=true)",
            r.label
        )));
    }
    let _ = params.include_historical_metadata;
    // A later page takes its range from its token.
    let (start, end) = if page.is_some() {
        (0, None)
    } else {
        changes_range(&r, &latest, &params).await?
    };
    let answer = HistoryWalk::start(
        &state,
        &headers,
        &recipient,
        r,
        latest,
        Feed::ChangeData,
        (start, end),
        Paging {
            max_files,
            page,
            query,
            end_stream: wants_end_stream(&headers),
        },
        format,
    )
    .await?;
    Ok(answer.into_response())
}

/// The versions a changes request asks for, from versions or times.
async fn changes_range(
    r: &Resolved,
    latest: &Table,
    params: &ChangesParams,
) -> Result<(i64, Option<i64>)> {
    let start = match (
        version_param("startingVersion", params.starting_version.as_deref())?,
        params.starting_timestamp.as_deref(),
    ) {
        (Some(v), None) => v,
        (None, Some(t)) => r.first_version_since(latest, parse_time(t)?).await? as i64,
        _ => {
            return Err(SharingError::invalid(
                "give exactly one of startingVersion and startingTimestamp",
            ))
        }
    };
    let end = match (
        version_param("endingVersion", params.ending_version.as_deref())?,
        params.ending_timestamp.as_deref(),
    ) {
        (Some(v), None) => Some(v),
        (None, Some(t)) => Some(r.version_at(latest, parse_time(t)?).await? as i64),
        (None, None) => None,
        _ => {
            return Err(SharingError::invalid(
                "give at most one of endingVersion and endingTimestamp",
            ))
        }
    };
    Ok((start, end))
}

// ---- files -------------------------------------------------------------------------------

/// The byte range a `Range` header asks for, within a file of `size` bytes. `Ok(None)`: the
/// whole file; `Err(())`: unsatisfiable.
fn requested_range(header: Option<&str>, size: u64) -> std::result::Result<Option<Range<u64>>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: answer with the whole file, which HTTP allows.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>()
                .map_err(|_| ())?
                .saturating_add(1)
                .min(size)
        };
        if start >= size || end <= start {
            return Err(());
        }
        start..end
    };
    Ok(Some(range))
}

async fn serve_file(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response> {
    let secret = state.sharing_secret().await?;
    let ticket = signing::verify(&secret, &token, now_ms()).map_err(|e| match e {
        TicketError::Invalid => SharingError::forbidden("invalid file URL"),
        TicketError::Expired => {
            SharingError::forbidden("this file URL has expired: query the table again")
        }
    })?;
    let sharing = sharing_of(&state)?;
    let denied = || SharingError::forbidden("this file URL is no longer valid");
    let recipient = sharing
        .get_recipient(&ticket.recipient)
        .await
        .map_err(|_| denied())?;
    if !recipient.is_active(now_ms()) {
        return Err(denied());
    }
    let shared = sharing
        .get_shared_table(&ticket.shared_table)
        .await
        .map_err(|_| denied())?;
    if !recipient.shares.contains(&shared.share_name) {
        return Err(denied());
    }
    let info = state
        .store
        .get_table_by_id(&shared.table_id)
        .await
        .map_err(|_| denied())?;
    let location = state.location(&info.storage_location)?;
    let file = Table::open_file(&location, &ticket.path)
        .await
        .map_err(|e| {
            if e.kind() == tarn_table::ErrorKind::NotFound {
                // A vacuumed file, or a link out of the table's directory: worth a look.
                tracing::warn!(
                    table = %format!("{}.{}.{}", shared.share_name, shared.schema_name, shared.name),
                    "refused a file URL: {}",
                    e.message()
                );
            }
            SharingError::from(e)
        })?;
    let size = file.size;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match requested_range(range_header, size) {
        Ok(r) => r,
        Err(()) => {
            let mut response = SharingError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "INVALID_PARAMETER_VALUE",
                format!("unsatisfiable range for a file of {size} bytes"),
            )
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(response);
        }
    };
    let (status, span) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.clone()),
        None => (StatusCode::OK, 0..size),
    };
    let body = if method == Method::HEAD || span.is_empty() {
        Body::empty()
    } else {
        let stream = file.read(span.clone()).await?;
        Body::from_stream(stream.map_err(std::io::Error::other))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(span.end - span.start),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if range.is_some() {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!(
                "bytes {}-{}/{size}",
                span.start,
                span.end.saturating_sub(1)
            ))
            .expect("ascii"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn ranges_follow_http_semantics() {
        assert_eq!(requested_range(None, 100), Ok(None));
        assert_eq!(requested_range(Some("bytes=0-9"), 100), Ok(Some(0..10)));
        assert_eq!(requested_range(Some("bytes=90-"), 100), Ok(Some(90..100)));
        assert_eq!(requested_range(Some("bytes=-10"), 100), Ok(Some(90..100)));
        assert_eq!(
            requested_range(Some("bytes=50-500"), 100),
            Ok(Some(50..100))
        );
        assert_eq!(requested_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(requested_range(Some("bytes=9-3"), 100), Err(()));
        assert_eq!(requested_range(Some("bytes=x-3"), 100), Err(()));
        assert_eq!(requested_range(Some("bytes=0-1,5-6"), 100), Ok(None));
    }

    #[test]
    fn log_paths_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b/c%3D.parquet"), "a b/c=.parquet");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("x%zz"), "x%zz");
    }

    #[test]
    fn the_limit_hint_keeps_files_until_enough_rows() {
        let file = |n: u64| DataFile {
            path: format!("f{n}"),
            size: 1,
            modification_time: 0,
            partition_values: BTreeMap::new(),
            stats: Some(format!("{{\"numRecords\":{n}}}")),
            has_deletion_vector: false,
        };
        let kept = limit_files(vec![file(5), file(6), file(7)], 10);
        assert_eq!(kept.len(), 2);
        assert_eq!(limit_files(vec![file(5)], 0).len(), 0);
    }
}
