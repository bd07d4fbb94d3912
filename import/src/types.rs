//! The column types an import can carry faithfully, their Arrow (and so Delta) types, and
//! the builders that turn decoded source values into Arrow batches.

use std::sync::Arc;

use tarn_table::deltalake::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    ListArray, StringBuilder, TimestampMicrosecondBuilder,
};
use tarn_table::deltalake::arrow::buffer::{NullBuffer, OffsetBuffer};
use tarn_table::deltalake::arrow::datatypes::{DataType, Field, TimeUnit};

/// A source column's type, as Tarn stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColType {
    /// 8-bit integer (Delta `byte`).
    Int8,
    /// 16-bit integer (Delta `short`).
    Int16,
    /// 32-bit integer (Delta `integer`).
    Int32,
    /// 64-bit integer (Delta `long`).
    Int64,
    /// Delta `float`.
    Float32,
    /// Delta `double`.
    Float64,
    /// `decimal(p, s)`.
    Decimal(u8, i8),
    /// Delta `string`.
    Utf8,
    /// Delta `boolean`.
    Bool,
    /// Delta `date`.
    Date,
    /// Delta `timestamp` (UTC).
    Timestamp,
    /// Delta `timestamp_ntz` (no time zone).
    TimestampNtz,
    /// Delta `binary`.
    Binary,
    /// `array<T>`.
    List(Box<ColType>),
}

impl ColType {
    /// The Arrow type Tarn writes.
    pub fn arrow(&self) -> DataType {
        match self {
            ColType::Int8 => DataType::Int8,
            ColType::Int16 => DataType::Int16,
            ColType::Int32 => DataType::Int32,
            ColType::Int64 => DataType::Int64,
            ColType::Float32 => DataType::Float32,
            ColType::Float64 => DataType::Float64,
            ColType::Decimal(p, s) => DataType::Decimal128(*p, *s),
            ColType::Utf8 => DataType::Utf8,
            ColType::Bool => DataType::Boolean,
            ColType::Date => DataType::Date32,
            ColType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColType::TimestampNtz => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColType::Binary => DataType::Binary,
            ColType::List(inner) => {
                DataType::List(Arc::new(Field::new("element", inner.arrow(), true)))
            }
        }
    }

    /// The type as Tarn prints it everywhere (`tarn describe`, `--schema`): Spark text such
    /// as `bigint`, `decimal(12,2)`, `array<string>`.
    pub fn type_text(&self) -> String {
        match self {
            ColType::Int8 => "tinyint".into(),
            ColType::Int16 => "smallint".into(),
            ColType::Int32 => "int".into(),
            ColType::Int64 => "bigint".into(),
            ColType::Float32 => "float".into(),
            ColType::Float64 => "double".into(),
            ColType::Decimal(p, s) => format!("decimal({p},{s})"),
            ColType::Utf8 => "string".into(),
            ColType::Bool => "boolean".into(),
            ColType::Date => "date".into(),
            ColType::Timestamp => "timestamp".into(),
            ColType::TimestampNtz => "timestamp_ntz".into(),
            ColType::Binary => "binary".into(),
            ColType::List(inner) => format!("array<{}>", inner.type_text()),
        }
    }

    /// Whether values only grow in a meaningful order, so "rows beyond the last value"
    /// makes sense for an incremental cursor.
    pub fn is_cursor_type(&self) -> bool {
        matches!(
            self,
            ColType::Int8
                | ColType::Int16
                | ColType::Int32
                | ColType::Int64
                | ColType::Decimal(..)
                | ColType::Date
                | ColType::Timestamp
                | ColType::TimestampNtz
        )
    }
}

/// A source column mapped for import.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// The source's type, as the source names it (`numeric(12,2)`, `varchar(40)`).
    pub source_type: String,
    /// What Tarn stores.
    pub col_type: ColType,
}

/// Builds one Arrow column from decoded values.
pub enum ColBuilder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Utf8(StringBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    Binary(BinaryBuilder),
    List {
        inner: Box<ColBuilder>,
        field: Arc<Field>,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    },
}

impl ColBuilder {
    /// An empty builder for `t`.
    pub fn new(t: &ColType) -> Self {
        match t {
            ColType::Int8 => ColBuilder::Int8(Int8Builder::new()),
            ColType::Int16 => ColBuilder::Int16(Int16Builder::new()),
            ColType::Int32 => ColBuilder::Int32(Int32Builder::new()),
            ColType::Int64 => ColBuilder::Int64(Int64Builder::new()),
            ColType::Float32 => ColBuilder::Float32(Float32Builder::new()),
            ColType::Float64 => ColBuilder::Float64(Float64Builder::new()),
            ColType::Decimal(p, s) => ColBuilder::Decimal(Decimal128Builder::new(), *p, *s),
            ColType::Utf8 => ColBuilder::Utf8(StringBuilder::new()),
            ColType::Bool => ColBuilder::Bool(BooleanBuilder::new()),
            ColType::Date => ColBuilder::Date(Date32Builder::new()),
            ColType::Timestamp => ColBuilder::Timestamp(TimestampMicrosecondBuilder::new(), true),
            ColType::TimestampNtz => {
                ColBuilder::Timestamp(TimestampMicrosecondBuilder::new(), false)
            }
            ColType::Binary => ColBuilder::Binary(BinaryBuilder::new()),
            ColType::List(inner) => ColBuilder::List {
                inner: Box::new(ColBuilder::new(inner)),
                field: Arc::new(Field::new("element", inner.arrow(), true)),
                offsets: vec![0],
                valid: Vec::new(),
            },
        }
    }

    /// Appends a null.
    pub fn append_null(&mut self) {
        match self {
            ColBuilder::Int8(b) => b.append_null(),
            ColBuilder::Int16(b) => b.append_null(),
            ColBuilder::Int32(b) => b.append_null(),
            ColBuilder::Int64(b) => b.append_null(),
            ColBuilder::Float32(b) => b.append_null(),
            ColBuilder::Float64(b) => b.append_null(),
            ColBuilder::Decimal(b, ..) => b.append_null(),
            ColBuilder::Utf8(b) => b.append_null(),
            ColBuilder::Bool(b) => b.append_null(),
            ColBuilder::Date(b) => b.append_null(),
            ColBuilder::Timestamp(b, _) => b.append_null(),
            ColBuilder::Binary(b) => b.append_null(),
            ColBuilder::List { offsets, valid, .. } => {
                offsets.push(*offsets.last().expect("starts with 0"));
                valid.push(false);
            }
        }
    }

    /// Closes a list row whose elements were appended to the inner builder.
    pub fn end_list(&mut self, elements: usize) {
        if let ColBuilder::List { offsets, valid, .. } = self {
            let last = *offsets.last().expect("starts with 0");
            offsets.push(last + elements as i32);
            valid.push(true);
        }
    }

    /// The column built so far; the builder is left empty, with room for as many values
    /// (and string bytes) as it just held, so the next batch fills it without regrowing it
    /// from nothing (an Arrow builder's `finish` leaves it with no capacity).
    pub fn finish(&mut self) -> ArrayRef {
        macro_rules! again {
            ($b:expr, $builder:ty) => {{
                let a = $b.finish();
                *$b = <$builder>::with_capacity(a.len());
                a
            }};
        }
        match self {
            ColBuilder::Int8(b) => Arc::new(again!(b, Int8Builder)),
            ColBuilder::Int16(b) => Arc::new(again!(b, Int16Builder)),
            ColBuilder::Int32(b) => Arc::new(again!(b, Int32Builder)),
            ColBuilder::Int64(b) => Arc::new(again!(b, Int64Builder)),
            ColBuilder::Float32(b) => Arc::new(again!(b, Float32Builder)),
            ColBuilder::Float64(b) => Arc::new(again!(b, Float64Builder)),
            ColBuilder::Decimal(b, p, s) => Arc::new(
                again!(b, Decimal128Builder)
                    .with_precision_and_scale(*p, *s)
                    .expect("valid precision and scale"),
            ),
            ColBuilder::Utf8(b) => {
                let a = b.finish();
                *b = StringBuilder::with_capacity(a.len(), a.value_data().len());
                Arc::new(a)
            }
            ColBuilder::Bool(b) => Arc::new(again!(b, BooleanBuilder)),
            ColBuilder::Date(b) => Arc::new(again!(b, Date32Builder)),
            ColBuilder::Timestamp(b, utc) => {
                let a = again!(b, TimestampMicrosecondBuilder);
                if *utc {
                    Arc::new(a.with_timezone("UTC"))
                } else {
                    Arc::new(a)
                }
            }
            ColBuilder::Binary(b) => {
                let a = b.finish();
                *b = BinaryBuilder::with_capacity(a.len(), a.value_data().len());
                Arc::new(a)
            }
            ColBuilder::List {
                inner,
                field,
                offsets,
                valid,
            } => {
                let values = inner.finish();
                let offs = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = NullBuffer::from(std::mem::take(valid));
                Arc::new(ListArray::new(field.clone(), offs, values, Some(nulls)))
            }
        }
    }
}

/// The columns built so far as one batch of `schema`; the builders are left empty.
pub fn finish_batch(
    schema: &tarn_table::deltalake::arrow::datatypes::SchemaRef,
    builders: &mut [ColBuilder],
) -> Result<tarn_table::deltalake::arrow::array::RecordBatch, crate::Error> {
    let columns = builders.iter_mut().map(ColBuilder::finish).collect();
    tarn_table::deltalake::arrow::array::RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| crate::Error::internal(format!("building a batch: {e}")).with_source(e))
}

/// Parses a decimal written in base 10 (`-12.5`, `3`, `0.125`) into an integer scaled by
/// `scale`. More fractional digits than `scale` is an error (never silently rounded).
pub fn parse_decimal(text: &str, scale: i8) -> Result<i128, String> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("`{text}` is not a decimal number"));
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > scale.max(0) as usize {
        return Err(format!("`{text}` has more than {scale} decimal places"));
    }
    let mut value: i128 = 0;
    let overflow = || format!("`{text}` is too large for a decimal");
    for b in int_part
        .bytes()
        .chain(frac_trimmed.bytes())
        .chain(std::iter::repeat_n(
            b'0',
            scale.max(0) as usize - frac_trimmed.len(),
        ))
    {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    Ok(if neg { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly_or_fail() {
        assert_eq!(parse_decimal("12.5", 2), Ok(1250));
        assert_eq!(parse_decimal("-0.125", 3), Ok(-125));
        assert_eq!(parse_decimal("7", 0), Ok(7));
        assert_eq!(parse_decimal("1.50", 1), Ok(15));
        assert!(parse_decimal("1.234", 2).is_err());
        assert!(parse_decimal("abc", 2).is_err());
        assert!(parse_decimal("", 2).is_err());
        assert!(parse_decimal("1e5", 2).is_err());
    }
}
