//! tarn-import: copies a table or a query from PostgreSQL or MySQL/MariaDB into a Tarn
//! table, in full and then incrementally, exactly once.
//!
//! A run reads one consistent snapshot of the source (a REPEATABLE READ transaction) and
//! writes one Delta commit. That commit carries the run's watermark (the highest cursor
//! value imported) in its `commitInfo` and a `txn` action for the run's application id, so
//! the next run starts exactly where the last committed one ended: a run that dies before
//! its commit leaves nothing behind and is simply run again; two runs racing on one table
//! cannot both commit the same step.

pub mod cdc;
mod error;
mod mysql;
mod pgwire;
mod postgres;
pub mod types;
mod watermark;

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tarn_secrets::redact_url;
use tarn_table::deltalake::arrow::datatypes::{Field, Schema, SchemaRef};
use tarn_table::{one_line, InputSource, Progress, Table, TableLocation, WriteMode, WriteOptions};

pub use types::{ColType, Column};

/// Rows per Arrow batch read from the source.
pub const BATCH_ROWS: usize = 16_384;

/// Rows per Parquet row group of the files an import writes: eight batches, about what
/// DuckDB writes (122,880).
const ROW_GROUP_ROWS: usize = 8 * BATCH_ROWS;

/// The commitInfo key where a run records what it imported.
const COMMIT_KEY: &str = "tarnImport";

use error::kind_of_sqlstate;
pub use error::{Error, ErrorKind, Result};

/// What to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A table, `name` or `schema.name`.
    Table(String),
    /// A `SELECT` query.
    Query(String),
}

/// What a run does without a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Add every row read.
    Append,
    /// Replace the table's rows with the rows read.
    Overwrite,
}

/// One import, as the user asked for it.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// `postgres://...` or `mysql://...` (`mariadb://` too).
    pub url: String,
    /// The table or query.
    pub source: Source,
    /// The Tarn table.
    pub target: TableLocation,
    /// Key columns: rows are upserted on them.
    pub key: Vec<String>,
    /// The incremental cursor column.
    pub cursor: Option<String>,
    /// Append or overwrite (without a cursor or key).
    pub mode: Option<Mode>,
    /// Add source columns the table does not have yet.
    pub merge_schema: bool,
    /// Keep `timestamp without time zone` naive (`timestamp_ntz`) instead of UTC.
    pub timestamp_ntz: bool,
    /// Columns to leave out.
    pub exclude: Vec<String>,
    /// Counters for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// How long connecting and logging in to the source may take.
    pub connect_timeout: std::time::Duration,
}

/// The default of [`ImportOptions::connect_timeout`].
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The target table as given.
    pub table: String,
    /// The source, with credentials removed.
    pub source: String,
    /// `create`, `upsert`, `append` or `overwrite`.
    pub mode: String,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Rows inserted (upserts) or written.
    pub inserted: u64,
    /// Rows updated (upserts).
    pub updated: u64,
    /// The cursor value this run imported up to.
    pub watermark: Option<String>,
    /// Where this run started from.
    pub previous_watermark: Option<String>,
    /// The table version written, or the current one when there was nothing to import.
    pub version: Option<u64>,
    /// Whether a commit was made.
    pub committed: bool,
}

/// What a dry run shows.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The source, with credentials removed.
    pub source: String,
    /// Each column: name, source type, Delta type.
    pub columns: Vec<Value>,
    /// The source's estimate of the rows this run would read.
    pub estimated_rows: u64,
    /// Where this run would start from.
    pub watermark: Option<String>,
    /// `create`, `upsert`, `append` or `overwrite`.
    pub mode: String,
}

/// How runs before Tarn hid secrets in query parameters showed the URL: their application
/// id was made from it (with such a secret in it), so a URL with `?password=` finds the
/// state they left ([`previous`]), and the run goes on under [`app_id`]. Used for nothing
/// else: that id is never written again.
fn legacy_redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// A connection to `url`, given up after `timeout`: a server that accepts and never
/// answers (or speaks another protocol that waits for the client) would hang a run.
pub(crate) async fn connect_within<T>(
    url: &str,
    timeout: std::time::Duration,
    connecting: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(connect_error(url, e)),
        Err(_) => Err(no_answer(url, timeout)),
    }
}

/// A failure to connect to `url`, in one line.
pub(crate) fn connect_error(url: &str, e: sqlx::Error) -> Error {
    match e {
        // Bytes that make no sense in the handshake, or a server that hangs up in the
        // middle of it: something else listens there (the driver's own words name its
        // internals, e.g. "expected to read 1414811696 bytes", which is "HTTP").
        sqlx::Error::Protocol(_) => not_the_protocol(url),
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            not_the_protocol(url)
        }
        // A certificate sqlx's TLS (MySQL's) refused, worded as PostgreSQL's are.
        sqlx::Error::Io(e) if mysql::tls_failure(url, &e).is_some() => {
            Error::unavailable(format!(
                "cannot connect to {}: {}",
                redact_url(url),
                mysql::tls_failure(url, &e).unwrap_or_default()
            ))
            .with_source(e)
        }
        // sqlx's TLS (MySQL's; PostgreSQL's TLS is tarn-pgtls's): a mode that requires TLS,
        // and a server without it.
        sqlx::Error::Tls(e) if e.to_string() == "server does not support TLS" => {
            Error::unavailable(format!(
                "cannot connect to {}: the server does not offer TLS but ssl-mode={} (turn TLS on at the server, or use ssl-mode=PREFERRED or DISABLED)",
                redact_url(url),
                mysql::ssl_mode(url)
            ))
        }
        e => db_error(&format!("cannot connect to {}", redact_url(url)), e),
    }
}

/// `url` gave no answer within `timeout`.
pub(crate) fn no_answer(url: &str, timeout: std::time::Duration) -> Error {
    Error::unavailable(format!(
        "cannot connect to {}: no answer within {} s (is a PostgreSQL or MySQL server listening there? --connect-timeout sets how long to wait)",
        redact_url(url),
        timeout.as_secs_f64()
    ))
}

/// The error for a server at `url` that answers in another protocol.
fn not_the_protocol(url: &str) -> Error {
    let protocol = match dialect(url) {
        Ok(Dialect::MySql) => "MySQL's",
        _ => "PostgreSQL's",
    };
    Error::unavailable(format!(
        "cannot connect to {}: the server there does not speak {protocol} protocol (is the port right?)",
        redact_url(url)
    ))
}

/// A database error for users: what was being done, and the server's own message. Its kind
/// comes from the SQLSTATE ([`kind_of_sqlstate`]), or from the failure (a connection that
/// broke is [`ErrorKind::Unavailable`]); the sqlx error is kept as the source.
pub(crate) fn db_error(what: &str, e: sqlx::Error) -> Error {
    let (message, code) = match &e {
        sqlx::Error::Database(d) => (d.message().to_string(), d.code().map(|c| c.into_owned())),
        other => (other.to_string(), None),
    };
    let kind = match (&e, code.as_deref()) {
        (_, Some(code)) => kind_of_sqlstate(code),
        (
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed,
            None,
        ) => ErrorKind::Unavailable,
        (sqlx::Error::Configuration(_), None) => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    };
    let mut text = format!("{what}: {}", one_line(&message));
    if code.as_deref() == Some(READ_ONLY_SQLSTATE) {
        text.push_str(READ_ONLY_HINT);
    }
    Error::new(kind, text).with_source(e)
}

/// The SQLSTATE PostgreSQL and MySQL both answer a write in a read-only transaction with.
pub(crate) const READ_ONLY_SQLSTATE: &str = "25006";

/// What an error about a write in the run's read-only transaction goes on to say.
pub(crate) const READ_ONLY_HINT: &str =
    " (an import only reads: the source is read in a read-only transaction, and nothing was changed there)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    MySql,
}

fn dialect(url: &str) -> Result<Dialect> {
    let scheme = url.split("://").next().unwrap_or_default();
    match scheme {
        "postgres" | "postgresql" => Ok(Dialect::Postgres),
        "mysql" | "mariadb" => Ok(Dialect::MySql),
        _ => Err(Error::invalid(format!(
            "`{}` is not a database URL: use postgres://user@host/db or mysql://user@host/db",
            redact_url(url)
        ))),
    }
}

/// The id this source has in the table's log (its `txn` application id): a hash of the
/// redacted URL and the source, so no secret goes into it.
fn app_id(opts: &ImportOptions) -> String {
    app_id_of(&redact_url(&opts.url), opts)
}

fn app_id_of(shown_url: &str, opts: &ImportOptions) -> String {
    let mut h = Sha256::new();
    h.update(shown_url.as_bytes());
    h.update([0]);
    match &opts.source {
        Source::Table(t) => h.update(format!("table:{t}")),
        Source::Query(q) => h.update(format!("query:{q}")),
    }
    format!("tarn-import-{}", &hex::encode(h.finalize())[..16])
}

fn source_label(opts: &ImportOptions) -> String {
    match &opts.source {
        Source::Table(t) => format!("{} table {t}", redact_url(&opts.url)),
        Source::Query(_) => format!("{} query", redact_url(&opts.url)),
    }
}

/// The state an earlier run left in the table.
struct Previous {
    table: Option<Table>,
    run: Option<i64>,
    watermark: Option<String>,
}

async fn previous(opts: &ImportOptions, app: &str) -> Result<Previous> {
    let Some(table) = Table::open_if_exists(&opts.target).await? else {
        return Ok(Previous {
            table: None,
            run: None,
            watermark: None,
        });
    };
    // The ids this source's commits may carry: its own, and the one runs before secrets in
    // query parameters were hidden made from the URL with those secrets in it. The state
    // such a run left is carried on, but under `app` only: the next commit writes its
    // `txn` (the same run count plus one) and its commitInfo with `app`, never `legacy`
    // (a hash of the password, which anyone reading the log could test guesses against).
    let mut ids = vec![app.to_string()];
    let mut run = table.app_transaction_version(app).await?;
    if run.is_none() {
        let legacy = app_id_of(&legacy_redact(&opts.url), opts);
        if legacy != app {
            run = table.app_transaction_version(&legacy).await?;
            ids.push(legacy);
        }
    }
    let mut watermark = None;
    if run.is_some() {
        let (first, last) = table.version_range().await?;
        for v in (first..=last).rev() {
            let Some(info) = table.commit_info_entry(v, COMMIT_KEY).await? else {
                continue;
            };
            let id = info.get("appId").and_then(Value::as_str);
            if ids.iter().any(|i| Some(i.as_str()) == id) {
                watermark = info
                    .get("watermark")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                break;
            }
        }
    }
    Ok(Previous {
        table: Some(table),
        run,
        watermark,
    })
}

/// Checks the options that do not need the source.
fn check_options(opts: &ImportOptions) -> Result<()> {
    if opts.cursor.is_some() && opts.mode == Some(Mode::Overwrite) {
        return Err(Error::invalid(
            "--cursor imports only new rows: it cannot be combined with --mode overwrite",
        ));
    }
    if !opts.key.is_empty() && opts.mode.is_some() {
        return Err(Error::invalid(
            "--key upserts rows on the key: drop --mode (or drop --key to append or overwrite)",
        ));
    }
    if opts.cursor.is_none() && opts.key.is_empty() && opts.mode.is_none() {
        return Err(Error::invalid(
            "say what a run does: --cursor COLUMN (with --key) for incremental imports, or --mode overwrite|append",
        ));
    }
    Ok(())
}

/// A connected source inside its snapshot.
enum Session {
    Postgres(postgres::PgSession),
    MySql(mysql::MySqlSession),
}

struct Prepared {
    session: Session,
    columns: Vec<Column>,
    decoders: Decoders,
    /// An incremental run's condition.
    beyond: Option<Beyond>,
    view: String,
    quote: fn(&str) -> String,
}

/// The condition of an incremental run: the cursor beyond the saved watermark.
///
/// The watermark comes from the table's log, so it is checked and re-rendered first
/// ([`watermark::canonical`]), and then never spliced into SQL where a parameter can carry
/// it: PostgreSQL's queries bind it (`$1`), MySQL's read it from a session variable set
/// with a bound parameter. Only PostgreSQL's `COPY`, which takes no parameters, gets it as
/// a literal, and only the re-rendered value (digits, `-`, `:`, `.`, `+`, a space), quoted
/// so that it means the same whatever `standard_conforming_strings` says.
struct Beyond {
    /// The cursor, quoted for the source.
    column: String,
    /// The source's SQL type the watermark is cast to.
    cast: String,
    /// The watermark, checked and re-rendered.
    value: String,
    /// The same as a PostgreSQL literal (for `COPY`).
    literal: String,
}

enum Decoders {
    Postgres(Vec<postgres::Decoder>),
    MySql(Vec<mysql::Decoder>),
}

async fn prepare(
    opts: &ImportOptions,
    watermark: Option<&str>,
    snapshot: Option<&str>,
) -> Result<Prepared> {
    let (mut session, mapped): (Session, Vec<Column>);
    let decoders;
    let (view, quote): (String, fn(&str) -> String);
    match dialect(&opts.url)? {
        Dialect::Postgres => {
            let s =
                postgres::PgSession::open(&opts.url, &opts.source, opts.connect_timeout, snapshot)
                    .await?;
            let cols = s.columns(opts.timestamp_ntz, &opts.exclude)?;
            mapped = cols.iter().map(|(c, _)| c.clone()).collect();
            decoders = Decoders::Postgres(cols.into_iter().map(|(_, d)| d).collect());
            session = Session::Postgres(s);
            view = "tarn_import_source".to_string();
            quote = postgres::quote_ident;
        }
        Dialect::MySql => {
            let mut s =
                mysql::MySqlSession::open(&opts.url, &opts.source, opts.connect_timeout).await?;
            let cols = s.columns(opts.timestamp_ntz, &opts.exclude).await?;
            mapped = cols.iter().map(|(c, _)| c.clone()).collect();
            decoders = Decoders::MySql(cols.into_iter().map(|(_, d)| d).collect());
            view = s.from().to_string();
            session = Session::MySql(s);
            quote = mysql::quote_ident;
        }
    }
    for x in &opts.exclude {
        if opts.key.contains(x) || opts.cursor.as_deref() == Some(x.as_str()) {
            return Err(Error::invalid(format!(
                "--exclude-column {x}: it is the key or the cursor"
            )));
        }
    }
    let find = |name: &str, role: &str| -> Result<Column> {
        mapped
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{role} column `{name}` is not a column of the source (columns: {})",
                        mapped
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    };
    for k in &opts.key {
        find(k, "--key")?;
    }
    let mut beyond = None;
    if let Some(c) = &opts.cursor {
        let col = find(c, "--cursor")?;
        if !col.col_type.is_cursor_type() {
            return Err(Error::invalid(format!(
                "--cursor `{c}` is {}: a cursor must be an integer, decimal, date or timestamp column, whose values grow",
                col.source_type
            )));
        }
        if let Some(w) = watermark {
            let value = watermark::canonical(w, c, &col.col_type)?;
            let cast = match &mut session {
                Session::Postgres(s) => s.cast_type(c),
                Session::MySql(s) => {
                    s.set_watermark(&value).await?;
                    mysql::cast_type(&col.col_type)
                }
            };
            let cast = cast.ok_or_else(|| {
                Error::invalid(format!(
                    "--cursor `{c}` is {}: a cursor must be an integer, decimal, date or timestamp column, whose values grow",
                    col.source_type
                ))
            })?;
            // The checked value has no NUL byte, the one thing a literal cannot hold.
            let literal = postgres::quote_literal(&value).ok_or_else(|| {
                Error::invalid(format!("the watermark of `{c}` cannot be quoted"))
            })?;
            beyond = Some(Beyond {
                column: quote(c),
                cast,
                value,
                literal,
            });
        }
    }
    Ok(Prepared {
        session,
        columns: mapped,
        decoders,
        beyond,
        view,
        quote,
    })
}

impl Prepared {
    /// The incremental condition, for a statement that takes a bound parameter
    /// (`params`: PostgreSQL's queries, bound by [`Prepared::scalar`]) or not (`COPY`).
    fn cond(&self, params: bool) -> Option<String> {
        let b = self.beyond.as_ref()?;
        let value = match &self.session {
            Session::Postgres(_) if params => "$1",
            Session::Postgres(_) => b.literal.as_str(),
            Session::MySql(_) => mysql::WATERMARK_VARIABLE,
        };
        Some(format!("{} > CAST({value} AS {})", b.column, b.cast))
    }

    /// ` WHERE <the incremental condition>`, or nothing.
    fn filter(&self, params: bool) -> String {
        self.cond(params)
            .map(|c| format!(" WHERE {c}"))
            .unwrap_or_default()
    }

    /// The value [`Prepared::cond`] binds (with `params`).
    fn bound(&self) -> Option<&str> {
        self.beyond.as_ref().map(|b| b.value.as_str())
    }

    fn select(&self, params: bool) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| (self.quote)(&c.name)).collect();
        format!(
            "SELECT {} FROM {}{}",
            cols.join(", "),
            self.view,
            self.filter(params)
        )
    }

    /// For a PostgreSQL table: the same select over a block range of the table itself,
    /// with `{range}` standing for the ctid condition.
    fn ranged_select(&self, source: &Source) -> Option<String> {
        let (Session::Postgres(_), Source::Table(name)) = (&self.session, source) else {
            return None;
        };
        let table: Vec<String> = name.split('.').map(postgres::quote_ident).collect();
        let cols: Vec<String> = self.columns.iter().map(|c| (self.quote)(&c.name)).collect();
        let and = self
            .cond(false)
            .map(|c| format!(" AND {c}"))
            .unwrap_or_default();
        Some(format!(
            "SELECT {} FROM {} WHERE {{range}}{and}",
            cols.join(", "),
            table.join(".")
        ))
    }

    /// One text value from `sql`, a query built with `params` (its `$1`, if it has one, is
    /// bound to the watermark).
    async fn scalar(&mut self, sql: &str) -> Result<Option<String>> {
        let bound = self.bound().map(str::to_string);
        match &mut self.session {
            Session::Postgres(s) => s.scalar(sql, bound.as_deref()).await,
            Session::MySql(s) => s.scalar(sql).await,
        }
    }

    async fn close(self) {
        match self.session {
            Session::Postgres(s) => s.close().await,
            Session::MySql(s) => s.close().await,
        }
    }

    fn text_cast(&self, column: &str) -> String {
        match self.session {
            Session::Postgres(_) => format!("{}::text", (self.quote)(column)),
            Session::MySql(_) => format!("CAST({} AS CHAR)", (self.quote)(column)),
        }
    }
}

fn mode_name(opts: &ImportOptions, exists: bool) -> &'static str {
    if !exists {
        "create"
    } else if !opts.key.is_empty() {
        "upsert"
    } else if opts.cursor.is_some() || opts.mode == Some(Mode::Append) {
        "append"
    } else {
        "overwrite"
    }
}

/// Shows what a run would do: the mapped schema, the row estimate, the watermark.
pub async fn dry_run(opts: &ImportOptions) -> Result<DryRun> {
    check_options(opts)?;
    let app = app_id(opts);
    let prev = previous(opts, &app).await?;
    let mut prepared = prepare(opts, prev.watermark.as_deref(), None).await?;
    let select = prepared.select(true);
    let bound = prepared.bound().map(str::to_string);
    let estimated_rows = match &mut prepared.session {
        Session::Postgres(s) => s.estimate(&select, bound.as_deref()).await?,
        Session::MySql(s) => s.estimate(&select).await?,
    };
    let columns = prepared
        .columns
        .iter()
        .map(|c| json!({"name": c.name, "source_type": c.source_type, "type": c.col_type.type_text()}))
        .collect();
    prepared.close().await;
    Ok(DryRun {
        source: source_label(opts),
        columns,
        estimated_rows,
        watermark: prev.watermark,
        mode: mode_name(opts, prev.table.is_some()).into(),
    })
}

/// Runs one import: at most one commit.
pub async fn run(opts: &ImportOptions) -> Result<ImportReport> {
    run_with(opts, None).await
}

/// The initial copy of a change data capture run: read in a replication slot's exported
/// snapshot, committed with the slot's `txn` and commitInfo instead of the import's own.
pub(crate) struct SnapshotCopy {
    /// The exported snapshot's name.
    pub snapshot: String,
    /// The `txn` action (application id, version).
    pub app_transaction: (String, i64),
    /// The commitInfo keys.
    pub commit_info: serde_json::Map<String, Value>,
}

/// [`run`], or with `copy` the initial copy of change data capture.
pub(crate) async fn run_with(
    opts: &ImportOptions,
    copy: Option<&SnapshotCopy>,
) -> Result<ImportReport> {
    check_options(opts)?;
    // The connections the rows come on open while the target is read and the checks run.
    let data_conns = (dialect(&opts.url)? == Dialect::Postgres)
        .then(|| postgres::open_data_connections(&opts.url, &opts.source, opts.connect_timeout));
    let app = app_id(opts);
    let prev = previous(opts, &app).await?;
    let exists = prev.table.is_some();
    let mut prepared = prepare(
        opts,
        prev.watermark.as_deref(),
        copy.map(|c| c.snapshot.as_str()),
    )
    .await?;
    if let (Session::Postgres(s), Some(conns)) = (&mut prepared.session, data_conns) {
        s.use_data_connections(conns);
    }
    let label = source_label(opts);
    let unchanged = |watermark: Option<String>| ImportReport {
        table: opts.target.display_name().to_string(),
        source: label.clone(),
        mode: mode_name(opts, exists).into(),
        rows_read: 0,
        inserted: 0,
        updated: 0,
        watermark: watermark.clone(),
        previous_watermark: watermark,
        version: prev.table.as_ref().map(Table::version),
        committed: false,
    };

    // The new watermark, read in the same snapshot as the rows.
    let mut watermark = None;
    if let Some(c) = &opts.cursor {
        let sql = format!(
            "SELECT {} FROM (SELECT MAX({}) AS m FROM {}{}) AS w",
            prepared.text_cast("m"),
            (prepared.quote)(c),
            prepared.view,
            prepared.filter(true)
        );
        watermark = prepared.scalar(&sql).await?;
        if watermark.is_none() && exists {
            prepared.close().await;
            return Ok(unchanged(prev.watermark.clone()));
        }
    }
    // Upserting needs one row per key among the rows read.
    if !opts.key.is_empty() {
        let keys: Vec<String> = opts.key.iter().map(|k| (prepared.quote)(k)).collect();
        let shown: Vec<String> = opts.key.iter().map(|k| prepared.text_cast(k)).collect();
        // CONCAT_WS exists in PostgreSQL and MySQL alike.
        let sql = format!(
            "SELECT CONCAT_WS(',', {}) FROM (SELECT {}, COUNT(*) AS n FROM {}{} GROUP BY {} HAVING COUNT(*) > 1) AS d LIMIT 1",
            shown.join(", "),
            keys.join(", "),
            prepared.view,
            prepared.filter(true),
            keys.join(", ")
        );
        if let Some(dup) = prepared.scalar(&sql).await? {
            prepared.close().await;
            return Err(Error::invalid(format!(
                "--key ({}) is not unique in the source rows: ({dup}) appears more than once; nothing was imported",
                opts.key.join(", ")
            )));
        }
    }

    let schema: SchemaRef = Arc::new(Schema::new(
        prepared
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.col_type.arrow(), true))
            .collect::<Vec<_>>(),
    ));
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    // COPY takes no parameters (MySQL's stream reads its session variable).
    let select = prepared.select(false);
    let ranged = prepared.ranged_select(&opts.source);
    let col_types: Vec<ColType> = prepared
        .columns
        .iter()
        .map(|c| c.col_type.clone())
        .collect();
    let reader = {
        let schema = schema.clone();
        async move {
            match (prepared.session, prepared.decoders) {
                (Session::Postgres(s), Decoders::Postgres(d)) => {
                    s.copy(&opts.url, select, ranged, d, col_types, schema, tx)
                        .await
                }
                (Session::MySql(s), Decoders::MySql(d)) => {
                    s.stream(select, d, col_types, schema, tx).await
                }
                _ => unreachable!("decoders match their session"),
            }
        }
    };
    let mut commit_info = serde_json::Map::new();
    commit_info.insert(
        COMMIT_KEY.into(),
        json!({
            "appId": app, "source": label, "cursor": opts.cursor, "watermark": watermark,
            "previousWatermark": prev.watermark,
        }),
    );
    let (app_transaction, commit_info) = match copy {
        Some(c) => (c.app_transaction.clone(), c.commit_info.clone()),
        None => ((app.clone(), prev.run.unwrap_or(0) + 1), commit_info),
    };
    let options = WriteOptions {
        mode: if opts.mode == Some(Mode::Overwrite) && exists {
            WriteMode::Overwrite
        } else {
            WriteMode::Append
        },
        merge_schema: opts.merge_schema,
        upsert_on: if exists { opts.key.clone() } else { vec![] },
        replace_where: None,
        create_if_missing: true,
        partition_by: vec![],
        progress: opts.progress.clone(),
        app_transaction: Some(app_transaction),
        commit_info,
        ..WriteOptions::default()
    };
    let upsert = exists && !opts.key.is_empty();
    let (table, report, rows_read) = if upsert {
        // MERGE reads its source more than once: spool the rows to a local Parquet file
        // (bounded memory; incremental runs are usually small), then merge from it.
        let spool = tempfile::Builder::new()
            .prefix("tarn-import-")
            .suffix(".parquet")
            .tempfile()
            .map_err(|e| {
                Error::internal(format!("cannot create a spool file: {e}")).with_source(e)
            })?;
        let path = spool.path().to_path_buf();
        let file = spool.reopen().map_err(|e| {
            Error::internal(format!("cannot open the spool file: {e}")).with_source(e)
        })?;
        let writer = tokio::task::spawn_blocking(move || spool_batches(file, schema, rx));
        let (read, spooled) = tokio::join!(reader, writer);
        let read = read?;
        spooled.map_err(|e| Error::internal(format!("spooling failed: {e}")).with_source(e))??;
        let input = InputSource::file(&path, Some(tarn_table::InputFormat::Parquet))?
            .with_label(label.clone());
        let (table, report) = Table::write(&opts.target, vec![input], options).await?;
        (table, report, read)
    } else {
        // The reader feeds the writer through a channel of two batches: bounded memory.
        let write = async {
            let mut rx = rx;
            let mut options = options;
            // Row groups are written out as they fill, while the rows still stream in
            // (rather than all at the end), and readers can split the file between threads.
            options.row_group_rows = Some(ROW_GROUP_ROWS);
            // The first batch shows which columns are mostly distinct: those are written
            // without trying a dictionary in every row group.
            let input = match rx.recv().await {
                Some(Ok(first)) => {
                    options.plain_columns = tarn_table::mostly_distinct_columns(&first);
                    InputSource::batches_after(label.clone(), schema, first, rx)
                }
                Some(Err(e)) => return Err(e),
                None => InputSource::batches(label.clone(), schema, rx),
            };
            Table::write(&opts.target, vec![input], options).await
        };
        let (read, written) = tokio::join!(reader, write);
        let (table, report) = written?;
        (table, report, read?)
    };
    Ok(ImportReport {
        table: opts.target.display_name().to_string(),
        source: label,
        mode: mode_name(opts, exists).into(),
        rows_read,
        inserted: report.inserted.unwrap_or(rows_read),
        updated: report.updated.unwrap_or(0),
        watermark,
        previous_watermark: prev.watermark,
        version: Some(table.version()),
        committed: true,
    })
}

/// Writes every batch from `rx` into `file` as Parquet (uncompressed: it is read once).
fn spool_batches(
    file: std::fs::File,
    schema: SchemaRef,
    mut rx: tokio::sync::mpsc::Receiver<
        tarn_table::Result<tarn_table::deltalake::arrow::array::RecordBatch>,
    >,
) -> Result<()> {
    use tarn_table::deltalake::parquet::arrow::ArrowWriter;
    use tarn_table::deltalake::parquet::basic::Compression;
    use tarn_table::deltalake::parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .build();
    let spool_error =
        |e: &dyn std::fmt::Display| Error::internal(format!("writing the spool file: {e}"));
    let mut writer =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| spool_error(&e))?;
    while let Some(batch) = rx.blocking_recv() {
        writer.write(&batch?).map_err(|e| spool_error(&e))?;
    }
    writer.close().map_err(|e| spool_error(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_imported_before_keep_their_application_id() {
        let opts = |url: &str| ImportOptions {
            url: url.into(),
            source: Source::Table("orders".into()),
            target: TableLocation::parse("/tmp/unused").unwrap(),
            key: vec![],
            cursor: None,
            mode: Some(Mode::Append),
            merge_schema: false,
            timestamp_ntz: false,
            exclude: vec![],
            progress: None,
            connect_timeout: CONNECT_TIMEOUT,
        };
        // Without a secret in the query, the id is what earlier versions made.
        for url in [
            "postgres://app:pw@db/shop",
            "postgres://db/shop?sslmode=require",
            "mysql://root@db:3306/shop",
        ] {
            let o = opts(url);
            assert_eq!(app_id(&o), app_id_of(&legacy_redact(url), &o), "{url}");
        }
        // With one, the id no longer depends on it; the old one is still found (previous).
        let (a, b) = (
            opts("postgres://db/shop?password=one"),
            opts("postgres://db/shop?password=two"),
        );
        assert_eq!(app_id(&a), app_id(&b));
        assert_ne!(app_id(&a), app_id_of(&legacy_redact(&a.url), &a));
    }

    #[test]
    fn connection_errors_hide_passwords_in_the_query_too() {
        let url = "postgres://app:Us3r@db/shop?password=Qu3ry&sslpassword=Ssl3&sslmode=require";
        for e in [
            no_answer(url, CONNECT_TIMEOUT),
            not_the_protocol(url),
            connect_error(url, sqlx::Error::PoolTimedOut),
        ] {
            let shown = e.to_string();
            assert!(
                shown.contains(
                    "postgres://***@db/shop?password=***&sslpassword=***&sslmode=require"
                ),
                "{shown}"
            );
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{shown}");
        }
    }

    #[test]
    fn dialects_are_recognised_and_other_schemes_refused() {
        assert_eq!(dialect("postgresql://x/y").ok(), Some(Dialect::Postgres));
        assert_eq!(dialect("mariadb://x/y").ok(), Some(Dialect::MySql));
        let e = dialect("sqlite://u:pw@x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.message()
                .starts_with("`sqlite://***@x` is not a database URL"),
            "{e}"
        );
    }
}
