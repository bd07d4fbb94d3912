//! What `describe` reports: schema, partitioning, properties, protocol, version and size.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::commit_log::format_timestamp;
use crate::error::Result;
use crate::schema_text::type_text;
use crate::table::Table;

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
        let metadata = state.metadata();
        let protocol = state.protocol();
        let schema = state.schema();
        let files = state.log_data();
        let size_bytes = files.iter().map(|f| f.size().max(0) as u64).sum();
        Ok(TableDescription {
            location: self.location.url().to_string(),
            version: self.version(),
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
            num_files: files.num_files(),
            size_bytes,
        })
    }
}

fn feature_names<T: ToString>(list: Option<&[T]>) -> Vec<String> {
    list.unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}
