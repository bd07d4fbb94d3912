//! Delta Sharing's answers (`PROTOCOL.md`): the JSON of the list endpoints, and the lines
//! of the NDJSON answers (version metadata, files, the closing `endStreamAction`) in both
//! response formats: `parquet` (the protocol's own, simplest for clients) and `delta`
//! (Delta log actions passed through, with file paths replaced by pre-signed URLs).

use std::collections::BTreeMap;

use schemars::gen::SchemaGenerator;
use schemars::schema::Schema as JsonSchemaOf;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tarn_table::{TableMetadata, TableProtocol};

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `pageToken` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SharingShare")]
pub struct Share {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
}

/// The answer of get-share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SharingGetShare")]
pub struct GetShare {
    /// The share.
    pub share: Share,
}

/// A schema of a share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SharingSchema")]
pub struct Schema {
    /// Its name.
    pub name: String,
    /// The share.
    pub share: String,
}

/// A table of a share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingTable")]
pub struct Table {
    /// Its name in the share.
    pub name: String,
    /// Its schema in the share.
    pub schema: String,
    /// The share.
    pub share: String,
    /// The share's id.
    pub share_id: String,
    /// The shared table's id.
    pub id: String,
}

/// One line of an NDJSON answer: an object with one key, which says what the line is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SharingLine")]
pub enum Line {
    /// What a reader must support.
    #[serde(rename = "protocol")]
    Protocol(ProtocolLine),
    /// The table's metadata at a version.
    #[serde(rename = "metaData")]
    Metadata(Box<MetadataLine>),
    /// A file of a snapshot (and, in the `delta` format, any file).
    #[serde(rename = "file")]
    File(FileLine),
    /// A file a commit added (`parquet` format, history answers).
    #[serde(rename = "add")]
    Add(FileLine),
    /// A file a commit removed (`parquet` format, history answers).
    #[serde(rename = "remove")]
    Remove(FileLine),
    /// Change data a commit wrote (`parquet` format, changes answers).
    #[serde(rename = "cdf")]
    Cdf(FileLine),
    /// The last line: where the next page starts, or the error that cut the answer short.
    #[serde(rename = "endStreamAction")]
    EndStream(EndStreamAction),
}

/// The `protocol` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "SharingProtocolLine")]
pub enum ProtocolLine {
    /// `parquet` format: the reader version.
    Parquet(ParquetProtocol),
    /// `delta` format: the table's Delta protocol.
    Delta(DeltaProtocol),
}

/// The `protocol` line in the `parquet` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingParquetProtocol")]
pub struct ParquetProtocol {
    /// Always 1.
    pub min_reader_version: i32,
}

/// The `protocol` line in the `delta` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingDeltaProtocol")]
pub struct DeltaProtocol {
    /// The table's `protocol` action, as in its log.
    #[schemars(schema_with = "delta_protocol_schema")]
    pub delta_protocol: TableProtocol,
}

/// The `metaData` line: the table at one version, in either format, plus where it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingMetadataLine")]
pub struct MetadataLine {
    /// The metadata.
    #[serde(flatten)]
    pub metadata: Metadata,
    /// The version it describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// A snapshot's total size of files, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// A snapshot's number of files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_files: Option<usize>,
}

/// The metadata of a `metaData` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "SharingMetadata")]
pub enum Metadata {
    /// `delta` format: the table's `metaData` action, as in its log.
    Delta(DeltaMetadata),
    /// `parquet` format.
    Parquet(ParquetMetadata),
}

/// The `delta` format's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingDeltaMetadata")]
pub struct DeltaMetadata {
    /// The `metaData` action.
    #[schemars(schema_with = "delta_metadata_schema")]
    pub delta_metadata: TableMetadata,
}

/// The `parquet` format's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingParquetMetadata")]
pub struct ParquetMetadata {
    /// The table's unique id.
    pub id: String,
    /// A user-given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A user-given description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Always `{"provider": "parquet"}`.
    pub format: ParquetFormat,
    /// The schema, as Delta schema JSON text.
    pub schema_string: String,
    /// The partition columns.
    pub partition_columns: Vec<String>,
    /// The table properties.
    pub configuration: BTreeMap<String, String>,
    /// When the metadata was written, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
}

/// The data files' format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SharingParquetFormat")]
pub struct ParquetFormat {
    /// Always `parquet`.
    pub provider: String,
}

/// A file line, in either format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "SharingFileLine")]
pub enum FileLine {
    /// `delta` format.
    Delta(DeltaFile),
    /// `parquet` format.
    Parquet(ParquetFile),
}

/// A file in the `parquet` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingParquetFile")]
pub struct ParquetFile {
    /// The pre-signed URL.
    pub url: String,
    /// A stable id of the file.
    pub id: String,
    /// Its partition values (`null` for a null).
    pub partition_values: BTreeMap<String, Option<String>>,
    /// Its size in bytes.
    pub size: i64,
    /// Its statistics JSON, as in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    /// When the URL expires, ms since the epoch.
    pub expiration_timestamp: i64,
    /// History answers: the version of the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// History answers: the commit's time, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// A file in the `delta` format: a Delta action whose path is the pre-signed URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingDeltaFile")]
pub struct DeltaFile {
    /// A stable id of the file.
    pub id: String,
    /// The action.
    pub delta_single_action: DeltaSingleAction,
    /// When the URL expires, ms since the epoch.
    pub expiration_timestamp: i64,
    /// History answers: the version of the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// History answers: the commit's time, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// The action of a [`DeltaFile`], keyed by its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "SharingDeltaSingleAction")]
pub enum DeltaSingleAction {
    /// An added file (and every file of a snapshot).
    #[serde(rename = "add")]
    Add(DeltaFileAction),
    /// A removed file.
    #[serde(rename = "remove")]
    Remove(DeltaFileAction),
    /// Change data: the Delta action `cdc`, as in a table's log (the client replays these
    /// actions as a log of its own).
    #[serde(rename = "cdc")]
    Cdc(DeltaFileAction),
}

/// A Delta file action with a pre-signed URL for its path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingDeltaFileAction")]
pub struct DeltaFileAction {
    /// The pre-signed URL.
    pub path: String,
    /// Its partition values (`null` for a null).
    pub partition_values: BTreeMap<String, Option<String>>,
    /// Its size in bytes.
    pub size: i64,
    /// When it was written, ms since the epoch.
    pub modification_time: i64,
    /// Always true.
    pub data_change: bool,
    /// Its statistics JSON, as in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    /// A removed file: when (the commit's time), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    /// The rows of the file that are deleted: inline (`i`) as in the log, or (`p`) a
    /// pre-signed URL of the vector's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVector>,
}

/// A deletion vector as served: the log's descriptor, with a vector kept in a file of the
/// table (`u`) turned into a pre-signed URL (`p`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingDeletionVector")]
pub struct DeletionVector {
    /// `i` (inline) or `p` (the URL).
    pub storage_type: String,
    /// The inline bytes (Z85) or the URL.
    pub path_or_inline_dv: String,
    /// Where the vector starts in its file (absent when inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i32>,
    /// Its size in bytes.
    pub size_in_bytes: i32,
    /// How many rows it deletes.
    pub cardinality: i64,
}

/// The last line of a paged (or `includeendstreamaction`) answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SharingEndStreamAction")]
pub struct EndStreamAction {
    /// Pass as `pageToken` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    /// When the answer's first file URL expires, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_url_expiration_timestamp: Option<i64>,
    /// Why an answer already under way was cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// The schema of a Delta `protocol` action ([`TableProtocol`], which `tarn_table` keeps free
/// of wire concerns): its required versions, and feature lists.
fn delta_protocol_schema(_: &mut SchemaGenerator) -> JsonSchemaOf {
    delta_action_schema(
        "The table's Delta `protocol` action",
        &["minReaderVersion", "minWriterVersion"],
        &[],
    )
}

/// The schema of a Delta `metaData` action ([`TableMetadata`]).
fn delta_metadata_schema(_: &mut SchemaGenerator) -> JsonSchemaOf {
    delta_action_schema(
        "The table's Delta `metaData` action",
        &[
            "id",
            "format",
            "schemaString",
            "partitionColumns",
            "configuration",
        ],
        &["name", "description", "createdTime"],
    )
}

/// An object with `required` and `optional` properties (of any type), as the Delta log
/// writes the action.
fn delta_action_schema(description: &str, required: &[&str], optional: &[&str]) -> JsonSchemaOf {
    use schemars::schema as schemas;
    use schemas::{InstanceType, Metadata, ObjectValidation, SchemaObject};
    let any = || JsonSchemaOf::Bool(true);
    let properties = required
        .iter()
        .chain(optional)
        .map(|name| (name.to_string(), any()))
        .collect();
    SchemaObject {
        metadata: Some(Box::new(Metadata {
            description: Some(description.into()),
            ..Default::default()
        })),
        instance_type: Some(InstanceType::Object.into()),
        object: Some(Box::new(ObjectValidation {
            required: required.iter().map(|s| s.to_string()).collect(),
            properties,
            ..Default::default()
        })),
        ..Default::default()
    }
    .into()
}
