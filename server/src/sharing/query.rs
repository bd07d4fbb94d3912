//! A table's version, metadata, and query (the files of a snapshot, pruned by partition
//! hints, limited, paged; a query with `startingVersion` is a history walk, see
//! [`super::history`]).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use tarn_table::DataFile;

use super::format::{check_servable, wants_end_stream, Accepted, Format};
use super::history::{Feed, HistoryWalk, Paging};
use super::lines::{end_stream_line, file_line, metadata_line, protocol_line, FileKind, Stamp};
use super::ndjson::{ndjson, ndjson_stream, LineStream, TABLE_VERSION};
use super::pages::{fingerprint, PageToken};
use super::resolve::resolve;
use super::signer::Signer;
use super::wire::Line;
use super::{parse_time, Recipient, Result};
use crate::error::ApiError;
use crate::AppState;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct VersionParams {
    /// The first version at or after this time (ISO 8601) instead of the latest.
    starting_timestamp: Option<String>,
}

/// The latest version (or the first at or after `startingTimestamp`) in a header.
pub(super) async fn table_version(
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

/// The latest version's protocol and metadata.
pub(super) async fn table_metadata(
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

/// The query body. `predicateHints` (SQL text, which the protocol makes optional to honour)
/// and fields for features this server does not offer (refresh tokens, asynchronous
/// queries) are ignored.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingQueryTable")]
pub(super) struct QueryBody {
    /// A JSON predicate over partition columns; files that cannot match are left out.
    #[serde(default)]
    json_predicate_hints: Option<String>,
    /// Enough files for about this many rows.
    #[serde(default)]
    limit_hint: Option<i64>,
    /// The files of this version.
    #[serde(default)]
    version: Option<i64>,
    /// The files of the version at this time (ISO 8601).
    #[serde(default)]
    timestamp: Option<String>,
    /// The files added and removed from this version on, commit by commit.
    #[serde(default)]
    starting_version: Option<i64>,
    /// The last version of a `startingVersion` range.
    #[serde(default)]
    ending_version: Option<i64>,
    /// At most this many files per answer; the answer ends with an `endStreamAction`
    /// holding `nextPageToken`.
    #[serde(default)]
    max_files: Option<i64>,
    /// The `nextPageToken` of the previous page.
    #[serde(default)]
    page_token: Option<String>,
}

impl QueryBody {
    /// What makes one query's pages one answer: a page token only continues a query with
    /// the same parameters (`maxFiles` may change from page to page).
    fn fingerprint(&self) -> String {
        fingerprint(&(
            "query",
            &self.json_predicate_hints,
            self.limit_hint,
            self.version,
            &self.timestamp,
            self.starting_version,
            self.ending_version,
        ))
    }

    /// Refuses contradicting or out-of-range fields.
    fn check(&self) -> Result<()> {
        let chosen = [
            self.version.is_some(),
            self.timestamp.is_some(),
            self.starting_version.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen > 1 {
            return Err(ApiError::invalid(
                "give at most one of version, timestamp and startingVersion",
            ));
        }
        if self.ending_version.is_some() && self.starting_version.is_none() {
            return Err(ApiError::invalid("endingVersion needs startingVersion"));
        }
        if let Some(limit) = self.limit_hint.filter(|l| *l < 0) {
            return Err(ApiError::invalid(format!(
                "limitHint must be non-negative, not {limit}"
            )));
        }
        if self.max_files.is_some_and(|m| m <= 0) {
            return Err(ApiError::invalid("maxFiles must be positive"));
        }
        Ok(())
    }
}

/// The files of a version (latest, `version` or `timestamp`), or with `startingVersion`
/// the changes of a range of versions.
pub(super) async fn query_table(
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
            .map_err(|e| ApiError::invalid(format!("malformed query body: {e}")))?
    };
    q.check()?;
    // Reading the hint is CPU work on a text of up to a MiB: not on the async threads.
    let hint = q
        .json_predicate_hints
        .clone()
        .filter(|h| !h.trim().is_empty());
    let predicate = match hint {
        None => None,
        Some(text) => tokio::task::spawn_blocking(move || crate::predicate::parse_hint(&text))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::invalid)?,
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
    for file in &files {
        check_servable(file, &r.label, format)?;
    }
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
    .map_err(ApiError::internal)?;
    let signer = Signer::new(&state, &headers, &r, &recipient).await?;
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
    mut last: Option<Line>,
) -> LineStream {
    const CHUNK: usize = 256;
    let mut files = files.into_iter();
    let chunks = std::iter::from_fn(move || {
        let lines: Vec<Line> = files
            .by_ref()
            .take(CHUNK)
            .map(|f| file_line(FileKind::Snapshot, &f, &signer, format, stamp))
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_limit_hint_keeps_files_until_enough_rows() {
        let file = |n: u64| DataFile {
            path: format!("f{n}"),
            size: 1,
            modification_time: 0,
            partition_values: BTreeMap::new(),
            stats_json: Some(format!("{{\"numRecords\":{n}}}")),
            deletion_vector: None,
        };
        let kept = limit_files(vec![file(5), file(6), file(7)], 10);
        assert_eq!(kept.len(), 2);
        assert_eq!(limit_files(vec![file(5)], 0).len(), 0);
    }
}
