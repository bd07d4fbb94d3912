//! `date_trunc` with a fast path for UTC timestamps.
//!
//! Delta's `timestamp` is read as `Timestamp(µs, "UTC")`. DataFusion 55 truncates such
//! values to a day, week, month, quarter or year row by row through a time-zone
//! conversion, which made `DATE_TRUNC('month', ts)` over a million rows take 0.26 s. In UTC
//! the wall clock *is* the stored value, so this wrapper drops the zone (the values do not
//! change), lets DataFusion truncate naive timestamps (its fast path), and puts the zone
//! back. Every other input goes to DataFusion's own function unchanged.

use std::sync::Arc;

use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, FieldRef};
use deltalake::datafusion::common::Result;
use deltalake::datafusion::functions::datetime::date_trunc::DateTruncFunc;
use deltalake::datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

/// DataFusion's `date_trunc`, faster on UTC timestamps.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct UtcDateTrunc {
    inner: DateTruncFunc,
}

impl UtcDateTrunc {
    pub(crate) fn new() -> Self {
        Self {
            inner: DateTruncFunc::new(),
        }
    }
}

fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "utc" | "+00:00" | "Z" | "Etc/UTC" | "+0000")
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let utc_array = match args.args.get(1) {
            Some(ColumnarValue::Array(a)) => match a.data_type() {
                DataType::Timestamp(unit, Some(tz)) if is_utc(tz) => {
                    Some((a.clone(), *unit, a.data_type().clone()))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((array, unit, zoned)) = utc_array else {
            return self.inner.invoke_with_args(args);
        };
        let naive = DataType::Timestamp(unit, None);
        args.args[1] = ColumnarValue::Array(cast(&array, &naive)?);
        if let Some(field) = args.arg_fields.get_mut(1) {
            *field = Arc::new(Field::new(field.name(), naive.clone(), field.is_nullable()));
        }
        let return_field = args.return_field.clone();
        args.return_field = Arc::new(Field::new(
            return_field.name(),
            naive,
            return_field.is_nullable(),
        ));
        match self.inner.invoke_with_args(args)? {
            ColumnarValue::Array(result) => Ok(ColumnarValue::Array(cast(&result, &zoned)?)),
            scalar => Ok(scalar),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{RecordBatch, TimestampMicrosecondArray};
    use deltalake::arrow::datatypes::{Schema, TimeUnit};
    use deltalake::arrow::util::pretty::pretty_format_batches;
    use deltalake::datafusion::datasource::MemTable;
    use deltalake::datafusion::logical_expr::ScalarUDF;
    use deltalake::datafusion::prelude::SessionContext;

    async fn run(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn gives_the_same_answers_as_datafusion() {
        // Month and year boundaries, a leap day, before 1970, and a null.
        let values = [
            Some(0),
            Some(951_782_400_000_000 - 1),
            Some(951_782_400_000_000),
            Some(1_767_225_599_999_999),
            Some(-86_400_000_001),
            Some(1_709_164_800_123_456),
            None,
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "naive",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC")),
                Arc::new(TimestampMicrosecondArray::from(values.to_vec())),
            ],
        )
        .unwrap();
        let table =
            || Arc::new(MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).unwrap());
        let stock = SessionContext::new();
        stock.register_table("t", table()).unwrap();
        let fast = SessionContext::new();
        fast.register_udf(ScalarUDF::new_from_impl(UtcDateTrunc::new()));
        fast.register_table("t", table()).unwrap();
        for unit in [
            "year", "quarter", "month", "week", "day", "hour", "minute", "second",
        ] {
            for column in ["ts", "naive"] {
                let sql = format!("SELECT date_trunc('{unit}', {column}) AS d, arrow_typeof(date_trunc('{unit}', {column})) AS t FROM t");
                assert_eq!(run(&fast, &sql).await, run(&stock, &sql).await, "{sql}");
            }
        }
        let sql = "SELECT date_trunc('month', TIMESTAMP '2026-05-17T10:00:00Z') AS d";
        assert_eq!(run(&fast, sql).await, run(&stock, sql).await);
    }
}
