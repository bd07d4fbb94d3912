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
    /// Table properties such as `delta.checkpointInterval`.
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
            .with_configuration(options.properties.into_iter().map(|(k, v)| (k, Some(v))));
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
