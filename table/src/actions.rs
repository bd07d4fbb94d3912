//! A table's log as types: the data files of a version ([`DataFile`]), what each commit
//! added, removed or recorded as change data ([`FileAction`], [`CommitChanges`]), and a
//! version's `metaData` and `protocol` ([`TableMetadata`], [`TableProtocol`]). This is the
//! one place outside deltalake that reads `_delta_log` actions: servers (Delta Sharing, an
//! Iceberg projection) consume these types and never parse the log themselves.
//!
//! Paths are decoded (as on storage, relative to the table root), partition values are
//! strings (`None` for null), and statistics keep the log's JSON text (which Delta Sharing
//! hands on verbatim) with [`DataFile::stats`] parsing it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::commit_log::{self, Commit};
use crate::error::{Error, ErrorKind, Result};
use crate::location::TableLocation;
use crate::table::Table;

/// One data file, as a version's snapshot or a commit's `add`/`remove`/`cdc` names it.
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
    /// The statistics JSON recorded in the log, if any, as written (see [`DataFile::stats`]).
    pub stats_json: Option<String>,
    /// The rows of the file a deletion vector marks as deleted, if any.
    pub deletion_vector: Option<DeletionVector>,
}

impl DataFile {
    /// The recorded statistics, parsed; `None` when there are none or they do not parse.
    pub fn stats(&self) -> Option<FileStats> {
        serde_json::from_str(self.stats_json.as_deref()?).ok()
    }

    /// The row count from the statistics, when recorded.
    pub fn num_records(&self) -> Option<u64> {
        self.stats()?.num_records
    }

    /// Whether some rows of the file are deleted by a deletion vector.
    pub fn has_deletion_vector(&self) -> bool {
        self.deletion_vector.is_some()
    }
}

/// A file's statistics (the log's `stats`): counts and per-column bounds. Nested columns
/// nest as JSON objects, as in the log.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStats {
    /// Rows in the file.
    pub num_records: Option<u64>,
    /// Nulls per column.
    #[serde(default)]
    pub null_count: Map<String, Value>,
    /// Smallest value per column.
    #[serde(default)]
    pub min_values: Map<String, Value>,
    /// Largest value per column.
    #[serde(default)]
    pub max_values: Map<String, Value>,
}

/// Where a deletion vector is and how many rows it deletes (the log's
/// `deletionVector` descriptor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionVector {
    /// `u` (a file named by a UUID), `i` (inline) or `p` (an absolute path).
    pub storage_type: String,
    /// The UUID, the inline bytes or the path, as the storage type says.
    pub path_or_inline_dv: String,
    /// Where the vector starts in its file (absent when inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i32>,
    /// Its size in bytes.
    pub size_in_bytes: i32,
    /// How many rows it deletes.
    pub cardinality: i64,
}

impl DeletionVector {
    /// For a vector in a file of the table (`u`), that file's path relative to the table
    /// root: `[prefix/]deletion_vector_<uuid>.bin`, the last 20 characters of
    /// `pathOrInlineDv` being the UUID in Z85. `None` for an inline vector (`i`), an absolute
    /// path (`p`), a descriptor that does not decode, and a path that would leave the table
    /// (the log is in the hands of whoever can write the table: see
    /// [`crate::is_table_relative`]).
    pub fn relative_path(&self) -> Option<String> {
        if self.storage_type != "u" {
            return None;
        }
        let bytes = self.path_or_inline_dv.as_bytes();
        let prefix_len = bytes.len().checked_sub(20)?;
        let uuid = z85::decode(&bytes[prefix_len..]).ok()?;
        let uuid = uuid::Uuid::from_slice(&uuid).ok()?;
        let prefix = std::str::from_utf8(&bytes[..prefix_len]).ok()?;
        let path = if prefix.is_empty() {
            format!("deletion_vector_{uuid}.bin")
        } else {
            format!("{prefix}/deletion_vector_{uuid}.bin")
        };
        crate::is_table_relative(&path).then_some(path)
    }
}

/// What one commit did to one data file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileAction {
    /// The file was added (`add`).
    Add {
        /// The file.
        file: DataFile,
        /// `false` when the commit only rearranged data (compaction): readers of changes skip it.
        data_change: bool,
    },
    /// The file was removed (`remove`).
    Remove {
        /// The file.
        file: DataFile,
        /// As for [`FileAction::Add`].
        data_change: bool,
        /// When it was removed, ms since the epoch, when recorded.
        deletion_timestamp: Option<i64>,
    },
    /// The file holds change data the commit wrote (`cdc`), with a `_change_type` column.
    Cdc {
        /// The file.
        file: DataFile,
    },
}

impl FileAction {
    /// The file the action names.
    pub fn file(&self) -> &DataFile {
        match self {
            FileAction::Add { file, .. }
            | FileAction::Remove { file, .. }
            | FileAction::Cdc { file } => file,
        }
    }

    /// Whether the action changed the table's data (always true for change data).
    pub fn data_change(&self) -> bool {
        match self {
            FileAction::Add { data_change, .. } | FileAction::Remove { data_change, .. } => {
                *data_change
            }
            FileAction::Cdc { .. } => true,
        }
    }
}

/// One action of a commit, in log order.
#[derive(Debug, Clone, PartialEq)]
pub enum LogAction {
    /// A data file added, removed or written as change data.
    File(FileAction),
    /// The commit changed the table's metadata (schema, properties...).
    Metadata(Box<TableMetadata>),
    /// The commit changed the table's protocol.
    Protocol(TableProtocol),
    /// Anything else (`commitInfo`, `txn`, domain metadata...).
    Other,
}

/// A commit and its actions, in log order (so an action's index is its place in the
/// commit, which stays the same on every read).
#[derive(Debug, Clone)]
pub struct CommitChanges {
    /// The commit (version, time, operation...).
    pub commit: Commit,
    /// Its actions.
    pub actions: Vec<LogAction>,
}

impl CommitChanges {
    /// Whether the commit wrote change data (`cdc` files).
    pub fn has_change_data(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, LogAction::File(FileAction::Cdc { .. })))
    }
}

/// A version's `metaData` action. Serializes exactly as the log writes it (camelCase), so a
/// protocol that passes Delta metadata through (Delta Sharing's `delta` format) renders it
/// with serde.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableMetadata {
    /// The table's unique id.
    pub id: String,
    /// A user-given name.
    pub name: Option<String>,
    /// A user-given description.
    pub description: Option<String>,
    /// How the data files are encoded.
    pub format: FileFormat,
    /// The schema, as Delta schema JSON text.
    pub schema_string: String,
    /// The partition columns, in order.
    pub partition_columns: Vec<String>,
    /// When this metadata was written, ms since the epoch.
    pub created_time: Option<i64>,
    /// The table properties (`delta.*` and user ones).
    pub configuration: BTreeMap<String, String>,
}

impl TableMetadata {
    /// A table property, if set.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.configuration.get(key).map(String::as_str)
    }

    /// The schema, parsed.
    pub fn schema(&self) -> Result<deltalake::kernel::StructType> {
        serde_json::from_str(&self.schema_string).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("table `{}` has an unreadable schema: {e}", self.id),
            )
        })
    }
}

/// The data files' encoding (`metaData.format`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFormat {
    /// Always `parquet`.
    pub provider: String,
    /// Encoding options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// A version's `protocol` action. Serializes exactly as the log writes it (the feature lists
/// only where the versions call for them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableProtocol {
    /// The reader version a client must implement.
    pub min_reader_version: i32,
    /// The writer version a client must implement.
    pub min_writer_version: i32,
    /// Reader features (reader version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader_features: Option<Vec<String>>,
    /// Writer features (writer version 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_features: Option<Vec<String>>,
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
                stats_json: f.stats(),
                deletion_vector: f.deletion_vector_descriptor().map(|d| DeletionVector {
                    storage_type: d.storage_type.to_string(),
                    path_or_inline_dv: d.path_or_inline_dv,
                    offset: d.offset,
                    size_in_bytes: d.size_in_bytes,
                    cardinality: d.cardinality,
                }),
            })
            .collect())
    }

    /// The `metaData` of the loaded version.
    pub fn metadata(&self) -> Result<TableMetadata> {
        let snapshot = self.delta.snapshot().map_err(|e| self.delta_error(e))?;
        retype(self.name(), "metadata", snapshot.metadata())
    }

    /// The `protocol` of the loaded version.
    pub fn protocol(&self) -> Result<TableProtocol> {
        let snapshot = self.delta.snapshot().map_err(|e| self.delta_error(e))?;
        retype(self.name(), "protocol", snapshot.protocol())
    }

    /// The commit that created `version` (its time, operation...) and its actions as types,
    /// from one read of the commit file.
    pub async fn commit_changes(&self, version: u64) -> Result<CommitChanges> {
        let (commit, actions) = commit_log::read_commit_with_actions(
            self.delta.log_store().as_ref(),
            self.name(),
            version,
        )
        .await?;
        let actions = actions
            .iter()
            .map(|a| log_action(self.name(), version, a))
            .collect::<Result<_>>()?;
        Ok(CommitChanges { commit, actions })
    }
}

/// A table's log read commit by commit, without loading a snapshot of the table: what a
/// reader that keeps its own state (the Iceberg projection) needs to follow new versions
/// at the cost of the new commits alone.
pub struct TableLog {
    /// The table, not loaded: only its log store is used.
    unloaded: Table,
}

impl TableLog {
    /// The log of the table at `location` (nothing is read yet).
    pub fn open(location: &TableLocation) -> Result<Self> {
        Ok(Self {
            unloaded: Table {
                location: location.clone(),
                delta: Table::existing(location)?,
            },
        })
    }

    /// The commit that created `version` and its actions, as [`Table::commit_changes`].
    pub async fn commit_changes(&self, version: u64) -> Result<CommitChanges> {
        self.unloaded.commit_changes(version).await
    }

    /// The last version of an unbroken run of commits after `known` (which exists):
    /// `known` itself when there is none.
    pub async fn last_version_after(&self, known: u64) -> Result<u64> {
        let mut last = known;
        while Table::has_commit(&self.unloaded.location, last + 1).await? {
            last += 1;
        }
        Ok(last)
    }
}

/// deltalake's own action type as ours: both serialize as the log does.
fn retype<T: Serialize, U: serde::de::DeserializeOwned>(
    table: &str,
    what: &str,
    value: &T,
) -> Result<U> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("`{table}`: cannot read the {what}: {e}"),
            )
        })
}

/// One log line's action as a type.
fn log_action(table: &str, version: u64, action: &Value) -> Result<LogAction> {
    let malformed = |what: &str, e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Internal,
            format!("`{table}`: version {version} has a malformed `{what}` action: {e}"),
        )
    };
    let file = |what: &str, a: &Value| -> Result<(DataFile, bool, Option<i64>)> {
        let raw: RawFileAction =
            serde_json::from_value(a.clone()).map_err(|e| malformed(what, &e))?;
        Ok(raw.into_file())
    };
    Ok(if let Some(a) = action.get("add") {
        let (file, data_change, _) = file("add", a)?;
        LogAction::File(FileAction::Add { file, data_change })
    } else if let Some(a) = action.get("remove") {
        let (file, data_change, deletion_timestamp) = file("remove", a)?;
        LogAction::File(FileAction::Remove {
            file,
            data_change,
            deletion_timestamp,
        })
    } else if let Some(a) = action.get("cdc") {
        let (file, _, _) = file("cdc", a)?;
        LogAction::File(FileAction::Cdc { file })
    } else if let Some(a) = action.get("metaData") {
        LogAction::Metadata(Box::new(
            serde_json::from_value(a.clone()).map_err(|e| malformed("metaData", &e))?,
        ))
    } else if let Some(a) = action.get("protocol") {
        LogAction::Protocol(
            serde_json::from_value(a.clone()).map_err(|e| malformed("protocol", &e))?,
        )
    } else {
        LogAction::Other
    })
}

/// The fields `add`, `remove` and `cdc` share, as the log writes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFileAction {
    path: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    modification_time: i64,
    #[serde(default)]
    partition_values: BTreeMap<String, Option<String>>,
    #[serde(default)]
    stats: Option<String>,
    #[serde(default)]
    deletion_vector: Option<DeletionVector>,
    #[serde(default = "yes")]
    data_change: bool,
    #[serde(default)]
    deletion_timestamp: Option<i64>,
}

fn yes() -> bool {
    true
}

impl RawFileAction {
    fn into_file(self) -> (DataFile, bool, Option<i64>) {
        let file = DataFile {
            path: percent_decode(&self.path),
            size: self.size,
            modification_time: self.modification_time,
            partition_values: self.partition_values,
            stats_json: self.stats,
            deletion_vector: self.deletion_vector,
        };
        (file, self.data_change, self.deletion_timestamp)
    }
}

/// A log path (a URI path, percent-encoded) as on storage.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_paths_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b/c%3D.parquet"), "a b/c=.parquet");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("x%zz"), "x%zz");
    }

    #[test]
    fn file_actions_become_types() {
        let add = json!({"add": {"path": "region=EU/a%20b.parquet", "size": 10,
            "modificationTime": 5, "partitionValues": {"region": "EU", "day": null},
            "dataChange": false, "stats": "{\"numRecords\":3,\"nullCount\":{\"id\":0}}",
            "deletionVector": {"storageType": "u", "pathOrInlineDv": "vBn[lx{q8@P<9BNH/isA", "offset": 1,
                "sizeInBytes": 36, "cardinality": 2}}});
        let LogAction::File(FileAction::Add { file, data_change }) =
            log_action("t", 1, &add).unwrap()
        else {
            panic!("not an add");
        };
        assert!(!data_change);
        assert_eq!(file.path, "region=EU/a b.parquet");
        assert_eq!(file.partition_values["region"].as_deref(), Some("EU"));
        assert_eq!(file.partition_values["day"], None);
        assert_eq!(file.num_records(), Some(3));
        assert_eq!(file.stats().unwrap().null_count["id"], json!(0));
        let dv = file.deletion_vector.unwrap();
        assert_eq!(dv.cardinality, 2);
        assert_eq!(
            dv.relative_path().as_deref(),
            Some("deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin")
        );
        let with = |storage_type: &str, path: &str| DeletionVector {
            storage_type: storage_type.into(),
            path_or_inline_dv: path.into(),
            ..dv.clone()
        };
        assert_eq!(
            with("u", "ab^-aqEH.-t@S}K{vb[*k^")
                .relative_path()
                .as_deref(),
            Some("ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin")
        );
        for (t, p) in [
            ("u", "short"),
            ("u", "vBn[lx{q8@P<9BNH/is\u{e9}"),
            ("u", "../..vBn[lx{q8@P<9BNH/isA"),
            ("i", "vBn[lx{q8@P<9BNH/isA"),
            ("p", "s3://b/x.bin"),
        ] {
            assert_eq!(with(t, p).relative_path(), None, "{t} {p}");
        }

        let remove = json!({"remove": {"path": "b.parquet", "deletionTimestamp": 7}});
        let LogAction::File(FileAction::Remove {
            file,
            data_change,
            deletion_timestamp,
        }) = log_action("t", 1, &remove).unwrap()
        else {
            panic!("not a remove");
        };
        assert!(data_change && deletion_timestamp == Some(7) && file.stats().is_none());
        let cdc = json!({"cdc": {"path": "_change_data/c.parquet", "size": 3,
            "partitionValues": {}, "dataChange": false}});
        assert!(matches!(
            log_action("t", 1, &cdc).unwrap(),
            LogAction::File(FileAction::Cdc { .. })
        ));
        assert_eq!(
            log_action("t", 1, &json!({"commitInfo": {}})).unwrap(),
            LogAction::Other
        );
        let err = log_action("t", 4, &json!({"add": {"size": 1}})).unwrap_err();
        assert!(err.message().contains("version 4"), "{}", err.message());
    }

    #[test]
    fn metadata_and_protocol_render_as_the_log_writes_them() {
        let metadata = json!({"id": "x", "name": null, "description": null,
            "format": {"provider": "parquet", "options": {}}, "schemaString": "{}",
            "partitionColumns": ["p"], "createdTime": 1, "configuration": {"a": "b"}});
        let LogAction::Metadata(m) = log_action("t", 0, &json!({ "metaData": metadata })).unwrap()
        else {
            panic!("not metadata");
        };
        assert_eq!(m.property("a"), Some("b"));
        assert_eq!(serde_json::to_value(&m).unwrap(), metadata);
        let protocol = json!({"minReaderVersion": 1, "minWriterVersion": 2});
        let LogAction::Protocol(p) = log_action("t", 0, &json!({ "protocol": protocol })).unwrap()
        else {
            panic!("not protocol");
        };
        assert_eq!(serde_json::to_value(&p).unwrap(), protocol);
    }
}
