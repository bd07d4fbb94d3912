//! A table's columns as Unity Catalog lists them, from its current Delta schema, and
//! [`ColumnsCache`], which keeps them until the table's next commit.

use std::sync::Arc;

use tarn_table::deltalake::kernel::{DataType, PrimitiveType};
use tarn_table::{Table, TableLocation, TimeTravel};

use super::wire::Column;
use crate::error::ApiError;
use crate::limits::TableOpens;

/// Unity Catalog's `type_name` for a Delta type.
fn type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Primitive(p) => match p {
            PrimitiveType::String => "STRING",
            PrimitiveType::Long => "LONG",
            PrimitiveType::Integer => "INT",
            PrimitiveType::Short => "SHORT",
            PrimitiveType::Byte => "BYTE",
            PrimitiveType::Float => "FLOAT",
            PrimitiveType::Double => "DOUBLE",
            PrimitiveType::Boolean => "BOOLEAN",
            PrimitiveType::Binary => "BINARY",
            PrimitiveType::Date => "DATE",
            PrimitiveType::Timestamp => "TIMESTAMP",
            PrimitiveType::TimestampNtz => "TIMESTAMP_NTZ",
            PrimitiveType::Decimal(_) => "DECIMAL",
            _ => "USER_DEFINED_TYPE",
        },
        DataType::Array(_) => "ARRAY",
        DataType::Map(_) => "MAP",
        DataType::Struct(_) => "STRUCT",
        DataType::Variant(_) => "VARIANT",
    }
}

/// The table's columns from its current Delta schema.
fn columns(table: &Table) -> Result<Vec<Column>, ApiError> {
    let schema = table.schema()?;
    let partitions = table.partition_columns()?;
    Ok(schema
        .fields()
        .enumerate()
        .map(|(position, f)| {
            let (type_precision, type_scale) = match f.data_type() {
                DataType::Primitive(PrimitiveType::Decimal(d)) => {
                    (d.precision() as i64, d.scale() as i64)
                }
                _ => (0, 0),
            };
            Column {
                name: f.name().to_string(),
                type_text: tarn_table::type_text(f.data_type()),
                type_json: serde_json::to_string(f).unwrap_or_default(),
                type_name: type_name(f.data_type()).to_string(),
                type_precision,
                type_scale,
                position,
                nullable: f.is_nullable(),
                partition_index: partitions.iter().position(|p| p == f.name()),
            }
        })
        .collect())
}

/// Each table's columns as of its latest version, kept until a newer commit appears: a
/// request then costs one metadata lookup (is there a commit after the cached version?)
/// instead of a replay of the log. Tables are opened under the server-wide bound
/// ([`crate::limits::MAX_TABLE_OPENS`]).
#[derive(Debug, Default)]
pub struct ColumnsCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedColumns>>,
}

/// A table's version and its columns at that version.
type CachedColumns = (u64, Arc<Vec<Column>>);

impl ColumnsCache {
    /// The columns of the table at `location`, opening it (under `opens`) when the cache
    /// has none or older ones.
    pub(crate) async fn columns(
        &self,
        opens: &TableOpens,
        location: &TableLocation,
    ) -> Result<Arc<Vec<Column>>, ApiError> {
        let key = location.url().to_string();
        if let Some(columns) = self.current(location, &key).await? {
            return Ok(columns);
        }
        let _permit = opens.permit().await;
        // Another request may have opened the table while this one waited.
        if let Some(columns) = self.current(location, &key).await? {
            return Ok(columns);
        }
        let table = Table::open(location, &TimeTravel::Latest).await?;
        let columns = Arc::new(columns(&table)?);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, (table.version(), columns.clone()));
        }
        Ok(columns)
    }

    /// The cached columns of the table at `location`, if no commit came after them.
    async fn current(
        &self,
        location: &TableLocation,
        key: &str,
    ) -> Result<Option<Arc<Vec<Column>>>, ApiError> {
        let cached = self.entries.lock().ok().and_then(|e| e.get(key).cloned());
        let Some((version, columns)) = cached else {
            return Ok(None);
        };
        // Both lookups at once: on an object store each is a request.
        let (still_there, newer) = futures::try_join!(
            Table::has_commit(location, version),
            Table::has_commit(location, version + 1)
        )?;
        Ok((still_there && !newer).then_some(columns))
    }
}
