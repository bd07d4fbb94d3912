//! Applying a batch of folded row changes (change data capture) as one commit: a MERGE that
//! deletes, updates and inserts by key, or, when the batch truncated the table, an
//! overwrite with the rows that survive.

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::input::InputSource;
use crate::location::TableLocation;
use crate::table::Table;
use crate::write::{WriteMode, WriteOptions};

/// One batch of changes to one table.
///
/// `batch` holds, per row: the table's columns (`columns`, by name; a column the table
/// does not have yet is added), `__op` (`'U'`: the row exists after the batch, `'D'`: delete
/// the matched row), `__mk_<i>` (the key of the target row it matches, per key column `i`),
/// `__keep_<i>` per column index `i` in `kept` (true: keep the matched row's value, the
/// source did not send it) and `__any_keep`.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    /// The rows, as described above.
    pub batch: RecordBatch,
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
        if changes.truncate {
            return table.overwrite_with_changes(location, changes).await;
        }
        let ctx = SessionContext::new();
        let source = ctx.read_batch(changes.batch.clone())?;
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
            .with_session_state(crate::write::rewrite_session()?)
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

    /// A truncating batch: the table's rows become the batch's surviving rows.
    async fn overwrite_with_changes(
        &self,
        location: &TableLocation,
        changes: ChangeBatch,
    ) -> Result<(Table, ChangeReport)> {
        use deltalake::arrow::array::{Array, StringArray};
        let batch = &changes.batch;
        let op = batch
            .column_by_name("__op")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| Error::invalid("a change batch without __op"))?;
        let keep: Vec<bool> = (0..op.len()).map(|i| op.value(i) == "U").collect();
        let filtered = deltalake::arrow::compute::filter_record_batch(
            batch,
            &deltalake::arrow::array::BooleanArray::from(keep),
        )?;
        let indices: Vec<usize> = changes
            .columns
            .iter()
            .map(|c| filtered.schema().index_of(c))
            .collect::<std::result::Result<_, _>>()?;
        let rows = filtered.project(&indices)?;
        let n = rows.num_rows() as u64;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let schema = rows.schema();
        let _ = tx.send(Ok(rows)).await;
        drop(tx);
        let options = WriteOptions {
            mode: WriteMode::Overwrite,
            merge_schema: true,
            app_transaction: Some(changes.app_transaction.clone()),
            commit_info: changes.commit_info.clone(),
            ..WriteOptions::default()
        };
        let input = InputSource::batches("changes", schema, rx);
        let (table, report) = Table::write(location, vec![input], options).await?;
        Ok((
            table,
            ChangeReport {
                version: report.version,
                inserted: n,
                updated: 0,
                deleted: 0,
            },
        ))
    }
}
