//! The NDJSON lines of an answer, made from `tarn_table`'s types: a version's protocol and
//! metadata, and its files (or a commit's), with pre-signed URLs, in either format.

use tarn_table::{DataFile, Table};

use super::format::Format;
use super::signer::{file_id, Signer};
use super::wire::{
    DeletionVector, DeltaFile, DeltaFileAction, DeltaMetadata, DeltaProtocol, DeltaSingleAction,
    EndStreamAction, FileLine, Line, Metadata, MetadataLine, ParquetFile, ParquetFormat,
    ParquetMetadata, ParquetProtocol, ProtocolLine,
};
use super::Result;

/// What a version of the table looks like to a reader.
pub(super) fn protocol_line(table: &Table, format: Format) -> Result<Line> {
    Ok(Line::Protocol(match format {
        Format::Parquet => ProtocolLine::Parquet(ParquetProtocol {
            min_reader_version: 1,
        }),
        Format::Delta => ProtocolLine::Delta(DeltaProtocol {
            delta_protocol: table.protocol()?,
        }),
    }))
}

/// The table's metadata at its loaded version, labelled `version`, with the size and
/// count of `files` when given (a snapshot's).
pub(super) fn metadata_line(
    table: &Table,
    format: Format,
    version: Option<u64>,
    files: Option<&[DataFile]>,
) -> Result<Line> {
    let metadata = table.metadata()?;
    let metadata = match format {
        Format::Parquet => Metadata::Parquet(ParquetMetadata {
            id: metadata.id,
            name: metadata.name,
            description: metadata.description,
            format: ParquetFormat {
                provider: "parquet".into(),
            },
            schema_string: metadata.schema_string,
            partition_columns: metadata.partition_columns,
            configuration: metadata.configuration,
            created_time: metadata.created_time,
        }),
        Format::Delta => Metadata::Delta(DeltaMetadata {
            delta_metadata: metadata,
        }),
    };
    Ok(Line::Metadata(Box::new(MetadataLine {
        metadata,
        version,
        size: files.map(|f| f.iter().map(|f| f.size).sum()),
        num_files: files.map(<[DataFile]>::len),
    })))
}

/// What a file line says about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileKind {
    /// A file of a snapshot.
    Snapshot,
    /// A file a commit added.
    Add,
    /// A file a commit removed.
    Remove,
    /// Change data a commit wrote.
    Cdf,
}

/// Where a file line comes from in the log (for history and time-travel answers).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    pub(super) version: u64,
    pub(super) timestamp: i64,
}

/// The line of `file`, with a URL from `signer`.
pub(super) fn file_line(
    kind: FileKind,
    file: &DataFile,
    signer: &Signer,
    format: Format,
    stamp: Option<Stamp>,
) -> Line {
    let url = signer.url(&file.path);
    let (version, timestamp) = (stamp.map(|s| s.version), stamp.map(|s| s.timestamp));
    match format {
        Format::Parquet => {
            let line = FileLine::Parquet(ParquetFile {
                url,
                id: file_id(&file.path),
                partition_values: file.partition_values.clone(),
                size: file.size,
                stats: file.stats_json.clone(),
                expiration_timestamp: signer.expires_at,
                version,
                timestamp,
            });
            match kind {
                FileKind::Snapshot => Line::File(line),
                FileKind::Add => Line::Add(line),
                FileKind::Remove => Line::Remove(line),
                FileKind::Cdf => Line::Cdf(line),
            }
        }
        Format::Delta => {
            let action = DeltaFileAction {
                path: url,
                partition_values: file.partition_values.clone(),
                size: file.size,
                modification_time: file.modification_time,
                data_change: true,
                stats: file.stats_json.clone(),
                deletion_timestamp: None,
                deletion_vector: served_deletion_vector(file, signer),
            };
            let action = match kind {
                FileKind::Snapshot | FileKind::Add => DeltaSingleAction::Add(action),
                FileKind::Remove => DeltaSingleAction::Remove(DeltaFileAction {
                    deletion_timestamp: timestamp,
                    ..action
                }),
                FileKind::Cdf => DeltaSingleAction::Cdc(action),
            };
            Line::File(FileLine::Delta(DeltaFile {
                id: file_id(&file.path),
                delta_single_action: action,
                expiration_timestamp: signer.expires_at,
                version,
                timestamp,
            }))
        }
    }
}

/// The file's deletion vector as a reader gets it: inline as in the log, or in a file of
/// the table as a pre-signed URL of that file (`p`). `None` for a file without one, and for
/// a vector [`super::format::check_servable`] refuses (not in a file of the table).
fn served_deletion_vector(file: &DataFile, signer: &Signer) -> Option<DeletionVector> {
    let dv = file.deletion_vector.as_ref()?;
    let (storage_type, path_or_inline_dv) = match dv.storage_type.as_str() {
        "i" => ("i", dv.path_or_inline_dv.clone()),
        _ => ("p", signer.url(&dv.relative_path()?)),
    };
    Some(DeletionVector {
        storage_type: storage_type.into(),
        path_or_inline_dv,
        offset: dv.offset,
        size_in_bytes: dv.size_in_bytes,
        cardinality: dv.cardinality,
    })
}

/// The last line of a paged (or `includeendstreamaction`) answer: where the next page
/// starts, if there is one, and when the answer's file URLs expire.
pub(super) fn end_stream_line(next_page_token: Option<String>, url_expiry: i64) -> Line {
    Line::EndStream(EndStreamAction {
        next_page_token,
        min_url_expiration_timestamp: Some(url_expiry),
        error_message: None,
    })
}
