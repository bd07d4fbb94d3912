//! Large CSV files parsed on several threads: one thread cuts the file into chunks that end
//! on record boundaries, worker threads parse the chunks, and the batches come out in file
//! order. Memory stays bounded: only a few chunks are in flight at a time.
//!
//! Cutting follows RFC 4180 quoting exactly as the CSV reader reads it (a quote opens a
//! field only at the field's start; `""` inside a quoted field is a quote). Anything else,
//! such as a stray quote inside an unquoted field, ends the cutting: the rest of the file
//! is parsed on one thread from the last boundary found, so the result never depends on a
//! guess about where a record ends.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::csv::ReaderBuilder;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;

use crate::input::Progress;

/// Files at least this large are parsed in parallel.
pub(crate) const MIN_PARALLEL_BYTES: u64 = 8 << 20;

/// The size of the chunks handed to the parsing threads.
const CHUNK_BYTES: usize = 2 << 20;

/// Why a parallel read stopped early.
#[derive(Debug)]
pub(crate) enum CsvFailure {
    /// The CSV reader refused the data (the message may count lines from a chunk's start).
    Parse(ArrowError),
    /// The file could not be read.
    Io(std::io::Error),
    /// The consumer of the batches failed.
    Emit(crate::Error),
}

/// Where records end, found by following the quoting of the bytes seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Outside quotes; `field_start` when the last byte ended a field or a record.
    Unquoted { field_start: bool },
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: `""` (a quote) or the field's end.
    QuoteInQuoted,
    /// Quoting the reader would read differently from RFC 4180: stop cutting.
    Irregular,
}

impl Scan {
    /// Follows `bytes`; returns the offset just after the last record end in them.
    fn advance(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut last = None;
        let mut pos = 0;
        while pos < bytes.len() {
            match *self {
                Scan::Irregular => return last,
                Scan::Unquoted { field_start } => {
                    let ends_field = |b: u8| matches!(b, b',' | b'\n' | b'\r');
                    let Some(hit) = memchr::memchr2(b'"', b'\n', &bytes[pos..]) else {
                        *self = Scan::Unquoted {
                            field_start: ends_field(bytes[bytes.len() - 1]),
                        };
                        return last;
                    };
                    let i = pos + hit;
                    if bytes[i] == b'\n' {
                        last = Some(i + 1);
                        *self = Scan::Unquoted { field_start: true };
                    } else if (i == 0 && field_start) || (i > 0 && ends_field(bytes[i - 1])) {
                        *self = Scan::Quoted;
                    } else {
                        *self = Scan::Irregular;
                    }
                    pos = i + 1;
                }
                Scan::Quoted => match memchr::memchr(b'"', &bytes[pos..]) {
                    Some(hit) => {
                        *self = Scan::QuoteInQuoted;
                        pos += hit + 1;
                    }
                    None => return last,
                },
                Scan::QuoteInQuoted => {
                    match bytes[pos] {
                        b'"' => *self = Scan::Quoted,
                        b',' | b'\r' => *self = Scan::Unquoted { field_start: true },
                        b'\n' => {
                            last = Some(pos + 1);
                            *self = Scan::Unquoted { field_start: true };
                        }
                        _ => *self = Scan::Irregular,
                    }
                    pos += 1;
                }
            }
        }
        last
    }
}

/// A chunk's parsed batches.
type Parsed = Result<Vec<RecordBatch>, ArrowError>;

/// A chunk to parse: its bytes, whether it starts with the header line, and where its
/// batches go.
type Job = (Vec<u8>, bool, SyncSender<Parsed>);

/// What the cutting thread hands to the reading side, in file order.
enum Piece {
    /// A chunk being parsed: its batches arrive here.
    Chunk(Receiver<Parsed>),
    /// Parse the file from this offset to its end on the reading thread.
    Rest(u64),
    /// Reading the file failed.
    Failed(std::io::Error),
}

/// Parses the CSV file at `path` (with a header line) with `schema` on `workers` threads
/// and hands its batches to `emit` in file order; `emit` returns `Ok(false)` to stop.
pub(crate) fn read(
    path: &Path,
    schema: SchemaRef,
    batch_rows: usize,
    workers: usize,
    progress: Arc<Progress>,
    mut emit: impl FnMut(RecordBatch) -> Result<bool, crate::Error>,
) -> Result<(), CsvFailure> {
    let mut file = File::open(path).map_err(CsvFailure::Io)?;
    let parse = |bytes: &[u8], header: bool| -> Result<Vec<RecordBatch>, ArrowError> {
        ReaderBuilder::new(schema.clone())
            .with_header(header)
            .with_batch_size(batch_rows)
            .build_buffered(Cursor::new(bytes))?
            .collect()
    };
    let (job_tx, job_rx) = sync_channel::<Job>(workers);
    let job_rx = Mutex::new(job_rx);
    let (piece_tx, piece_rx) = sync_channel::<Piece>(workers * 2);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (job_rx, parse) = (&job_rx, &parse);
            scope.spawn(move || loop {
                let job = job_rx.lock().map(|rx| rx.recv());
                let Ok(Ok((bytes, header, done))) = job else {
                    return;
                };
                let _ = done.send(parse(&bytes, header));
            });
        }
        let cutter_progress = progress.clone();
        let file = &mut file;
        scope.spawn(move || {
            let mut scan = Scan::Unquoted { field_start: true };
            let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES * 2);
            let mut scanned = 0;
            let mut boundary = 0;
            let mut offset = 0u64; // of buf[0] in the file
            let mut first = true;
            loop {
                let start = buf.len();
                buf.resize(start + CHUNK_BYTES, 0);
                let n = match read_full(file, &mut buf[start..]) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = piece_tx.send(Piece::Failed(e));
                        return;
                    }
                };
                buf.truncate(start + n);
                cutter_progress
                    .bytes_read
                    .fetch_add(n as u64, Ordering::Relaxed);
                if let Some(end) = scan.advance(&buf[scanned..]) {
                    boundary = scanned + end;
                }
                scanned = buf.len();
                let at_end = n == 0;
                if scan == Scan::Irregular {
                    // Parse what is cut so far in parallel, the rest on one thread.
                    let rest = offset + boundary as u64;
                    buf.truncate(boundary);
                    if !buf.is_empty() && !send_chunk(&piece_tx, &job_tx, buf, first) {
                        return;
                    }
                    let _ = piece_tx.send(Piece::Rest(rest));
                    return;
                }
                if boundary >= CHUNK_BYTES || (at_end && !buf.is_empty()) {
                    let cut = if at_end { buf.len() } else { boundary };
                    let rest = buf.split_off(cut);
                    let chunk = std::mem::replace(&mut buf, rest);
                    offset += cut as u64;
                    scanned -= cut;
                    boundary = 0;
                    if !send_chunk(&piece_tx, &job_tx, chunk, first) {
                        return;
                    }
                    first = false;
                }
                if at_end {
                    return;
                }
            }
        });
        let result = (|| {
            for piece in &piece_rx {
                match piece {
                    Piece::Chunk(rx) => {
                        let batches = rx
                            .recv()
                            .map_err(|_| {
                                CsvFailure::Emit(crate::Error::new(
                                    crate::ErrorKind::Internal,
                                    "a CSV parsing thread stopped",
                                ))
                            })?
                            .map_err(CsvFailure::Parse)?;
                        for batch in batches {
                            if !emit(batch).map_err(CsvFailure::Emit)? {
                                return Ok(());
                            }
                        }
                    }
                    Piece::Rest(offset) => {
                        let mut rest = File::open(path).map_err(CsvFailure::Io)?;
                        rest.seek(SeekFrom::Start(offset)).map_err(CsvFailure::Io)?;
                        let reader = ReaderBuilder::new(schema.clone())
                            .with_header(offset == 0)
                            .with_batch_size(batch_rows)
                            .build(BufReader::new(rest))
                            .map_err(CsvFailure::Parse)?;
                        for batch in reader {
                            if !emit(batch.map_err(CsvFailure::Parse)?).map_err(CsvFailure::Emit)? {
                                return Ok(());
                            }
                        }
                    }
                    Piece::Failed(e) => return Err(CsvFailure::Io(e)),
                }
            }
            Ok(())
        })();
        // Stop the cutting thread (its sends now fail), which stops the workers.
        drop(piece_rx);
        result
    })
}

/// Queues `chunk` for parsing and its place in the output; false when the reader stopped.
fn send_chunk(
    pieces: &SyncSender<Piece>,
    jobs: &SyncSender<Job>,
    chunk: Vec<u8>,
    header: bool,
) -> bool {
    let (done_tx, done_rx) = sync_channel(1);
    pieces.send(Piece::Chunk(done_rx)).is_ok() && jobs.send((chunk, header, done_tx)).is_ok()
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boundaries(text: &str, split: usize) -> (Vec<usize>, Scan) {
        let mut scan = Scan::Unquoted { field_start: true };
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut pos = 0;
        while pos < bytes.len() {
            let end = (pos + split).min(bytes.len());
            if let Some(b) = scan.advance(&bytes[pos..end]) {
                out.push(pos + b);
            }
            pos = end;
        }
        (out, scan)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any bytes, arriving in any pieces: every end found is one found when the bytes
        /// arrive one at a time (which reports each), the state after them is the same, and
        /// never a panic.
        #[test]
        fn any_bytes_cut_the_same_however_they_arrive(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'"'),
                    proptest::strategy::Just(b','),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'\r'),
                    proptest::prelude::any::<u8>()
                ],
                0..200,
            ),
            split in 1usize..40,
        ) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let (every, state) = boundaries(&text, 1);
            let (found, after) = boundaries(&text, split);
            proptest::prop_assert_eq!(after, state);
            for end in &found {
                proptest::prop_assert!(every.contains(end), "{} is not a record end", end);
            }
            // The piece that holds the last record end reports it.
            proptest::prop_assert_eq!(found.last(), every.last());
        }
    }

    #[test]
    fn record_ends_outside_quotes_are_found_however_the_bytes_arrive() {
        let text = "a,b\n\"x\ny\",\"q\"\"\n\"\n1,2\r\n\"\",3\n";
        // Record ends: after "a,b\n", after the quoted record, after "1,2\r\n", at the end.
        let whole = boundaries(text, text.len());
        assert_eq!(whole.0, vec![text.len()]);
        for split in 1..text.len() {
            let (found, scan) = boundaries(text, split);
            assert_eq!(scan, Scan::Unquoted { field_start: true }, "split {split}");
            for b in &found {
                assert!(
                    [4, 17, 22, text.len()].contains(b),
                    "split {split}: {b} is not a record end"
                );
            }
        }
    }

    #[test]
    fn quotes_the_reader_would_take_literally_stop_the_cutting() {
        for text in ["a,b\"c\n1,2\n", "\"a\"b,c\n1,2\n"] {
            for split in 1..=text.len() {
                let (_, scan) = boundaries(text, split);
                assert_eq!(scan, Scan::Irregular, "{text:?} split {split}");
            }
        }
    }
}
