//! A shared table resolved for a request ([`Resolved`]): the share, schema and table
//! checked against the recipient's grants, the catalog's location, and the versions the
//! share lets the recipient read.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tarn_catalog::{RecipientInfo, SharedTable, TableInfo};
use tarn_table::{Table, TableLocation, TimeTravel};

use super::lists::granted_share;
use super::{parse_time, sharing_of, Result};
use crate::error::ApiError;
use crate::limits::TableOpens;
use crate::AppState;

/// A shared table resolved for a request.
#[derive(Clone)]
pub(super) struct Resolved {
    pub(super) shared: SharedTable,
    location: TableLocation,
    /// `share.schema.table`, for messages.
    pub(super) label: String,
    /// The server-wide bound on tables being opened.
    opens: Arc<TableOpens>,
}

/// The shared table `share.schema.table` if `recipient` may read it; else 404 alike for
/// whatever part is missing or not granted.
pub(super) async fn resolve(
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
        return Err(ApiError::not_found(format!(
            "schema `{schema}` does not exist in share `{share}`"
        )));
    }
    let label = format!("{share}.{schema}.{table}");
    let shared = all
        .into_iter()
        .find(|t| t.schema_name == schema && t.name == table)
        .ok_or_else(|| ApiError::not_found(format!("table `{label}` does not exist")))?;
    let info: TableInfo = match state.store.get_table_by_id(&shared.table_id).await {
        Ok(t) => t,
        Err(e) if e.kind() == tarn_catalog::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!(
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
    pub(super) async fn latest(&self) -> Result<Table> {
        self.opens
            .open(&self.location, &TimeTravel::Latest)
            .await
            .map_err(|e| match e.kind() {
                tarn_table::ErrorKind::NotFound => {
                    ApiError::not_found(format!("table `{}` has no data", self.label))
                }
                _ => e.into(),
            })
    }

    /// 403 unless the table is shared with its history.
    pub(super) fn require_history(&self, what: &str) -> Result<()> {
        if self.shared.history {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "table `{}` is shared without its history: {what} is not allowed (only the latest version)",
                self.label
            )))
        }
    }

    /// Version `v`, or 400 naming the versions that exist.
    pub(super) async fn at_version(&self, latest: &Table, v: i64) -> Result<Table> {
        let (first, last) = latest.version_range().await?;
        if v < first as i64 || v > last as i64 {
            return Err(ApiError::invalid(format!(
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
    pub(super) async fn at_timestamp(&self, latest: &Table, text: &str) -> Result<Table> {
        let at = parse_time(text)?;
        let version = self.version_at(latest, at).await?;
        self.at_version(latest, version as i64).await
    }

    /// The latest version committed at or before `at`, or 400 naming the history's time
    /// range. Reading the commit log for it counts as opening the table (it reads every
    /// commit up to `at`), under the server-wide [`TableOpens`] bound.
    pub(super) async fn version_at(&self, latest: &Table, at: DateTime<Utc>) -> Result<u64> {
        let _permit = self.opens.permit().await;
        latest.version_at(at).await.map_err(|e| match e.kind() {
            tarn_table::ErrorKind::NotFound => ApiError::invalid(e.message()),
            _ => e.into(),
        })
    }

    /// The earliest version committed at or after `at`, or 400; under the [`TableOpens`]
    /// bound like [`Resolved::version_at`].
    pub(super) async fn first_version_since(
        &self,
        latest: &Table,
        at: DateTime<Utc>,
    ) -> Result<u64> {
        let _permit = self.opens.permit().await;
        latest
            .first_version_since(at)
            .await
            .map_err(|e| match e.kind() {
                tarn_table::ErrorKind::NotFound => ApiError::invalid(e.message()),
                _ => e.into(),
            })
    }

    /// Checks `[start, end]` against the log and returns it with `end` defaulted to the
    /// latest version.
    pub(super) async fn version_span(
        &self,
        latest: &Table,
        start: i64,
        end: Option<i64>,
    ) -> Result<(u64, u64)> {
        let (first, last) = latest.version_range().await?;
        let end = end.unwrap_or(last as i64);
        if start < first as i64 || start > last as i64 {
            return Err(ApiError::invalid(format!(
                "table `{}` has no version {start}: valid versions are {first} to {last}",
                self.label
            )));
        }
        if end < start || end > last as i64 {
            return Err(ApiError::invalid(format!(
                "endingVersion {end} must be between startingVersion {start} and the latest version {last}"
            )));
        }
        Ok((start as u64, end as u64))
    }
}
