//! The table provider SQL reads through. Plain tables — no partition columns, no column
//! mapping, no deletion vectors, only reader features that change nothing for a reader —
//! are read as what they are: a list of Parquet files with one schema. DataFusion's own
//! Parquet scan reads them directly, with the log's per-file statistics for skipping whole
//! files and the files' own for row groups. Every other table goes through deltalake's
//! provider, which applies the per-file transforms the protocol asks for.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deltalake::arrow::array::ArrayRef;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::stats::Precision;
use deltalake::datafusion::common::{Column, ColumnStatistics, ScalarValue, Statistics};
use deltalake::datafusion::datasource::file_format::parquet::ParquetFormat;
use deltalake::datafusion::datasource::file_format::FileFormat;
use deltalake::datafusion::datasource::listing::PartitionedFile;
use deltalake::datafusion::datasource::physical_plan::parquet::transform_schema_to_view;
use deltalake::datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use deltalake::datafusion::datasource::TableType;
use deltalake::datafusion::error::Result as DfResult;
use deltalake::datafusion::execution::object_store::ObjectStoreUrl;
use deltalake::datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use deltalake::datafusion::physical_optimizer::pruning::PruningStatistics;
use deltalake::datafusion::physical_plan::empty::EmptyExec;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::kernel::{EagerSnapshot, LogDataHandler};
use deltalake::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore};
use serde_json::Value;

use crate::error::Result;
use crate::mapped::MappedFiles;
use crate::table::Table;

/// Reader features under which a table's files may still be read as they are (column
/// mapping and deletion vectors are then checked for what they apply to).
const PLAIN_READER_FEATURES: &[&str] = &[
    "timestampNtz",
    "v2Checkpoint",
    "vacuumProtocolCheck",
    "columnMapping",
    "deletionVectors",
];

impl Table {
    /// The provider that reads this table's loaded version in SQL, registering what it
    /// needs (the table's object store) in `session`.
    pub(crate) async fn sql_provider(
        &self,
        session: &dyn Session,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(scan) = self.plain_scan(session)? {
            return Ok(Arc::new(scan));
        }
        self.delta
            .update_datafusion_session(session)
            .map_err(|e| self.delta_error(e))?;
        Ok(self.delta.table_provider().await?)
    }

    /// A direct Parquet scan of the loaded version, or `None` when the table needs
    /// deltalake's transforms.
    fn plain_scan(&self, session: &dyn Session) -> Result<Option<PlainScan>> {
        let state = self.delta.snapshot().map_err(|e| self.delta_error(e))?;
        let snapshot = state.snapshot();
        let metadata = snapshot.metadata();
        if !metadata.partition_columns().is_empty() {
            return Ok(None);
        }
        if metadata
            .configuration()
            .get("delta.columnMapping.mode")
            .is_some_and(|mode| mode != "none")
        {
            return Ok(None);
        }
        let protocol = snapshot.protocol();
        if let Some(features) = protocol.reader_features() {
            if features
                .iter()
                .any(|f| !PLAIN_READER_FEATURES.contains(&f.as_ref()))
            {
                return Ok(None);
            }
        }
        let log_data = snapshot.log_data();
        let mut files = Vec::with_capacity(log_data.num_containers());
        let (mut rows, mut bytes) = (Some(0usize), 0usize);
        for file in log_data.iter() {
            rows = rows.zip(file.num_records()).map(|(a, b)| a + b);
            bytes += file.size().max(0) as usize;
            let path = file.path();
            if file.deletion_vector_descriptor().is_some() || path.contains("://") {
                return Ok(None);
            }
            let Ok(location) = StorePath::parse(path.as_ref()) else {
                return Ok(None);
            };
            files.push(PartitionedFile::new_from_meta(ObjectMeta {
                location,
                size: file.size() as u64,
                last_modified: DateTime::<Utc>::UNIX_EPOCH,
                e_tag: None,
                version: None,
            }));
        }
        let logical = snapshot.arrow_schema();
        let views = session
            .config_options()
            .execution
            .parquet
            .schema_force_view_types;
        let schema = if views {
            Arc::new(transform_schema_to_view(&logical))
        } else {
            logical
        };
        let log_store = self.delta.log_store();
        let store_url = log_store.object_store_url();
        let runtime = session.runtime_env();
        if runtime.object_store(&store_url).is_err() {
            let store = log_store.object_store(None);
            let store: Arc<dyn ObjectStore> = match self.location.local_path() {
                Some(root) => Arc::new(MappedFiles::new(root, store)),
                None => store,
            };
            runtime.register_object_store(store_url.as_ref(), store);
        }
        // The version's size, which DataFusion plans joins by (the smaller side is built
        // in memory, once for all partitions when small enough). Row counts from the log
        // are exact: files with deletion vectors never get here.
        let mut statistics = Statistics::new_unknown(&schema);
        statistics.num_rows = rows.map_or(Precision::Absent, Precision::Exact);
        statistics.total_byte_size = Precision::Inexact(bytes);
        Ok(Some(PlainScan {
            statistics,
            schema,
            store_url,
            files,
            snapshot: snapshot.clone(),
        }))
    }
}

/// Gives each file the statistics the log records for it, so a scan skips the files that
/// cannot match: row counts and bounds as parsed by deltalake, null counts from each
/// file's statistics JSON (deltalake parses them only for integer columns). DataFusion prunes only on bounds it is told are exact; they are, except
/// that writers cut timestamps to the millisecond (widened below) and Spark cuts long
/// strings to a prefix, keeping the minimum below and the maximum above every value.
fn with_file_statistics(files: &mut [PartitionedFile], schema: &SchemaRef, log: &LogDataHandler) {
    let bounds: Vec<[Option<ArrayRef>; 2]> = schema
        .fields()
        .iter()
        .map(|f| {
            let column = Column::from_name(f.name());
            [log.min_values(&column), log.max_values(&column)]
        })
        .collect();
    for (i, (file, view)) in files.iter_mut().zip(log.iter()).enumerate() {
        let recorded: Option<Value> = view.stats().and_then(|s| serde_json::from_str(&s).ok());
        let null_counts = recorded.as_ref().and_then(|s| s.get("nullCount"));
        let column_statistics = schema
            .fields()
            .iter()
            .zip(&bounds)
            .map(|(field, [min, max])| {
                let bound = |array: &Option<ArrayRef>| match array
                    .as_ref()
                    .filter(|a| i < a.len())
                    .and_then(|a| ScalarValue::try_from_array(a, i).ok())
                    .filter(|v| !v.is_null())
                    .and_then(|v| v.cast_to(field.data_type()).ok())
                {
                    Some(v) => Precision::Exact(v),
                    None => Precision::Absent,
                };
                ColumnStatistics {
                    null_count: match null_counts
                        .and_then(|n| n.get(field.name()))
                        .and_then(Value::as_u64)
                    {
                        Some(n) => Precision::Exact(n as usize),
                        None => Precision::Absent,
                    },
                    min_value: bound(min),
                    max_value: match bound(max) {
                        Precision::Exact(v) => Precision::Exact(past_millisecond(v)),
                        other => other,
                    },
                    ..ColumnStatistics::new_unknown()
                }
            })
            .collect();
        file.statistics = Some(Arc::new(Statistics {
            num_rows: view
                .num_records()
                .map_or(Precision::Absent, Precision::Exact),
            total_byte_size: Precision::Absent,
            column_statistics,
        }));
    }
}

/// Writers record timestamp statistics to the millisecond, cutting off what follows: a
/// recorded maximum of .123 may stand for .123999. The bound moves to the next millisecond.
fn past_millisecond(value: ScalarValue) -> ScalarValue {
    match value {
        ScalarValue::TimestampSecond(Some(v), tz) => {
            ScalarValue::TimestampSecond(Some(v.saturating_add(1)), tz)
        }
        ScalarValue::TimestampMillisecond(Some(v), tz) => {
            ScalarValue::TimestampMillisecond(Some(v.saturating_add(1)), tz)
        }
        ScalarValue::TimestampMicrosecond(Some(v), tz) => {
            ScalarValue::TimestampMicrosecond(Some(v.saturating_add(1_000)), tz)
        }
        ScalarValue::TimestampNanosecond(Some(v), tz) => {
            ScalarValue::TimestampNanosecond(Some(v.saturating_add(1_000_000)), tz)
        }
        other => other,
    }
}

/// A plain table's files at one version.
#[derive(Debug)]
struct PlainScan {
    schema: SchemaRef,
    store_url: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    /// The version's log, for per-file statistics when a query filters.
    snapshot: EagerSnapshot,
    /// The whole version's row count and size.
    statistics: Statistics,
}

#[async_trait]
impl TableProvider for PlainScan {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics.clone())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(self.schema.clone().into());
        let mut files = self.files.clone();
        if !filters.is_empty() {
            with_file_statistics(&mut files, &self.schema, &self.snapshot.log_data());
        }
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(vec![FileGroup::new(files)])
            .with_statistics(self.statistics.clone())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}
