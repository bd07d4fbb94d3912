//! What `describe` reports: schema, partitioning, properties, protocol, version and size.

use std::collections::BTreeMap;

use serde::Serialize;

use deltalake::arrow::array::{Array, Int64Array, RecordBatch};
use deltalake::kernel::engine::arrow_data::ArrowEngineData;
use deltalake::kernel::{Metadata, Protocol, Snapshot, StructType};
use futures::StreamExt;

use crate::commit_log::{self, format_timestamp};
use crate::error::{Error, ErrorKind, Result};
use crate::location::TableLocation;
use crate::schema_text::type_text;
use crate::table::{version_error, Table};
use crate::time_travel::TimeTravel;

/// One column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDescription {
    /// Column name.
    pub name: String,
    /// Spark type text (`bigint`, `decimal(12,2)`...).
    #[serde(rename = "type")]
    pub type_text: String,
    /// Whether nulls are allowed.
    pub nullable: bool,
}

/// A table at one version.
#[derive(Debug, Clone, Serialize)]
pub struct TableDescription {
    /// The table's location URL.
    pub location: String,
    /// The described version.
    pub version: u64,
    /// The table id (from its metadata).
    pub id: String,
    /// Table name from the metadata, if any.
    pub name: Option<String>,
    /// The description (comment).
    pub comment: Option<String>,
    /// When version 0 was created (RFC 3339), if recorded.
    pub created_at: Option<String>,
    /// Columns in order.
    pub schema: Vec<ColumnDescription>,
    /// Partition columns.
    pub partition_columns: Vec<String>,
    /// Table properties.
    pub properties: BTreeMap<String, String>,
    /// Minimum reader protocol version.
    pub min_reader_version: i32,
    /// Minimum writer protocol version.
    pub min_writer_version: i32,
    /// Reader features, for protocol 3.
    pub reader_features: Vec<String>,
    /// Writer features, for protocol 7.
    pub writer_features: Vec<String>,
    /// Number of data files in this version.
    pub num_files: usize,
    /// Total size of the data files in bytes.
    pub size_bytes: u64,
}

impl Table {
    /// Describes the loaded version.
    pub fn describe(&self) -> Result<TableDescription> {
        let state = self.delta.snapshot().map_err(|e| self.delta_error(e))?;
        let files = state.log_data();
        let size_bytes = files.iter().map(|f| f.size().max(0) as u64).sum();
        Ok(description(
            &self.location,
            self.version(),
            state.metadata(),
            state.protocol(),
            &state.schema(),
            (files.num_files(), size_bytes),
        ))
    }

    /// Describes the table at `at` without loading it: only the protocol, the metadata and
    /// each live file's path and size are read from the log, not the files' statistics, which
    /// a full [`Table::open`] parses and which dominate opening a table of many files.
    pub async fn describe_at(
        location: &TableLocation,
        at: &TimeTravel,
    ) -> Result<TableDescription> {
        let name = location.display_name();
        let delta = Self::existing(location)?;
        let log_store = delta.log_store();
        let version = match at {
            TimeTravel::Latest => None,
            TimeTravel::Version(v) => Some(*v),
            TimeTravel::AsOf(t) => {
                Some(commit_log::version_as_of(log_store.as_ref(), name, *t).await?)
            }
        };
        let snapshot = match Snapshot::try_new(log_store.as_ref(), version).await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                return Err(match at {
                    TimeTravel::Version(v) => {
                        version_error(log_store.as_ref(), name, *v, err).await
                    }
                    _ => Error::from_delta(name, err),
                });
            }
        };
        let scan = snapshot
            .scan_builder()
            .with_skip_stats(true)
            .build()
            .map_err(|e| Error::from_delta(name, e))?;
        let mut batches = scan.scan_metadata(log_store.engine(None));
        let (mut num_files, mut size_bytes) = (0usize, 0u64);
        while let Some(meta) = batches.next().await {
            let meta = meta.map_err(|e| Error::from_delta(name, e))?;
            let (data, selected) = meta.scan_files.into_parts();
            let data = ArrowEngineData::try_from_engine_data(data)
                .map_err(|e| Error::from_delta(name, e.into()))?;
            let (count, size) =
                live_file_sizes(data.record_batch(), &selected).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("the log of `{name}` lists files without sizes"),
                    )
                })?;
            num_files += count;
            size_bytes += size;
        }
        Ok(description(
            location,
            snapshot.version(),
            snapshot.metadata(),
            snapshot.protocol(),
            &snapshot.schema(),
            (num_files, size_bytes),
        ))
    }
}

/// The number and total size of the files one batch of scan metadata keeps (rows past the
/// end of the selection vector are kept, as the kernel defines it).
fn live_file_sizes(batch: &RecordBatch, selected: &[bool]) -> Option<(usize, u64)> {
    let sizes = batch
        .column_by_name("size")?
        .as_any()
        .downcast_ref::<Int64Array>()?;
    let mut count = 0;
    let mut total = 0u64;
    for row in 0..batch.num_rows() {
        if selected.get(row).copied().unwrap_or(true) {
            count += 1;
            total += sizes.value(row).max(0) as u64;
        }
    }
    Some((count, total))
}

fn description(
    location: &TableLocation,
    version: u64,
    metadata: &Metadata,
    protocol: &Protocol,
    schema: &StructType,
    (num_files, size_bytes): (usize, u64),
) -> TableDescription {
    TableDescription {
        location: location.url().to_string(),
        version,
        id: metadata.id().to_string(),
        name: metadata.name().map(str::to_string),
        comment: metadata.description().map(str::to_string),
        created_at: metadata
            .created_time()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| format_timestamp(&t)),
        schema: schema
            .fields()
            .map(|f| ColumnDescription {
                name: f.name().clone(),
                type_text: type_text(f.data_type()),
                nullable: f.is_nullable(),
            })
            .collect(),
        partition_columns: metadata.partition_columns().to_vec(),
        properties: metadata.configuration().clone().into_iter().collect(),
        min_reader_version: protocol.min_reader_version(),
        min_writer_version: protocol.min_writer_version(),
        reader_features: feature_names(protocol.reader_features()),
        writer_features: feature_names(protocol.writer_features()),
        num_files,
        size_bytes,
    }
}

fn feature_names<T: ToString>(list: Option<&[T]>) -> Vec<String> {
    list.unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}
