//! The apply loop: a reader thread receives the slot's stream, buffers each transaction and
//! folds it into the current batch at its commit; a committer applies sealed batches (one
//! Delta commit per changed table) while the next one fills. The reader confirms to the
//! slot only positions every table has committed, or, with nothing pending, the server's
//! keepalive position.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tarn_table::{ChangeBatch, ChangeRows, Table};
use tokio::sync::mpsc::error::TrySendError;

use super::apply::{change_file, change_rows, Slot};
use super::fold::{encode_key, Cell, Key, TableFold};
use super::parts::{fold_change, parts_for, Parts};
use super::pgoutput::{self, Lsn, Message, RelColumn, Value, Wire};
use super::spill::{Change, TxnChanges};
use super::{
    cell, commit_info, fault, identify, lit, map_type, server, CdcOptions, CdcTableReport, Names,
    System, TableState,
};
use crate::pgwire::{CopyEvent, Target, WireConn};
use crate::postgres::quote_ident;
use crate::{one_line, Error, ErrorKind, Result};

/// What the stream part of a run did.
pub(crate) struct StreamResult {
    pub durable: Lsn,
    pub confirmed: Lsn,
    pub changes: u64,
    pub stream_seconds: f64,
    pub lag_seconds: f64,
    pub lag_bytes: u64,
    pub spilled_transactions: u64,
    pub stopped: String,
    pub warnings: Vec<String>,
    pub tables: Vec<CdcTableReport>,
}

/// The transaction being received.
struct Txn {
    final_lsn: Lsn,
    commit_time: i64,
    changes: TxnChanges,
}

/// The batch being filled.
struct Batch {
    folds: Vec<TableFold>,
    /// A huge transaction's changes, by table (then the batch holds that transaction alone).
    parts: Vec<Option<Parts>>,
    end: Lsn,
    txns: u64,
    changes: u64,
    bytes: usize,
    oldest_commit_time: Option<i64>,
    started: Instant,
}

impl Batch {
    fn new(tables: usize) -> Batch {
        Batch {
            folds: (0..tables).map(|_| TableFold::default()).collect(),
            parts: (0..tables).map(|_| None).collect(),
            end: Lsn(0),
            txns: 0,
            changes: 0,
            bytes: 0,
            oldest_commit_time: None,
            started: Instant::now(),
        }
    }
}

/// A batch handed to the committer, with the columns each table had when it was sealed.
struct Sealed {
    folds: Vec<TableFold>,
    parts: Vec<Option<Parts>>,
    slots: Vec<Vec<Slot>>,
    end: Lsn,
    changes: u64,
    txns: u64,
    oldest_commit_time: Option<i64>,
    started: Instant,
}

/// A source table as the reader knows it.
struct Followed {
    nspname: String,
    relname: String,
    /// What the Delta table stores: column name -> type text.
    stored: HashMap<String, String>,
    slots: Vec<Slot>,
    key_slots: Vec<usize>,
    version: Lsn,
}

/// A relation of the stream: its table, and where each of its columns goes.
struct Rel {
    table: usize,
    slot_of: Vec<usize>,
}

/// The reader's end of the run.
struct ReaderEnd {
    stopped: &'static str,
    warnings: Vec<String>,
    /// Source transactions kept in a temporary file until their commit.
    spilled: u64,
    confirmed: Lsn,
    /// The source's end of WAL at the end (what is behind is measured from it).
    source_end: Lsn,
    error: Option<Error>,
}

/// The source's clock as seen from here, so that the lag is measured on one clock (the
/// source's commit timestamps against the source's time now) whatever the local clock says:
/// the smallest difference between the local time a stream message arrived and the server's
/// time when it sent it (the clocks' offset plus the shortest network delay).
pub(crate) struct SourceClock {
    /// Microseconds; `i64::MAX` until the first message.
    offset: AtomicI64,
}

impl SourceClock {
    pub(crate) fn new() -> SourceClock {
        SourceClock {
            offset: AtomicI64::new(i64::MAX),
        }
    }

    /// A message the server sent at `sent` (its clock) arrived now.
    fn observe(&self, sent: i64) {
        self.offset
            .fetch_min(pgoutput::pg_now_micros() - sent, Ordering::Relaxed);
    }

    /// The source's time now (microseconds since 2000-01-01).
    fn now(&self) -> i64 {
        let offset = self.offset.load(Ordering::Relaxed);
        pgoutput::pg_now_micros() - if offset == i64::MAX { 0 } else { offset }
    }

    /// How long ago, on the source's clock, a source transaction committed at `commit_time`.
    fn since(&self, commit_time: i64) -> Duration {
        Duration::from_micros((self.now() - commit_time).max(0) as u64)
    }
}

/// Appends a line to the test trace file (`TARN_TEST_CDC_TRACE`), if one is set.
fn trace(line: serde_json::Value) {
    if let Some(path) = std::env::var_os("TARN_TEST_CDC_TRACE") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Streams the slot's changes into the tables from `start` (what the slot confirmed, or the
/// initial copy's position) until caught up, or, with `follow`, until `opts.stop`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn follow(
    conn: WireConn,
    opts: CdcOptions,
    system: System,
    slot: String,
    publication: String,
    tables: Vec<TableState>,
    start: Lsn,
) -> Result<StreamResult> {
    let started = Instant::now();
    let names = Names { slot, publication };
    let durable = Arc::new(AtomicU64::new(start.0));
    opts.progress.durable.store(start.0, Ordering::Relaxed);
    let followed: Vec<Followed> = tables
        .iter()
        .map(|t| Followed {
            nspname: t.source.nspname.clone(),
            relname: t.source.relname.clone(),
            key_slots: t
                .source
                .keys
                .iter()
                .filter_map(|k| t.source.slots.iter().position(|s| s.name == *k))
                .collect(),
            // The stream's Relation messages say what the columns were when the changes
            // were made (the catalog now may differ): every column's type is looked up
            // again at the first one.
            slots: t
                .source
                .slots
                .iter()
                .map(|s| Slot {
                    type_oid: 0,
                    ..s.clone()
                })
                .collect(),
            stored: t.stored.iter().cloned().collect(),
            version: t.version.unwrap_or(start),
        })
        .collect();
    if followed
        .iter()
        .zip(&tables)
        .any(|(f, t)| f.key_slots.len() != t.source.keys.len())
    {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "a key column of a source table is not mapped",
        ));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Sealed>(1);
    let committer_done = Arc::new(AtomicBool::new(false));
    let clock = Arc::new(SourceClock::new());
    let reader = {
        let committer_done = committer_done.clone();
        let clock = clock.clone();
        let (opts, durable, names_slot, names_pub) = (
            opts.clone(),
            durable.clone(),
            names.slot.clone(),
            names.publication.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut r = Reader {
                conn,
                opts,
                followed,
                rels: HashMap::new(),
                durable,
                committer_done,
                catalog: None,
                clock,
                inflight: VecDeque::new(),
                behind_checked: Instant::now(),
                behind_warned: None,
                wal_end: Lsn(0),
                wal_end_read: None,
                wal_end_unreadable: false,
                warnings: Vec::new(),
            };
            r.run(&names_slot, &names_pub, start, tx)
        })
    };
    // The committer.
    let mut reports: Vec<CdcTableReport> = tables.iter().map(|t| t.report.clone()).collect();
    let mut previous: Vec<Lsn> = tables.iter().map(|t| t.version.unwrap_or(start)).collect();
    let mut applied = 0u64;
    // How far behind the source the last batch committed was when its commits returned.
    let mut lag = Duration::ZERO;
    let mut failure = None;
    while let Some(mut sealed) = rx.recv().await {
        let mut committed_any = false;
        for (i, fold) in sealed.folds.iter().enumerate() {
            let parts = sealed.parts[i].take();
            if fold.is_empty() && parts.is_none() {
                continue;
            }
            let counts = parts.as_ref().map_or(fold.counts, |p| p.counts);
            let truncated = parts.as_ref().map_or(fold.truncated, |p| p.truncated);
            if sealed.end <= previous[i] {
                continue;
            }
            if committed_any {
                fault("cdc:between-table-commits");
            }
            let t = &tables[i];
            let kind = if truncated { "truncate" } else { "changes" };
            let mut info = serde_json::Map::new();
            info.insert(
                super::COMMIT_KEY.into(),
                commit_info(
                    &t.app,
                    &system,
                    &names,
                    &t.source,
                    kind,
                    sealed.end,
                    Some(previous[i]),
                    counts,
                ),
            );
            let keys = key_slots(&t.source, &sealed.slots[i]);
            // A huge transaction's rows go through a temporary file (removed with `_dir`).
            let (rows, _dir) = match parts {
                None => (
                    change_rows(&sealed.slots[i], &keys, fold, &BTreeSet::new())
                        .map(|(batch, columns, kept)| (ChangeRows::Batch(batch), columns, kept)),
                    None,
                ),
                Some(parts) => {
                    let slots = sealed.slots[i].clone();
                    match rows_in_file(slots, keys, parts).await {
                        Ok((dir, path, columns, kept)) => {
                            (Ok((ChangeRows::Parquet(path), columns, kept)), Some(dir))
                        }
                        Err(e) => (Err(e), None),
                    }
                }
            };
            let result = rows.map(|(rows, columns, kept)| ChangeBatch {
                rows,
                keys: t.source.keys.clone(),
                columns,
                kept,
                truncate: truncated,
                app_transaction: (t.app.clone(), sealed.end.0 as i64),
                commit_info: info,
            });
            let result = match result {
                Ok(changes) => Table::apply_changes(&t.target, changes)
                    .await
                    .map_err(Error::from),
                Err(e) => Err(e),
            };
            match result {
                Ok((_, report)) => {
                    trace(
                        json!({"commit": reports[i].table, "lsn": sealed.end.to_string(), "lsn_u64": sealed.end.0}),
                    );
                    committed_any = true;
                    let r = &mut reports[i];
                    r.inserted += counts.inserted;
                    r.updated += counts.updated;
                    r.deleted += counts.deleted;
                    r.truncated |= truncated;
                    r.commits += 1;
                    r.version = Some(report.version);
                    previous[i] = sealed.end;
                }
                Err(e) => {
                    failure = Some(Error::new(e.kind(), format!(
                        "applying changes to `{}` failed: {} (nothing after {} was confirmed; the next run applies it again)",
                        reports[i].table,
                        e.message(),
                        Lsn(durable.load(Ordering::Relaxed))
                    )).with_source(e));
                    break;
                }
            }
        }
        if failure.is_some() {
            break;
        }
        if committed_any {
            if let Some(oldest) = sealed.oldest_commit_time {
                lag = clock.since(oldest);
            }
            fault("cdc:after-commit-before-confirm");
        }
        applied += sealed.changes;
        opts.progress
            .changes
            .fetch_add(sealed.changes, Ordering::Relaxed);
        durable.store(sealed.end.0, Ordering::Release);
        opts.progress.durable.store(sealed.end.0, Ordering::Relaxed);
    }
    committer_done.store(true, Ordering::Release);
    drop(rx);
    let end = reader.await.map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("internal: the replication reader failed: {e}"),
        )
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let end = end?;
    if let Some(e) = end.error {
        return Err(e);
    }
    let d = Lsn(durable.load(Ordering::Acquire));
    for (r, lsn) in reports.iter_mut().zip(&previous) {
        r.lsn = lsn.to_string();
    }
    Ok(StreamResult {
        durable: d,
        confirmed: end.confirmed,
        changes: applied,
        stream_seconds: started.elapsed().as_secs_f64(),
        lag_seconds: (lag.as_secs_f64() * 1000.0).round() / 1000.0,
        lag_bytes: end.source_end.0.saturating_sub(d.0),
        spilled_transactions: end.spilled,
        stopped: end.stopped.to_string(),
        warnings: end.warnings,
        tables: reports,
    })
}

/// The temporary directories of huge transactions: `<prefix><pid>-<random>` in `TMPDIR`.
const WORK_DIR_PREFIX: &str = "tarn-cdc-";

/// Removes the temporary directories of huge transactions left by runs that are gone (killed
/// while applying one): those whose process no longer exists. Where processes cannot be
/// looked up (no `/proc`), nothing is removed.
fn remove_stale_work_dirs() {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORK_DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// [`change_file`] off the async threads: the temporary directory holding the file, the
/// file, the present columns and the kept ones.
async fn rows_in_file(
    slots: Vec<Slot>,
    keys: Vec<usize>,
    parts: Parts,
) -> Result<(
    tempfile::TempDir,
    std::path::PathBuf,
    Vec<String>,
    Vec<usize>,
)> {
    tokio::task::spawn_blocking(move || {
        remove_stale_work_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{WORK_DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "cannot create a temporary directory in {} for a large source transaction: {e} (set TMPDIR to a directory with room)",
                        std::env::temp_dir().display()
                    ),
                )
            })?;
        let (path, columns, kept) = change_file(&slots, &keys, parts, dir.path())?;
        Ok((dir, path, columns, kept))
    })
    .await
    .map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("internal: folding a large source transaction failed: {e}"),
        )
    })?
}

/// The slot indexes of a table's key columns.
fn key_slots(source: &super::SourceTable, slots: &[Slot]) -> Vec<usize> {
    source
        .keys
        .iter()
        .filter_map(|k| slots.iter().position(|s| s.name == *k))
        .collect()
}

struct Reader {
    conn: WireConn,
    opts: CdcOptions,
    followed: Vec<Followed>,
    rels: HashMap<u32, Rel>,
    durable: Arc<AtomicU64>,
    /// Set when the committer has finished (or failed).
    committer_done: Arc<AtomicBool>,
    /// A plain connection for type look-ups (opened when a new column appears).
    catalog: Option<WireConn>,
    /// The source's clock, for the lag.
    clock: Arc<SourceClock>,
    /// The batches handed to the committer and not yet durable: (end, oldest source commit
    /// time).
    inflight: VecDeque<(Lsn, Option<i64>)>,
    /// When the slot was last checked for being far behind, and last found so.
    behind_checked: Instant,
    behind_warned: Option<Instant>,
    /// The source's end of WAL, as last read (`pg_current_wal_lsn()`), when, and whether it
    /// cannot be read (a standby): then the stream's positions stand in for it.
    wal_end: Lsn,
    wal_end_read: Option<Instant>,
    wal_end_unreadable: bool,
    warnings: Vec<String>,
}

/// A schema change Tarn cannot follow: the run stops after committing what came before.
struct SchemaStop(String);

impl Reader {
    fn durable(&self) -> Lsn {
        Lsn(self.durable.load(Ordering::Acquire))
    }

    /// Following: warns (on stderr and in the report) when the slot is far behind the
    /// server, at most once an hour while it stays so.
    fn check_behind(&mut self, slot: &str) {
        self.behind_checked = Instant::now();
        let behind = self
            .catalog_conn()
            .and_then(|conn| super::slot_behind(conn, slot));
        match behind {
            Ok(Some(bytes)) if bytes > self.opts.behind_warn_bytes => {
                if self
                    .behind_warned
                    .is_none_or(|at| at.elapsed() >= Duration::from_secs(3600))
                {
                    let w = super::behind_warning(slot, bytes);
                    eprintln!("warning: {w}");
                    self.warnings.push(w);
                    self.behind_warned = Some(Instant::now());
                }
            }
            Ok(_) => self.behind_warned = None,
            Err(e) => {
                // The check is advice: a failure is said once, and the run goes on.
                self.catalog = None;
                if self.behind_warned.is_none() {
                    let w = format!(
                        "could not check how far behind replication slot {slot} is: {}",
                        e.message()
                    );
                    eprintln!("warning: {w}");
                    self.warnings.push(w);
                    self.behind_warned = Some(Instant::now());
                }
            }
        }
    }

    /// The source's end of WAL, read again when the last reading is a second old: how far
    /// behind the run is, in bytes, is measured from it. The stream's own positions cannot
    /// say: a logical walsender stamps its messages with the position of what it sends, and
    /// its keepalives with how far it has sent, not with where the server's WAL ends.
    fn read_wal_end(&mut self) {
        if self.wal_end_unreadable
            || self
                .wal_end_read
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.wal_end_read = Some(Instant::now());
        let read = self.catalog_conn().and_then(|conn| {
            conn.rows("SELECT pg_current_wal_lsn()::text")
                .map_err(|e| server("reading the source's WAL position", e))
        });
        match read {
            Ok(rows) => {
                if let Some(end) = rows.first().and_then(|r| Lsn::parse(&super::cell(r, 0))) {
                    self.wal_end = self.wal_end.max(end);
                }
            }
            Err(_) => {
                // A standby has no current WAL position of its own; the figure is advice.
                self.catalog = None;
                self.wal_end_unreadable = true;
            }
        }
    }

    /// A plain connection to the source (catalog look-ups), opened when first needed.
    fn catalog_conn(&mut self) -> Result<&mut WireConn> {
        if self.catalog.is_none() {
            let target = Target::from_url(&self.opts.url).ok_or_else(|| {
                Error::new(ErrorKind::InvalidInput, "the source URL cannot be read")
            })?;
            self.catalog = Some(
                WireConn::connect(&target, self.opts.connect_timeout)
                    .map_err(|e| server("connecting to the source", e))?,
            );
        }
        Ok(self.catalog.as_mut().expect("connected"))
    }

    /// `sealed` was handed to the committer.
    fn handed(&mut self, end: Lsn, oldest_commit_time: Option<i64>) {
        self.inflight.push_back((end, oldest_commit_time));
    }

    /// The lag now: since the commit, on the source, of the oldest transaction received
    /// but not yet in Delta (zero when every received transaction is).
    fn lag(&mut self, txn: Option<&Txn>, batch: &Batch) -> Duration {
        let durable = self.durable();
        while self
            .inflight
            .front()
            .is_some_and(|(end, _)| *end <= durable)
        {
            self.inflight.pop_front();
        }
        self.inflight
            .iter()
            .filter_map(|(_, oldest)| *oldest)
            .chain(batch.oldest_commit_time)
            .chain(txn.map(|t| t.commit_time))
            .min()
            .map(|t| self.clock.since(t))
            .unwrap_or_default()
    }

    fn status(&mut self, received: Lsn, flush: Lsn, reply: bool, idle: bool) -> Result<()> {
        trace(json!({"confirm": flush.to_string(), "confirm_u64": flush.0, "idle": idle}));
        let m =
            pgoutput::status_update(received.max(flush), flush, pgoutput::pg_now_micros(), reply);
        self.conn
            .send_copy_data(&m)
            .map_err(|e| server("replication stream", e))
    }

    fn run(
        &mut self,
        slot: &str,
        publication: &str,
        start: Lsn,
        tx: tokio::sync::mpsc::Sender<Sealed>,
    ) -> Result<ReaderEnd> {
        let goal = identify(&mut self.conn)?.xlogpos;
        let publications = lit(&quote_ident(publication))?;
        self.conn
            .start_copy_both(&format!(
                "START_REPLICATION SLOT {} LOGICAL {start} (\"proto_version\" '1', \"publication_names\" {publications}, \"binary\" 'true')",
                quote_ident(slot)
            ))
            .map_err(|e| {
                let m = one_line(&e.to_string());
                if m.contains("is active for PID") {
                    Error::new(ErrorKind::Conflict, format!("replication slot {slot} is in use: {m} (another tarn import --follow?)"))
                } else {
                    Error::new(super::wire_kind(&e), format!("START_REPLICATION: {m}"))
                }
            })?;
        let follow = self.opts.follow;
        let interval = self.opts.batch_interval;
        let cap = self.opts.batch_changes.max(1);
        let memory_cap: usize = 256 << 20;
        let mut batch = Batch::new(self.followed.len());
        let mut txn: Option<Txn> = None;
        let mut handed = start;
        let mut sent = Lsn(0);
        let mut keepalive = Lsn(0);
        let mut received = start;
        let mut last_status = Instant::now() - Duration::from_secs(3600);
        let mut last_poke = Instant::now() - Duration::from_secs(3600);
        let mut force = true;
        let mut stop_error: Option<Error> = None;
        let spill_bytes = usize::try_from(self.opts.spill_bytes).unwrap_or(usize::MAX);
        let mut spilled = 0u64;
        let stopped;
        loop {
            if tx.is_closed() {
                // The committer failed: it reports why.
                return Ok(ReaderEnd {
                    stopped: "error",
                    warnings: std::mem::take(&mut self.warnings),
                    spilled,
                    confirmed: sent,
                    source_end: self.wal_end.max(received).max(keepalive),
                    error: None,
                });
            }
            let durable = self.durable();
            let pending = txn.is_some() || batch.txns > 0 || handed > durable;
            // Progress.
            self.read_wal_end();
            let source_end = self.wal_end.max(received).max(keepalive);
            self.opts
                .progress
                .lag_bytes
                .store(source_end.0.saturating_sub(durable.0), Ordering::Relaxed);
            let lag = self.lag(txn.as_ref(), &batch);
            self.opts
                .progress
                .lag_millis
                .store(lag.as_millis() as u64, Ordering::Relaxed);
            if stop_error.is_some() {
                stopped = "error";
                break;
            }
            if follow && self.behind_checked.elapsed() >= self.opts.behind_check {
                self.check_behind(slot);
            }
            if self.opts.stop.load(Ordering::Relaxed) {
                stopped = "signal";
                break;
            }
            if !pending && !follow && (keepalive >= goal || durable >= goal) {
                stopped = "caught_up";
                break;
            }
            // Confirm what may be confirmed.
            let flush = if pending {
                durable
            } else {
                durable.max(keepalive)
            }
            .max(sent);
            if flush > sent || force || last_status.elapsed() >= Duration::from_secs(10) {
                self.status(received, flush, false, !pending)?;
                sent = flush;
                last_status = Instant::now();
                force = false;
            }
            // Hand a full or old enough batch over.
            // Catching up (no --follow), everything up to the goal is in once the stream
            // reached it: no need to wait for the interval.
            let reached = !follow && (keepalive >= goal || batch.end >= goal);
            if txn.is_none()
                && batch.txns > 0
                && (batch.started.elapsed() >= interval
                    || reached
                    || batch.changes >= cap
                    || batch.bytes >= memory_cap)
            {
                let must = batch.changes >= cap.saturating_mul(2) || batch.bytes >= memory_cap;
                let sealed = self.seal(&mut batch);
                let (end, oldest) = (sealed.end, sealed.oldest_commit_time);
                match tx.try_send(sealed) {
                    Ok(()) => {
                        handed = end;
                        self.handed(end, oldest);
                    }
                    Err(TrySendError::Closed(_)) => continue,
                    Err(TrySendError::Full(back)) => {
                        if must {
                            // Memory is bounded: wait for the committer (confirming on time).
                            self.hand_over(&tx, back, received, &mut sent)?;
                            handed = end;
                            self.handed(end, oldest);
                        } else {
                            batch = unseal(back, self.followed.len());
                        }
                    }
                }
            }
            // Read.
            let event = self
                .conn
                .next_copy_data(Duration::from_millis(200))
                .map_err(|e| server("replication stream", e))?;
            let payload = match event {
                CopyEvent::Idle => {
                    if !follow && txn.is_none() && last_poke.elapsed() >= Duration::from_millis(200)
                    {
                        // Ask for a keepalive: its position says whether we caught up.
                        let flush = if pending {
                            durable
                        } else {
                            durable.max(keepalive)
                        }
                        .max(sent);
                        self.status(received, flush, true, !pending)?;
                        sent = flush;
                        last_poke = Instant::now();
                    }
                    continue;
                }
                CopyEvent::End => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "the source ended the replication stream",
                    ))
                }
                CopyEvent::Data(p) => p.to_vec(),
            };
            let wire = pgoutput::parse(&payload).map_err(Error::internal)?;
            match wire {
                Wire::Keepalive {
                    wal_end,
                    sent: at,
                    reply,
                } => {
                    self.clock.observe(at);
                    keepalive = keepalive.max(wal_end);
                    received = received.max(wal_end);
                    force |= reply;
                }
                Wire::XLog {
                    wal_end,
                    sent: at,
                    message,
                } => {
                    self.clock.observe(at);
                    received = received.max(wal_end);
                    match message {
                        Message::Begin {
                            final_lsn,
                            commit_time,
                        } => {
                            txn = Some(Txn {
                                final_lsn,
                                commit_time,
                                changes: TxnChanges::new(spill_bytes),
                            })
                        }
                        Message::Relation {
                            relid,
                            namespace,
                            name,
                            columns,
                            ..
                        } => {
                            if let Err(SchemaStop(m)) =
                                self.relation(relid, namespace, name, &columns, txn.as_ref())
                            {
                                txn = None;
                                stop_error = Some(Error::new(ErrorKind::Unsupported, m));
                            }
                        }
                        Message::Insert { relid, new } => {
                            let (t, cells) = self.cells(relid, &new)?;
                            let key = self.key(t, &cells)?;
                            push(&mut txn, t, Change::Insert(key, cells))?;
                        }
                        Message::Update { relid, old, new } => {
                            let (t, cells) = self.cells(relid, &new)?;
                            let key = self.key(t, &cells)?;
                            let (old_key, old_row) = match old {
                                Some((kind, values)) => {
                                    let (_, old_cells) = self.cells(relid, &values)?;
                                    let old_key = self.key(t, &old_cells)?;
                                    (Some(old_key), (kind == b'O').then_some(old_cells))
                                }
                                None => (None, None),
                            };
                            push(
                                &mut txn,
                                t,
                                Change::Update {
                                    old_key,
                                    old_row,
                                    key,
                                    cells,
                                },
                            )?;
                        }
                        Message::Delete { relid, old, .. } => {
                            let (t, cells) = self.cells(relid, &old)?;
                            let key = self.key(t, &cells)?;
                            push(&mut txn, t, Change::Delete(key))?;
                        }
                        Message::Truncate { relids } => {
                            for relid in relids {
                                if let Some(rel) = self.rels.get(&relid) {
                                    let t = rel.table;
                                    push(&mut txn, t, Change::Truncate)?;
                                }
                            }
                        }
                        Message::Commit {
                            end_lsn,
                            commit_time,
                            ..
                        } => {
                            let Some(done) = txn.take() else {
                                return Err(Error::new(
                                    ErrorKind::Internal,
                                    "the source sent a commit without its transaction",
                                ));
                            };
                            let _ = done.final_lsn;
                            // A spilled transaction is folded in parts, as a batch of its own,
                            // unless it moves rows to other keys (then it is folded whole).
                            let in_parts = done.changes.is_spilled() && !done.changes.rekeyed();
                            let n = parts_for(done.changes.len(), self.opts.part_changes);
                            if done.changes.is_spilled() {
                                spilled += 1;
                                trace(json!({
                                    "spilled": done.changes.len(),
                                    "parts": in_parts.then_some(n),
                                    "lsn": end_lsn.to_string()
                                }));
                            }
                            if in_parts && batch.txns > 0 {
                                let sealed = self.seal(&mut batch);
                                let (end, oldest) = (sealed.end, sealed.oldest_commit_time);
                                self.hand_over(&tx, sealed, received, &mut sent)?;
                                handed = end;
                                self.handed(end, oldest);
                            }
                            for read in done.changes.into_changes()? {
                                let (t, change) = read?;
                                if end_lsn <= self.followed[t].version {
                                    continue;
                                }
                                batch.changes += 1;
                                if in_parts {
                                    batch.parts[t]
                                        .get_or_insert_with(|| Parts::new(n))
                                        .push(change)?;
                                    continue;
                                }
                                let fold = &mut batch.folds[t];
                                let before = fold.bytes;
                                fold_change(fold, change);
                                batch.bytes += fold.bytes - before;
                            }
                            batch.end = end_lsn;
                            batch.txns += 1;
                            batch.oldest_commit_time = Some(
                                batch
                                    .oldest_commit_time
                                    .unwrap_or(commit_time)
                                    .min(done.commit_time),
                            );
                            if in_parts {
                                let sealed = self.seal(&mut batch);
                                let (end, oldest) = (sealed.end, sealed.oldest_commit_time);
                                self.hand_over(&tx, sealed, received, &mut sent)?;
                                handed = end;
                                self.handed(end, oldest);
                            }
                        }
                        Message::Other(_) => {}
                    }
                }
            }
        }
        // Stop: the transaction being received is dropped (it is sent again next time);
        // what is folded is committed, then confirmed.
        let _ = txn;
        if batch.txns > 0 {
            let sealed = self.seal(&mut batch);
            let (end, oldest) = (sealed.end, sealed.oldest_commit_time);
            self.hand_over(&tx, sealed, received, &mut sent)?;
            handed = end;
            self.handed(end, oldest);
        }
        drop(tx);
        // Wait for the committer (it ends when the channel closes and it is done).
        loop {
            let d = self.durable();
            if d >= handed {
                break;
            }
            if Instant::now().duration_since(last_status) >= Duration::from_secs(5) {
                self.status(received, d.max(sent), false, false)?;
                sent = d.max(sent);
                last_status = Instant::now();
            }
            // The committer failed (it holds the error), or is still committing.
            if self.committer_done.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let d = self.durable();
        let flush = if d >= handed && stopped == "caught_up" {
            d.max(keepalive)
        } else {
            d
        }
        .max(sent);
        self.status(received, flush, false, d >= handed)?;
        sent = flush;
        let _ = self.conn.copy_done(Duration::from_secs(5));
        Ok(ReaderEnd {
            stopped,
            warnings: std::mem::take(&mut self.warnings),
            spilled,
            confirmed: sent,
            source_end: {
                self.wal_end_read = None;
                self.read_wal_end();
                self.wal_end.max(received).max(keepalive)
            },
            error: stop_error,
        })
    }

    /// Hands `sealed` over, waiting for the committer while confirming on time.
    fn hand_over(
        &mut self,
        tx: &tokio::sync::mpsc::Sender<Sealed>,
        mut sealed: Sealed,
        received: Lsn,
        sent: &mut Lsn,
    ) -> Result<()> {
        let mut last = Instant::now();
        loop {
            match tx.try_send(sealed) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => return Ok(()),
                Err(TrySendError::Full(back)) => sealed = back,
            }
            if last.elapsed() >= Duration::from_secs(5) {
                let d = self.durable().max(*sent);
                self.status(received, d, false, false)?;
                *sent = d;
                last = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn seal(&self, batch: &mut Batch) -> Sealed {
        let b = std::mem::replace(batch, Batch::new(self.followed.len()));
        Sealed {
            folds: b.folds,
            parts: b.parts,
            slots: self.followed.iter().map(|f| f.slots.clone()).collect(),
            end: b.end,
            changes: b.changes,
            txns: b.txns,
            oldest_commit_time: b.oldest_commit_time,
            started: b.started,
        }
    }

    /// A relation's columns: checked against the table's, new ones added.
    fn relation(
        &mut self,
        relid: u32,
        namespace: &str,
        name: &str,
        columns: &[RelColumn<'_>],
        txn: Option<&Txn>,
    ) -> std::result::Result<(), SchemaStop> {
        let namespace = if namespace.is_empty() {
            "pg_catalog"
        } else {
            namespace
        };
        let Some(t) = self
            .followed
            .iter()
            .position(|f| f.nspname == namespace && f.relname == name)
        else {
            return Err(SchemaStop(format!(
                "the publication sends changes of {namespace}.{name}, which this run does not follow: pass the same --source tables as the first run"
            )));
        };
        let at = txn.map(|t| t.final_lsn).unwrap_or_default();
        let ntz = self.opts.timestamp_ntz;
        let mut slot_of = Vec::with_capacity(columns.len());
        for c in columns {
            let existing = self.followed[t].slots.iter().position(|s| s.name == c.name);
            let same = existing.is_some_and(|i| {
                let s = &self.followed[t].slots[i];
                s.type_oid == c.type_oid && s.typmod == c.typmod
            });
            if same {
                slot_of.push(existing.expect("checked"));
                continue;
            }
            let mapped = self
                .lookup_type(c.type_oid, c.typmod)
                .map_err(|e| SchemaStop(e.to_string()))?;
            let (typname, typtype, elem, elemtype, text) = mapped;
            let m = map_type(&typname, &typtype, &elem, &elemtype, c.typmod, ntz);
            let f = &mut self.followed[t];
            match (existing, m) {
                (None, Some((col_type, decoder)))
                    if f.stored
                        .get(c.name)
                        .is_none_or(|stored| *stored == col_type.type_text()) =>
                {
                    f.slots.push(Slot {
                        name: c.name.to_string(),
                        col_type,
                        decoder,
                        type_oid: c.type_oid,
                        typmod: c.typmod,
                        type_text: text,
                        present: true,
                    });
                    slot_of.push(f.slots.len() - 1);
                }
                (Some(i), Some((col_type, decoder)))
                    if f.stored
                        .get(c.name)
                        .is_none_or(|stored| *stored == col_type.type_text()) =>
                {
                    f.slots[i].col_type = col_type;
                    let s = &mut f.slots[i];
                    s.decoder = decoder;
                    s.type_oid = c.type_oid;
                    s.typmod = c.typmod;
                    s.type_text = text;
                    slot_of.push(i);
                }
                (_, mapped) => {
                    let stored = match (f.stored.get(c.name), mapped) {
                        (Some(stored), _) => format!(
                            "it is now {text}, which Tarn cannot store in the table's {stored} column without loss"
                        ),
                        (None, _) => format!("it is {text}, which Tarn cannot store"),
                    };
                    return Err(SchemaStop(format!(
                        "column `{}` of {namespace}.{name} changed at {at}: {stored}; the changes before it are applied, nothing from it on (make a new copy with --cdc --mode overwrite)",
                        c.name
                    )));
                }
            }
        }
        let f = &mut self.followed[t];
        for (i, s) in f.slots.iter_mut().enumerate() {
            s.present = slot_of.contains(&i);
        }
        if f.key_slots.iter().any(|k| !slot_of.contains(k)) {
            return Err(SchemaStop(format!(
                "a key column of {namespace}.{name} was dropped at {at}: the changes before it are applied, nothing from it on (make a new copy with --cdc --mode overwrite)"
            )));
        }
        self.rels.insert(relid, Rel { table: t, slot_of });
        Ok(())
    }

    /// (typname, typtype, element typname, element typtype, format_type) of a type.
    fn lookup_type(
        &mut self,
        oid: u32,
        typmod: i32,
    ) -> Result<(String, String, String, String, String)> {
        let conn = self.catalog_conn()?;
        let rows = conn
            .rows(&format!(
                "SELECT t.typname, t.typtype::text, COALESCE(e.typname::text, ''), COALESCE(e.typtype::text, ''), format_type(t.oid, {typmod}) \
                 FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' WHERE t.oid = {oid}"
            ))
            .map_err(|e| server("type look-up", e))?;
        let row = rows.first().ok_or_else(|| {
            Error::new(ErrorKind::Internal, format!("the source has no type {oid}"))
        })?;
        Ok((
            cell(row, 0),
            cell(row, 1),
            cell(row, 2),
            cell(row, 3),
            cell(row, 4),
        ))
    }

    /// A tuple's values by table column slot.
    fn cells(&self, relid: u32, values: &[Value<'_>]) -> Result<(usize, Vec<Cell>)> {
        let rel = self.rels.get(&relid).ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("the source sent a change of relation {relid} before describing it"),
            )
        })?;
        let f = &self.followed[rel.table];
        let mut cells = vec![Cell::Null; f.slots.len()];
        for (i, v) in values.iter().enumerate() {
            let Some(&slot) = rel.slot_of.get(i) else {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "the source sent more values than columns",
                ));
            };
            cells[slot] = match v {
                Value::Null => Cell::Null,
                Value::Unchanged => Cell::Keep,
                Value::Binary(b) => Cell::Value(b.to_vec()),
                Value::Text(_) => {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!(
                            "column `{}` of {}.{} arrived as text, not binary",
                            f.slots[slot].name, f.nspname, f.relname
                        ),
                    ))
                }
            };
        }
        Ok((rel.table, cells))
    }

    fn key(&self, t: usize, cells: &[Cell]) -> Result<Key> {
        let f = &self.followed[t];
        encode_key(f.key_slots.iter().map(|s| &cells[*s])).ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!(
                    "a change of {}.{} has no value for its key",
                    f.nspname, f.relname
                ),
            )
        })
    }
}

fn push(txn: &mut Option<Txn>, t: usize, change: Change) -> Result<()> {
    match txn {
        Some(txn) => txn.changes.push(t, change),
        None => Err(Error::new(
            ErrorKind::Internal,
            "the source sent a change outside a transaction",
        )),
    }
}

/// A sealed batch put back (the committer was busy): it goes on filling.
fn unseal(sealed: Sealed, tables: usize) -> Batch {
    let bytes = sealed.folds.iter().map(|f| f.bytes).sum();
    let _ = tables;
    Batch {
        folds: sealed.folds,
        parts: sealed.parts,
        end: sealed.end,
        txns: sealed.txns,
        changes: sealed.changes,
        bytes,
        oldest_commit_time: sealed.oldest_commit_time,
        started: sealed.started,
    }
}
