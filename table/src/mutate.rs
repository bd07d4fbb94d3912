//! Row-level changes by predicate: `delete` and `update`, each one commit.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::table::Table;

/// What a delete or update did.
#[derive(Debug, Clone, Serialize)]
pub struct MutationReport {
    /// The table as given.
    pub table: String,
    /// The version after the change (unchanged when no row matched).
    pub version: u64,
    /// `DELETE` or `UPDATE`.
    pub operation: String,
    /// Rows deleted or updated.
    pub rows: u64,
}

impl Table {
    /// Deletes the rows matching `predicate` (SQL).
    pub async fn delete_where(&self, predicate: &str) -> Result<(Table, MutationReport)> {
        if predicate.trim().is_empty() {
            return Err(Error::invalid("the --where predicate is empty"));
        }
        let (delta, metrics) = self
            .delta
            .clone()
            .delete()
            .with_session_state(crate::write::rewrite_session()?)
            .with_predicate(predicate)
            .with_commit_properties(crate::commit::commit_properties())
            .with_writer_properties(crate::write::writer_properties())
            .await
            .map_err(|e| self.delta_error(e))?;
        let table = self.committed(delta).await;
        let report = MutationReport {
            table: self.name().to_string(),
            version: table.version(),
            operation: "DELETE".into(),
            rows: metrics.num_deleted_rows.unwrap_or(0) as u64,
        };
        Ok((table, report))
    }

    /// Sets `column = expression` (SQL) on the rows matching `predicate` (all rows if `None`).
    pub async fn update_where(
        &self,
        assignments: &[(String, String)],
        predicate: Option<&str>,
    ) -> Result<(Table, MutationReport)> {
        if assignments.is_empty() {
            return Err(Error::invalid(
                "nothing to update: give at least one --set \"column = expression\"",
            ));
        }
        let schema = self.arrow_schema()?;
        let mut builder = self
            .delta
            .clone()
            .update()
            .with_session_state(crate::write::rewrite_session()?)
            .with_commit_properties(crate::commit::commit_properties())
            .with_writer_properties(crate::write::writer_properties());
        for (column, expression) in assignments {
            if schema.field_with_name(column).is_err() {
                return Err(Error::invalid(format!(
                    "`{column}` is not a column of `{}`",
                    self.name()
                )));
            }
            builder = builder.with_update(column.as_str(), expression.as_str());
        }
        if let Some(p) = predicate {
            builder = builder.with_predicate(p);
        }
        let (delta, metrics) = builder.await.map_err(|e| self.delta_error(e))?;
        let table = self.committed(delta).await;
        let report = MutationReport {
            table: self.name().to_string(),
            version: table.version(),
            operation: "UPDATE".into(),
            rows: metrics.num_updated_rows as u64,
        };
        Ok((table, report))
    }
}

/// Splits `col = expr` into its two sides.
pub fn parse_assignment(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((c, e)) if !c.trim().is_empty() && !e.trim().is_empty() => Ok((
            c.trim().trim_matches('"').trim_matches('`').to_string(),
            e.trim().to_string(),
        )),
        _ => Err(Error::invalid(format!(
            "`{text}` is not an assignment: write \"column = expression\""
        ))),
    }
}
