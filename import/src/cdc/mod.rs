//! Change data capture from PostgreSQL: a publication and a logical replication slot per
//! target, the initial copy from the slot's exported snapshot, then the slot's changes
//! (pgoutput, binary) applied as one Delta commit per table per batch, exactly once.
//!
//! Every commit records the source position it covers, as its `txn` action (application id
//! per source table, version = the LSN) and in `commitInfo.tarnCdc`. The slot's confirmed
//! position only moves to a position every table has committed, after the commits: a run
//! stopped at any point resumes from the slot and skips, per table, the transactions its
//! `txn` version already covers.

mod apply;
mod fold;
mod parts;
mod pgoutput;
mod spill;
mod stream;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tarn_table::{Table, TableLocation};

use crate::error::kind_of_sqlstate;
use crate::pgwire::{Target, WireConn, WireError};
use crate::postgres::{map_scalar, quote_ident, quote_literal, Decoder};
use crate::types::ColType;
use crate::{one_line, Error, ErrorKind, ImportOptions, Mode, Result, Source};
use apply::Slot;
pub use pgoutput::Lsn;
use tarn_secrets::redact_url as redact;

/// The commitInfo key of change data capture commits.
pub const COMMIT_KEY: &str = "tarnCdc";

/// The test-only fault points of change data capture (`TARN_TEST_FAULT=cdc:<point>`): the
/// process kills itself there, as `kill -9` would.
pub const FAULT_POINTS: &[&str] = &[
    "cdc:after-publication",
    "cdc:after-slot",
    "cdc:between-snapshot-commits",
    "cdc:between-table-commits",
    "cdc:after-commit-before-confirm",
];

/// Test-only: dies here if `TARN_TEST_FAULT` names `point`.
pub(crate) fn fault(point: &str) {
    if std::env::var_os("TARN_TEST_FAULT").is_some_and(|v| v == point) {
        eprintln!("TARN_TEST_FAULT: killing this process at `{point}` (test only)");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

/// One source table and the Tarn table it feeds.
#[derive(Debug, Clone)]
pub struct CdcTable {
    /// `name` or `schema.name`.
    pub source: String,
    /// The Delta table.
    pub target: TableLocation,
}

/// Counters a progress display polls.
#[derive(Debug, Default)]
pub struct CdcProgress {
    /// Changes committed to Delta.
    pub changes: AtomicU64,
    /// Rows of the initial copy read.
    pub copied: Arc<tarn_table::Progress>,
    /// Bytes of WAL between the last position the server reported and what Delta holds.
    pub lag_bytes: AtomicU64,
    /// Milliseconds, on the source's clock, since the commit of the oldest source
    /// transaction received and not yet in Delta (0: none).
    pub lag_millis: AtomicU64,
    /// The position Delta holds (an LSN).
    pub durable: AtomicU64,
}

/// One change data capture run, as the user asked for it.
#[derive(Debug, Clone)]
pub struct CdcOptions {
    /// `postgres://...`.
    pub url: String,
    /// The tables.
    pub tables: Vec<CdcTable>,
    /// What the slot and publication names are derived from (the `--into` as resolved).
    pub target_id: String,
    /// The slot's name (default: derived from the target).
    pub slot: Option<String>,
    /// The publication's name (default: the slot's).
    pub publication: Option<String>,
    /// Keep following after catching up, until SIGTERM / Ctrl-C (`stop`).
    pub follow: bool,
    /// Make a new copy even though the tables hold a position (a new slot replaces this
    /// target's old one).
    pub recopy: bool,
    /// A batch is committed once it is this old...
    pub batch_interval: Duration,
    /// ...or holds this many changes.
    pub batch_changes: u64,
    /// Keep `timestamp without time zone` naive.
    pub timestamp_ntz: bool,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Set to stop a `--follow` run: what is buffered is committed and confirmed.
    pub stop: Arc<AtomicBool>,
    /// Counters for a progress display.
    pub progress: Arc<CdcProgress>,
    /// Warn when the slot is this many bytes behind the server (at the start, and, with
    /// `follow`, every `behind_check`).
    pub behind_warn_bytes: u64,
    /// How often a `follow` run checks how far behind the slot is.
    pub behind_check: Duration,
    /// A source transaction whose changes hold more than this many bytes (roughly) is kept
    /// in a temporary file until its commit.
    pub spill_bytes: u64,
    /// A spilled transaction is folded in parts of about this many changes each (the memory
    /// of one part is what folding it needs), unless it updates a key.
    pub part_changes: u64,
    /// Told the index (into `tables`) of each table whose initial copy has committed.
    pub copied: Option<tokio::sync::mpsc::UnboundedSender<usize>>,
}

/// The default of [`CdcOptions::part_changes`].
pub const PART_CHANGES: u64 = parts::CHANGES_PER_PART;

/// The default of [`CdcOptions::spill_bytes`]: 64 MiB.
pub const SPILL_BYTES: u64 = 64 << 20;

/// The default of [`CdcOptions::behind_warn_bytes`]: 1 GiB.
pub const BEHIND_WARN_BYTES: u64 = 1 << 30;

/// The default of [`CdcOptions::behind_check`]: a minute.
pub const BEHIND_CHECK: Duration = Duration::from_secs(60);

/// The warning for a slot `bytes` behind the server.
fn behind_warning(slot: &str, bytes: u64) -> String {
    format!(
        "replication slot {slot} is {:.1} MiB behind the server: PostgreSQL keeps that WAL until it is applied (run more often, or --cdc --drop a target that is not run any more)",
        bytes as f64 / 1048576.0
    )
}

/// How many bytes of WAL the slot is behind the server's current position (`None`: no such
/// slot).
fn slot_behind(conn: &mut WireConn, slot: &str) -> Result<Option<u64>> {
    Ok(slot_row(conn, slot)?.map(|r| r.behind_bytes))
}

/// What a table got in a run.
#[derive(Debug, Clone, Serialize)]
pub struct CdcTableReport {
    /// The Tarn table.
    pub table: String,
    /// The source table.
    pub source: String,
    /// Whether this run made its initial copy (and the rows copied).
    pub snapshot_rows: Option<u64>,
    /// Changes applied in this run.
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Whether it was truncated in this run.
    pub truncated: bool,
    /// Commits made in this run.
    pub commits: u64,
    /// The table's version after the run.
    pub version: Option<u64>,
    /// The source position the table holds.
    pub lsn: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct CdcReport {
    /// The source, without secrets.
    pub source: String,
    pub slot: String,
    pub publication: String,
    /// Whether this run made the initial copy.
    pub snapshot: bool,
    /// Where the stream started and what Delta holds at the end.
    pub start_lsn: String,
    pub end_lsn: String,
    /// The slot's confirmed position at the end.
    pub confirmed_lsn: String,
    /// Source changes applied.
    pub changes: u64,
    pub changes_per_second: f64,
    /// How far behind the source the last batch of the run was when its Delta commits
    /// returned: seconds since its oldest source transaction committed, on the source's
    /// clock (0 when the run committed no change).
    pub lag_seconds: f64,
    /// The server's WAL position (as last reported) minus what Delta holds, at the end.
    pub lag_bytes: u64,
    /// Source transactions too large to hold in memory, kept in a temporary file until their
    /// commit.
    pub spilled_transactions: u64,
    /// `caught_up` or `signal`.
    pub stopped: String,
    pub seconds: f64,
    pub warnings: Vec<String>,
    pub tables: Vec<CdcTableReport>,
}

/// What `--drop` did.
#[derive(Debug, Clone, Serialize)]
pub struct DropReport {
    pub slot: String,
    pub publication: String,
    pub dropped_slot: bool,
    pub dropped_publication: bool,
}

/// A source table as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct SourceTable {
    pub nspname: String,
    pub relname: String,
    pub keys: Vec<String>,
    pub slots: Vec<Slot>,
    pub generated: Vec<String>,
}

impl SourceTable {
    fn quoted(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.nspname),
            quote_ident(&self.relname)
        )
    }
}

/// Runs `f` on the replication connection on a blocking thread.
async fn blocking<T: Send + 'static>(
    mut conn: WireConn,
    f: impl FnOnce(&mut WireConn) -> Result<T> + Send + 'static,
) -> Result<(WireConn, T)> {
    tokio::task::spawn_blocking(move || {
        let out = f(&mut conn)?;
        Ok((conn, out))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Internal, format!("internal: {e}")))?
}

fn lit(text: &str) -> Result<String> {
    quote_literal(text).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("`{text}` holds a NUL byte"),
        )
    })
}

/// The kind of a failure of the replication connection: the server's SQLSTATE, or the
/// connection itself.
pub(crate) fn wire_kind(e: &WireError) -> ErrorKind {
    match e {
        WireError::Server { code, .. } => kind_of_sqlstate(code),
        WireError::Connect(_) | WireError::Io(_) | WireError::Timeout => ErrorKind::Unavailable,
    }
}

/// A failure of the replication connection while doing `what`, the wire error kept as the
/// cause.
fn server(what: &str, e: WireError) -> Error {
    Error::new(
        wire_kind(&e),
        format!("{what}: {}", one_line(&e.to_string())),
    )
    .with_source(e)
}

/// Opens the replication connection; a role that may not replicate is told so.
fn connect_replication(url: &str, timeout: Duration) -> Result<WireConn> {
    let target = Target::from_url(url)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("`{}` is not a PostgreSQL URL", redact(url)),
            )
        })?
        .for_replication();
    WireConn::connect(&target, timeout).map_err(|e| {
        let m = e.to_string();
        if m.contains("WAL sender") || m.contains("replication") {
            let user = url::Url::parse(url)
                .ok()
                .map(|u| u.username().to_string())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "the role".into());
            Error::new(ErrorKind::InvalidInput, format!(
                "role {user} may not start replication: ALTER ROLE {user} REPLICATION, or use a superuser (nothing was created)"
            ))
        } else {
            Error::new(ErrorKind::Unavailable, format!("cannot connect to {}: {}", redact(url), one_line(&m)))
        }
    })
}

fn cell(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// Maps a source type, as the import does (arrays of mapped types included).
pub(crate) fn map_type(
    typname: &str,
    typtype: &str,
    elem: &str,
    elemtype: &str,
    typmod: i32,
    ntz: bool,
) -> Option<(ColType, Decoder)> {
    if !elem.is_empty() {
        map_scalar(elem, elemtype, typmod, ntz)
            .map(|(t, d)| (ColType::List(Box::new(t)), Decoder::Array(Box::new(d))))
    } else {
        map_scalar(typname, typtype, typmod, ntz)
    }
}

/// The checks before anything is created, and each table's key and columns.
fn describe_sources(conn: &mut WireConn, opts: &CdcOptions) -> Result<Vec<SourceTable>> {
    let shown = redact(&opts.url);
    let rows = conn
        .rows("SELECT current_setting('server_version_num'), current_setting('wal_level')")
        .map_err(|e| server("checking the source", e))?;
    let row = rows.first().cloned().unwrap_or_default();
    let version: u32 = cell(&row, 0).parse().unwrap_or(0);
    if version < 140000 {
        return Err(Error::new(ErrorKind::Unsupported, format!(
            "PostgreSQL {} has no binary logical replication; change data capture needs PostgreSQL 14 or later (nothing was created)",
            version / 10000
        )));
    }
    let wal_level = cell(&row, 1);
    if wal_level != "logical" {
        return Err(Error::new(ErrorKind::InvalidInput, format!(
            "{shown} has wal_level = {wal_level}; change data capture needs logical: ALTER SYSTEM SET wal_level = logical and restart PostgreSQL (nothing was created)"
        )));
    }
    let mut out = Vec::new();
    for t in &opts.tables {
        let name = lit(&t.source)?;
        let rows = conn
            .rows(&format!(
                "SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, c.relreplident::text, \
                   array_to_string(ARRAY(SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                     WHERE i.indrelid = c.oid AND CASE c.relreplident WHEN 'i' THEN i.indisreplident ELSE i.indisprimary END \
                     ORDER BY k.o), chr(1)) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass({name})"
            ))
            .map_err(|e| server(&format!("source table {}", t.source), e))?;
        let Some(row) = rows.first() else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "source table {} does not exist in {shown} (nothing was created)",
                    t.source
                ),
            ));
        };
        let (oid, nspname, relname, relkind, ident) = (
            cell(row, 0),
            cell(row, 1),
            cell(row, 2),
            cell(row, 3),
            cell(row, 4),
        );
        if relkind != "r" && relkind != "p" {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} is not a table (change data capture follows tables; nothing was created)",
                    t.source
                ),
            ));
        }
        let keys: Vec<String> = cell(row, 5)
            .split('\u{1}')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        if keys.is_empty() {
            return Err(Error::new(ErrorKind::InvalidInput, format!(
                "source table {nspname}.{relname} has no primary key{}, so its updates and deletes cannot be matched: add a primary key (nothing was created)",
                if ident == "f" { "" } else { " and no replica identity index" }
            )));
        }
        if ident == "n" {
            return Err(Error::new(ErrorKind::InvalidInput, format!(
                "source table {nspname}.{relname} has REPLICA IDENTITY NOTHING, so its updates and deletes carry no key: ALTER TABLE {nspname}.{relname} REPLICA IDENTITY DEFAULT (nothing was created)"
            )));
        }
        let cols = conn
            .rows(&format!(
                "SELECT a.attname, a.atttypid::int8, a.atttypmod, t.typname, t.typtype::text, \
                   COALESCE(e.typname::text, ''), COALESCE(e.typtype::text, ''), (a.attgenerated <> '')::text, \
                   format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
                 WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
            ))
            .map_err(|e| server(&format!("source table {}", t.source), e))?;
        let (mut slots, mut generated) = (Vec::new(), Vec::new());
        for c in &cols {
            let name = cell(c, 0);
            if cell(c, 7) == "true" {
                generated.push(name);
                continue;
            }
            let typmod: i32 = cell(c, 2).parse().unwrap_or(-1);
            let type_text = cell(c, 8);
            let Some((col_type, decoder)) = map_type(
                &cell(c, 3),
                &cell(c, 4),
                &cell(c, 5),
                &cell(c, 6),
                typmod,
                opts.timestamp_ntz,
            ) else {
                return Err(Error::new(ErrorKind::Unsupported, format!(
                    "column `{name}` of {nspname}.{relname} has type {type_text}, which Tarn cannot import faithfully (nothing was created)"
                )));
            };
            slots.push(Slot {
                name,
                col_type,
                decoder,
                type_oid: cell(c, 1).parse().unwrap_or(0),
                typmod,
                type_text,
                present: true,
            });
        }
        out.push(SourceTable {
            nspname,
            relname,
            keys,
            slots,
            generated,
        });
    }
    Ok(out)
}

/// What `IDENTIFY_SYSTEM` says.
#[derive(Debug, Clone)]
pub(crate) struct System {
    pub systemid: String,
    pub timeline: String,
    pub xlogpos: Lsn,
    pub dbname: String,
}

fn identify(conn: &mut WireConn) -> Result<System> {
    let rows = conn
        .rows("IDENTIFY_SYSTEM")
        .map_err(|e| server("IDENTIFY_SYSTEM", e))?;
    let row = rows.first().cloned().unwrap_or_default();
    Ok(System {
        systemid: cell(&row, 0),
        timeline: cell(&row, 1),
        xlogpos: Lsn::parse(&cell(&row, 2)).unwrap_or_default(),
        dbname: cell(&row, 3),
    })
}

/// The slot (and publication) name derived from the target: `tarn_<target>_<hash8>`.
fn default_name(system: &System, target_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(system.systemid.as_bytes());
    h.update([0]);
    h.update(system.dbname.as_bytes());
    h.update([0]);
    h.update(target_id.as_bytes());
    let hash = &hex::encode(h.finalize())[..8];
    let mut clean: String = target_id
        .rsplit(['/', '\\'])
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("_")
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    clean.truncate(40);
    format!("tarn_{}_{hash}", clean.trim_matches('_'))
}

/// The application id of one source table's commits.
fn app_id(system: &System, slot: &str, source: &SourceTable) -> String {
    let mut h = Sha256::new();
    for part in [
        system.systemid.as_str(),
        system.dbname.as_str(),
        slot,
        &source.nspname,
        &source.relname,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("tarn-cdc-{}", &hex::encode(h.finalize())[..16])
}

fn check_name(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{what} `{name}` is not a valid name: use at most 63 of a-z, 0-9 and _"),
        ))
    }
}

/// The slot's row in `pg_replication_slots`.
#[derive(Debug, Clone)]
struct SlotRow {
    active_pid: Option<String>,
    wal_status: String,
    confirmed: Lsn,
    behind_bytes: u64,
}

fn slot_row(conn: &mut WireConn, slot: &str) -> Result<Option<SlotRow>> {
    let rows = conn
        .rows(&format!(
            "SELECT active::text, active_pid::text, COALESCE(wal_status, ''), COALESCE(confirmed_flush_lsn::text, ''), \
               COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8::text \
             FROM pg_replication_slots WHERE slot_name = {}",
            lit(slot)?
        ))
        .map_err(|e| server("reading pg_replication_slots", e))?;
    Ok(rows.first().map(|r| SlotRow {
        active_pid: (cell(r, 0) == "true").then(|| cell(r, 1)),
        wal_status: cell(r, 2),
        confirmed: Lsn::parse(&cell(r, 3)).unwrap_or_default(),
        behind_bytes: cell(r, 4).parse().unwrap_or(0),
    }))
}

/// The publication's comment (`None`: no such publication).
fn publication_comment(conn: &mut WireConn, publication: &str) -> Result<Option<String>> {
    let rows = conn
        .rows(&format!(
            "SELECT COALESCE(obj_description(oid, 'pg_publication'), '') FROM pg_publication WHERE pubname = {}",
            lit(publication)?
        ))
        .map_err(|e| server("reading pg_publication", e))?;
    Ok(rows.first().map(|r| cell(r, 0)))
}

/// The comment that marks a publication (and the slot of the same target) as this target's.
fn marker(target_id: &str, slot: &str) -> String {
    format!("tarn cdc {}", json!({"target": target_id, "slot": slot}))
}

fn marker_target(comment: &str) -> Option<String> {
    let v: Value = serde_json::from_str(comment.strip_prefix("tarn cdc ")?).ok()?;
    v.get("target").and_then(Value::as_str).map(str::to_string)
}

/// The names a run uses.
struct Names {
    slot: String,
    publication: String,
}

fn names(opts: &CdcOptions, system: &System) -> Result<Names> {
    let slot = opts
        .slot
        .clone()
        .unwrap_or_else(|| default_name(system, &opts.target_id));
    check_name(&slot, "--slot")?;
    let publication = opts.publication.clone().unwrap_or_else(|| slot.clone());
    if publication.contains('"') || publication.contains('\0') || publication.len() > 63 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--publication `{publication}` is not a valid name"),
        ));
    }
    Ok(Names { slot, publication })
}

/// Removes the slot and publication of a target.
pub async fn drop_slot(opts: &CdcOptions) -> Result<DropReport> {
    let url = opts.url.clone();
    let timeout = opts.connect_timeout;
    let conn = tokio::task::spawn_blocking(move || connect_replication(&url, timeout))
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("internal: {e}")))??;
    let opts2 = opts.clone();
    let (_conn, report) = blocking(conn, move |conn| {
        let system = identify(conn)?;
        let n = names(&opts2, &system)?;
        let comment = publication_comment(conn, &n.publication)?;
        if let Some(other) = comment.as_deref().and_then(marker_target) {
            if other != opts2.target_id {
                return Err(Error::new(ErrorKind::Conflict, format!(
                    "publication {} belongs to another target ({other}): nothing was dropped",
                    n.publication
                )));
            }
        }
        let slot = slot_row(conn, &n.slot)?;
        let mut dropped_slot = false;
        if let Some(row) = slot {
            if let Some(pid) = row.active_pid {
                return Err(Error::new(ErrorKind::Conflict, format!(
                    "replication slot {} is in use by PID {pid} (a tarn import --follow?): stop it first; nothing was dropped",
                    n.slot
                )));
            }
            conn.rows(&format!("DROP_REPLICATION_SLOT {} WAIT", quote_ident(&n.slot)))
                .map_err(|e| server("DROP_REPLICATION_SLOT", e))?;
            dropped_slot = true;
        }
        // Only a publication this target made (marked) is dropped.
        let dropped_publication = match comment.as_deref().and_then(marker_target) {
            Some(_) => {
                conn.rows(&format!(
                    "DROP PUBLICATION IF EXISTS {}",
                    quote_ident(&n.publication)
                ))
                .map_err(|e| server("DROP PUBLICATION", e))?;
                true
            }
            None => false,
        };
        Ok(DropReport {
            slot: n.slot,
            publication: n.publication,
            dropped_slot,
            dropped_publication,
        })
    })
    .await?;
    Ok(report)
}

/// The per-table state a run starts from.
pub(crate) struct TableState {
    pub source: SourceTable,
    pub target: TableLocation,
    pub app: String,
    /// The position the Delta table holds (its `txn` version).
    pub version: Option<Lsn>,
    /// The Delta table's columns and their types (as text), before this run.
    pub stored: Vec<(String, String)>,
    pub report: CdcTableReport,
}

/// Runs change data capture: the first run makes the publication, slot and initial copy;
/// every run then applies the slot's changes until caught up (or, `follow`, until `stop`).
pub async fn run(opts: &CdcOptions) -> Result<CdcReport> {
    let started = std::time::Instant::now();
    if opts.tables.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "give at least one --source table",
        ));
    }
    let url = opts.url.clone();
    let timeout = opts.connect_timeout;
    let conn = tokio::task::spawn_blocking(move || connect_replication(&url, timeout))
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("internal: {e}")))??;
    let o = opts.clone();
    let (conn, (system, sources, n, slot, comment)) = blocking(conn, move |conn| {
        let sources = describe_sources(conn, &o)?;
        let system = identify(conn)?;
        let n = names(&o, &system)?;
        let slot = slot_row(conn, &n.slot)?;
        let comment = publication_comment(conn, &n.publication)?;
        Ok((system, sources, n, slot, comment))
    })
    .await?;

    // What Delta holds, per table.
    let mut tables = Vec::new();
    for (t, source) in opts.tables.iter().zip(sources) {
        let app = app_id(&system, &n.slot, &source);
        let (version, stored) = match Table::open_if_exists(&t.target).await? {
            Some(table) => (
                table.app_transaction_version(&app).await?,
                apply::stored_types(&table.schema()?),
            ),
            None => (None, Vec::new()),
        };
        tables.push(TableState {
            report: CdcTableReport {
                table: t.target.display_name().to_string(),
                source: format!("{}.{}", source.nspname, source.relname),
                snapshot_rows: None,
                inserted: 0,
                updated: 0,
                deleted: 0,
                truncated: false,
                commits: 0,
                version: None,
                lsn: String::new(),
            },
            source,
            target: t.target.clone(),
            app,
            version: version.map(|v| Lsn(v as u64)),
            stored,
        });
    }
    let ours = comment.as_deref().and_then(marker_target);
    let all_copied = !opts.recopy && tables.iter().all(|t| t.version.is_some());
    let mut warnings = Vec::new();
    if let Some(other) = &ours {
        if *other != opts.target_id {
            return Err(Error::new(ErrorKind::Conflict, format!(
                "replication slot {} is used by another target ({other}): pass --slot NAME (nothing was created)",
                n.slot
            )));
        }
    }
    let mut conn = conn;
    let (start, snapshot) = match (&slot, all_copied) {
        (Some(row), true) => {
            if let Some(pid) = &row.active_pid {
                return Err(Error::new(ErrorKind::Conflict, format!(
                    "replication slot {} is in use by PID {pid} (another tarn import --follow?)",
                    n.slot
                )));
            }
            if row.wal_status == "lost" {
                return Err(Error::new(ErrorKind::Unavailable, format!(
                    "replication slot {} lost WAL the tables still needed: changes are gone; make a new copy with --cdc --mode overwrite",
                    n.slot
                )));
            }
            if row.behind_bytes > opts.behind_warn_bytes {
                let w = behind_warning(&n.slot, row.behind_bytes);
                eprintln!("warning: {w}");
                warnings.push(w);
            }
            (row.confirmed, false)
        }
        (None, true) => {
            return Err(Error::new(ErrorKind::NotFound, format!(
                "replication slot {} no longer exists, so the changes since {} are lost: make a new copy with --cdc --mode overwrite",
                n.slot,
                tables.iter().filter_map(|t| t.version).max().unwrap_or_default()
            )))
        }
        (Some(_), false) if ours.is_none() => {
            return Err(Error::new(ErrorKind::Conflict, format!(
                "replication slot {} exists but is not this target's: pass --slot NAME (nothing was created)",
                n.slot
            )));
        }
        // No copy yet (or one that never committed for some table): make it.
        (existing, false) => {
            let (c, start) =
                create_and_copy(conn, opts, &system, &n, existing.is_some(), comment.is_some(), &mut tables)
                    .await?;
            conn = c;
            (start, true)
        }
    };
    let o = opts.clone();
    let result = stream::follow(
        conn,
        o,
        system.clone(),
        n.slot.clone(),
        n.publication.clone(),
        tables,
        start,
    )
    .await?;
    let mut warnings_all = warnings;
    warnings_all.extend(result.warnings.clone());
    let seconds = started.elapsed().as_secs_f64();
    Ok(CdcReport {
        source: redact(&opts.url),
        slot: n.slot,
        publication: n.publication,
        snapshot,
        start_lsn: start.to_string(),
        end_lsn: result.durable.to_string(),
        confirmed_lsn: result.confirmed.to_string(),
        changes: result.changes,
        changes_per_second: if result.stream_seconds > 0.0 {
            (result.changes as f64 / result.stream_seconds * 10.0).round() / 10.0
        } else {
            0.0
        },
        lag_seconds: result.lag_seconds,
        lag_bytes: result.lag_bytes,
        spilled_transactions: result.spilled_transactions,
        stopped: result.stopped,
        seconds: (seconds * 1000.0).round() / 1000.0,
        warnings: warnings_all,
        tables: result.tables,
    })
}

/// The first run (or one whose copy never committed): the publication, the slot and its
/// exported snapshot, and one overwrite commit per table read in that snapshot.
async fn create_and_copy(
    conn: WireConn,
    opts: &CdcOptions,
    system: &System,
    n: &Names,
    slot_exists: bool,
    publication_exists: bool,
    tables: &mut [TableState],
) -> Result<(WireConn, Lsn)> {
    let o = opts.clone();
    let (slot, publication) = (n.slot.clone(), n.publication.clone());
    let list: Vec<String> = tables.iter().map(|t| t.source.quoted()).collect();
    let wanted: Vec<(String, String)> = tables
        .iter()
        .map(|t| (t.source.nspname.clone(), t.source.relname.clone()))
        .collect();
    let (conn, (consistent, snapshot, created_publication)) = blocking(conn, move |conn| {
        if slot_exists {
            // Ours (its publication is marked), but its copy never committed: start over.
            conn.rows(&format!("DROP_REPLICATION_SLOT {} WAIT", quote_ident(&slot)))
                .map_err(|e| server("DROP_REPLICATION_SLOT", e))?;
        }
        let mut created_publication = false;
        if !publication_exists {
            conn.rows(&format!(
                "CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)",
                quote_ident(&publication),
                list.join(", ")
            ))
            .map_err(|e| {
                let m = one_line(&e.to_string());
                if m.contains("must be owner") {
                    Error::new(ErrorKind::InvalidInput, format!(
                        "{m}: CREATE PUBLICATION needs the tables' owner; have the owner run CREATE PUBLICATION {publication} FOR TABLE {}, and pass --publication {publication} (nothing was created)",
                        list.join(", ")
                    ))
                } else {
                    Error::new(
                        wire_kind(&e),
                        format!("CREATE PUBLICATION: {m} (nothing was created)"),
                    )
                }
            })?;
            conn.rows(&format!(
                "COMMENT ON PUBLICATION {} IS {}",
                quote_ident(&publication),
                lit(&marker(&o.target_id, &slot))?
            ))
            .map_err(|e| server("COMMENT ON PUBLICATION", e))?;
            created_publication = true;
            fault("cdc:after-publication");
        } else {
            let rows = conn
                .rows(&format!(
                    "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = {}",
                    lit(&publication)?
                ))
                .map_err(|e| server("reading pg_publication_tables", e))?;
            for (s, t) in &wanted {
                if !rows.iter().any(|r| cell(r, 0) == *s && cell(r, 1) == *t) {
                    return Err(Error::new(ErrorKind::InvalidInput, format!(
                        "publication {publication} does not publish {s}.{t}: ALTER PUBLICATION {publication} ADD TABLE {s}.{t} (nothing was created)"
                    )));
                }
            }
        }
        let rows = conn
            .rows(&format!(
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
                quote_ident(&slot)
            ))
            .map_err(|e| {
                if created_publication {
                    let _ = conn.rows(&format!(
                        "DROP PUBLICATION IF EXISTS {}",
                        quote_ident(&publication)
                    ));
                }
                let m = one_line(&e.to_string());
                Error::new(
                    wire_kind(&e),
                    format!("cannot create replication slot {slot}: {m} (nothing was created)"),
                )
            })?;
        let row = rows.first().cloned().unwrap_or_default();
        let consistent = Lsn::parse(&cell(&row, 1))
            .ok_or_else(|| Error::new(ErrorKind::Internal, "CREATE_REPLICATION_SLOT gave no consistent point"))?;
        Ok((consistent, cell(&row, 2), created_publication))
    })
    .await?;
    let _ = created_publication;
    fault("cdc:after-slot");
    eprintln!(
        "created replication slot {} and publication {} at {consistent}",
        n.slot, n.publication
    );
    // The copies, each in the slot's snapshot (the replication connection stays idle until
    // the last has imported it).
    for (i, t) in tables.iter_mut().enumerate() {
        if i > 0 {
            fault("cdc:between-snapshot-commits");
        }
        let import = ImportOptions {
            url: opts.url.clone(),
            source: Source::Table(format!("{}.{}", t.source.nspname, t.source.relname)),
            target: t.target.clone(),
            key: vec![],
            cursor: None,
            mode: Some(Mode::Overwrite),
            merge_schema: true,
            timestamp_ntz: opts.timestamp_ntz,
            exclude: t.source.generated.clone(),
            progress: Some(opts.progress.copied.clone()),
            connect_timeout: opts.connect_timeout,
        };
        let mut info = serde_json::Map::new();
        info.insert(
            COMMIT_KEY.into(),
            commit_info(
                &t.app,
                system,
                n,
                &t.source,
                "snapshot",
                consistent,
                None,
                Default::default(),
            ),
        );
        let copy = crate::SnapshotCopy {
            snapshot: snapshot.clone(),
            app_transaction: (t.app.clone(), consistent.0 as i64),
            commit_info: info,
        };
        let report = crate::run_with(&import, Some(&copy)).await?;
        if let Some(copied) = &opts.copied {
            let _ = copied.send(i);
        }
        t.version = Some(consistent);
        t.stored = t
            .source
            .slots
            .iter()
            .map(|s| (s.name.clone(), s.col_type.type_text()))
            .collect();
        t.report.snapshot_rows = Some(report.rows_read);
        t.report.commits += 1;
        t.report.version = report.version;
    }
    Ok((conn, consistent))
}

/// The `commitInfo.tarnCdc` of a commit.
#[allow(clippy::too_many_arguments)]
fn commit_info(
    app: &str,
    system: &System,
    n: &Names,
    source: &SourceTable,
    kind: &str,
    lsn: Lsn,
    previous: Option<Lsn>,
    counts: fold::Counts,
) -> Value {
    json!({
        "appId": app, "slot": n.slot, "publication": n.publication,
        "source": format!("{}.{}", source.nspname, source.relname),
        "systemId": system.systemid, "timeline": system.timeline,
        "kind": kind, "lsn": lsn.to_string(),
        "previousLsn": previous.map(|p| p.to_string()),
        "changes": counts.changes(), "inserted": counts.inserted,
        "updated": counts.updated, "deleted": counts.deleted,
    })
}
