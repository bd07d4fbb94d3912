//! SQL over tables: each table is registered at one snapshot (latest, a version, or as of
//! a time), so a query sees one consistent state of every table it reads.

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::execution::context::SQLOptions;
use deltalake::datafusion::execution::SendableRecordBatchStream;
use deltalake::datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::location::TableLocation;
use crate::table::Table;
use crate::time_travel::TimeTravel;

/// A table to register under a SQL name.
#[derive(Debug, Clone)]
pub struct QueryTable {
    /// The name SQL uses.
    pub name: String,
    /// Where the table lives.
    pub location: TableLocation,
}

/// A running query.
pub struct QueryResult {
    /// The result's columns.
    pub schema: SchemaRef,
    /// The rows, batch by batch.
    pub stream: SendableRecordBatchStream,
    /// The version read of each table, by SQL name.
    pub versions: Vec<(String, u64)>,
}

impl Table {
    /// Runs one read-only SQL statement (DataFusion dialect) over `tables` at `at`.
    pub async fn query(sql: &str, tables: &[QueryTable], at: &TimeTravel) -> Result<QueryResult> {
        if sql.trim().is_empty() {
            return Err(Error::invalid("the SQL statement is empty"));
        }
        let ctx = SessionContext::new();
        ctx.register_udf(
            deltalake::datafusion::logical_expr::ScalarUDF::new_from_impl(
                crate::date_trunc::UtcDateTrunc::new(),
            ),
        );
        let mut versions = Vec::new();
        for t in tables {
            let name = t.name.to_ascii_lowercase();
            if versions.iter().any(|(n, _)| *n == name) {
                return Err(Error::invalid(format!(
                    "the table name `{name}` is given twice"
                )));
            }
            let table = Table::open(&t.location, at).await?;
            let provider = table.sql_provider(&ctx.state()).await?;
            ctx.register_table(name.as_str(), provider)?;
            versions.push((name, table.version()));
        }
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await.map_err(|e| {
            let err = Error::from(e);
            if err.message().contains("not found") && tables.is_empty() {
                err.context("no tables are registered (pass --table NAME=TABLE)")
            } else {
                err
            }
        })?;
        let schema = SchemaRef::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await?;
        Ok(QueryResult {
            schema,
            stream,
            versions,
        })
    }
}
