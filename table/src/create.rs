//! Creating a table: schema, partitioning, comment and properties in version 0.

use std::collections::HashMap;

use deltalake::kernel::{DataType, StructField};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::SaveMode;

use crate::error::{Error, ErrorKind, Result};
use crate::location::TableLocation;
use crate::table::Table;

/// What `create` writes into version 0.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The columns.
    pub columns: Vec<StructField>,
    /// Partition columns (must be columns of the schema, of primitive type).
    pub partition_by: Vec<String>,
    /// A description for the table.
    pub comment: Option<String>,
    /// Table properties such as `delta.checkpointInterval` (which defaults to
    /// [`DEFAULT_CHECKPOINT_INTERVAL`]).
    pub properties: HashMap<String, String>,
}

impl CreateOptions {
    /// Options with these columns and nothing else.
    pub fn new(columns: Vec<StructField>) -> Self {
        Self {
            columns,
            ..Self::default()
        }
    }
}

/// The checkpoint interval of the tables Tarn creates, unless `delta.checkpointInterval` is
/// given: the default of Delta's reference implementation (Spark). deltalake's own default
/// is 100, so a reader replays up to 99 commit files after the last checkpoint, each read
/// twice (once for the protocol and metadata, once for the files). At 10, a one-row
/// `tarn write` on a young table took 21 ms instead of 45 ms (docs/performance.md); a
/// checkpoint every 10 commits costs a few milliseconds each on a table of a thousand files.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10;

/// `properties` with Tarn's defaults for a new table added where not given.
pub(crate) fn with_default_properties(
    properties: impl IntoIterator<Item = (String, String)>,
) -> HashMap<String, String> {
    let mut properties: HashMap<String, String> = properties.into_iter().collect();
    properties
        .entry(CHECKPOINT_INTERVAL.to_string())
        .or_insert_with(|| DEFAULT_CHECKPOINT_INTERVAL.to_string());
    properties
}

const CHECKPOINT_INTERVAL: &str = "delta.checkpointInterval";

impl Table {
    /// Creates a new, empty table at `location` (version 0). Fails if a table exists there.
    pub async fn create(location: &TableLocation, options: CreateOptions) -> Result<Table> {
        let name = location.display_name();
        if options.columns.is_empty() {
            return Err(Error::invalid("a table needs at least one column"));
        }
        for p in &options.partition_by {
            let field = options
                .columns
                .iter()
                .find(|f| f.name() == p)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "partition column `{p}` is not in the schema (columns: {})",
                        options
                            .columns
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            if !matches!(field.data_type(), DataType::Primitive(_)) {
                return Err(Error::invalid(format!(
                    "partition column `{p}` must have a primitive type"
                )));
            }
        }
        if Table::open_if_exists(location).await?.is_some() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a table already exists at `{name}`"),
            ));
        }
        let mut builder = CreateBuilder::new()
            .with_location(location.url().as_str())
            .with_storage_options(location.storage_options().clone())
            .with_columns(options.columns)
            .with_partition_columns(options.partition_by)
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_raise_if_key_not_exists(true)
            .with_configuration(
                with_default_properties(options.properties)
                    .into_iter()
                    .map(|(k, v)| (k, Some(v))),
            );
        if let Some(comment) = options.comment {
            builder = builder.with_comment(comment);
        }
        let delta = Table::with_local_dir(location, async {
            builder.await.map_err(|e| Error::from_delta(name, e))
        })
        .await?;
        Ok(Table {
            location: location.clone(),
            delta,
        })
    }
}
