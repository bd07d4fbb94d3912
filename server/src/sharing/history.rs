//! Answers about a range of versions, read commit by commit as the client takes the lines
//! ([`HistoryWalk`]): a query with `startingVersion` (each commit's added and removed
//! files, and its new metadata) and the change data feed (`changes`).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use tarn_catalog::RecipientInfo;
use tarn_table::{FileAction, LogAction, Table};

use super::format::{check_servable, wants_end_stream, Accepted, Format};
use super::lines::{end_stream_line, file_line, metadata_line, protocol_line, FileKind, Stamp};
use super::ndjson::ndjson_stream;
use super::pages::{fingerprint, max_files_param, PageToken};
use super::resolve::{resolve, Resolved};
use super::signer::Signer;
use super::wire::Line;
use super::{parse_time, Recipient, Result};
use crate::error::ApiError;
use crate::AppState;

/// What a history answer lists for each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    /// A query with `startingVersion`: the files each commit added and removed, with a
    /// metadata line where the schema changed.
    DataChanges,
    /// The change data feed: `cdf` files where a commit wrote change data, else its added
    /// files as inserts and removed files as deletes.
    ChangeData,
}

/// How a query or changes answer is paged.
pub(super) struct Paging {
    /// At most this many files per answer (`maxFiles`).
    pub(super) max_files: Option<i64>,
    /// Where this page starts (`pageToken`).
    pub(super) page: Option<PageToken>,
    /// The query's fingerprint, for the next page's token.
    pub(super) query: String,
    /// Whether the client asked for an `endStreamAction` line.
    pub(super) end_stream: bool,
}

/// A history answer being sent: the commits of a version range read one at a time, as the
/// client takes the lines.
pub(super) struct HistoryWalk {
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
pub(super) struct HistoryAnswer {
    head: Vec<Line>,
    walk: HistoryWalk,
    end_stream: bool,
}

impl HistoryWalk {
    /// Checks the range (from the request, or from its page token) and makes the head.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start(
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
                r.version_span(&latest, page.v as i64, Some(page.e as i64))
                    .await?;
                (page.s, page.e, page.v, page.i)
            }
            None => {
                let (start, end) = r.version_span(&latest, start, end).await?;
                (start, end, start, 0)
            }
        };
        let at_start = r.at_version(&latest, start as i64).await?;
        let head = vec![
            protocol_line(&at_start, format)?,
            metadata_line(&at_start, format, Some(start), None)?,
        ];
        drop(at_start);
        let signer = Signer::new(state, headers, &r, recipient).await?;
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

    /// What a file action is in this feed, if it is listed at all.
    fn kind_of(&self, action: &FileAction, has_cdc: bool) -> Option<FileKind> {
        let kind = match (has_cdc, action) {
            (true, FileAction::Cdc { .. }) => FileKind::Cdf,
            (true, _) | (false, FileAction::Cdc { .. }) => return None,
            (false, FileAction::Add { .. }) => FileKind::Add,
            (false, FileAction::Remove { .. }) => FileKind::Remove,
        };
        // Rearranged data (compaction) is no change.
        (kind == FileKind::Cdf || action.data_change()).then_some(kind)
    }

    /// The lines of the next commit (possibly none), or `None` when the answer is complete.
    async fn next_lines(&mut self) -> Result<Option<Vec<Line>>> {
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
        let changes = self.latest.commit_changes(version).await?;
        let stamp = Stamp {
            version,
            timestamp: changes.commit.timestamp.timestamp_millis(),
        };
        let has_cdc = self.feed == Feed::ChangeData && changes.has_change_data();
        let mut lines = Vec::new();
        for (index, action) in changes.actions.iter().enumerate().skip(self.skip) {
            let action = match action {
                LogAction::Metadata(_)
                    if self.feed == Feed::DataChanges && version > self.start =>
                {
                    let at = self
                        .resolved
                        .at_version(&self.latest, version as i64)
                        .await?;
                    lines.push(metadata_line(&at, self.format, Some(version), None)?);
                    continue;
                }
                LogAction::File(action) => action,
                _ => continue,
            };
            let Some(kind) = self.kind_of(action, has_cdc) else {
                continue;
            };
            let file = action.file();
            check_servable(file, &self.resolved.label, self.format)?;
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
                file,
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChangesParams {
    /// First version.
    #[schemars(with = "Option<i64>")]
    starting_version: Option<String>,
    /// Last version.
    #[schemars(with = "Option<i64>")]
    ending_version: Option<String>,
    /// First version at or after this time (ISO 8601).
    starting_timestamp: Option<String>,
    /// Last version at or before this time (ISO 8601).
    ending_timestamp: Option<String>,
    /// Also the metadata changes.
    #[schemars(with = "Option<bool>")]
    include_historical_metadata: Option<String>,
    /// At most this many files per answer; the answer ends with an `endStreamAction`
    /// holding `nextPageToken`.
    #[schemars(with = "Option<i64>")]
    max_files: Option<String>,
    /// The `nextPageToken` of the previous page.
    page_token: Option<String>,
}

impl ChangesParams {
    /// What makes one changes request's pages one answer.
    fn fingerprint(&self) -> String {
        fingerprint(&(
            "changes",
            &self.starting_version,
            &self.ending_version,
            &self.starting_timestamp,
            &self.ending_timestamp,
        ))
    }
}

fn version_param(name: &str, text: Option<&str>) -> Result<Option<i64>> {
    text.map(|t| {
        t.parse::<i64>()
            .map_err(|_| ApiError::invalid(format!("{name} must be an integer, not `{t}`")))
    })
    .transpose()
}

/// The change data feed between two versions (or times): `cdf` files where a commit wrote
/// change data, else its added files as inserts and removed files as deletes. Sent as it is
/// read, one commit at a time; paged with `maxFiles` and `pageToken`.
pub(super) async fn table_changes(
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
        .metadata()?
        .property("delta.enableChangeDataFeed")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !cdf_enabled {
        return Err(ApiError::invalid(format!(
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
            return Err(ApiError::invalid(
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
            return Err(ApiError::invalid(
                "give at most one of endingVersion and endingTimestamp",
            ))
        }
    };
    Ok((start, end))
}
