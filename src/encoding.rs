//! How a value of each Delta type is written in JSON, in a CSV cell and in a text-table cell.
//!
//! One encoding per type, documented in `docs/cli.md` ("How values are printed"):
//! - JSON: arrow's JSON encoding, with two changes. A `float`/`double` that is not finite
//!   is the string `"NaN"`, `"Infinity"` or `"-Infinity"` (arrow writes `null`, which a
//!   null also is), and a map whose keys are not strings is an array of
//!   `{"key": …, "value": …}` objects (arrow refuses it). Maps with string keys stay JSON
//!   objects, binary stays lowercase hex, decimals and integers stay exact JSON numbers.
//! - CSV: a nested value (array, map, struct) is its JSON text in one cell; everything
//!   else is arrow's CSV text.
//! - Text table: the CSV cell text, each line cut at [`CELL_WIDTH`] characters with `…`.
//!
//! Everything works on one batch at a time, so results stream.

use std::io::Write;
use std::sync::{Arc, LazyLock};

use tarn_table::deltalake::arrow::array::{
    Array, ArrayRef, AsArray, MapArray, PrimitiveArray, RecordBatch, StringBuilder,
};
use tarn_table::deltalake::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, FieldRef, Float32Type, Float64Type, Schema,
};
use tarn_table::deltalake::arrow::error::ArrowError;
use tarn_table::deltalake::arrow::json::writer::{
    make_encoder, Encoder, EncoderFactory, EncoderOptions, JsonArray, NullableEncoder, Writer,
};
use tarn_table::deltalake::arrow::json::WriterBuilder;
use tarn_table::deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use unicode_width::UnicodeWidthChar;

/// The widest a line of a text-table cell gets, in terminal columns; longer lines are cut
/// and end with `…`.
pub const CELL_WIDTH: usize = 80;

/// The most lines a text-table cell shows; a cell with more ends with a `…` line.
pub const CELL_LINES: usize = 40;

/// A JSON array writer (one object per row) that encodes every type as this module says.
pub fn json_array_writer<W: Write>(out: W) -> Writer<W, JsonArray> {
    WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(DeltaJson))
        .build::<_, JsonArray>(out)
}

/// The options under which one value is encoded as JSON on its own (CSV and table cells).
fn json_options() -> EncoderOptions {
    EncoderOptions::default()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(DeltaJson))
}

/// arrow's own encoders, for the values [`DeltaJson`] only wraps.
static ARROW_JSON: LazyLock<EncoderOptions> =
    LazyLock::new(|| EncoderOptions::default().with_explicit_nulls(true));

/// The changes to arrow's JSON encoding: non-finite floats and maps with non-string keys.
#[derive(Debug)]
struct DeltaJson;

impl EncoderFactory for DeltaJson {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        match array.data_type() {
            DataType::Float32 => Ok(Some(float_encoder::<Float32Type>(field, array)?)),
            DataType::Float64 => Ok(Some(float_encoder::<Float64Type>(field, array)?)),
            DataType::Map(_, _) => {
                let map = array.as_map();
                if matches!(
                    map.keys().data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    return Ok(None);
                }
                let encoder = EntriesEncoder::try_new(field, map, options)?;
                Ok(Some(NullableEncoder::new(
                    Box::new(encoder),
                    array.nulls().cloned(),
                )))
            }
            _ => Ok(None),
        }
    }
}

/// A float: arrow's text when finite, else `"NaN"`, `"Infinity"` or `"-Infinity"`.
fn float_encoder<'a, T>(
    field: &'a FieldRef,
    array: &'a dyn Array,
) -> Result<NullableEncoder<'a>, ArrowError>
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    let encoder = FloatEncoder {
        floats: array.as_primitive::<T>(),
        finite: make_encoder(field, array, &ARROW_JSON)?,
    };
    Ok(NullableEncoder::new(
        Box::new(encoder),
        array.nulls().cloned(),
    ))
}

struct FloatEncoder<'a, T: ArrowPrimitiveType> {
    floats: &'a PrimitiveArray<T>,
    finite: NullableEncoder<'a>,
}

impl<T> Encoder for FloatEncoder<'_, T>
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v: f64 = self.floats.value(idx).into();
        if v.is_finite() {
            self.finite.encode(idx, out);
        } else if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v > 0.0 {
            out.extend_from_slice(b"\"Infinity\"");
        } else {
            out.extend_from_slice(b"\"-Infinity\"");
        }
    }
}

/// A map whose keys are not strings: `[{"key": k, "value": v}, …]` in the map's order.
struct EntriesEncoder<'a> {
    map: &'a MapArray,
    keys: NullableEncoder<'a>,
    values: NullableEncoder<'a>,
}

impl<'a> EntriesEncoder<'a> {
    fn try_new(
        field: &'a FieldRef,
        map: &'a MapArray,
        options: &'a EncoderOptions,
    ) -> Result<Self, ArrowError> {
        Ok(Self {
            map,
            keys: make_encoder(field, map.keys().as_ref(), options)?,
            values: make_encoder(field, map.values().as_ref(), options)?,
        })
    }
}

impl Encoder for EntriesEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let offsets = self.map.value_offsets();
        let (start, end) = (offsets[idx] as usize, offsets[idx + 1] as usize);
        out.push(b'[');
        for i in start..end {
            if i > start {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"key\":");
            if self.keys.is_null(i) {
                out.extend_from_slice(b"null");
            } else {
                self.keys.encode(i, out);
            }
            out.extend_from_slice(b",\"value\":");
            if self.values.is_null(i) {
                out.extend_from_slice(b"null");
            } else {
                self.values.encode(i, out);
            }
            out.push(b'}');
        }
        out.push(b']');
    }
}

/// Each value of a nested column as its JSON text (null stays null).
fn nested_as_json(field: &FieldRef, array: &dyn Array) -> Result<ArrayRef, ArrowError> {
    let options = json_options();
    let mut encoder = make_encoder(field, array, &options)?;
    let mut texts = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut buffer = Vec::new();
    for i in 0..array.len() {
        if array.is_null(i) {
            texts.append_null();
            continue;
        }
        buffer.clear();
        encoder.encode(i, &mut buffer);
        texts.append_value(String::from_utf8_lossy(&buffer));
    }
    Ok(Arc::new(texts.finish()))
}

/// `batch` with every nested column replaced by its values' JSON text, for CSV.
pub fn csv_ready(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
            columns.push(nested_as_json(field, column.as_ref())?);
        } else {
            fields.push(field.clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Each row of `batch` as text-table cells: the CSV text of each value (nested values as
/// JSON, null as an empty cell), cut by [`cut_cell`].
pub fn table_cells(batch: &RecordBatch) -> Result<Vec<Vec<String>>, ArrowError> {
    let batch = csv_ready(batch)?;
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        let mut cells = Vec::with_capacity(formatters.len());
        for f in &formatters {
            text.clear();
            f.value(row)
                .write(&mut text)
                .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
            cells.push(cut_cell(&text, CELL_WIDTH));
        }
        rows.push(cells);
    }
    Ok(rows)
}

/// `text` for a text-table cell: tabs and control characters shown as spaces, at most
/// [`CELL_LINES`] lines, and each line at most `width` columns wide (cut ones end with `…`).
pub fn cut_cell(text: &str, width: usize) -> String {
    if text.len() <= width && text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len().min(width * 4 + 8));
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        if n == CELL_LINES {
            out.push('…');
            break;
        }
        push_cut_line(&mut out, line, width);
    }
    out
}

/// A character as a cell shows it, and its width in terminal columns.
fn shown(c: char) -> (char, usize) {
    if c.is_control() {
        (' ', 1)
    } else {
        (c, c.width().unwrap_or(0))
    }
}

/// Appends one line, cut to at most `width` columns (the last of them `…`) if wider.
fn push_cut_line(out: &mut String, line: &str, width: usize) {
    let start = out.len();
    let mut used = 0;
    // Where the line ends if it has to be cut: the last character that leaves room for `…`.
    let mut cut_at = None;
    for c in line.chars() {
        let (c, w) = shown(c);
        if cut_at.is_none() && used + w + 1 > width {
            cut_at = Some(out.len());
        }
        if used + w > width {
            out.truncate(cut_at.unwrap_or(start));
            out.push('…');
            return;
        }
        out.push(c);
        used += w;
    }
}

/// The width of `text`'s widest line, in terminal columns.
pub fn text_width(text: &str) -> usize {
    if text.is_ascii() && !text.contains('\n') {
        return text.len();
    }
    text.split('\n')
        .map(|l| l.chars().map(|c| shown(c).1).sum())
        .max()
        .unwrap_or(0)
}
