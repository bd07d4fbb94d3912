//! Printing results: rows as aligned tables, CSV or JSON (values encoded by `encoding`);
//! reports as text or JSON.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table as RecordTable};
use futures::StreamExt;
use serde::Serialize;
use tarn_table::deltalake::arrow::array::RecordBatch;
use tarn_table::QueryResult;

use crate::encoding;

use crate::{Failure, Result};

use crate::cli::OutputFormat;

/// Set once a write to stdout finds its reader gone (`tarn query … | head`): the command
/// then stops, and `main` exits quietly with success, as `cat` and `grep` do, instead of
/// printing a "Broken pipe" error.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether stdout's reader has gone.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Stdout, noting a broken pipe in [`STDOUT_CLOSED`].
struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    fn lock() -> Self {
        Stdout(std::io::stdout().lock())
    }
}

fn note_closed(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    e
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(note_closed)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(note_closed)
    }
}

/// Writes `text` to stdout.
fn print_text(text: &str) -> Result<()> {
    let mut out = Stdout::lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(io_error)
}

/// Rows of the text table read before its column widths are fixed.
const TABLE_SAMPLE_ROWS: usize = 1000;

/// Streams a query's rows to stdout in `format`, one batch at a time. Values are encoded
/// as `encoding` says, in every format.
pub async fn print_rows(mut result: QueryResult, format: OutputFormat) -> Result<u64> {
    let mut rows = 0u64;
    match format {
        OutputFormat::Table => {
            let header: Vec<String> = result
                .schema
                .fields()
                .iter()
                .map(|f| encoding::cut_cell(f.name(), encoding::CELL_WIDTH))
                .collect();
            let mut table = TextTable::new(header);
            let mut out = std::io::BufWriter::new(Stdout::lock());
            while let Some(batch) = result.stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                for cells in encoding::table_cells(&batch)? {
                    table.row(cells, &mut out).map_err(io_error)?;
                }
            }
            table.finish(&mut out).map_err(io_error)?;
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(io_error)?;
            out.flush().map_err(io_error)?;
        }
        OutputFormat::Csv => {
            let mut writer = tarn_table::deltalake::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(Stdout::lock());
            let mut wrote_any = false;
            while let Some(batch) = result.stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&encoding::csv_ready(&batch)?)?;
                wrote_any = true;
            }
            if !wrote_any {
                let empty = RecordBatch::new_empty(result.schema.clone());
                writer.write(&encoding::csv_ready(&empty)?)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = encoding::json_array_writer(Stdout::lock());
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

/// A text table printed as rows arrive, in arrow's layout (`+---+` borders). The column
/// widths come from the header and the first [`TABLE_SAMPLE_ROWS`] rows; a later value
/// wider than its column is cut to it with `…`.
struct TextTable {
    header: Vec<String>,
    sample: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
}

impl TextTable {
    fn new(header: Vec<String>) -> Self {
        Self {
            header,
            sample: Vec::new(),
            widths: None,
        }
    }

    /// Adds one row (its cells already cut to [`encoding::CELL_WIDTH`]).
    fn row(&mut self, cells: Vec<String>, out: &mut impl Write) -> std::io::Result<()> {
        match &self.widths {
            Some(widths) => {
                let cells: Vec<String> = cells
                    .into_iter()
                    .zip(widths)
                    .map(|(c, w)| {
                        if encoding::text_width(&c) > *w {
                            encoding::cut_cell(&c, *w)
                        } else {
                            c
                        }
                    })
                    .collect();
                write_line(out, &cells, widths)
            }
            None => {
                self.sample.push(cells);
                if self.sample.len() >= TABLE_SAMPLE_ROWS {
                    self.start(out)?;
                }
                Ok(())
            }
        }
    }

    /// Fixes the widths and prints the header and the sampled rows.
    fn start(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self
            .header
            .iter()
            .map(String::as_str)
            .map(encoding::text_width)
            .collect();
        for row in &self.sample {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(encoding::text_width(cell));
            }
        }
        // A column is at least 1 wide, so a later value cut to it still shows `…`.
        for w in &mut widths {
            *w = (*w).max(1);
        }
        if widths.is_empty() {
            self.widths = Some(widths);
            return Ok(());
        }
        write_border(out, &widths)?;
        write_line(out, &self.header, &widths)?;
        write_border(out, &widths)?;
        for row in std::mem::take(&mut self.sample) {
            write_line(out, &row, &widths)?;
        }
        self.widths = Some(widths);
        Ok(())
    }

    /// Prints what is left and the closing border.
    fn finish(mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.widths.is_none() {
            self.start(out)?;
        }
        let widths = self.widths.unwrap_or_default();
        if !widths.is_empty() {
            write_border(out, &widths)?;
        }
        Ok(())
    }
}

fn write_border(out: &mut impl Write, widths: &[usize]) -> std::io::Result<()> {
    let mut line = String::from("+");
    for w in widths {
        line.push_str(&"-".repeat(w + 2));
        line.push('+');
    }
    writeln!(out, "{line}")
}

/// One row; a cell of several lines makes several text lines.
fn write_line(out: &mut impl Write, cells: &[String], widths: &[usize]) -> std::io::Result<()> {
    if !cells.iter().any(|c| c.contains('\n')) {
        out.write_all(b"|")?;
        for (cell, w) in cells.iter().zip(widths) {
            write_cell(out, cell, *w)?;
        }
        return out.write_all(b"\n");
    }
    let lines: Vec<Vec<&str>> = cells.iter().map(|c| c.split('\n').collect()).collect();
    let height = lines.iter().map(Vec::len).max().unwrap_or(1);
    for i in 0..height {
        out.write_all(b"|")?;
        for (cell, w) in lines.iter().zip(widths) {
            write_cell(out, cell.get(i).copied().unwrap_or(""), *w)?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// ` text ` padded to `width` columns, then `|`.
fn write_cell(out: &mut impl Write, text: &str, width: usize) -> std::io::Result<()> {
    const SPACES: &[u8] = &[b' '; 96];
    out.write_all(b" ")?;
    out.write_all(text.as_bytes())?;
    let mut pad = width.saturating_sub(encoding::text_width(text)) + 1;
    while pad > 0 {
        let n = pad.min(SPACES.len());
        out.write_all(&SPACES[..n])?;
        pad -= n;
    }
    out.write_all(b"|")
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
    print_text(&format!("{out}\n"))
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
            print_text(&format!("{text}\n"))?;
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
            print_text(&writer)?;
        }
        OutputFormat::Table => {
            let mut table = RecordTable::new();
            table
                .load_preset(UTF8_BORDERS_ONLY)
                .set_header(header.to_vec());
            for r in records {
                let cells = row(r);
                table.add_row(
                    cells
                        .iter()
                        .map(|c| encoding::cut_cell(c, encoding::CELL_WIDTH))
                        .collect::<Vec<_>>(),
                );
            }
            print_text(&format!("{table}\n"))?;
        }
    }
    Ok(())
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn io_error(e: std::io::Error) -> Failure {
    Failure(format!("cannot write output: {e}"))
}
