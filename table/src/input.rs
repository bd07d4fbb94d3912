//! Input files for `write`: CSV, newline-delimited JSON and Parquet, read as a bounded
//! stream of Arrow batches shaped to the table's schema.
//!
//! Files are read one batch at a time on a blocking thread and handed over through a
//! channel of two batches, so memory stays bounded whatever the input size.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use deltalake::arrow::array::{new_null_array, ArrayRef, RecordBatch, RecordBatchOptions};
use deltalake::arrow::compute::{cast_with_options, CastOptions};
use deltalake::arrow::csv::reader::Format;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::json::reader::infer_json_schema_from_seekable;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::streaming::PartitionStream;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};

const BATCH_ROWS: usize = 8192;
const INFER_ROWS: usize = 1000;

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// CSV with a header line.
    Csv,
    /// Newline-delimited JSON objects.
    Json,
    /// Apache Parquet.
    Parquet,
}

impl InputFormat {
    /// Guesses the format from a file name's extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Self::Csv),
            "json" | "jsonl" | "ndjson" => Some(Self::Json),
            "parquet" | "pq" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// Counters a caller can poll to show progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Input bytes read so far.
    pub bytes_read: AtomicU64,
    /// Total input bytes.
    pub bytes_total: AtomicU64,
    /// Rows read so far.
    pub rows: AtomicU64,
}

/// One input: a file (standard input is first copied to a temporary file), or a stream of
/// Arrow batches produced elsewhere (e.g. read from a database), read once.
#[derive(Debug)]
pub struct InputSource {
    path: PathBuf,
    label: String,
    format: InputFormat,
    _spool: Option<Arc<tempfile::TempPath>>,
    feed: Option<BatchFeed>,
}

/// The receiving end of a batch stream.
type BatchReceiver = tokio::sync::mpsc::Receiver<Result<RecordBatch>>;

#[derive(Debug)]
struct BatchFeed {
    schema: SchemaRef,
    /// A batch taken from the channel already (to look at it), read before the channel.
    first: Option<RecordBatch>,
    rx: Mutex<Option<BatchReceiver>>,
}

impl InputSource {
    /// A file; the format comes from `format` or else from the extension.
    pub fn file(path: impl Into<PathBuf>, format: Option<InputFormat>) -> Result<Self> {
        let path = path.into();
        let label = path.display().to_string();
        let meta = std::fs::metadata(&path)
            .map_err(|e| Error::not_found(format!("cannot read input file `{label}`: {e}")))?;
        if !meta.is_file() {
            return Err(Error::invalid(format!("input `{label}` is not a file")));
        }
        let format = format.or_else(|| InputFormat::from_path(&path)).ok_or_else(|| {
            Error::invalid(format!(
                "cannot tell the format of `{label}` from its extension: use .csv, .json/.jsonl/.ndjson or .parquet, or pass --input-format"
            ))
        })?;
        Ok(Self {
            path,
            label,
            format,
            _spool: None,
            feed: None,
        })
    }

    /// Batches of `schema` arriving on `rx`, named `label` in messages. An `Err` on the
    /// channel fails the write (nothing is committed); the stream can be read only once.
    pub fn batches(label: impl Into<String>, schema: SchemaRef, rx: BatchReceiver) -> Self {
        Self {
            path: PathBuf::new(),
            label: label.into(),
            format: InputFormat::Parquet,
            _spool: None,
            feed: Some(BatchFeed {
                schema,
                first: None,
                rx: Mutex::new(Some(rx)),
            }),
        }
    }

    /// [`Self::batches`] whose first batch was taken from the channel already (e.g. to
    /// choose [`crate::WriteOptions::plain_columns`] from it): `first` comes before the rest.
    pub fn batches_after(
        label: impl Into<String>,
        schema: SchemaRef,
        first: RecordBatch,
        rx: BatchReceiver,
    ) -> Self {
        let mut source = Self::batches(label, schema, rx);
        if let Some(feed) = &mut source.feed {
            feed.first = Some(first);
        }
        source
    }

    /// Standard input in `format`, spooled to a temporary file so it can be read in batches.
    pub fn stdin(format: InputFormat) -> Result<Self> {
        let mut spool = tempfile::NamedTempFile::new().map_err(|e| {
            Error::new(
                crate::ErrorKind::Internal,
                format!("cannot create a temporary file: {e}"),
            )
        })?;
        std::io::copy(&mut std::io::stdin().lock(), spool.as_file_mut())
            .map_err(|e| Error::invalid(format!("cannot read standard input: {e}")))?;
        let path = spool.into_temp_path();
        Ok(Self {
            path: path.to_path_buf(),
            label: "<stdin>".into(),
            format,
            _spool: Some(Arc::new(path)),
            feed: None,
        })
    }

    /// The same input, named `label` in messages (e.g. a spool file standing for a source).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The name used in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The file size in bytes.
    pub fn size(&self) -> u64 {
        if self.feed.is_some() {
            return 0;
        }
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn open(&self) -> Result<File> {
        File::open(&self.path)
            .map_err(|e| Error::invalid(format!("cannot open `{}`: {e}", self.label)))
    }

    fn error(&self, err: impl std::fmt::Display) -> Error {
        Error::invalid(format!(
            "{}: {}",
            self.label,
            crate::error::one_line(&err.to_string())
        ))
    }

    /// The file's own schema. For CSV and JSON, columns named in `hints` take the hinted
    /// type (the table's), the others are inferred from the first rows.
    pub(crate) fn schema(&self, hints: &Schema) -> Result<Schema> {
        if let Some(feed) = &self.feed {
            return Ok(feed.schema.as_ref().clone());
        }
        let inferred = match self.format {
            InputFormat::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(self.open()?)
                    .map_err(|e| self.error(format!("not a readable Parquet file ({e})")))?;
                return Ok(builder.schema().as_ref().clone());
            }
            InputFormat::Csv => {
                let (schema, _) = Format::default()
                    .with_header(true)
                    .infer_schema(BufReader::new(self.open()?), Some(INFER_ROWS))
                    .map_err(|e| self.error(e))?;
                if schema.fields().is_empty() {
                    return Err(self.error("the file is empty (a CSV input needs a header line)"));
                }
                schema
            }
            InputFormat::Json => {
                let mut reader = BufReader::new(self.open()?);
                let (schema, _) = infer_json_schema_from_seekable(&mut reader, Some(INFER_ROWS))
                    .map_err(|e| self.error(format!("not valid newline-delimited JSON ({e})")))?;
                schema
            }
        };
        let fields: Vec<Field> = inferred
            .fields()
            .iter()
            .map(|f| match hints.field_with_name(f.name()) {
                Ok(hint) => Field::new(f.name(), hint.data_type().clone(), true),
                Err(_) => Field::new(f.name(), f.data_type().clone(), true),
            })
            .collect();
        Ok(Schema::new(fields))
    }

    /// Reads the file with `read_schema` (from [`Self::schema`]) and shapes every batch to
    /// `target`: columns by name, missing ones as nulls, types cast (failures are errors).
    fn read(
        &self,
        read_schema: SchemaRef,
        target: SchemaRef,
        progress: Arc<Progress>,
        mut emit: impl FnMut(RecordBatch) -> bool,
    ) -> Result<()> {
        if let Some(feed) = &self.feed {
            let mut rx = feed
                .rx
                .lock()
                .ok()
                .and_then(|mut rx| rx.take())
                .ok_or_else(|| self.error("this input stream was already read"))?;
            let mut first = feed.first.clone().map(Ok);
            while let Some(batch) = first.take().or_else(|| rx.blocking_recv()) {
                let batch = batch?;
                progress
                    .rows
                    .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                let shaped = shape_batch(&batch, &target).map_err(|e| self.error(e))?;
                if !emit(shaped) {
                    break;
                }
            }
            return Ok(());
        }
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        if self.format == InputFormat::Csv
            && workers >= 2
            && self.size() >= crate::csv_parallel::MIN_PARALLEL_BYTES
        {
            use crate::csv_parallel::CsvFailure;
            let result = crate::csv_parallel::read(
                &self.path,
                read_schema.clone(),
                BATCH_ROWS,
                workers,
                progress.clone(),
                |batch| {
                    progress
                        .rows
                        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    let shaped = shape_batch(&batch, &target).map_err(|e| self.error(e))?;
                    Ok(emit(shaped))
                },
            );
            return match result {
                Ok(()) => Ok(()),
                Err(CsvFailure::Emit(e)) => Err(e),
                Err(CsvFailure::Io(e)) => Err(self.error(e)),
                Err(CsvFailure::Parse(e)) => {
                    // The parallel reader counts lines from a chunk's start: read the file
                    // again on one thread for a message that names the right line.
                    self.read_file(read_schema, target, Arc::new(Progress::default()), |_| true)?;
                    Err(self.error(e))
                }
            };
        }
        self.read_file(read_schema, target, progress, emit)
    }

    /// Reads the file on this thread, batch by batch (see [`Self::read`]).
    fn read_file(
        &self,
        read_schema: SchemaRef,
        target: SchemaRef,
        progress: Arc<Progress>,
        mut emit: impl FnMut(RecordBatch) -> bool,
    ) -> Result<()> {
        let file = CountingReader {
            inner: self.open()?,
            progress: progress.clone(),
        };
        let batches: Box<
            dyn Iterator<
                Item = std::result::Result<RecordBatch, deltalake::arrow::error::ArrowError>,
            >,
        > = match self.format {
            InputFormat::Csv => Box::new(
                deltalake::arrow::csv::ReaderBuilder::new(read_schema)
                    .with_header(true)
                    .with_batch_size(BATCH_ROWS)
                    .build(BufReader::new(file))
                    .map_err(|e| self.error(e))?,
            ),
            InputFormat::Json => Box::new(
                deltalake::arrow::json::ReaderBuilder::new(read_schema)
                    .with_batch_size(BATCH_ROWS)
                    .build(BufReader::new(file))
                    .map_err(|e| self.error(e))?,
            ),
            InputFormat::Parquet => Box::new(
                ParquetRecordBatchReaderBuilder::try_new(file.into_seekable())
                    .map_err(|e| self.error(e))?
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| self.error(e))?,
            ),
        };
        for batch in batches {
            let batch = batch.map_err(|e| self.error(e))?;
            progress
                .rows
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            let shaped = shape_batch(&batch, &target).map_err(|e| self.error(e))?;
            if !emit(shaped) {
                break;
            }
        }
        Ok(())
    }
}

/// Puts `batch`'s columns into `target`'s order and types; absent columns become nulls.
fn shape_batch(
    batch: &RecordBatch,
    target: &SchemaRef,
) -> std::result::Result<RecordBatch, String> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match batch.schema().index_of(field.name()) {
            Ok(i) => {
                let col = batch.column(i);
                if col.data_type() == field.data_type() {
                    col.clone()
                } else {
                    cast_with_options(col, field.data_type(), &options).map_err(|e| {
                        format!(
                            "column `{}` cannot be converted to {}: {e}",
                            field.name(),
                            field.data_type()
                        )
                    })?
                }
            }
            Err(_) => new_null_array(field.data_type(), batch.num_rows()),
        };
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(format!(
                "column `{}` is not nullable but the input has null or missing values",
                field.name()
            ));
        }
        columns.push(column);
    }
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| e.to_string())
}

/// Wraps a file to count the bytes read into [`Progress`].
struct CountingReader {
    inner: File,
    progress: Arc<Progress>,
}

impl CountingReader {
    /// Parquet reads by offset; count the file as read up front.
    fn into_seekable(self) -> File {
        if let Ok(meta) = self.inner.metadata() {
            self.progress
                .bytes_read
                .fetch_add(meta.len(), Ordering::Relaxed);
        }
        let mut f = self.inner;
        let _ = f.seek(SeekFrom::Start(0));
        f
    }
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress
            .bytes_read
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// All the inputs of one write, as a DataFusion partition that streams shaped batches.
///
/// The first input error is kept in `failure` so the caller can report it as is, rather
/// than wrapped in the layers of the execution engine.
#[derive(Debug, Clone)]
pub(crate) struct InputStream {
    pub(crate) sources: Arc<Vec<(InputSource, SchemaRef)>>,
    pub(crate) target: SchemaRef,
    pub(crate) progress: Arc<Progress>,
    pub(crate) failure: Arc<Mutex<Option<Error>>>,
}

impl InputStream {
    /// The first input error, if reading failed.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }
}

impl PartitionStream for InputStream {
    fn schema(&self) -> &SchemaRef {
        &self.target
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) =
            tokio::sync::mpsc::channel::<std::result::Result<RecordBatch, DataFusionError>>(2);
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            for (source, read_schema) in this.sources.iter() {
                let result = source.read(
                    read_schema.clone(),
                    this.target.clone(),
                    this.progress.clone(),
                    |batch| tx.blocking_send(Ok(batch)).is_ok(),
                );
                if let Err(err) = result {
                    let message = err.message().to_string();
                    if let Ok(mut slot) = this.failure.lock() {
                        slot.get_or_insert(err);
                    }
                    let _ = tx.blocking_send(Err(DataFusionError::Execution(message)));
                    return;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.target.clone(), stream))
    }
}

/// Whether a column of type `from` can be stored in a column of type `to` without losing
/// data (Tarn casts these silently and refuses the rest).
pub(crate) fn is_lossless(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    fn int_digits(t: &DataType) -> Option<u8> {
        Some(match t {
            Int8 | UInt8 => 3,
            Int16 | UInt16 => 5,
            Int32 | UInt32 => 10,
            Int64 => 19,
            UInt64 => 20,
            _ => return None,
        })
    }
    fn int_rank(t: &DataType) -> Option<(bool, u8)> {
        Some(match t {
            Int8 => (true, 1),
            Int16 => (true, 2),
            Int32 => (true, 4),
            Int64 => (true, 8),
            UInt8 => (false, 1),
            UInt16 => (false, 2),
            UInt32 => (false, 4),
            UInt64 => (false, 8),
            _ => return None,
        })
    }
    if from == to || matches!(from, Null) {
        return true;
    }
    let text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let binary = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView | FixedSizeBinary(_));
    match (from, to) {
        (a, b) if text(a) && text(b) => true,
        (a, b) if binary(a) && binary(b) => true,
        (a, b) if int_rank(a).is_some() && int_rank(b).is_some() => {
            let (sa, wa) = int_rank(a).unwrap();
            let (sb, wb) = int_rank(b).unwrap();
            (sa == sb && wb >= wa) || (!sa && sb && wb > wa)
        }
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Float64)
        | (Int8 | Int16 | UInt8 | UInt16, Float32) => true,
        (Float16 | Float32, Float64) | (Float16, Float32) => true,
        (a, Decimal128(p, s)) if int_digits(a).is_some() => {
            (*p as i16 - *s as i16) >= int_digits(a).unwrap() as i16
        }
        (Decimal128(p1, s1) | Decimal256(p1, s1), Decimal128(p2, s2) | Decimal256(p2, s2)) => {
            s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16)
        }
        (Date32, Date64) => true,
        // Delta stores microseconds: nanosecond inputs are truncated to µs (as every Delta
        // writer does); zone-less times go into a `timestamp` column read as UTC; a time with
        // a zone never goes into a `timestamp_ntz` column.
        (Timestamp(_, from_tz), Timestamp(_, to_tz)) => from_tz.is_none() || to_tz.is_some(),
        (List(a) | LargeList(a) | ListView(a), List(b) | LargeList(b)) => {
            is_lossless(a.data_type(), b.data_type())
        }
        (Struct(a), Struct(b)) => a.iter().all(|fa| {
            b.iter()
                .find(|fb| fb.name() == fa.name())
                .is_some_and(|fb| is_lossless(fa.data_type(), fb.data_type()))
        }),
        (Map(a, _), Map(b, _)) => is_lossless(a.data_type(), b.data_type()),
        (Dictionary(_, v), b) => is_lossless(v, b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `content` as a file of `format`, with the table's types as `hints`, the way
    /// `write` does: the schema, then every batch shaped to it.
    fn read_all(content: &[u8], format: InputFormat, hints: &Schema) -> Result<usize> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("input");
        std::fs::write(&path, content).expect("written");
        let src = InputSource::file(&path, Some(format))?;
        let schema = Arc::new(src.schema(hints)?);
        let mut rows = 0;
        src.read_file(schema.clone(), schema, Arc::new(Progress::default()), |b| {
            rows += b.num_rows();
            true
        })?;
        Ok(rows)
    }

    /// The types a table might hint for columns `a`, `b`, `c`.
    fn hints(which: usize) -> Schema {
        use deltalake::arrow::datatypes::TimeUnit;
        let types = [
            DataType::Int64,
            DataType::Int32,
            DataType::Decimal128(12, 2),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Date32,
            DataType::Boolean,
            DataType::Float64,
            DataType::Utf8,
        ];
        Schema::new(
            ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(i, name)| Field::new(*name, types[(which >> (3 * i)) % 8].clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    /// Pieces CSV and JSON input is made of, good and bad.
    const TOKENS: [&str; 24] = [
        "a",
        "b",
        "c",
        ",",
        "\n",
        "\r\n",
        "\"",
        "\"\"",
        "1",
        "-2",
        "3.25",
        "1e400",
        "99999999999999999999",
        "2026-01-31",
        "2026-01-31T10:00:00Z",
        "2026-02-30",
        "true",
        "null",
        "{",
        "}",
        ":",
        "[1,{\"x\":2}]",
        "é",
        "\u{0}",
    ];

    proptest::proptest! {
        // A fixed budget, so CI time is bounded; no regression files in the tree.
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any bytes as CSV or JSON: rows or an error, never a panic.
        #[test]
        fn any_bytes_read_as_rows_or_an_error(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            json in proptest::prelude::any::<bool>(),
            which in 0usize..512,
        ) {
            let format = if json { InputFormat::Json } else { InputFormat::Csv };
            let _ = read_all(&bytes, format, &hints(which));
        }

        /// Text made of CSV and JSON pieces (headers, quotes, numbers out of range, bad
        /// dates, nesting), read with any table types: rows or an error, never a panic.
        #[test]
        fn near_valid_input_reads_as_rows_or_an_error(
            pieces in proptest::collection::vec(0usize..24, 0..64),
            json in proptest::prelude::any::<bool>(),
            which in 0usize..512,
        ) {
            let mut text = if json { String::new() } else { "a,b,c\n".to_string() };
            for p in pieces {
                text.push_str(TOKENS[p]);
            }
            let format = if json { InputFormat::Json } else { InputFormat::Csv };
            let _ = read_all(text.as_bytes(), format, &hints(which));
        }

        /// Objects with the hinted columns and values of any kind.
        #[test]
        fn json_objects_of_any_values_read_as_rows_or_an_error(
            values in proptest::collection::vec((0usize..3, 0usize..24), 0..12),
            which in 0usize..512,
        ) {
            let mut text = String::new();
            for (column, value) in values {
                let token = TOKENS[value];
                let value = serde_json::to_string(token).unwrap_or_default();
                let raw = if token.parse::<f64>().is_ok() || ["true", "null"].contains(&token) {
                    token.to_string()
                } else {
                    value
                };
                text.push_str(&format!("{{\"{}\": {raw}}}\n", ["a", "b", "c"][column]));
            }
            let _ = read_all(text.as_bytes(), InputFormat::Json, &hints(which));
        }
    }

    #[test]
    fn widening_is_lossless_narrowing_is_not() {
        assert!(is_lossless(&DataType::Int32, &DataType::Int64));
        assert!(!is_lossless(&DataType::Int64, &DataType::Int32));
        assert!(is_lossless(&DataType::Int32, &DataType::Decimal128(12, 2)));
        assert!(!is_lossless(&DataType::Int64, &DataType::Decimal128(12, 2)));
        assert!(!is_lossless(&DataType::Utf8, &DataType::Int64));
        assert!(!is_lossless(
            &DataType::Float64,
            &DataType::Decimal128(12, 2)
        ));
        assert!(is_lossless(
            &DataType::Decimal128(10, 2),
            &DataType::Decimal128(12, 2)
        ));
        assert!(!is_lossless(
            &DataType::Decimal128(12, 4),
            &DataType::Decimal128(12, 2)
        ));
        let utc = DataType::Timestamp(
            deltalake::arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        );
        let naive = DataType::Timestamp(deltalake::arrow::datatypes::TimeUnit::Nanosecond, None);
        assert!(is_lossless(&naive, &utc));
        assert!(!is_lossless(&utc, &naive));
        assert!(!is_lossless(&DataType::Date64, &DataType::Date32));
    }
}
