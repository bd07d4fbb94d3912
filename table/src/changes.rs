//! Applying a batch of folded row changes (change data capture) as one commit: a MERGE that
//! deletes, updates and inserts by key, or, when the batch truncated the table, an
//! overwrite with the rows that survive.

use std::path::PathBuf;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::prelude::{col, lit, ParquetReadOptions, SessionContext};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::input::InputSource;
use crate::location::TableLocation;
use crate::table::Table;
use crate::write::{WriteMode, WriteOptions};

/// The rows of a [`ChangeBatch`].
#[derive(Debug, Clone)]
pub enum ChangeRows {
    /// In memory.
    Batch(RecordBatch),
    /// In a Parquet file, for a batch larger than memory should hold: the MERGE then sorts
    /// and joins within [`SPILLING_MERGE_MEMORY`] bytes, spilling to temporary files in the
    /// file's directory beyond.
    Parquet(PathBuf),
}

/// The memory pool of a MERGE whose rows come from a file ([`ChangeRows::Parquet`]).
pub const SPILLING_MERGE_MEMORY: usize = 256 << 20;

/// One batch of changes to one table.
///
/// `rows` holds, per row: the table's columns (`columns`, by name; a column the table
/// does not have yet is added), `__op` (`'U'`: the row exists after the batch, `'D'`: delete
/// the matched row), `__mk_<i>` (the key of the target row it matches, per key column `i`),
/// `__keep_<i>` per column index `i` in `kept` (true: keep the matched row's value, the
/// source did not send it) and `__any_keep`.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    /// The rows, as described above.
    pub rows: ChangeRows,
    /// The key columns.
    pub keys: Vec<String>,
    /// The table's columns the rows carry.
    pub columns: Vec<String>,
    /// Indexes (into `columns`) of the columns with a `__keep_<i>` flag.
    pub kept: Vec<usize>,
    /// The batch truncated the table: its `'U'` rows replace all rows (no keeps).
    pub truncate: bool,
    /// The `txn` action (application id, version) recorded with the commit.
    pub app_transaction: (String, i64),
    /// Extra `commitInfo` keys.
    pub commit_info: serde_json::Map<String, serde_json::Value>,
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChangeReport {
    /// The version written.
    pub version: u64,
    /// Target rows inserted, updated and deleted.
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

fn quote(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

impl Table {
    /// Applies `changes` to the table at `location` as exactly one commit.
    pub async fn apply_changes(
        location: &TableLocation,
        changes: ChangeBatch,
    ) -> Result<(Table, ChangeReport)> {
        let table = Table::open_if_exists(location).await?.ok_or_else(|| {
            Error::not_found(format!(
                "no Delta table at `{}` to apply changes to",
                location.display_name()
            ))
        })?;
        let before = table.version();
        let (state, source) = match &changes.rows {
            ChangeRows::Batch(batch) => {
                let ctx = SessionContext::new();
                (
                    crate::write::rewrite_session()?,
                    ctx.read_batch(batch.clone())?,
                )
            }
            ChangeRows::Parquet(path) => {
                let spill_dir = path
                    .parent()
                    .map_or_else(std::env::temp_dir, |d| d.to_path_buf());
                let state = crate::write::bounded_rewrite_state(SPILLING_MERGE_MEMORY, &spill_dir)?;
                let ctx = SessionContext::new_with_state(state.clone());
                let path = path.to_str().ok_or_else(|| {
                    Error::invalid(format!(
                        "the temporary file {} has a name that is not UTF-8",
                        path.display()
                    ))
                })?;
                let source = ctx
                    .read_parquet(path, ParquetReadOptions::default())
                    .await?;
                (
                    std::sync::Arc::new(state)
                        as std::sync::Arc<dyn deltalake::datafusion::catalog::Session>,
                    source,
                )
            }
        };
        if changes.truncate {
            return table
                .overwrite_with_changes(location, &changes, source)
                .await;
        }
        let predicate = changes
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("target.{} = source.\"__mk_{i}\"", quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let props = crate::commit::commit_properties()
            .with_metadata(changes.commit_info.clone())
            .with_application_transaction(deltalake::kernel::Transaction::new(
                changes.app_transaction.0.clone(),
                changes.app_transaction.1,
            ));
        let columns = &changes.columns;
        let kept = &changes.kept;
        let (delta, metrics) = table
            .delta
            .clone()
            .merge(source, predicate.as_str())
            .with_source_alias("source")
            .with_target_alias("target")
            .with_merge_schema(true)
            .with_commit_properties(props)
            .with_writer_properties(crate::write::writer_properties())
            .with_session_state(state)
            .when_matched_delete(|d| d.predicate("source.\"__op\" = 'D'"))
            .map_err(|e| table.delta_error(e))?
            .when_matched_update(|mut update| {
                for (i, c) in columns.iter().enumerate() {
                    let value = if kept.contains(&i) {
                        format!(
                            "CASE WHEN source.\"__keep_{i}\" THEN target.{q} ELSE source.{q} END",
                            q = quote(c)
                        )
                    } else {
                        format!("source.{}", quote(c))
                    };
                    update = update.update(quote(c).as_str(), value.as_str());
                }
                update
            })
            .map_err(|e| table.delta_error(e))?
            .when_not_matched_insert(|mut insert| {
                insert = insert.predicate("source.\"__op\" <> 'D' AND NOT source.\"__any_keep\"");
                for c in columns {
                    insert = insert.set(quote(c).as_str(), format!("source.{}", quote(c)).as_str());
                }
                insert
            })
            .map_err(|e| table.delta_error(e))?
            .await
            .map_err(|e| table.delta_error(e))?;
        crate::commit::clean_up_log_after(&delta, Some(before)).await;
        let table = Table {
            location: location.clone(),
            delta,
        };
        let report = ChangeReport {
            version: table.version(),
            inserted: metrics.num_target_rows_inserted as u64,
            updated: metrics.num_target_rows_updated as u64,
            deleted: metrics.num_target_rows_deleted as u64,
        };
        Ok((table, report))
    }

    /// A truncating batch: the table's rows become the batch's surviving rows (`source`,
    /// streamed).
    async fn overwrite_with_changes(
        &self,
        location: &TableLocation,
        changes: &ChangeBatch,
        source: DataFrame,
    ) -> Result<(Table, ChangeReport)> {
        let columns: Vec<&str> = changes.columns.iter().map(String::as_str).collect();
        let rows = source
            .filter(col("__op").eq(lit("U")))?
            .select_columns(&columns)?;
        let mut stream = rows.execute_stream().await?;
        let schema = stream.schema();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let counted = count.clone();
        let empty = deltalake::arrow::array::RecordBatch::new_empty(schema.clone());
        let feed = tokio::spawn(async move {
            let mut sent = false;
            while let Some(batch) = stream.next().await {
                sent = true;
                let batch = batch.map_err(Error::from);
                if let Ok(b) = &batch {
                    counted.fetch_add(b.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
            if !sent {
                // Nothing survives: the table is overwritten with no rows.
                let _ = tx.send(Ok(empty)).await;
            }
        });
        let options = WriteOptions {
            mode: WriteMode::Overwrite,
            merge_schema: true,
            app_transaction: Some(changes.app_transaction.clone()),
            commit_info: changes.commit_info.clone(),
            ..WriteOptions::default()
        };
        let input = InputSource::batches("changes", schema, rx);
        let written = Table::write(location, vec![input], options).await;
        feed.abort();
        let (table, report) = written?;
        Ok((
            table,
            ChangeReport {
                version: report.version,
                inserted: count.load(std::sync::atomic::Ordering::Relaxed),
                updated: 0,
                deleted: 0,
            },
        ))
    }
}
