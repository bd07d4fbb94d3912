//! A table version as data files plus its raw log: what a server needs to hand a table to
//! readers that fetch the Parquet files themselves (Delta Sharing). Paths are relative to
//! the table root; reading one goes through [`Table::read_file`] and never leaves the root.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use deltalake::Path as StorePath;
use futures::stream::BoxStream;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde_json::Value;

use crate::commit_log::{self, Commit};
use crate::error::{Error, ErrorKind, Result};
use crate::location::TableLocation;
use crate::table::Table;

/// One data file of a table version.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Path relative to the table root, decoded (as on storage).
    pub path: String,
    /// Size in bytes.
    pub size: i64,
    /// When the file was written, ms since the epoch.
    pub modification_time: i64,
    /// Partition values, as strings (`None` for null).
    pub partition_values: BTreeMap<String, Option<String>>,
    /// The statistics JSON recorded in the log, if any.
    pub stats: Option<String>,
    /// Whether some rows of the file are deleted by a deletion vector.
    pub has_deletion_vector: bool,
}

impl DataFile {
    /// The row count from the statistics, when recorded.
    pub fn num_records(&self) -> Option<u64> {
        let stats: Value = serde_json::from_str(self.stats.as_deref()?).ok()?;
        stats.get("numRecords")?.as_u64()
    }
}

/// Whether `path` is a plain relative path inside a table root: no scheme, no leading `/`,
/// no `.`/`..` or empty segments, and not inside `_delta_log`.
pub fn is_table_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains("://")
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !path.starts_with("_delta_log/")
}

fn store_path(path: &str) -> StorePath {
    StorePath::parse(path).unwrap_or_else(|_| StorePath::from(path))
}

impl Table {
    /// The data files of the loaded version, in log order.
    pub fn data_files(&self) -> Result<Vec<DataFile>> {
        let snapshot = self.delta.snapshot().map_err(|e| self.delta_error(e))?;
        Ok(snapshot
            .log_data()
            .iter()
            .map(|f| DataFile {
                path: f.path().to_string(),
                size: f.size(),
                modification_time: f.modification_time(),
                partition_values: f.partition_values_map().into_iter().collect(),
                stats: f.stats(),
                has_deletion_vector: f.deletion_vector_descriptor().is_some(),
            })
            .collect())
    }

    /// The `metaData` action of the loaded version, as in the log (camelCase JSON).
    pub fn metadata_action(&self) -> Result<Value> {
        let snapshot = self.delta.snapshot().map_err(|e| self.delta_error(e))?;
        serde_json::to_value(snapshot.metadata())
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot encode metadata: {e}")))
    }

    /// The `protocol` action of the loaded version, as in the log (camelCase JSON).
    pub fn protocol_action(&self) -> Result<Value> {
        let snapshot = self.delta.snapshot().map_err(|e| self.delta_error(e))?;
        serde_json::to_value(snapshot.protocol())
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot encode protocol: {e}")))
    }

    /// The last version recorded for application `app_id` by a `txn` action, if any.
    pub async fn app_transaction_version(&self, app_id: &str) -> Result<Option<i64>> {
        self.delta
            .snapshot()
            .map_err(|e| self.delta_error(e))?
            .transaction_version(self.delta.log_store().as_ref(), app_id)
            .await
            .map_err(|e| self.delta_error(e))
    }

    /// The first and last versions whose commit files are still in the log.
    pub async fn version_range(&self) -> Result<(u64, u64)> {
        commit_log::commit_range(self.delta.log_store().as_ref(), self.name()).await
    }

    /// The time version `version` was committed (from the log).
    pub async fn commit_time(&self, version: u64) -> Result<DateTime<Utc>> {
        Ok(
            commit_log::read_commit(self.delta.log_store().as_ref(), self.name(), version)
                .await?
                .timestamp,
        )
    }

    /// The latest version committed at or before `at`, by the adjusted timestamps time
    /// travel uses (`NotFound` before the first commit).
    pub async fn version_at(&self, at: DateTime<Utc>) -> Result<u64> {
        commit_log::version_as_of(self.delta.log_store().as_ref(), self.name(), at).await
    }

    /// The earliest version committed at or after `at`, by the adjusted timestamps time
    /// travel uses (`NotFound` after the last commit).
    pub async fn first_version_since(&self, at: DateTime<Utc>) -> Result<u64> {
        commit_log::version_since(self.delta.log_store().as_ref(), self.name(), at).await
    }

    /// The actions of the commit that created `version`, one JSON object per log line.
    pub async fn commit_actions(&self, version: u64) -> Result<Vec<Value>> {
        let log_store = self.delta.log_store();
        let bytes = commit_log::read_commit_bytes(log_store.as_ref(), self.name(), version).await?;
        commit_log::log_lines(&bytes)
            .map(|line| commit_log::parse_action(self.name(), version, line))
            .collect()
    }

    /// The commit that created `version` (its time, operation...) and its actions, from one
    /// read of the commit file.
    pub async fn commit_with_actions(&self, version: u64) -> Result<(Commit, Vec<Value>)> {
        commit_log::read_commit_with_actions(self.delta.log_store().as_ref(), self.name(), version)
            .await
    }

    /// Whether the commit creating `version` is in the log at `location` (one metadata
    /// request, no log replay): a cheap "has this table changed since version N?".
    pub async fn has_commit(location: &TableLocation, version: u64) -> Result<bool> {
        if let Some(dir) = location.local_path() {
            let file = dir.join("_delta_log").join(format!("{version:020}.json"));
            // One stat of a local file takes microseconds: done here rather than handed to
            // tokio's blocking pool (two thread hand-offs per call, see docs/performance.md).
            return Ok(file.try_exists().unwrap_or(false));
        }
        let delta = Self::unloaded(location)?;
        let store = delta.log_store().object_store(None);
        let path = StorePath::from(format!("_delta_log/{version:020}.json"));
        match ObjectStoreExt::head(store.as_ref(), &path).await {
            Ok(_) => Ok(true),
            Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(read_error(path.as_ref(), e)),
        }
    }

    /// Opens `path` (relative to the table root at `location`) for reading, without loading
    /// the table: one metadata request for its size. Paths that could leave the root are
    /// refused.
    pub async fn open_file(location: &TableLocation, path: &str) -> Result<TableFile> {
        if !is_table_relative(path) {
            return Err(Error::invalid(format!("`{path}` is not a data file path")));
        }
        let store = Self::unloaded(location)?.log_store().object_store(None);
        let file = store_path(path);
        let meta = ObjectStoreExt::head(store.as_ref(), &file)
            .await
            .map_err(|e| read_error(path, e))?;
        Ok(TableFile {
            store,
            file,
            label: path.to_string(),
            size: meta.size,
        })
    }
}

/// A data file of a table, opened by [`Table::open_file`].
pub struct TableFile {
    store: deltalake::logstore::ObjectStoreRef,
    file: StorePath,
    label: String,
    /// Its size in bytes.
    pub size: u64,
}

impl TableFile {
    /// Streams bytes `range` of the file.
    pub async fn read(
        &self,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(&self.file, options)
            .await
            .map_err(|e| read_error(&self.label, e))?;
        let label = self.label.clone();
        Ok(Box::pin(
            result.into_stream().map_err(move |e| read_error(&label, e)),
        ))
    }
}

fn read_error(path: &str, e: deltalake::ObjectStoreError) -> Error {
    match e {
        deltalake::ObjectStoreError::NotFound { .. } => {
            Error::not_found(format!("no file `{path}`"))
        }
        e => Error::new(ErrorKind::Internal, format!("cannot read `{path}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_table_files() {
        for ok in [
            "part-0.parquet",
            "region=EU/part-0.parquet",
            "a%20b/c.parquet",
        ] {
            assert!(is_table_relative(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../other/part-0.parquet",
            "a/../../b",
            "./a",
            "a//b",
            "s3://bucket/x.parquet",
            "file:///etc/passwd",
            "_delta_log/00000000000000000000.json",
            "a\\..\\b",
        ] {
            assert!(!is_table_relative(bad), "{bad}");
        }
    }
}
