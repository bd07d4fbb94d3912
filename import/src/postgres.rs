//! PostgreSQL: one REPEATABLE READ transaction per run (one consistent snapshot for the
//! checks, the watermark and the data), and the data through binary `COPY ... TO STDOUT`,
//! decoded straight into Arrow builders as it streams.

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection, Row};
use tarn_table::deltalake::arrow::array::RecordBatch;
use tarn_table::deltalake::arrow::datatypes::SchemaRef;

use crate::error::kind_of_sqlstate;
use crate::pgwire::{CopyError, Target, WireConn, WireError};
use crate::types::{finish_batch, ColBuilder, ColType, Column};
use crate::{db_error, Error, ErrorKind, Result, Source, BATCH_ROWS};
use tarn_secrets::redact_url;
use tarn_table::one_line;

/// The temporary view every query of a run reads, so a table and a query are handled alike.
const VIEW: &str = "tarn_import_source";

/// The run's snapshot, exported for the data connections, and the size in blocks of the
/// table the view reads, when it reads one table directly and the server scans a ctid range
/// by itself (TID range scans, PostgreSQL 14) rather than filtering a whole scan per range.
const SHARE_SQL: &str = "SELECT pg_export_snapshot() AS snapshot, COALESCE((\
    SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int)::text \
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid \
    JOIN pg_class c ON c.oid = d.refobjid \
    WHERE r.ev_class = 'pg_temp.tarn_import_source'::regclass \
      AND c.relkind = 'r' \
      AND current_setting('server_version_num')::int >= 140000 LIMIT 1), '0') AS blocks";

/// The view's columns and their types (all as text).
const COLUMNS_SQL: &str = "SELECT a.attname::text AS name, \
        format_type(a.atttypid, a.atttypmod) AS type_text, \
        t.typname::text AS typname, t.typtype::text AS typtype, a.atttypmod::text AS typmod, \
        COALESCE(e.typname::text, '') AS elem, COALESCE(e.typtype::text, '') AS elemtype \
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
    LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
    WHERE a.attrelid = 'pg_temp.tarn_import_source'::regclass AND a.attnum > 0 \
      AND NOT a.attisdropped ORDER BY a.attnum";

/// A column of the run's view, as the catalog describes it.
struct SourceColumn {
    name: String,
    type_text: String,
    typname: String,
    typtype: String,
    typmod: i32,
    /// The element type of an array (empty otherwise).
    elem: String,
    elemtype: String,
}

/// The dates a Delta table holds, in days since 1970-01-01: -262143-01-01 to
/// 262142-12-31, the calendar deltalake's writer computes statistics in (chrono's).
const DELTA_MIN_DAYS: i64 = -96_465_292;
const DELTA_MAX_DAYS: i64 = 95_026_236;
/// The timestamps a Delta table holds, in microseconds since 1970: the same days.
const DELTA_MIN_MICROS: i64 = DELTA_MIN_DAYS * 86_400_000_000;
const DELTA_MAX_MICROS: i64 = (DELTA_MAX_DAYS + 1) * 86_400_000_000 - 1;

/// Microseconds (and days) between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// How a column's binary values are decoded.
#[derive(Debug, Clone)]
pub(crate) enum Decoder {
    I16,
    I32,
    I64,
    F32,
    F64,
    Numeric(i8),
    Text,
    Jsonb,
    Uuid,
    Bool,
    Date,
    Timestamp,
    Bytea,
    Array(Box<Decoder>),
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a PostgreSQL string literal that means `text` whatever the session's
/// `standard_conforming_strings`: quotes doubled, and, when there is a backslash, written as
/// an escape string (`E'…'`, backslashes doubled), as PostgreSQL's own `quote_literal`
/// does. `None` for text with a NUL byte, which no PostgreSQL string holds (and which would
/// cut a query short on the wire).
pub(crate) fn quote_literal(text: &str) -> Option<String> {
    if text.contains('\0') {
        return None;
    }
    let quoted = text.replace('\'', "''");
    Some(if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    })
}

/// The statement every connection of a run turns read-only with, once the run's view
/// exists (creating even a temporary view is refused in a read-only transaction): from
/// there on, a query that would write (a volatile function, `nextval`...) is refused.
const READ_ONLY: &str = "SET TRANSACTION READ ONLY";

/// The error for a `--query` the server refused as the run's view.
fn query_error(e: sqlx::Error) -> Error {
    let multiple =
        matches!(&e, sqlx::Error::Database(d) if d.message().contains("multiple commands"));
    if multiple {
        Error::invalid(
            "--query must be one SELECT statement: it holds more than one (nothing was run)",
        )
    } else {
        db_error("--query", e)
    }
}

/// An open session: connection inside the run's snapshot transaction.
pub(crate) struct PgSession {
    conn: PgConnection,
    /// How the run's sqlx connections reach the server (TLS included): kept for the
    /// second connection of a fallback COPY, and for the tunnel `conn` goes through.
    route: Box<tarn_pgtls::Route>,
    /// The statement that created the run's view (repeated on the data connections).
    create_view: String,
    /// The data connections being opened, if [`PgSession::open_data_connections`] ran.
    data_conns: Option<tokio::task::JoinHandle<Option<Vec<WireConn>>>>,
    /// The view's columns.
    columns: Vec<SourceColumn>,
    /// The run's snapshot, exported.
    snapshot: String,
    /// The size of the table the view reads (0: not one table, or not known).
    blocks: u64,
    /// How long connecting may take.
    connect_timeout: std::time::Duration,
}

impl PgSession {
    /// Connects, starts the snapshot, exposes `source` as the run's view and reads what the
    /// run needs to know of it, all in one round trip: the view's columns, the snapshot
    /// exported for the data connections, and the size of the table behind it.
    pub(crate) async fn open(
        url: &str,
        source: &Source,
        timeout: std::time::Duration,
        snapshot: Option<&str>,
    ) -> Result<Self> {
        let (route, mut conn) = connect_first(url, timeout).await?;
        // A snapshot to read in (a replication slot's, for change data capture) is set
        // first thing in the transaction.
        let begin = match snapshot {
            Some(s) => format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
                snapshot_literal(s)?
            ),
            None => "BEGIN ISOLATION LEVEL REPEATABLE READ".to_string(),
        };
        let body = match source {
            Source::Table(name) => {
                let parts: Vec<String> = name.split('.').map(quote_ident).collect();
                format!("SELECT * FROM {}", parts.join("."))
            }
            Source::Query(q) => q.trim().trim_end_matches(';').to_string(),
        };
        // Ends with a line break: a query ending in a `--` comment must not swallow what
        // follows it in the same message.
        let create_view = format!("CREATE TEMP VIEW {VIEW} AS {body}\n");
        let setup = match source {
            // One simple-protocol message: the statements run in turn, and the first that
            // fails (in practice the view, over an unknown table) ends the rest.
            Source::Table(_) => {
                format!("{begin}; {create_view}; {READ_ONLY}; {SHARE_SQL}; {COLUMNS_SQL}")
            }
            // A query is the user's text: its view is created on its own, through the
            // extended protocol, which takes exactly one statement, so nothing in the query
            // can end the view and run a statement of its own (here, or where the data
            // connections repeat the view). A temporary view outlives the transaction.
            Source::Query(_) => {
                sqlx::query(&create_view)
                    .persistent(false)
                    .execute(&mut conn)
                    .await
                    .map_err(query_error)?;
                format!("{begin}; {READ_ONLY}; {SHARE_SQL}; {COLUMNS_SQL}")
            }
        };
        let rows = sqlx::raw_sql(&setup)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| match source {
                Source::Table(name) => db_error(&format!("source table `{name}`"), e),
                Source::Query(_) => db_error("--query", e),
            })?;
        let text = |row: &PgRow, c: &str| row.try_get::<String, _>(c).unwrap_or_default();
        let (mut snapshot, mut blocks, mut columns) = (String::new(), 0, Vec::new());
        for row in &rows {
            if row.try_column("snapshot").is_ok() {
                snapshot = text(row, "snapshot");
                blocks = text(row, "blocks").parse().unwrap_or(0);
            } else {
                columns.push(SourceColumn {
                    name: text(row, "name"),
                    type_text: text(row, "type_text"),
                    typname: text(row, "typname"),
                    typtype: text(row, "typtype"),
                    typmod: text(row, "typmod").parse().unwrap_or(-1),
                    elem: text(row, "elem"),
                    elemtype: text(row, "elemtype"),
                });
            }
        }
        if snapshot.is_empty() {
            return Err(Error::internal("could not share the source's snapshot"));
        }
        Ok(Self {
            conn,
            route: Box::new(route),
            create_view,
            data_conns: None,
            columns,
            snapshot,
            blocks,
            connect_timeout: timeout,
        })
    }

    /// The view's columns, mapped (refusing what cannot be carried faithfully).
    pub(crate) fn columns(
        &self,
        timestamp_ntz: bool,
        exclude: &[String],
    ) -> Result<Vec<(Column, Decoder)>> {
        let mut out = Vec::new();
        for c in &self.columns {
            let name = c.name.clone();
            if exclude.iter().any(|x| x == &name) {
                continue;
            }
            let mapped = if !c.elem.is_empty() {
                map_scalar(&c.elem, &c.elemtype, c.typmod, timestamp_ntz)
                    .map(|(t, d)| (ColType::List(Box::new(t)), Decoder::Array(Box::new(d))))
            } else {
                map_scalar(&c.typname, &c.typtype, c.typmod, timestamp_ntz)
            };
            let Some((col_type, decoder)) = mapped else {
                return Err(Error::new(ErrorKind::Unsupported, format!(
                    "column `{name}` has type {}, which Tarn cannot import faithfully: skip it with --exclude-column {name}, or cast it in --query (e.g. {name}::text)",
                    c.type_text
                )));
            };
            out.push((
                Column {
                    name,
                    source_type: c.type_text.clone(),
                    col_type,
                },
                decoder,
            ));
        }
        if out.is_empty() {
            return Err(Error::invalid("the source has no columns to import"));
        }
        Ok(out)
    }

    /// The SQL type a watermark of cursor `column` is cast to: the column's own (a cursor
    /// is one of these), `None` for any other.
    pub(crate) fn cast_type(&self, column: &str) -> Option<String> {
        let c = self.columns.iter().find(|c| c.name == column)?;
        let name = match c.typname.as_str() {
            "int2" => "smallint",
            "int4" => "integer",
            "int8" => "bigint",
            "numeric" => "numeric",
            "date" => "date",
            "timestamp" => "timestamp",
            "timestamptz" => "timestamptz",
            _ => return None,
        };
        Some(name.to_string())
    }

    /// One text value from `sql` (the first column of the first row), with `bound` as its
    /// `$1`.
    pub(crate) async fn scalar(
        &mut self,
        sql: &str,
        bound: Option<&str>,
    ) -> Result<Option<String>> {
        let mut query = sqlx::query(sql);
        if let Some(value) = bound {
            query = query.bind(value);
        }
        let row = query
            .fetch_optional(&mut self.conn)
            .await
            .map_err(|e| db_error("source query failed", e))?;
        Ok(row.and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten()))
    }

    /// The planner's row estimate for `select` (from the top line of `EXPLAIN`), with
    /// `bound` as its `$1`.
    pub(crate) async fn estimate(&mut self, select: &str, bound: Option<&str>) -> Result<u64> {
        let top = self
            .scalar(&format!("EXPLAIN {select}"), bound)
            .await?
            .unwrap_or_default();
        Ok(top
            .split("rows=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// Hands over the connections the rows will come on ([`open_data_connections`]).
    pub(crate) fn use_data_connections(&mut self, conns: DataConnections) {
        self.data_conns = Some(conns.0);
    }

    /// Streams `select` through binary COPY into batches of `schema` on `tx`.
    ///
    /// A large table (`ranged`: the select over a `{range}` of blocks) is read in
    /// block ranges ([`shrinking_bounds`]) by two streams that each take the next range when done with
    /// one, so both end together. The streams run on connections of Tarn's own COPY client
    /// (`pgwire`) that join this run's snapshot; when that client cannot connect they run
    /// on sqlx, over two halves of the blocks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn copy(
        mut self,
        url: &str,
        select: String,
        ranged: Option<String>,
        decoders: Vec<Decoder>,
        columns: Vec<ColType>,
        schema: SchemaRef,
        tx: tokio::sync::mpsc::Sender<tarn_table::Result<RecordBatch>>,
    ) -> Result<u64> {
        let fail = |m: String| tarn_table::Error::invalid(m);
        let result = async {
            let blocks = if ranged.is_some() { self.blocks } else { 0 };
            let template = ranged.filter(|_| blocks >= PARALLEL_MIN_BLOCKS);
            let plan = CopyPlan {
                decoders,
                columns,
                schema,
                tx: tx.clone(),
            };
            // Without data connections (none opened, or they could not connect), sqlx.
            let conns = match self.data_conns.take() {
                Some(opening) => opening.await.ok().flatten(),
                None => None,
            };
            match (conns, template) {
                (Some(mut conns), template) => {
                    // Block ranges select from the table itself; anything else reads the
                    // run's view, which each connection then creates for itself.
                    let (selects, view) = match template {
                        Some(t) => (block_ranges(&t, &shrinking_bounds(blocks)), String::new()),
                        None => (vec![select], format!("; {}", self.create_view)),
                    };
                    conns.truncate(selects.len());
                    let setup = format!(
                        "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}{view}; {READ_ONLY}",
                        snapshot_literal(&self.snapshot)?,
                    );
                    let queue = std::sync::Arc::new(RangeQueue {
                        selects,
                        next: std::sync::atomic::AtomicUsize::new(0),
                    });
                    let streams = conns.into_iter().map(|conn| {
                        let (plan, setup, queue) = (plan.clone(), setup.clone(), queue.clone());
                        tokio::task::spawn_blocking(move || {
                            wire_stream(conn, &setup, &queue, &plan)
                        })
                    });
                    let mut rows = 0;
                    for done in futures::future::join_all(streams).await {
                        rows += done.map_err(|e| Error::internal(format!("the decoder failed: {e}")).with_source(e))??;
                    }
                    Ok(rows)
                }
                (None, None) => copy_stream(&mut self.conn, &select, &plan).await,
                (None, Some(template)) => {
                    let halves = block_ranges(&template, &[blocks / 2]);
                    let snapshot = self.snapshot.clone();
                    let mut second = crate::connect_within(
                        url,
                        self.connect_timeout,
                        PgConnection::connect_with(&self.route.options()),
                    )
                    .await?;
                    sqlx::raw_sql(&format!(
                        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                        snapshot_literal(&snapshot)?
                    ))
                    .execute(&mut second)
                    .await
                    .map_err(|e| db_error("cannot share the snapshot", e))?;
                    let (a, b) = tokio::join!(
                        copy_stream(&mut self.conn, &halves[0], &plan),
                        copy_stream(&mut second, &halves[1], &plan),
                    );
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut second).await;
                    let _ = second.close().await;
                    Ok(a? + b?)
                }
            }
        }
        .await;
        if let Err(e) = &result {
            let _ = tx.send(Err(fail(e.message().to_string()))).await;
        }
        self.close().await;
        result
    }

    /// Ends the snapshot (nothing was written at the source) and the connection, which says
    /// goodbye (under TLS, a connection merely dropped makes the server log an error).
    pub(crate) async fn close(mut self) {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}

/// The run's first connection, and the route every later sqlx connection of the run takes
/// (tarn-pgtls: `sslmode` and `sslrootcert` as libpq reads them; TLS through a local tunnel,
/// as sqlx cannot be given Tarn's TLS configuration).
async fn connect_first(
    url: &str,
    timeout: std::time::Duration,
) -> Result<(tarn_pgtls::Route, PgConnection)> {
    // The TLS set-up of each connection gets a second more than the whole connection, so
    // that a server that never answers is reported as such (by `connect_within`).
    let connecting =
        tarn_pgtls::Route::connect(url, timeout + std::time::Duration::from_secs(1), |route| {
            let options = route.options();
            async move { PgConnection::connect_with(&options).await }
        });
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(tarn_pgtls::ConnectError::Tls(e))) => Err(Error::unavailable(format!(
            "cannot connect to {}: {e}",
            redact_url(url)
        ))),
        Ok(Err(tarn_pgtls::ConnectError::Sql(e))) => Err(crate::connect_error(url, e)),
        Err(_) => Err(crate::no_answer(url, timeout)),
    }
}

/// The run's exported snapshot id as a literal.
fn snapshot_literal(snapshot: &str) -> Result<String> {
    quote_literal(snapshot).ok_or_else(|| Error::internal("the source's snapshot id is malformed"))
}

/// Tables of at least this many blocks (8 KiB each) are read as two parallel streams.
const PARALLEL_MIN_BLOCKS: u64 = 2048;

/// Where the block ranges of a large table start: each range is a quarter of the blocks
/// still unassigned, down to 1/64 of the table, so the ranges shrink toward the end and the
/// two streams taking them in turn end within a small range of each other.
fn shrinking_bounds(blocks: u64) -> Vec<u64> {
    let smallest = (blocks / 64).max(1);
    let mut bounds = Vec::new();
    let mut start = 0;
    loop {
        let step = ((blocks - start) / 4).max(smallest);
        if start + step >= blocks || blocks - (start + step) < smallest {
            return bounds;
        }
        start += step;
        bounds.push(start);
    }
}

/// `template` over the block ranges between `bounds` (ascending; the first range starts at
/// block 0, the last one is open, for blocks added since the size was read).
fn block_ranges(template: &str, bounds: &[u64]) -> Vec<String> {
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut from: Option<u64> = None;
    for to in bounds.iter().copied().map(Some).chain([None]) {
        let range = match (from, to) {
            (None, Some(to)) => format!("ctid < '({to},0)'::tid"),
            (Some(from), Some(to)) => {
                format!("ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid")
            }
            (Some(from), None) => format!("ctid >= '({from},0)'::tid"),
            (None, None) => "true".to_string(),
        };
        ranges.push(template.replace("{range}", &range));
        from = to;
    }
    ranges
}

/// Selects taken in turn by the streams of a run.
struct RangeQueue {
    selects: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
}

/// What every COPY stream of a run decodes into.
#[derive(Clone)]
pub(crate) struct CopyPlan {
    decoders: Vec<Decoder>,
    columns: Vec<ColType>,
    schema: SchemaRef,
    tx: tokio::sync::mpsc::Sender<tarn_table::Result<RecordBatch>>,
}

/// The connections a run's rows will come on, being opened.
pub(crate) struct DataConnections(tokio::task::JoinHandle<Option<Vec<WireConn>>>);

/// Starts opening the connections the rows will come on (two for a table, which may be
/// read in parallel; one for a query), at the start of a run: they connect and
/// authenticate while the main connection starts the snapshot and the checks run.
pub(crate) fn open_data_connections(
    url: &str,
    source: &Source,
    timeout: std::time::Duration,
) -> DataConnections {
    let n = match source {
        Source::Table(_) => 2,
        Source::Query(_) => 1,
    };
    let url = url.to_string();
    DataConnections(tokio::spawn(async move {
        wire_connections(&url, n, timeout).await
    }))
}

/// `n` connections of Tarn's COPY client, opened at once, with the URL's TLS settings;
/// `None` when any cannot connect (sqlx then carries the data, over the run's route: it
/// knows authentication methods this client does not).
async fn wire_connections(
    url: &str,
    n: usize,
    timeout: std::time::Duration,
) -> Option<Vec<WireConn>> {
    let target = Target::from_url(url)?;
    let opening = (0..n).map(|_| {
        let target = target.clone();
        tokio::task::spawn_blocking(move || WireConn::connect(&target, timeout))
    });
    let mut conns = Vec::with_capacity(n);
    for opened in futures::future::join_all(opening).await {
        conns.push(opened.ok()?.ok()?);
    }
    Some(conns)
}

/// Binary COPYs of the selects in `queue`, taken in turn, on a connection of Tarn's own
/// client; `setup` (which joins the run's snapshot and creates the run's view on this
/// connection) goes in the same message as the first COPY, saving a round trip: if it fails,
/// the server runs nothing after it. Received and decoded on this (blocking) thread.
fn wire_stream(
    mut conn: WireConn,
    setup: &str,
    queue: &RangeQueue,
    plan: &CopyPlan,
) -> Result<u64> {
    let mut copy = CopyDecoder::new(plan);
    let mut first = true;
    loop {
        let i = queue
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(select) = queue.selects.get(i) else {
            return copy.finish();
        };
        copy.start_copy()?;
        let statement = format!("COPY ({select}) TO STDOUT (FORMAT binary)");
        let sql = if std::mem::take(&mut first) {
            format!("{setup}; {statement}")
        } else {
            statement
        };
        match conn.copy_out(&sql, |m| copy.feed(m)) {
            Ok(()) => {}
            Err(CopyError::Sink(e)) => return Err(e),
            Err(CopyError::Wire(e)) => {
                let message = one_line(&e.to_string());
                let (kind, hint) = match &e {
                    WireError::Server { code, .. } if code == crate::READ_ONLY_SQLSTATE => {
                        (ErrorKind::InvalidInput, crate::READ_ONLY_HINT)
                    }
                    WireError::Server { code, .. } => (kind_of_sqlstate(code), ""),
                    WireError::Connect(_) | WireError::Io(_) | WireError::Timeout => {
                        (ErrorKind::Unavailable, "")
                    }
                };
                return Err(Error::new(
                    kind,
                    format!("COPY from the source failed: {message}{hint}"),
                )
                .with_source(e));
            }
        }
    }
}

/// One binary COPY of `select` on a sqlx connection: this task receives the data and hands
/// it over, in groups of messages of about 256 KiB (the messages themselves, not copies), to
/// a blocking thread that decodes it into batches.
async fn copy_stream(conn: &mut PgConnection, select: &str, plan: &CopyPlan) -> Result<u64> {
    let mut stream = conn
        .copy_out_raw(&format!("COPY ({select}) TO STDOUT (FORMAT binary)"))
        .await
        .map_err(|e| db_error("COPY from the source failed", e))?;
    let (raw_tx, raw_rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(8);
    let plan = plan.clone();
    let decoder = tokio::task::spawn_blocking(move || decode_stream(raw_rx, &plan));
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_bytes = 0;
    let mut received = Ok(());
    while let Some(message) = stream.next().await {
        match message {
            Ok(message) => {
                pending_bytes += message.len();
                pending.push(message);
            }
            Err(e) => {
                received = Err(db_error("reading from the source failed", e));
                break;
            }
        }
        if pending_bytes >= CHUNK_BYTES {
            pending_bytes = 0;
            if raw_tx.send(std::mem::take(&mut pending)).await.is_err() {
                // The decoder stopped (its error is reported below).
                break;
            }
        }
    }
    if received.is_ok() && !pending.is_empty() {
        let _ = raw_tx.send(pending).await;
    }
    drop(raw_tx);
    drop(stream);
    let decoded = decoder
        .await
        .map_err(|e| Error::internal(format!("the decoder failed: {e}")).with_source(e))?;
    received?;
    decoded
}

/// Bytes handed from the receiving task to the decoding thread at a time.
const CHUNK_BYTES: usize = 256 * 1024;

/// Decodes binary COPY data arriving on `raw` into batches; returns the rows.
fn decode_stream(mut raw: tokio::sync::mpsc::Receiver<Vec<Bytes>>, plan: &CopyPlan) -> Result<u64> {
    let mut copy = CopyDecoder::new(plan);
    while let Some(messages) = raw.blocking_recv() {
        for message in messages {
            copy.feed(&message)?;
        }
    }
    copy.finish()
}

/// The state of one binary COPY being decoded into batches.
struct CopyDecoder<'a> {
    plan: &'a CopyPlan,
    builders: Vec<ColBuilder>,
    header_done: bool,
    /// Rows in the builders.
    rows: usize,
    /// Rows decoded in all.
    total: u64,
    /// The start of a tuple split across messages.
    carry: BytesMut,
}

impl<'a> CopyDecoder<'a> {
    fn new(plan: &'a CopyPlan) -> Self {
        CopyDecoder {
            plan,
            builders: plan.columns.iter().map(ColBuilder::new).collect(),
            header_done: false,
            rows: 0,
            total: 0,
            carry: BytesMut::new(),
        }
    }

    /// Decodes one CopyData message. PostgreSQL sends one tuple per message, so each is
    /// decoded where it lies; only a tuple split across messages (which the protocol allows)
    /// is put together in `carry`.
    fn feed(&mut self, message: &[u8]) -> Result<()> {
        if self.carry.is_empty() {
            let used = self.consume(message)?;
            if used < message.len() {
                self.carry.extend_from_slice(&message[used..]);
            }
        } else {
            let mut carry = std::mem::take(&mut self.carry);
            carry.extend_from_slice(message);
            let used = self.consume(&carry)?;
            carry.advance(used);
            self.carry = carry;
        }
        Ok(())
    }

    /// Expects the header of a new COPY (the rows go on into the same batches).
    fn start_copy(&mut self) -> Result<()> {
        self.whole_rows()?;
        self.header_done = false;
        Ok(())
    }

    /// Fails if the last COPY ended inside a row.
    fn whole_rows(&self) -> Result<()> {
        if self.carry.is_empty() {
            Ok(())
        } else {
            Err(Error::internal("the source's COPY data ended inside a row"))
        }
    }

    /// Sends the last rows; returns the rows decoded.
    fn finish(mut self) -> Result<u64> {
        self.whole_rows()?;
        if self.rows > 0 {
            self.send()?;
        }
        Ok(self.total)
    }

    /// Decodes every whole tuple at the start of `data`; returns the bytes used.
    fn consume(&mut self, data: &[u8]) -> Result<usize> {
        let decoders = &self.plan.decoders;
        let mut pos = 0;
        if !self.header_done {
            if data.len() < 19 {
                return Ok(0);
            }
            if &data[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err(Error::internal("unexpected COPY header from the source"));
            }
            let ext = u32::from_be_bytes(data[15..19].try_into().expect("4 bytes")) as usize;
            if data.len() < 19 + ext {
                return Ok(0);
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        loop {
            match tuple_len(&data[pos..], decoders.len()).map_err(Error::internal)? {
                TupleLen::Incomplete => return Ok(pos),
                TupleLen::End => return Ok(data.len()),
                TupleLen::Tuple(len) => {
                    decode_tuple(&data[pos..pos + len], decoders, &mut self.builders).map_err(
                        |(column, e)| {
                            let name = self.plan.schema.field(column).name();
                            Error::invalid(format!("column `{name}`: {e}"))
                        },
                    )?;
                    pos += len;
                    self.rows += 1;
                    self.total += 1;
                    if self.rows == BATCH_ROWS {
                        self.send()?;
                    }
                }
            }
        }
    }

    /// Sends the builders' rows as one batch.
    fn send(&mut self) -> Result<()> {
        self.rows = 0;
        self.plan
            .tx
            .blocking_send(Ok(finish_batch(&self.plan.schema, &mut self.builders)?))
            .map_err(|_| Error::internal("the table writer stopped"))
    }
}

pub(crate) fn map_scalar(
    typname: &str,
    typtype: &str,
    typmod: i32,
    timestamp_ntz: bool,
) -> Option<(ColType, Decoder)> {
    Some(match typname {
        "int2" => (ColType::Int16, Decoder::I16),
        "int4" => (ColType::Int32, Decoder::I32),
        "int8" => (ColType::Int64, Decoder::I64),
        "float4" => (ColType::Float32, Decoder::F32),
        "float8" => (ColType::Float64, Decoder::F64),
        "numeric" => {
            if typmod < 4 {
                return None;
            }
            let p = ((typmod - 4) >> 16) & 0xffff;
            let s = (typmod - 4) & 0xffff;
            if !(1..=38).contains(&p) || s > p {
                return None;
            }
            (
                ColType::Decimal(p as u8, s as i8),
                Decoder::Numeric(s as i8),
            )
        }
        "text" | "varchar" | "bpchar" | "name" | "citext" => (ColType::Utf8, Decoder::Text),
        "json" => (ColType::Utf8, Decoder::Text),
        "jsonb" => (ColType::Utf8, Decoder::Jsonb),
        "uuid" => (ColType::Utf8, Decoder::Uuid),
        "bool" => (ColType::Bool, Decoder::Bool),
        "date" => (ColType::Date, Decoder::Date),
        "timestamptz" => (ColType::Timestamp, Decoder::Timestamp),
        "timestamp" if timestamp_ntz => (ColType::TimestampNtz, Decoder::Timestamp),
        "timestamp" => (ColType::Timestamp, Decoder::Timestamp),
        "bytea" => (ColType::Binary, Decoder::Bytea),
        // Enum values travel as their labels.
        _ if typtype == "e" => (ColType::Utf8, Decoder::Text),
        _ => return None,
    })
}

enum TupleLen {
    Incomplete,
    End,
    Tuple(usize),
}

/// The byte length of the tuple at the start of `buf`, if it is all there.
fn tuple_len(buf: &[u8], fields: usize) -> std::result::Result<TupleLen, String> {
    if buf.len() < 2 {
        return Ok(TupleLen::Incomplete);
    }
    let count = i16::from_be_bytes([buf[0], buf[1]]);
    if count == -1 {
        return Ok(TupleLen::End);
    }
    if count as usize != fields {
        return Err(format!(
            "the source sent {count} fields per row, expected {fields}"
        ));
    }
    let mut pos = 2;
    for _ in 0..fields {
        if buf.len() < pos + 4 {
            return Ok(TupleLen::Incomplete);
        }
        let len = i32::from_be_bytes(buf[pos..pos + 4].try_into().expect("4 bytes"));
        pos += 4;
        if len > 0 {
            pos += len as usize;
        }
    }
    Ok(if buf.len() < pos {
        TupleLen::Incomplete
    } else {
        TupleLen::Tuple(pos)
    })
}

/// Decodes one tuple into the builders; an error names the column (by index) it is about.
fn decode_tuple(
    tuple: &[u8],
    decoders: &[Decoder],
    builders: &mut [ColBuilder],
) -> std::result::Result<(), (usize, String)> {
    let mut pos = 2;
    for (column, (decoder, builder)) in decoders.iter().zip(builders.iter_mut()).enumerate() {
        let len = i32::from_be_bytes(tuple[pos..pos + 4].try_into().expect("4 bytes"));
        pos += 4;
        if len < 0 {
            builder.append_null();
            continue;
        }
        let value = &tuple[pos..pos + len as usize];
        pos += len as usize;
        decode_value(decoder, value, builder).map_err(|e| (column, e))?;
    }
    Ok(())
}

fn be<const N: usize>(v: &[u8]) -> std::result::Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("a {N}-byte value had {} bytes", v.len()))
}

pub(crate) fn decode_value(
    decoder: &Decoder,
    v: &[u8],
    builder: &mut ColBuilder,
) -> std::result::Result<(), String> {
    match (decoder, builder) {
        (Decoder::I16, ColBuilder::Int16(b)) => b.append_value(i16::from_be_bytes(be(v)?)),
        (Decoder::I32, ColBuilder::Int32(b)) => b.append_value(i32::from_be_bytes(be(v)?)),
        (Decoder::I64, ColBuilder::Int64(b)) => b.append_value(i64::from_be_bytes(be(v)?)),
        (Decoder::F32, ColBuilder::Float32(b)) => b.append_value(f32::from_be_bytes(be(v)?)),
        (Decoder::F64, ColBuilder::Float64(b)) => b.append_value(f64::from_be_bytes(be(v)?)),
        (Decoder::Numeric(scale), ColBuilder::Decimal(b, ..)) => {
            b.append_value(numeric_to_i128(v, *scale)?)
        }
        (Decoder::Text, ColBuilder::Utf8(b)) => b.append_value(utf8(v)?),
        (Decoder::Jsonb, ColBuilder::Utf8(b)) => match v.split_first() {
            Some((1, rest)) => b.append_value(utf8(rest)?),
            _ => return Err("unknown jsonb format version".into()),
        },
        (Decoder::Uuid, ColBuilder::Utf8(b)) => {
            let h = hex::encode(v);
            if h.len() != 32 {
                return Err("a uuid was not 16 bytes".into());
            }
            b.append_value(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        }
        (Decoder::Bool, ColBuilder::Bool(b)) => b.append_value(v.first() == Some(&1)),
        (Decoder::Date, ColBuilder::Date(b)) => {
            let days = i32::from_be_bytes(be(v)?);
            if days == i32::MAX || days == i32::MIN {
                let which = if days == i32::MAX { "" } else { "-" };
                return Err(format!(
                    "an infinite date ({which}infinity) cannot be stored"
                ));
            }
            let days_1970 = i64::from(days) + i64::from(PG_EPOCH_DAYS);
            if !(DELTA_MIN_DAYS..=DELTA_MAX_DAYS).contains(&days_1970) {
                return Err(format!(
                    "the date {} is beyond what a Delta date holds (-262143-01-01 to 262142-12-31)",
                    pg_date_text(i64::from(days))
                ));
            }
            b.append_value(days_1970 as i32)
        }
        (Decoder::Timestamp, ColBuilder::Timestamp(b, _)) => {
            let micros = i64::from_be_bytes(be(v)?);
            if micros == i64::MAX || micros == i64::MIN {
                let which = if micros == i64::MAX { "" } else { "-" };
                return Err(format!(
                    "an infinite timestamp ({which}infinity) cannot be stored"
                ));
            }
            // PostgreSQL counts microseconds from 2000 up to year 294276; Delta from 1970,
            // and its writers' statistics take calendar years up to 262142 only (beyond,
            // deltalake fails or panics), so the rest is refused here, clearly.
            let micros_1970 = i128::from(micros) + i128::from(PG_EPOCH_MICROS);
            if !(i128::from(DELTA_MIN_MICROS)..=i128::from(DELTA_MAX_MICROS)).contains(&micros_1970)
            {
                return Err(format!(
                    "the timestamp {} is beyond what a Delta timestamp holds (years -262143 to 262142)",
                    pg_timestamp_text(micros)
                ));
            }
            b.append_value(micros_1970 as i64)
        }
        (Decoder::Bytea, ColBuilder::Binary(b)) => b.append_value(v),
        (Decoder::Array(inner), list @ ColBuilder::List { .. }) => {
            let n = decode_array(inner, v, list)?;
            list.end_list(n);
        }
        _ => return Err("internal: decoder and builder disagree".into()),
    }
    Ok(())
}

/// A PostgreSQL date (days since 2000-01-01) as `YYYY-MM-DD` (proleptic Gregorian, any year).
fn pg_date_text(days: i64) -> String {
    // Howard Hinnant's civil_from_days, from 1970-01-01.
    let z = days + i64::from(PG_EPOCH_DAYS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A PostgreSQL timestamp (microseconds since 2000-01-01) as `YYYY-MM-DD HH:MM:SS.ffffff`.
fn pg_timestamp_text(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
    format!(
        "{} {:02}:{:02}:{:02}.{frac:06}",
        pg_date_text(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn utf8(v: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| "a text value is not valid UTF-8".to_string())
}

/// Decodes a one-dimensional array's elements into the list's inner builder.
fn decode_array(
    decoder: &Decoder,
    v: &[u8],
    list: &mut ColBuilder,
) -> std::result::Result<usize, String> {
    let ColBuilder::List { inner, .. } = list else {
        unreachable!("checked by the caller")
    };
    let int = |at: usize| -> std::result::Result<i32, String> {
        v.get(at..at + 4)
            .map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| "a truncated array".to_string())
    };
    let ndim = int(0)?;
    if ndim == 0 {
        return Ok(0);
    }
    if ndim != 1 {
        return Err(format!(
            "a {ndim}-dimensional array cannot be stored (only one-dimensional arrays are)"
        ));
    }
    let count = int(12)?.max(0) as usize;
    let mut pos = 20;
    for _ in 0..count {
        let len = int(pos)?;
        pos += 4;
        if len < 0 {
            inner.append_null();
            continue;
        }
        let end = pos + len as usize;
        let element = v.get(pos..end).ok_or("a truncated array")?;
        decode_value(decoder, element, inner)?;
        pos = end;
    }
    Ok(count)
}

/// 10^0 to 10^38: every power of ten a decimal(38, s) can hold.
const POW10: [i128; 39] = {
    let mut p = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// PostgreSQL's binary numeric (base-10000 digits) as an integer scaled by `scale`.
fn numeric_to_i128(v: &[u8], scale: i8) -> std::result::Result<i128, String> {
    let word = |i: usize| -> std::result::Result<i16, String> {
        v.get(i * 2..i * 2 + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a truncated numeric".to_string())
    };
    let ndigits = word(0)? as usize;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN cannot be stored in a decimal column".into()),
        _ => return Err("an infinite numeric cannot be stored in a decimal column".into()),
    }
    let overflow = || "a numeric value is too large for its decimal column".to_string();
    let mut acc: i128 = 0;
    for i in 0..ndigits {
        let digit = word(4 + i)?;
        let exp10 = 4 * (weight - i as i32) + i32::from(scale);
        if exp10 >= 0 {
            let factor = *POW10.get(exp10 as usize).ok_or_else(overflow)?;
            acc = i128::from(digit)
                .checked_mul(factor)
                .and_then(|d| acc.checked_add(d))
                .ok_or_else(overflow)?;
        } else {
            // A base-10000 digit has 4 decimal places: below 10^-4 of the scale it must be 0.
            let divisor = if exp10 > -4 {
                10i16.pow((-exp10) as u32)
            } else {
                i16::MAX
            };
            if digit % divisor != 0 {
                return Err(format!(
                    "a numeric value has more than {scale} decimal places"
                ));
            }
            acc = acc
                .checked_add(i128::from(digit / divisor))
                .ok_or_else(overflow)?;
        }
    }
    if sign == 0x4000 {
        acc.checked_neg().ok_or_else(overflow)
    } else {
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;

    fn numeric(digits: &[i16], weight: i16, negative: bool, dscale: i16) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [
            digits.len() as i16,
            weight,
            if negative { 0x4000 } else { 0 },
            dscale,
        ] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn binary_numerics_become_scaled_integers() {
        // 12345.67 = [1, 2345, 6700] with weight 1.
        assert_eq!(
            numeric_to_i128(&numeric(&[1, 2345, 6700], 1, false, 2), 2),
            Ok(1_234_567)
        );
        // -0.5 = [5000] with weight -1.
        assert_eq!(numeric_to_i128(&numeric(&[5000], -1, true, 1), 2), Ok(-50));
        // 0 has no digits.
        assert_eq!(numeric_to_i128(&numeric(&[], 0, false, 0), 2), Ok(0));
        // 1.234 does not fit scale 2.
        assert!(numeric_to_i128(&numeric(&[1, 2340], 0, false, 3), 2).is_err());
        // 10^36 at scale 2 is 10^38, still an i128; 10^40 is not.
        assert_eq!(
            numeric_to_i128(&numeric(&[1], 9, false, 0), 2),
            Ok(10i128.pow(38))
        );
        assert!(numeric_to_i128(&numeric(&[1], 10, false, 0), 2).is_err());
        // 0.0001 at scale 4, and not at scale 3.
        assert_eq!(numeric_to_i128(&numeric(&[1], -1, false, 4), 4), Ok(1));
        assert!(numeric_to_i128(&numeric(&[1], -1, false, 4), 3).is_err());
        // NaN.
        let mut nan = numeric(&[], 0, false, 0);
        nan[4] = 0xC0;
        assert!(numeric_to_i128(&nan, 2).is_err());
    }

    /// A binary COPY stream (header, `rows` of (int8, text or NULL), trailer).
    fn copy_bytes(rows: &[(i64, Option<&str>)]) -> Vec<u8> {
        let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
        out.extend_from_slice(&0u32.to_be_bytes()); // flags
        out.extend_from_slice(&4u32.to_be_bytes()); // header extension: 4 bytes
        out.extend_from_slice(b"ext!");
        for (id, text) in rows {
            out.extend_from_slice(&2i16.to_be_bytes());
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&id.to_be_bytes());
            match text {
                Some(t) => {
                    out.extend_from_slice(&(t.len() as i32).to_be_bytes());
                    out.extend_from_slice(t.as_bytes());
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn copy_data_decodes_the_same_however_it_is_split_into_messages() {
        use tarn_table::deltalake::arrow::array::{Array, AsArray};
        use tarn_table::deltalake::arrow::datatypes::{Field, Int64Type, Schema};
        let rows: Vec<(i64, Option<String>)> = (0..40)
            .map(|i| {
                (
                    i * 1_000_003 - 7,
                    (i % 3 != 0).then(|| "é".repeat(i as usize)),
                )
            })
            .collect();
        let borrowed: Vec<(i64, Option<&str>)> =
            rows.iter().map(|(i, t)| (*i, t.as_deref())).collect();
        let data = copy_bytes(&borrowed);
        let columns = vec![ColType::Int64, ColType::Utf8];
        let schema: SchemaRef = std::sync::Arc::new(Schema::new(vec![
            Field::new("id", columns[0].arrow(), true),
            Field::new("t", columns[1].arrow(), true),
        ]));
        // Every message length from 1 byte to the whole stream in one message.
        for size in 1..=data.len() {
            let messages: Vec<Bytes> = data.chunks(size).map(Bytes::copy_from_slice).collect();
            let (raw_tx, raw_rx) = tokio::sync::mpsc::channel(messages.len() + 1);
            for group in messages.chunks(3) {
                raw_tx.try_send(group.to_vec()).unwrap();
            }
            drop(raw_tx);
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            let plan = CopyPlan {
                decoders: vec![Decoder::I64, Decoder::Text],
                columns: columns.clone(),
                schema: schema.clone(),
                tx,
            };
            let total = decode_stream(raw_rx, &plan)
                .unwrap_or_else(|e| panic!("messages of {size} bytes: {e}"));
            assert_eq!(total, rows.len() as u64, "messages of {size} bytes");
            let batch = rx.try_recv().unwrap().unwrap();
            assert!(rx.try_recv().is_err(), "one batch");
            let ids = batch.column(0).as_primitive::<Int64Type>();
            let texts = batch.column(1).as_string::<i32>();
            for (i, (id, text)) in rows.iter().enumerate() {
                assert_eq!(ids.value(i), *id, "messages of {size} bytes, row {i}");
                assert_eq!(texts.is_null(i), text.is_none(), "row {i}");
                if let Some(t) = text {
                    assert_eq!(texts.value(i), t, "messages of {size} bytes, row {i}");
                }
            }
        }
    }

    /// Every decoder with the builder it fills.
    fn decoders() -> Vec<(Decoder, ColType)> {
        let mut pairs = vec![
            (Decoder::I16, ColType::Int16),
            (Decoder::I32, ColType::Int32),
            (Decoder::I64, ColType::Int64),
            (Decoder::F32, ColType::Float32),
            (Decoder::F64, ColType::Float64),
            (Decoder::Numeric(0), ColType::Decimal(38, 0)),
            (Decoder::Numeric(2), ColType::Decimal(12, 2)),
            (Decoder::Numeric(38), ColType::Decimal(38, 38)),
            (Decoder::Text, ColType::Utf8),
            (Decoder::Jsonb, ColType::Utf8),
            (Decoder::Uuid, ColType::Utf8),
            (Decoder::Bool, ColType::Bool),
            (Decoder::Date, ColType::Date),
            (Decoder::Timestamp, ColType::Timestamp),
            (Decoder::Timestamp, ColType::TimestampNtz),
            (Decoder::Bytea, ColType::Binary),
        ];
        let arrays: Vec<_> = pairs
            .iter()
            .map(|(d, t)| {
                (
                    Decoder::Array(Box::new(d.clone())),
                    ColType::List(Box::new(t.clone())),
                )
            })
            .collect();
        pairs.extend(arrays);
        pairs
    }

    /// An array value: header, then `elements` (`None`: NULL) of one type.
    fn array_bytes(elements: &[Option<Vec<u8>>], ndim: i32, count: i32) -> Vec<u8> {
        let mut v = Vec::new();
        for word in [ndim, 0, 23, count, 1] {
            v.extend_from_slice(&word.to_be_bytes());
        }
        for e in elements {
            match e {
                Some(bytes) => {
                    v.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    v.extend_from_slice(bytes);
                }
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        v
    }

    /// i64 values, half of them within 2^51 of either end.
    fn edge_i64() -> impl proptest::strategy::Strategy<Value = i64> {
        proptest::prop_oneof![
            proptest::prelude::any::<i64>(),
            (i64::MAX - (1 << 51))..=i64::MAX,
            i64::MIN..=(i64::MIN + (1 << 51)),
        ]
    }

    /// i32 values, half of them within 2^24 of either end.
    fn edge_i32() -> impl proptest::strategy::Strategy<Value = i32> {
        proptest::prop_oneof![
            proptest::prelude::any::<i32>(),
            (i32::MAX - (1 << 24))..=i32::MAX,
            i32::MIN..=(i32::MIN + (1 << 24)),
        ]
    }

    proptest::proptest! {
        // A fixed budget, so CI time is bounded; no regression files in the tree.
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any bytes, as any type's value: a value or an error, never a panic. Half the
        /// cases are 4- and 8-byte integers near the ends of their range, where epochs
        /// shift and overflow.
        #[test]
        fn any_bytes_decode_to_a_value_or_an_error(
            bytes in proptest::prop_oneof![
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
                edge_i64().prop_map(|v| v.to_be_bytes().to_vec()),
                edge_i32().prop_map(|v| v.to_be_bytes().to_vec()),
            ],
            which in 0usize..32,
        ) {
            let pairs = decoders();
            let (decoder, col_type) = &pairs[which % pairs.len()];
            let mut builder = ColBuilder::new(col_type);
            if decode_value(decoder, &bytes, &mut builder).is_ok() {
                // A value that decoded is a well-formed one-row column.
                proptest::prop_assert_eq!(builder.finish().len(), 1);
            }
        }

        /// Arrays with arbitrary headers and elements: a value or an error.
        #[test]
        fn any_array_decodes_to_a_value_or_an_error(
            elements in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)),
                0..6,
            ),
            ndim in -1i32..3,
            count in -2i32..8,
            which in 0usize..16,
        ) {
            let pairs = decoders();
            let (decoder, col_type) = &pairs[16 + which % 16];
            let bytes = array_bytes(&elements, ndim, count);
            let mut builder = ColBuilder::new(col_type);
            if decode_value(decoder, &bytes, &mut builder).is_ok() {
                proptest::prop_assert_eq!(builder.finish().len(), 1);
            }
        }

        /// Numerics with any digits, weight, sign and scale: exact or an error. Digits
        /// and weights are drawn mostly where sums reach the ends of an i128.
        #[test]
        fn any_numeric_is_exact_or_an_error(
            digits in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<i16>(),
                    proptest::sample::select(vec![0i16, 1, 9999, 5000, -1, -9999, i16::MAX, i16::MIN]),
                ],
                0..14,
            ),
            weight in proptest::prop_oneof![proptest::prelude::any::<i16>(), -4i16..12],
            sign in proptest::prop_oneof![
                proptest::strategy::Just(0u16),
                proptest::strategy::Just(0x4000u16),
                proptest::prelude::any::<u16>()
            ],
            scale in 0i8..=38,
        ) {
            let mut v = Vec::new();
            for w in [digits.len() as u16, weight as u16, sign, 0] {
                v.extend_from_slice(&w.to_be_bytes());
            }
            for d in &digits {
                v.extend_from_slice(&d.to_be_bytes());
            }
            let _ = numeric_to_i128(&v, scale);
        }

        /// A binary COPY stream with any bytes after its header, cut into any messages:
        /// rows or an error, never a panic.
        #[test]
        fn any_copy_stream_decodes_to_rows_or_an_error(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            cuts in proptest::collection::vec(1usize..64, 1..8),
            which in proptest::collection::vec(0usize..32, 1..4),
        ) {
            let pairs = decoders();
            let chosen: Vec<_> = which.iter().map(|w| pairs[w % pairs.len()].clone()).collect();
            let mut data = b"PGCOPY\n\xff\r\n\0".to_vec();
            data.extend_from_slice(&0u32.to_be_bytes());
            data.extend_from_slice(&0u32.to_be_bytes());
            data.extend_from_slice(&body);
            let columns: Vec<ColType> = chosen.iter().map(|(_, t)| t.clone()).collect();
            let schema: SchemaRef = std::sync::Arc::new(
                tarn_table::deltalake::arrow::datatypes::Schema::new(
                    columns
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            tarn_table::deltalake::arrow::datatypes::Field::new(
                                format!("c{i}"),
                                t.arrow(),
                                true,
                            )
                        })
                        .collect::<Vec<_>>(),
                ),
            );
            let (tx, _rx) = tokio::sync::mpsc::channel(64);
            let plan = CopyPlan {
                decoders: chosen.iter().map(|(d, _)| d.clone()).collect(),
                columns,
                schema,
                tx,
            };
            let mut copy = CopyDecoder::new(&plan);
            let mut rest = &data[..];
            let mut fed = Ok(());
            for cut in cuts.iter().cycle() {
                if rest.is_empty() || fed.is_err() {
                    break;
                }
                let (message, after) = rest.split_at((*cut).min(rest.len()));
                fed = copy.feed(message);
                rest = after;
            }
            if fed.is_ok() {
                let _ = copy.finish();
            }
        }
    }

    #[test]
    fn numerics_at_the_ends_of_an_i128_are_errors_not_panics() {
        // (i128::MAX - 7) / 10 at scale 1, then 0.9: the sum passes i128::MAX by 2.
        let mut v = numeric(
            &[17, 141, 1834, 6046, 9231, 7316, 8730, 3715, 8841, 572, 9000],
            9,
            false,
            1,
        );
        assert!(numeric_to_i128(&v, 1).is_err());
        // Negative digits summing to exactly i128::MIN, then negated.
        v = numeric(
            &[
                -170, -1411, -8346, -469, -2317, -3168, -7303, -7158, -8410, -5728,
            ],
            9,
            true,
            0,
        );
        assert!(numeric_to_i128(&v, 0).is_err());
    }

    #[test]
    fn delta_holds_exactly_the_dates_and_times_of_its_writers_calendar() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!((chrono::NaiveDate::MAX - epoch).num_days(), DELTA_MAX_DAYS);
        assert_eq!((chrono::NaiveDate::MIN - epoch).num_days(), DELTA_MIN_DAYS);
        let utc = |m| chrono::DateTime::from_timestamp_micros(m);
        assert!(utc(DELTA_MAX_MICROS).is_some() && utc(DELTA_MAX_MICROS + 1).is_none());
        assert!(utc(DELTA_MIN_MICROS).is_some() && utc(DELTA_MIN_MICROS - 1).is_none());
        assert_eq!(pg_date_text(0), "2000-01-01");
        assert_eq!(pg_date_text(-10_957), "1970-01-01");
        assert_eq!(pg_date_text(2_145_031_948), "5874897-12-31");
        assert_eq!(pg_timestamp_text(-1), "1999-12-31 23:59:59.999999");
    }

    #[test]
    fn block_ranges_cover_every_block_once() {
        assert_eq!(
            block_ranges("SELECT * FROM t WHERE {range}", &[2, 5, 7]),
            [
                "SELECT * FROM t WHERE ctid < '(2,0)'::tid",
                "SELECT * FROM t WHERE ctid >= '(2,0)'::tid AND ctid < '(5,0)'::tid",
                "SELECT * FROM t WHERE ctid >= '(5,0)'::tid AND ctid < '(7,0)'::tid",
                "SELECT * FROM t WHERE ctid >= '(7,0)'::tid",
            ]
        );
        assert_eq!(
            block_ranges("{range}", &[4167]),
            ["ctid < '(4167,0)'::tid", "ctid >= '(4167,0)'::tid"]
        );
        // Shrinking ranges: a quarter of what is left, never below 1/64 of the table.
        for blocks in [2048u64, 8334, 1_000_000] {
            let bounds = shrinking_bounds(blocks);
            let mut sizes: Vec<u64> = bounds
                .iter()
                .scan(0, |prev, b| {
                    let size = b - *prev;
                    *prev = *b;
                    Some(size)
                })
                .collect();
            sizes.push(blocks - bounds.last().unwrap());
            assert_eq!(sizes.iter().sum::<u64>(), blocks);
            assert!(
                sizes.iter().all(|s| *s >= blocks / 64),
                "{blocks}: {sizes:?}"
            );
            assert!(sizes[0] == blocks / 4, "{blocks}: {sizes:?}");
            assert!(
                sizes
                    .windows(2)
                    .all(|w| w[1] <= w[0] || w[1] < 2 * (blocks / 64)),
                "{blocks}: {sizes:?}"
            );
            assert!((10..=20).contains(&sizes.len()), "{blocks}: {sizes:?}");
        }
    }

    #[test]
    fn a_stream_that_is_not_binary_copy_is_refused() {
        let (raw_tx, raw_rx) = tokio::sync::mpsc::channel(1);
        raw_tx
            .try_send(vec![Bytes::from_static(b"id,name\n1,x\n2,y\n3,z\n")])
            .unwrap();
        drop(raw_tx);
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let schema: SchemaRef =
            std::sync::Arc::new(tarn_table::deltalake::arrow::datatypes::Schema::empty());
        let plan = CopyPlan {
            decoders: vec![Decoder::I64],
            columns: vec![ColType::Int64],
            schema,
            tx,
        };
        let err = decode_stream(raw_rx, &plan).unwrap_err();
        assert!(err.message().contains("unexpected COPY header"), "{err}");
    }
}
