//! The response format (`parquet` or `delta`) and the other capabilities a client states
//! in its `delta-sharing-capabilities` header, and what the `parquet` format cannot carry.

use axum::http::HeaderMap;
use tarn_table::{DataFile, Table};

use super::Result;
use crate::error::ApiError;

/// The header in which clients state what they accept and servers what they answer.
pub(super) const CAPABILITIES: &str = "delta-sharing-capabilities";

/// The response format: `parquet` (the default) or `delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Parquet,
    Delta,
}

/// The formats a client accepts, from its `delta-sharing-capabilities: responseformat=...`
/// header (absent: `parquet` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Accepted {
    parquet: bool,
    delta: bool,
}

impl Accepted {
    pub(super) fn from_headers(headers: &HeaderMap) -> Result<Self> {
        let parquet_only = Accepted {
            parquet: true,
            delta: false,
        };
        let Some(value) = headers.get(CAPABILITIES).and_then(|v| v.to_str().ok()) else {
            return Ok(parquet_only);
        };
        for part in value.split(';') {
            let Some((key, formats)) = part.split_once('=') else {
                continue;
            };
            if !key.trim().eq_ignore_ascii_case("responseformat") {
                continue;
            }
            let listed: Vec<String> = formats
                .split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            let accepted = Accepted {
                parquet: listed.iter().any(|f| f == "parquet"),
                delta: listed.iter().any(|f| f == "delta"),
            };
            if !accepted.parquet && !accepted.delta {
                return Err(ApiError::invalid(format!(
                    "unsupported responseformat `{}`: this server answers `parquet` or `delta`",
                    formats.trim()
                )));
            }
            return Ok(accepted);
        }
        Ok(parquet_only)
    }

    /// `parquet` when the client takes it and the table can be expressed in it (the
    /// simplest for clients), else `delta`.
    pub(super) fn choose(self, table: &Table, label: &str, files: &[DataFile]) -> Result<Format> {
        if self.parquet {
            match check_parquet_readable(table, label, files) {
                Ok(()) => return Ok(Format::Parquet),
                Err(e) if !self.delta => return Err(e),
                Err(_) => {}
            }
        }
        Ok(Format::Delta)
    }
}

/// Whether the client asked for an `endStreamAction` line at the end of query and changes
/// answers (`delta-sharing-capabilities: includeendstreamaction=true`).
pub(super) fn wants_end_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CAPABILITIES)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|value| {
            value.split(';').any(|part| {
                part.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("includeendstreamaction")
                        && v.trim().eq_ignore_ascii_case("true")
                })
            })
        })
}

/// Refuses what the `parquet` format cannot express: column mapping, deletion vectors.
fn check_parquet_readable(table: &Table, label: &str, files: &[DataFile]) -> Result<()> {
    let metadata = table.metadata()?;
    let mapping = metadata
        .property("delta.columnMapping.mode")
        .unwrap_or("none");
    if mapping != "none" {
        return Err(ApiError::invalid(format!(
            "table `{label}` uses column mapping: read it with responseformat=delta"
        )));
    }
    if files.iter().any(DataFile::has_deletion_vector) {
        return Err(deletion_vectors(label));
    }
    Ok(())
}

fn deletion_vectors(label: &str) -> ApiError {
    ApiError::invalid(format!(
        "table `{label}` has deletion vectors: read it with responseformat=delta"
    ))
}

/// Refuses a file that cannot be handed out: one outside the table's location, one whose
/// deletion vector is (in the `delta` format), or (in the `parquet` format) one with
/// deleted rows.
pub(super) fn check_servable(file: &DataFile, label: &str, format: Format) -> Result<()> {
    if !tarn_table::is_table_relative(&file.path) {
        return Err(ApiError::invalid(format!(
            "table `{label}` refers to a file outside its location; it cannot be shared"
        )));
    }
    if let Some(dv) = &file.deletion_vector {
        if format == Format::Parquet {
            return Err(deletion_vectors(label));
        }
        if dv.storage_type != "i" && dv.relative_path().is_none() {
            return Err(ApiError::invalid(format!(
                "table `{label}` has a deletion vector outside its location; it cannot be shared"
            )));
        }
    }
    Ok(())
}
