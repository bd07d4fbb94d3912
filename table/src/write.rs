//! Writing input files into a table as one commit: append, overwrite, replace-where,
//! upsert (merge on keys), with optional schema merging and table creation.

use std::sync::{Arc, Mutex};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::datasource::provider_as_source;
use deltalake::datafusion::logical_expr::LogicalPlanBuilder;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::DeltaSessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::{SchemaMode, WriteBuilder};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use deltalake::protocol::SaveMode;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::input::{is_lossless, InputSource, InputStream, Progress};
use crate::location::TableLocation;
use crate::table::Table;

/// Whether a write adds rows or replaces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Add the rows.
    #[default]
    Append,
    /// Replace all rows, or the rows matching `replace_where`.
    Overwrite,
}

/// How `write` treats its input.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Append or overwrite.
    pub mode: WriteMode,
    /// Add input columns missing from the table (as nullable columns).
    pub merge_schema: bool,
    /// Merge on these key columns instead of appending: update matches, insert the rest.
    pub upsert_on: Vec<String>,
    /// With `Overwrite`: replace only rows matching this SQL predicate.
    pub replace_where: Option<String>,
    /// Create the table from the input's schema when it does not exist.
    pub create_if_missing: bool,
    /// Partition columns for a table created by this write.
    pub partition_by: Vec<String>,
    /// Counters to poll for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// Record this application transaction (`txn` action: app id, version) in the commit,
    /// for idempotent writers: a concurrent commit of the same app id makes this one fail.
    pub app_transaction: Option<(String, i64)>,
    /// Extra keys for the commit's `commitInfo` (e.g. an importer's watermark).
    pub commit_info: serde_json::Map<String, serde_json::Value>,
    /// Rows per Parquet row group in the new files (`None`: the Parquet writer's 1Mi).
    /// Smaller groups are written out as they fill instead of all at the end, and let
    /// readers split a file between threads.
    pub row_group_rows: Option<usize>,
    /// Columns written without dictionary encoding: those whose values are mostly distinct
    /// (see [`mostly_distinct_columns`]), where a dictionary would be tried and given up.
    pub plain_columns: Vec<String>,
}

impl WriteOptions {
    /// [`writer_properties`] with this write's row groups and plain columns.
    fn writer_properties(&self) -> WriterProperties {
        let mut builder = writer_properties_builder();
        if let Some(rows) = self.row_group_rows {
            builder = builder.set_max_row_group_row_count(Some(rows.max(1)));
        }
        for column in &self.plain_columns {
            builder = builder.set_column_dictionary_enabled(column.as_str().into(), false);
        }
        builder.build()
    }

    fn commit_properties(&self) -> CommitProperties {
        let mut props = crate::commit::commit_properties().with_metadata(self.commit_info.clone());
        if let Some((app_id, version)) = &self.app_transaction {
            props = props.with_application_transaction(deltalake::kernel::Transaction::new(
                app_id.clone(),
                *version,
            ));
        }
        props
    }
}

/// What a write did.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    /// The table as given.
    pub table: String,
    /// The version this write created.
    pub version: u64,
    /// Input rows read.
    pub rows: u64,
    /// `WRITE` or `MERGE`.
    pub operation: String,
    /// Whether this write created the table.
    pub created: bool,
    /// Columns added by `merge_schema`.
    pub added_columns: Vec<String>,
    /// For upserts: rows inserted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inserted: Option<u64>,
    /// For upserts: rows updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<u64>,
}

impl Table {
    /// Writes `sources` into the table at `location` as exactly one commit.
    ///
    /// Every file is checked against the table's schema before any data is written; a file
    /// that fails part-way leaves the table at its previous version.
    pub async fn write(
        location: &TableLocation,
        sources: Vec<InputSource>,
        options: WriteOptions,
    ) -> Result<(Table, WriteReport)> {
        let name = location.display_name().to_string();
        if sources.is_empty() {
            return Err(Error::invalid("no input files given"));
        }
        if options.replace_where.is_some() && options.mode != WriteMode::Overwrite {
            return Err(Error::invalid("--replace-where needs --mode overwrite"));
        }
        let existing = Table::open_if_exists(location).await?;
        if existing.is_none() && !options.create_if_missing {
            return Err(Error::not_found(format!(
                "no Delta table at `{name}` (create it with `tarn create`, or pass --create to create it from the input's schema)"
            )));
        }
        if existing.is_some() && !options.partition_by.is_empty() {
            return Err(Error::invalid(format!(
                "`{name}` exists already: --partition-by only applies when creating a table"
            )));
        }
        let table_schema = match &existing {
            Some(t) => t.arrow_schema()?,
            None => Arc::new(Schema::empty()),
        };

        // Plan: each file's read schema, the combined target schema, new columns.
        let mut planned = Vec::with_capacity(sources.len());
        let mut target_fields: Vec<Field> = table_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut added_columns = Vec::new();
        for source in sources {
            let schema = source.schema(&table_schema)?;
            for field in schema.fields() {
                match target_fields.iter().find(|t| t.name() == field.name()) {
                    Some(target) => {
                        if !is_lossless(field.data_type(), target.data_type()) {
                            return Err(Error::invalid(format!(
                                "{}: column `{}` is {} in the input but {} in the table; Tarn does not change a column's type when that could lose data",
                                source.label(),
                                field.name(),
                                arrow_type_text(field.data_type()),
                                arrow_type_text(target.data_type())
                            )));
                        }
                    }
                    None if existing.is_none() => target_fields.push(Field::new(
                        field.name(),
                        field.data_type().clone(),
                        true,
                    )),
                    None if options.merge_schema => {
                        added_columns.push(field.name().clone());
                        target_fields.push(Field::new(
                            field.name(),
                            field.data_type().clone(),
                            true,
                        ));
                    }
                    None => {
                        let new: Vec<String> = schema
                            .fields()
                            .iter()
                            .filter(|f| table_schema.field_with_name(f.name()).is_err())
                            .map(|f| format!("`{}` ({})", f.name(), arrow_type_text(f.data_type())))
                            .collect();
                        return Err(Error::invalid(format!(
                            "{}: the input has columns the table `{name}` does not: {}; pass --merge-schema to add them",
                            source.label(),
                            new.join(", ")
                        )));
                    }
                }
            }
            for required in table_schema.fields().iter().filter(|f| !f.is_nullable()) {
                if schema.field_with_name(required.name()).is_err() && options.upsert_on.is_empty()
                {
                    return Err(Error::invalid(format!(
                        "{}: column `{}` is required (not null) but missing from the input",
                        source.label(),
                        required.name()
                    )));
                }
            }
            planned.push((source, Arc::new(schema)));
        }
        let target: SchemaRef = Arc::new(Schema::new(target_fields));
        // The columns the input provides (an upsert leaves the others untouched).
        let input_columns: Vec<String> = target
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|c| planned.iter().any(|(_, s)| s.field_with_name(c).is_ok()))
            .collect();
        let progress = options.progress.clone().unwrap_or_default();
        progress.bytes_total.store(
            planned.iter().map(|(s, _)| s.size()).sum(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let input = InputStream {
            sources: Arc::new(planned),
            target: target.clone(),
            progress: progress.clone(),
            failure: Arc::new(Mutex::new(None)),
        };
        let provider = Arc::new(StreamingTable::try_new(
            target.clone(),
            vec![Arc::new(input.clone())],
        )?);

        let result = if options.upsert_on.is_empty() {
            Table::with_local_dir(
                location,
                write_plan(location, existing.as_ref(), provider, &options),
            )
            .await
            .map(|t| (t, None))
        } else {
            let Some(table) = existing.as_ref() else {
                return Err(Error::not_found(format!(
                    "no Delta table at `{name}`: an upsert needs an existing table"
                )));
            };
            upsert(table, provider, &input_columns, &options)
                .await
                .map(|(t, m)| (t, Some(m)))
        };
        let (delta, merge_counts) = match result {
            Ok(ok) => ok,
            Err(err) => return Err(input.take_failure().unwrap_or(err)),
        };
        crate::commit::clean_up_log_after(&delta, existing.as_ref().map(Table::version)).await;
        let table = Table {
            location: location.clone(),
            delta,
        };
        let report = WriteReport {
            table: name,
            version: table.version(),
            rows: progress.rows.load(std::sync::atomic::Ordering::Relaxed),
            operation: if merge_counts.is_some() {
                "MERGE"
            } else {
                "WRITE"
            }
            .to_string(),
            created: existing.is_none(),
            added_columns,
            inserted: merge_counts.map(|(i, _)| i),
            updated: merge_counts.map(|(_, u)| u),
        };
        Ok((table, report))
    }
}

async fn write_plan(
    location: &TableLocation,
    existing: Option<&Table>,
    provider: Arc<StreamingTable>,
    options: &WriteOptions,
) -> Result<deltalake::DeltaTable> {
    let name = location.display_name();
    let plan = LogicalPlanBuilder::scan("input", provider_as_source(provider), None)?.build()?;
    let (log_store, snapshot) = match existing {
        Some(t) => (
            t.delta.log_store(),
            Some(
                t.delta
                    .snapshot()
                    .map_err(|e| t.delta_error(e))?
                    .snapshot()
                    .clone(),
            ),
        ),
        None => (Table::unloaded(location)?.log_store(), None),
    };
    let mut builder = WriteBuilder::new(log_store, snapshot)
        .with_input_plan(plan)
        .with_save_mode(match options.mode {
            WriteMode::Append => SaveMode::Append,
            WriteMode::Overwrite => SaveMode::Overwrite,
        })
        .with_commit_properties(options.commit_properties())
        .with_writer_properties(options.writer_properties());
    if options.merge_schema {
        builder = builder.with_schema_mode(SchemaMode::Merge);
    }
    if let Some(predicate) = &options.replace_where {
        builder = builder.with_replace_where(predicate.as_str());
    }
    if existing.is_none() {
        builder = builder.with_configuration(
            crate::create::with_default_properties([])
                .into_iter()
                .map(|(k, v)| (k, Some(v))),
        );
        if !options.partition_by.is_empty() {
            builder = builder.with_partition_columns(options.partition_by.clone());
        }
    }
    builder.await.map_err(|e| Error::from_delta(name, e))
}

async fn upsert(
    table: &Table,
    provider: Arc<StreamingTable>,
    input_columns: &[String],
    options: &WriteOptions,
) -> Result<(deltalake::DeltaTable, (u64, u64))> {
    let table_schema = table.arrow_schema()?;
    for key in &options.upsert_on {
        if table_schema.field_with_name(key).is_err() {
            return Err(Error::invalid(format!(
                "upsert key `{key}` is not a column of `{}`",
                table.name()
            )));
        }
        if !input_columns.contains(key) {
            return Err(Error::invalid(format!(
                "upsert key `{key}` is missing from the input"
            )));
        }
    }
    let ctx = SessionContext::new();
    let source = ctx.read_table(provider)?;
    let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let predicate = options
        .upsert_on
        .iter()
        .map(|k| format!("target.{} = source.{}", quote(k), quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let (delta, metrics) = table
        .delta
        .clone()
        .merge(source, predicate.as_str())
        .with_source_alias("source")
        .with_target_alias("target")
        .with_merge_schema(options.merge_schema)
        .with_commit_properties(options.commit_properties())
        .with_writer_properties(options.writer_properties())
        .with_session_state(rewrite_session()?)
        .when_matched_update(|mut update| {
            for c in input_columns {
                update = update.update(quote(c).as_str(), format!("source.{}", quote(c)).as_str());
            }
            update
        })
        .map_err(|e| table.delta_error(e))?
        .when_not_matched_insert(|mut insert| {
            for c in input_columns {
                insert = insert.set(quote(c).as_str(), format!("source.{}", quote(c)).as_str());
            }
            insert
        })
        .map_err(|e| table.delta_error(e))?
        .await
        .map_err(|e| table.delta_error(e))?;
    Ok((
        delta,
        (
            metrics.num_target_rows_inserted as u64,
            metrics.num_target_rows_updated as u64,
        ),
    ))
}

/// How Tarn writes Parquet data files: delta-rs's defaults (Snappy), except that a
/// column's dictionary may grow to 256 KiB instead of 1 MiB before the writer falls back
/// to plain encoding. A column of mostly distinct 8-byte values (ids, times,
/// measurements) is hashed for its first 32,768 values per row group instead of 131,072
/// before that fallback; that hashing was 16% of the samples of a 1M-row ingest
/// (docs/performance.md). Columns of up to a few thousand distinct strings still get a
/// dictionary.
pub(crate) fn writer_properties() -> WriterProperties {
    writer_properties_builder().build()
}

/// The DataFusion session of the operations that read the table's files to write new ones
/// (upsert and change data capture merges, optimize, delete, update): deltalake's
/// defaults, except that Parquet strings and binaries are read as `Utf8` / `Binary`, not
/// as the view types deltalake asks for (`schema_force_view_types`). The files written
/// from such a scan declare its types in their `ARROW:schema`, and Tarn's files must
/// declare the types the table's Delta schema maps to, as appends do: pyiceberg 0.12
/// cannot combine `string_view` files with `string` ones, and other readers expect them.
///
/// Delete and update plan their rewrite scan without the session (deltalake 1.1.3), so the
/// session also carries [`crate::plain_types::PlainTypesForWrites`], which casts what
/// such a scan gives back to the plain types before it is written.
pub(crate) fn rewrite_session() -> Result<Arc<dyn Session>> {
    Ok(Arc::new(rewrite_state(&[], None)?))
}

/// [`rewrite_session`] for a MERGE whose source may be larger than memory (a huge source
/// transaction of change data capture): its sorts and joins get a memory pool of
/// `memory_limit` bytes and spill to temporary files in `spill_dir` beyond it, and the join
/// is a sort-merge join (a hash join holds all of its source in memory).
pub(crate) fn bounded_rewrite_state(
    memory_limit: usize,
    spill_dir: &std::path::Path,
) -> Result<deltalake::datafusion::execution::SessionState> {
    rewrite_state(
        &[
            ("datafusion.optimizer.prefer_hash_join", "false"),
            ("datafusion.optimizer.repartition_joins", "true"),
            // A sort-merge join needs more than one partition (DataFusion plans a hash join
            // on one), whatever the cores.
            ("datafusion.execution.target_partitions", "2"),
        ],
        Some((memory_limit, spill_dir)),
    )
}

fn rewrite_state(
    options: &[(&str, &str)],
    memory_limit: Option<(usize, &std::path::Path)>,
) -> Result<deltalake::datafusion::execution::SessionState> {
    use deltalake::datafusion::execution::memory_pool::FairSpillPool;
    use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use deltalake::datafusion::execution::SessionStateBuilder;
    let mut overrides = std::collections::HashMap::from([(
        "datafusion.execution.parquet.schema_force_view_types".to_string(),
        "false".to_string(),
    )]);
    for (k, v) in options {
        overrides.insert(k.to_string(), v.to_string());
    }
    let internal = |e: deltalake::datafusion::error::DataFusionError| {
        Error::new(
            crate::error::ErrorKind::Internal,
            "cannot configure the DataFusion session for the rewrite",
        )
        .with_source(e)
    };
    let context = DeltaSessionContext::new_with_session_overrides(&overrides).map_err(|e| {
        Error::new(
            crate::error::ErrorKind::Internal,
            "cannot configure the DataFusion session for the rewrite",
        )
        .with_source(e)
    })?;
    let mut builder = SessionStateBuilder::new_from_existing(context.state())
        .with_physical_optimizer_rule(Arc::new(crate::plain_types::PlainTypesForWrites));
    if let Some((limit, spill_dir)) = memory_limit {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limit)))
            .with_temp_file_path(spill_dir)
            .build_arc()
            .map_err(internal)?;
        builder = builder.with_runtime_env(runtime);
    }
    Ok(builder.build())
}

/// See [`writer_properties`].
fn writer_properties_builder() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_created_by(format!("tarn {} (delta-rs)", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::SNAPPY)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_SIZE_LIMIT)
}

/// The columns of `sample` (the first rows of a write) whose values are mostly distinct:
/// more than half of its rows, in a sample of at least [`MIN_SAMPLE_ROWS`]. Parquet's
/// writer would build a dictionary for each of them in every row group and fall back to
/// plain encoding once the dictionary outgrew its page; [`WriteOptions::plain_columns`]
/// skips that work. Booleans and nested columns are left alone.
pub fn mostly_distinct_columns(sample: &RecordBatch) -> Vec<String> {
    use deltalake::datafusion::common::hash_utils::{create_hashes, RandomState};
    let rows = sample.num_rows();
    if rows < MIN_SAMPLE_ROWS {
        return Vec::new();
    }
    let state = RandomState::default();
    let mut hashes = vec![0u64; rows];
    let mut distinct = std::collections::HashSet::with_capacity(rows);
    let mut out = Vec::new();
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        if field.data_type().is_nested() || field.data_type() == &DataType::Boolean {
            continue;
        }
        hashes.iter_mut().for_each(|h| *h = 0);
        if create_hashes([column], &state, &mut hashes).is_err() {
            continue;
        }
        distinct.clear();
        distinct.extend(hashes.iter().copied());
        if distinct.len() * 2 > rows {
            out.push(field.name().clone());
        }
    }
    out
}

/// See [`mostly_distinct_columns`].
const MIN_SAMPLE_ROWS: usize = 1024;

/// See [`writer_properties`].
const DICTIONARY_PAGE_SIZE_LIMIT: usize = 256 * 1024;

/// Spark-style text for an Arrow type, for messages.
fn arrow_type_text(t: &deltalake::arrow::datatypes::DataType) -> String {
    use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
    match deltalake::kernel::DataType::try_from_arrow(t) {
        Ok(dt) => crate::schema_text::type_text(&dt),
        Err(_) => t.to_string(),
    }
}
