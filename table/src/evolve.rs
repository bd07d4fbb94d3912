//! Schema and property changes that need no data rewrite: add columns, set properties.

use std::collections::HashMap;

use deltalake::kernel::StructField;

use crate::error::{Error, Result};
use crate::table::Table;

impl Table {
    /// Adds nullable columns (one commit). Existing rows read them as null.
    pub async fn add_columns(&self, columns: Vec<StructField>) -> Result<Table> {
        let schema = self.schema()?;
        for c in &columns {
            if schema
                .fields()
                .any(|f| f.name().eq_ignore_ascii_case(c.name()))
            {
                return Err(Error::invalid(format!(
                    "column `{}` already exists in `{}`",
                    c.name(),
                    self.name()
                )));
            }
            if !c.is_nullable() {
                return Err(Error::invalid(format!(
                    "column `{}` must be nullable: rows already in the table have no value for it",
                    c.name()
                )));
            }
        }
        let delta = self
            .delta
            .clone()
            .add_columns()
            .with_fields(columns)
            .with_commit_properties(crate::commit::maintenance_commit_properties())
            .await
            .map_err(|e| self.delta_error(e))?;
        Ok(self.committed(delta).await)
    }

    /// Sets table properties (one commit). Unknown `delta.*` keys are refused.
    pub async fn set_properties(&self, properties: HashMap<String, String>) -> Result<Table> {
        if properties.is_empty() {
            return Err(Error::invalid("no properties given (write KEY=VALUE)"));
        }
        let delta = self
            .delta
            .clone()
            .set_tbl_properties()
            .with_properties(properties)
            .with_raise_if_not_exists(true)
            .with_commit_properties(crate::commit::maintenance_commit_properties())
            .await
            .map_err(|e| self.delta_error(e))?;
        Ok(self.committed(delta).await)
    }
}
