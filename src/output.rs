//! Printing results: rows as aligned tables, CSV or JSON; reports as text or JSON.

use std::io::Write;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table as TextTable};
use futures::StreamExt;
use serde::Serialize;
use tarn_table::deltalake::arrow::array::RecordBatch;
use tarn_table::deltalake::arrow::util::pretty::pretty_format_batches;
use tarn_table::QueryResult;

use crate::{Failure, Result};

use crate::cli::OutputFormat;

/// Streams a query's rows to stdout in `format`.
pub async fn print_rows(mut result: QueryResult, format: OutputFormat) -> Result<u64> {
    let stdout = std::io::stdout();
    let mut rows = 0u64;
    match format {
        OutputFormat::Table => {
            // Alignment needs every row; a query for people should be small.
            let mut batches: Vec<RecordBatch> = Vec::new();
            while let Some(batch) = result.stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                batches.push(batch);
            }
            if batches.is_empty() {
                batches.push(RecordBatch::new_empty(result.schema.clone()));
            }
            let text = pretty_format_batches(&batches)?;
            let mut out = stdout.lock();
            writeln!(out, "{text}").map_err(io_error)?;
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(io_error)?;
        }
        OutputFormat::Csv => {
            let mut writer = tarn_table::deltalake::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(stdout.lock());
            let mut wrote_any = false;
            while let Some(batch) = result.stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
                wrote_any = true;
            }
            if !wrote_any {
                writer.write(&RecordBatch::new_empty(result.schema.clone()))?;
            }
        }
        OutputFormat::Json => {
            let mut writer = tarn_table::deltalake::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, tarn_table::deltalake::arrow::json::writer::JsonArray>(stdout.lock());
            while let Some(batch) = result.stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
            let mut out = writer.into_inner();
            writeln!(out).map_err(io_error)?;
        }
    }
    Ok(rows)
}

/// A time in ms since the epoch as Tarn prints times (RFC 3339, ms, `Z`).
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| tarn_table::format_timestamp(&t))
        .unwrap_or_default()
}

/// Prints a report: JSON when asked, else the given text.
pub fn print_report<T: Serialize>(
    format: OutputFormat,
    value: &T,
    text: impl FnOnce() -> String,
) -> Result<()> {
    let out = match format {
        OutputFormat::Json => {
            serde_json::to_string_pretty(value).map_err(|e| Failure(e.to_string()))?
        }
        _ => text(),
    };
    println!("{out}");
    Ok(())
}

/// Prints a list of records as a text table, CSV, or a JSON array.
pub fn print_records<T: Serialize>(
    format: OutputFormat,
    header: &[&str],
    records: &[T],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<()> {
    match format {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(records).map_err(|e| Failure(e.to_string()))?;
            println!("{text}");
        }
        OutputFormat::Csv => {
            let mut writer = String::new();
            writer.push_str(&header.join(","));
            writer.push('\n');
            for r in records {
                let cells: Vec<String> = row(r).into_iter().map(|c| csv_cell(&c)).collect();
                writer.push_str(&cells.join(","));
                writer.push('\n');
            }
            print!("{writer}");
        }
        OutputFormat::Table => {
            let mut table = TextTable::new();
            table
                .load_preset(UTF8_BORDERS_ONLY)
                .set_header(header.to_vec());
            for r in records {
                table.add_row(row(r));
            }
            println!("{table}");
        }
    }
    Ok(())
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn io_error(e: std::io::Error) -> Failure {
    Failure(format!("cannot write output: {e}"))
}
