//! [`SqlCatalogStore`]: the catalog in SQLite (embedded default) or PostgreSQL, through one
//! implementation. Both dialects accept the same SQL here (`$n` parameters, `TEXT`,
//! `BIGINT`); what differs — opening, locking during migrations — is chosen by [`Dialect`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    CatalogInfo, NewCatalog, NewSchema, NewTable, SchemaInfo, TableInfo, TableType, TokenInfo,
};
use crate::names::{validate_name, SchemaName, TableName};
use crate::pg_reads::PgReads;
use crate::sqlite_reads::SqliteReads;
use crate::store::{CatalogStore, TableReservation};
use crate::token::Scope;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Schema migrations, applied in order, each once: statements separated by `;`. A step
/// that differs by dialect is rewritten in [`migration_statements`].
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS catalogs (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, comment TEXT, properties TEXT NOT NULL,
        owner TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
     CREATE TABLE IF NOT EXISTS schemas (
        id TEXT PRIMARY KEY, catalog_name TEXT NOT NULL, name TEXT NOT NULL, comment TEXT,
        properties TEXT NOT NULL, owner TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
        UNIQUE (catalog_name, name));
     CREATE TABLE IF NOT EXISTS tables (
        id TEXT PRIMARY KEY, catalog_name TEXT NOT NULL, schema_name TEXT NOT NULL, name TEXT NOT NULL,
        table_type TEXT NOT NULL, data_source_format TEXT NOT NULL, storage_location TEXT NOT NULL,
        comment TEXT, properties TEXT NOT NULL, owner TEXT, created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL, UNIQUE (catalog_name, schema_name, name));
     CREATE TABLE IF NOT EXISTS tokens (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, secret_hash TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT)",
    "CREATE TABLE IF NOT EXISTS shares (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, comment TEXT, created_at BIGINT NOT NULL);
     CREATE TABLE IF NOT EXISTS share_tables (
        id TEXT PRIMARY KEY, share_id TEXT NOT NULL, schema_name TEXT NOT NULL, name TEXT NOT NULL,
        table_id TEXT NOT NULL, history BIGINT NOT NULL, created_at BIGINT NOT NULL,
        UNIQUE (share_id, schema_name, name));
     CREATE TABLE IF NOT EXISTS recipients (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL, expires_at BIGINT, revoked_at BIGINT);
     CREATE TABLE IF NOT EXISTS recipient_shares (
        recipient_id TEXT NOT NULL, share_id TEXT NOT NULL, PRIMARY KEY (recipient_id, share_id));
     CREATE TABLE IF NOT EXISTS secrets (
        name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at BIGINT NOT NULL)",
    // TOKENS_TRIGGER_STEP: PostgreSQL only (below).
    "",
    // INTEGRITY_STEP: by dialect (below).
    "",
];

/// The step that makes PostgreSQL notify `tarn_tokens` (pg_tokens.rs) whenever a
/// token is revoked or changed, so servers drop the tokens they remember (pg_reads.rs).
const TOKENS_TRIGGER_STEP: usize = 2;

/// The step that makes the database itself keep names whole and records unfinished work:
/// foreign keys from `schemas` to `catalogs` and from `tables` to `schemas` (a create that
/// races a drop of its parent cannot leave a row nobody can see), and `tables.state`
/// (`creating`, `dropping`, or NULL for a table in use) for the steps that touch both a
/// name and a table's files (server/src/warehouse.rs). Parents missing under existing
/// rows (left by such a race before this step) are restored first, so no name is lost.
const INTEGRITY_STEP: usize = 3;

/// A parent restored by [`INTEGRITY_STEP`] says so in its comment.
const RESTORED: &str =
    "'restored by Tarn: it held names left behind by a drop that raced a create'";

/// The statements of [`INTEGRITY_STEP`]: the restored parents (same SQL in both dialects
/// but for the new ids and the time), then the constraints. SQLite cannot add a foreign key
/// to a table, so it copies `schemas` and `tables` into new ones that have them.
fn integrity_statements(dialect: Dialect) -> Vec<String> {
    let (id, t) = match dialect {
        Dialect::Postgres => (
            "md5(random()::text || clock_timestamp()::text)",
            "(extract(epoch from now()) * 1000)::bigint",
        ),
        Dialect::Sqlite => (
            "lower(hex(randomblob(16)))",
            "CAST(strftime('%s', 'now') AS INTEGER) * 1000",
        ),
    };
    let mut statements = vec![
        format!(
            "INSERT INTO catalogs (id, name, comment, properties, owner, created_at, updated_at)
             SELECT {id}, o.n, {RESTORED}, '{{}}', NULL, {t}, {t}
             FROM (SELECT catalog_name AS n FROM schemas UNION SELECT catalog_name FROM tables) o
             WHERE NOT EXISTS (SELECT 1 FROM catalogs c WHERE c.name = o.n)"
        ),
        format!(
            "INSERT INTO schemas (id, catalog_name, name, comment, properties, owner, created_at, updated_at)
             SELECT {id}, o.c, o.s, {RESTORED}, '{{}}', NULL, {t}, {t}
             FROM (SELECT DISTINCT catalog_name AS c, schema_name AS s FROM tables) o
             WHERE NOT EXISTS (SELECT 1 FROM schemas x WHERE x.catalog_name = o.c AND x.name = o.s)"
        ),
    ];
    let columns = "id, catalog_name, schema_name, name, table_type, data_source_format, \
                   storage_location, comment, properties, owner, created_at, updated_at";
    match dialect {
        Dialect::Postgres => statements.extend([
            "ALTER TABLE schemas ADD CONSTRAINT schemas_catalog_fk
             FOREIGN KEY (catalog_name) REFERENCES catalogs (name)"
                .to_string(),
            "ALTER TABLE tables ADD CONSTRAINT tables_schema_fk
             FOREIGN KEY (catalog_name, schema_name) REFERENCES schemas (catalog_name, name)"
                .to_string(),
            "ALTER TABLE tables ADD COLUMN state TEXT".to_string(),
        ]),
        Dialect::Sqlite => statements.extend([
            "CREATE TABLE schemas_new (
                id TEXT PRIMARY KEY, catalog_name TEXT NOT NULL REFERENCES catalogs (name),
                name TEXT NOT NULL, comment TEXT, properties TEXT NOT NULL, owner TEXT,
                created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, UNIQUE (catalog_name, name))"
                .to_string(),
            "INSERT INTO schemas_new SELECT id, catalog_name, name, comment, properties, owner,
             created_at, updated_at FROM schemas"
                .to_string(),
            "DROP TABLE schemas".to_string(),
            "ALTER TABLE schemas_new RENAME TO schemas".to_string(),
            "CREATE TABLE tables_new (
                id TEXT PRIMARY KEY, catalog_name TEXT NOT NULL, schema_name TEXT NOT NULL, name TEXT NOT NULL,
                table_type TEXT NOT NULL, data_source_format TEXT NOT NULL, storage_location TEXT NOT NULL,
                comment TEXT, properties TEXT NOT NULL, owner TEXT, created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL, state TEXT, UNIQUE (catalog_name, schema_name, name),
                FOREIGN KEY (catalog_name, schema_name) REFERENCES schemas (catalog_name, name))"
                .to_string(),
            format!("INSERT INTO tables_new ({columns}) SELECT {columns} FROM tables"),
            "DROP TABLE tables".to_string(),
            "ALTER TABLE tables_new RENAME TO tables".to_string(),
        ]),
    }
    statements.push("CREATE INDEX tables_pending ON tables (state) WHERE state IS NOT NULL".into());
    statements
}

/// The statements of migration `step` on `dialect`.
fn migration_statements(dialect: Dialect, step: usize) -> Vec<String> {
    match (step, dialect) {
        (TOKENS_TRIGGER_STEP, Dialect::Sqlite) => Vec::new(),
        // A PL/pgSQL body holds `;`: these are not split.
        (TOKENS_TRIGGER_STEP, Dialect::Postgres) => vec![
            "CREATE OR REPLACE FUNCTION tarn_tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_notify('tarn_tokens', ''); RETURN NULL; END $$"
                .to_string(),
            "CREATE TRIGGER tarn_tokens_changed AFTER UPDATE OR DELETE OR TRUNCATE ON tokens
             FOR EACH STATEMENT EXECUTE PROCEDURE tarn_tokens_changed()"
                .to_string(),
        ],
        (INTEGRITY_STEP, _) => integrity_statements(dialect),
        _ => MIGRATIONS[step]
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
            .collect(),
    }
}

/// How long a catalog write waits for a connection (connecting included) before it fails
/// as [`ErrorKind::Unavailable`].
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The catalog in an SQL database.
#[derive(Debug, Clone)]
pub struct SqlCatalogStore {
    pub(crate) pool: AnyPool,
    dialect: Dialect,
    /// The per-request reads, on the calling thread, for an SQLite file.
    sqlite_reads: Option<std::sync::Arc<SqliteReads>>,
    /// The per-request reads, without sqlx's pool, for PostgreSQL.
    pg_reads: Option<std::sync::Arc<PgReads>>,
    /// SQLite: the reservations this process holds (see [`CatalogStore::reserve_table`]).
    held: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// How connections reach PostgreSQL (`sslmode`, `sslrootcert`: tarn-pgtls), and the TLS
    /// tunnel they go through, kept as long as the store.
    _pg_route: Option<std::sync::Arc<tarn_pgtls::Route>>,
}

/// Opens (and migrates) the catalog at `url`: `postgres://...`, `sqlite://PATH`, or a plain
/// file path for SQLite (created on first use).
pub async fn open_store(url: &str) -> Result<SqlCatalogStore> {
    SqlCatalogStore::open(url).await
}

impl SqlCatalogStore {
    /// See [`open_store`].
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let mut sqlite_reads = None;
        let (dialect, conn_url) =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                (Dialect::Postgres, url.to_string())
            } else {
                let path = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or(url);
                if let Some(parent) = std::path::Path::new(path)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::new(
                            ErrorKind::Internal,
                            format!(
                                "cannot create the catalog directory `{}`: {e}",
                                parent.display()
                            ),
                        )
                    })?;
                }
                sqlite_reads = SqliteReads::new(path).map(std::sync::Arc::new);
                (Dialect::Sqlite, format!("sqlite://{path}?mode=rwc"))
            };
        let redacted = tarn_secrets::redact_url(url);
        let cannot_open = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot open the catalog at `{redacted}`: {e}"),
            )
        };
        // On PostgreSQL the per-request reads have up to 8 connections of their own
        // (pg_reads.rs): a server opens at most 16 (docs/server.md).
        // A connection that died while idle (PostgreSQL restarted) is found by the ping
        // before it is handed out, and replaced; while the database is down, a request waits
        // at most ACQUIRE_TIMEOUT for a connection, then fails as `Unavailable`.
        let pool_options = || {
            AnyPoolOptions::new()
                .max_connections(if dialect == Dialect::Sqlite { 4 } else { 8 })
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(true)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        // sqlx turns SQLite's foreign keys on by default; say so, not rely on it.
                        if dialect == Dialect::Sqlite {
                            sqlx::Executor::execute(&mut *conn, "PRAGMA foreign_keys = ON").await?;
                        }
                        Ok(())
                    })
                })
        };
        let (pool, pg_route) = match dialect {
            // Every connection (the pool's, the reads', the token listener's) takes the
            // route the first one settled, TLS as the URL says.
            Dialect::Postgres => {
                let (route, pool) = tarn_pgtls::Route::connect(url, ACQUIRE_TIMEOUT, |route| {
                    let (options, url) = (pool_options(), route.url());
                    async move { options.connect(&url).await }
                })
                .await
                .map_err(|e| cannot_open(&e))?;
                (pool, Some(std::sync::Arc::new(route)))
            }
            Dialect::Sqlite => (
                pool_options()
                    .connect(&conn_url)
                    .await
                    .map_err(|e| cannot_open(&e))?,
                None,
            ),
        };
        let pg_reads = match &pg_route {
            Some(route) => Some(std::sync::Arc::new(
                PgReads::new(&route.url()).map_err(|e| cannot_open(&e))?,
            )),
            None => None,
        };
        let store = Self {
            pool,
            dialect,
            sqlite_reads,
            pg_reads,
            held: Default::default(),
            _pg_route: pg_route,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a writer waits for another (busy timeout) rather than failing
    /// with "database is locked" when its read snapshot cannot be upgraded.
    pub(crate) async fn write_tx(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    /// The database kind.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// `sql` with a row-lock clause on PostgreSQL: `FOR SHARE` on a parent a create needs
    /// (a drop of it waits, and a create that waited on a drop sees the parent gone) and
    /// `FOR UPDATE` on what a drop removes. SQLite needs none: its writers take the whole
    /// database (`write_tx`).
    fn locking(&self, sql: &str, lock: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("{sql} {lock}"),
            Dialect::Sqlite => sql.to_string(),
        }
    }

    /// Stores a table's row in `tx`, in `state` (`None`: in use), holding its schema
    /// (`FOR SHARE`) so a concurrent drop of the schema waits, or wins and this fails.
    async fn insert_table(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        new: NewTable,
        state: Option<&str>,
    ) -> Result<TableInfo> {
        let name = TableName::new(&new.catalog_name, &new.schema_name, &new.name)?;
        if new.storage_location.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("table `{name}` needs a storage location"),
            ));
        }
        let what = format!("table `{name}`");
        let db = |e| Error::from_db(e, &what);
        let schema = self.locking(
            "SELECT id FROM schemas WHERE catalog_name = $1 AND name = $2",
            "FOR SHARE",
        );
        let schema = sqlx::query(&schema)
            .bind(&name.catalog)
            .bind(&name.schema)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        if schema.is_none() {
            return Err(not_found(format!(
                "schema `{}` does not exist",
                name.schema_name()
            )));
        }
        let t = now();
        let info = TableInfo {
            id: new.id.unwrap_or_else(new_id),
            catalog_name: new.catalog_name,
            schema_name: new.schema_name,
            name: new.name,
            table_type: new.table_type,
            data_source_format: "DELTA".into(),
            storage_location: new.storage_location,
            comment: new.comment,
            properties: new.properties,
            owner: new.owner,
            created_at: t,
            updated_at: t,
        };
        let schema_gone = || {
            not_found(format!(
                "schema `{}` does not exist (it was dropped while the table was being created)",
                name.schema_name()
            ))
        };
        sqlx::query(
            "INSERT INTO tables (id, catalog_name, schema_name, name, table_type, data_source_format, storage_location, comment, properties, owner, created_at, updated_at, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&info.id)
        .bind(&info.catalog_name)
        .bind(&info.schema_name)
        .bind(&info.name)
        .bind(info.table_type.as_str())
        .bind(&info.data_source_format)
        .bind(&info.storage_location)
        .bind(&info.comment)
        .bind(props_to_text(&info.properties))
        .bind(&info.owner)
        .bind(info.created_at)
        .bind(info.updated_at)
        .bind(state)
        .execute(&mut **tx)
        .await
        .map_err(|e| if is_foreign_key_violation(&e) { schema_gone() } else { db(e) })?;
        Ok(info)
    }

    async fn migrate(&self) -> Result<()> {
        let db = |e| Error::from_db(e, "migration");
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        let mut tx = self.write_tx().await.map_err(db)?;
        if self.dialect == Dialect::Postgres {
            // Several servers may start at once on one database: migrate one at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(727365)")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS tarn_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tarn_migrations")
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get::<i64, _>("n"))
            .map_err(db)?;
        for step in applied as usize..MIGRATIONS.len() {
            for statement in migration_statements(self.dialect, step) {
                sqlx::query(&statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            sqlx::query("INSERT INTO tarn_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(step as i64)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn props_to_text(p: &BTreeMap<String, String>) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "{}".into())
}

/// The reads `sqlite_reads` also makes (SQLite takes `$N` as the N-th parameter too).
pub(crate) const LIST_TABLES_SQL: &str =
    "SELECT * FROM tables WHERE catalog_name = $1 AND schema_name = $2 AND state IS NULL ORDER BY name";
pub(crate) const SCHEMA_EXISTS_SQL: &str =
    "SELECT 1 FROM schemas WHERE catalog_name = $1 AND name = $2";
pub(crate) const GET_TABLE_SQL: &str =
    "SELECT * FROM tables WHERE catalog_name = $1 AND schema_name = $2 AND name = $3 AND state IS NULL";
pub(crate) const FIND_TOKEN_SQL: &str = "SELECT * FROM tokens WHERE secret_hash = $1";

/// A row of either kind: sqlx's, or a plain SQLite connection's (`sqlite_reads`).
pub(crate) trait Columns {
    fn column<T: ColumnValue>(&self, name: &str) -> sqlx::Result<T>;
}

/// A column type both kinds of row decode.
pub(crate) trait ColumnValue:
    for<'r> sqlx::Decode<'r, sqlx::Any>
    + sqlx::Type<sqlx::Any>
    + for<'r> sqlx::Decode<'r, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
    + Sized
{
    fn from_sqlite(row: &rusqlite::Row<'_>, name: &str) -> sqlx::Result<Self>;
}

impl Columns for AnyRow {
    fn column<T: ColumnValue>(&self, name: &str) -> sqlx::Result<T> {
        self.try_get(name)
    }
}

fn props_from_row(row: &impl Columns) -> sqlx::Result<BTreeMap<String, String>> {
    let text: String = row.column("properties")?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

fn catalog_from_row(row: &AnyRow) -> sqlx::Result<CatalogInfo> {
    Ok(CatalogInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        comment: row.try_get("comment")?,
        properties: props_from_row(row)?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn schema_from_row(row: &AnyRow) -> sqlx::Result<SchemaInfo> {
    Ok(SchemaInfo {
        id: row.try_get("id")?,
        catalog_name: row.try_get("catalog_name")?,
        name: row.try_get("name")?,
        comment: row.try_get("comment")?,
        properties: props_from_row(row)?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn table_from_row(row: &impl Columns) -> sqlx::Result<TableInfo> {
    let table_type: String = row.column("table_type")?;
    Ok(TableInfo {
        id: row.column("id")?,
        catalog_name: row.column("catalog_name")?,
        schema_name: row.column("schema_name")?,
        name: row.column("name")?,
        table_type: TableType::parse(&table_type).unwrap_or(TableType::External),
        data_source_format: row.column("data_source_format")?,
        storage_location: row.column("storage_location")?,
        comment: row.column("comment")?,
        properties: props_from_row(row)?,
        owner: row.column("owner")?,
        created_at: row.column("created_at")?,
        updated_at: row.column("updated_at")?,
    })
}

pub(crate) fn token_from_row(row: &impl Columns) -> sqlx::Result<TokenInfo> {
    let scope: String = row.column("scope")?;
    Ok(TokenInfo {
        id: row.column("id")?,
        name: row.column("name")?,
        scope: Scope::parse(&scope).unwrap_or(Scope::Read),
        created_at: row.column("created_at")?,
        expires_at: row.column("expires_at")?,
    })
}

pub(crate) fn not_found(message: String) -> Error {
    Error::new(ErrorKind::NotFound, message)
}

fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Takes the lock that says a reservation's holder is alive (PostgreSQL): a session-level
/// advisory lock keyed by the table id, in a key space of Tarn's own.
const HOLD_RESERVATION_SQL: &str = "SELECT pg_advisory_lock(727366, hashtext($1))";

/// Turns every reservation whose holder is gone into a drop (PostgreSQL): a row whose lock
/// this transaction can take has no live holder.
const CLAIM_RESERVATIONS_SQL: &str = "UPDATE tables SET state = 'dropping' WHERE id IN \
     (SELECT id FROM tables WHERE state = 'creating' \
      AND pg_try_advisory_xact_lock(727366, hashtext(id)))";

/// A table name reserved by [`CatalogStore::reserve_table`], held until it is committed
/// or abandoned. While it is held, [`CatalogStore::pending_drops`] leaves the row alone;
/// once the process holding it dies, the row is taken back.
struct SqlReservation {
    info: TableInfo,
    hold: Hold,
    /// SQLite: this process's record that it holds the row (cleared when dropped).
    _held: Option<Held>,
}

/// What keeps a reservation held.
enum Hold {
    /// The connection with the session's advisory lock (closed when dropped).
    Postgres(sqlx::pool::PoolConnection<sqlx::Any>),
    /// A write transaction: no other process can take the row back while it is open.
    Sqlite(sqlx::Transaction<'static, sqlx::Any>),
}

/// An id in [`SqlCatalogStore::held`], removed when dropped.
struct Held {
    id: String,
    set: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

fn poisoned() -> Error {
    Error::new(
        ErrorKind::Internal,
        "a lock of the catalog store was poisoned",
    )
}

impl SqlReservation {
    /// Runs `sql` (binding the table id) where the reservation is held, and returns how
    /// many rows it changed.
    async fn finish(&mut self, sql: &str) -> Result<u64> {
        let db = |e| Error::from_db(e, "table");
        let query = sqlx::query(sql).bind(&self.info.id);
        let done = match &mut self.hold {
            Hold::Postgres(conn) => query.execute(&mut **conn).await,
            Hold::Sqlite(tx) => query.execute(&mut **tx).await,
        };
        Ok(done.map_err(db)?.rows_affected())
    }

    async fn release(self) -> Result<()> {
        let db = |e| Error::from_db(e, "table");
        match self.hold {
            // Closing the connection ends the session and its lock.
            Hold::Postgres(conn) => conn.close().await.map_err(db),
            Hold::Sqlite(tx) => tx.commit().await.map_err(db),
        }
    }
}

#[async_trait]
impl TableReservation for SqlReservation {
    fn table(&self) -> &TableInfo {
        &self.info
    }

    async fn commit(mut self: Box<Self>) -> Result<TableInfo> {
        let changed = self
            .finish("UPDATE tables SET state = NULL WHERE id = $1 AND state = 'creating'")
            .await?;
        if changed != 1 {
            return Err(taken_back(&self.info));
        }
        let info = self.info.clone();
        (*self).release().await?;
        Ok(info)
    }

    async fn abandon(mut self: Box<Self>) -> Result<()> {
        self.finish("DELETE FROM tables WHERE id = $1 AND state = 'creating'")
            .await?;
        (*self).release().await
    }
}

fn taken_back(info: &TableInfo) -> Error {
    Error::new(
        ErrorKind::FailedPrecondition,
        format!(
            "the catalog took back the name `{}` while its table was being created (it looked abandoned): try again",
            info.full_name()
        ),
    )
}

#[async_trait]
impl CatalogStore for SqlCatalogStore {
    async fn create_catalog(&self, new: NewCatalog) -> Result<CatalogInfo> {
        validate_name("catalog", &new.name)?;
        let t = now();
        let info = CatalogInfo {
            id: new_id(),
            name: new.name,
            comment: new.comment,
            properties: new.properties,
            owner: new.owner,
            created_at: t,
            updated_at: t,
        };
        sqlx::query("INSERT INTO catalogs (id, name, comment, properties, owner, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&info.id)
            .bind(&info.name)
            .bind(&info.comment)
            .bind(props_to_text(&info.properties))
            .bind(&info.owner)
            .bind(info.created_at)
            .bind(info.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::from_db(e, &format!("catalog `{}`", info.name)))?;
        Ok(info)
    }

    async fn get_catalog(&self, name: &str) -> Result<CatalogInfo> {
        sqlx::query("SELECT * FROM catalogs WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| Error::from_db(e, "catalog"))?
            .map(|r| catalog_from_row(&r))
            .transpose()
            .map_err(|e| Error::from_db(e, "catalog"))?
            .ok_or_else(|| not_found(format!("catalog `{name}` does not exist")))
    }

    async fn list_catalogs(&self) -> Result<Vec<CatalogInfo>> {
        let rows = sqlx::query("SELECT * FROM catalogs ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::from_db(e, "catalog"))?;
        rows.iter()
            .map(catalog_from_row)
            .collect::<sqlx::Result<_>>()
            .map_err(|e| Error::from_db(e, "catalog"))
    }

    async fn delete_catalog(&self, name: &str, force: bool) -> Result<()> {
        let db = |e| Error::from_db(e, "catalog");
        let mut tx = self.write_tx().await.map_err(db)?;
        let found = self.locking("SELECT id FROM catalogs WHERE name = $1", "FOR UPDATE");
        let found = sqlx::query(&found)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if found.is_none() {
            return Err(not_found(format!("catalog `{name}` does not exist")));
        }
        // A table being created in one of its schemas holds that schema: wait for it, so
        // the count and the deletes below see it.
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT id FROM schemas WHERE catalog_name = $1 FOR UPDATE")
                .bind(name)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        }
        let schemas: i64 = sqlx::query("SELECT COUNT(*) AS n FROM schemas WHERE catalog_name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(db)?;
        if schemas > 0 && !force {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "catalog `{name}` has {schemas} schema(s): drop them first, or force the drop"
                ),
            ));
        }
        sqlx::query("DELETE FROM share_tables WHERE table_id IN (SELECT id FROM tables WHERE catalog_name = $1)")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM tables WHERE catalog_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM schemas WHERE catalog_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let changed = |e: sqlx::Error| {
            if is_foreign_key_violation(&e) {
                Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("catalog `{name}` gained a schema or table while it was being dropped: try again"),
                )
            } else {
                db(e)
            }
        };
        sqlx::query("DELETE FROM catalogs WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(changed)?;
        tx.commit().await.map_err(changed)
    }

    async fn create_schema(&self, new: NewSchema) -> Result<SchemaInfo> {
        validate_name("catalog", &new.catalog_name)?;
        validate_name("schema", &new.name)?;
        let what = format!("schema `{}.{}`", new.catalog_name, new.name);
        let db = |e| Error::from_db(e, &what);
        let mut tx = self.write_tx().await.map_err(db)?;
        let catalog = self.locking("SELECT id FROM catalogs WHERE name = $1", "FOR SHARE");
        let catalog = sqlx::query(&catalog)
            .bind(&new.catalog_name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if catalog.is_none() {
            return Err(not_found(format!(
                "catalog `{}` does not exist",
                new.catalog_name
            )));
        }
        let t = now();
        let info = SchemaInfo {
            id: new_id(),
            catalog_name: new.catalog_name,
            name: new.name,
            comment: new.comment,
            properties: new.properties,
            owner: new.owner,
            created_at: t,
            updated_at: t,
        };
        let catalog_gone = || {
            not_found(format!(
                "catalog `{}` does not exist (it was dropped while the schema was being created)",
                info.catalog_name
            ))
        };
        sqlx::query("INSERT INTO schemas (id, catalog_name, name, comment, properties, owner, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&info.id)
            .bind(&info.catalog_name)
            .bind(&info.name)
            .bind(&info.comment)
            .bind(props_to_text(&info.properties))
            .bind(&info.owner)
            .bind(info.created_at)
            .bind(info.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| if is_foreign_key_violation(&e) { catalog_gone() } else { db(e) })?;
        tx.commit().await.map_err(|e| {
            if is_foreign_key_violation(&e) {
                catalog_gone()
            } else {
                db(e)
            }
        })?;
        Ok(info)
    }

    async fn get_schema(&self, name: &SchemaName) -> Result<SchemaInfo> {
        let db = |e| Error::from_db(e, "schema");
        sqlx::query("SELECT * FROM schemas WHERE catalog_name = $1 AND name = $2")
            .bind(&name.catalog)
            .bind(&name.schema)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .map(|r| schema_from_row(&r))
            .transpose()
            .map_err(db)?
            .ok_or_else(|| not_found(format!("schema `{name}` does not exist")))
    }

    async fn list_schemas(&self, catalog: &str) -> Result<Vec<SchemaInfo>> {
        self.get_catalog(catalog).await?;
        let db = |e| Error::from_db(e, "schema");
        let rows = sqlx::query("SELECT * FROM schemas WHERE catalog_name = $1 ORDER BY name")
            .bind(catalog)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(schema_from_row)
            .collect::<sqlx::Result<_>>()
            .map_err(db)
    }

    async fn delete_schema(&self, name: &SchemaName, force: bool) -> Result<()> {
        let db = |e| Error::from_db(e, "schema");
        let mut tx = self.write_tx().await.map_err(db)?;
        let found = self.locking(
            "SELECT id FROM schemas WHERE catalog_name = $1 AND name = $2",
            "FOR UPDATE",
        );
        let found = sqlx::query(&found)
            .bind(&name.catalog)
            .bind(&name.schema)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if found.is_none() {
            return Err(not_found(format!("schema `{name}` does not exist")));
        }
        let tables: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM tables WHERE catalog_name = $1 AND schema_name = $2",
        )
        .bind(&name.catalog)
        .bind(&name.schema)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("n"))
        .map_err(db)?;
        if tables > 0 && !force {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "schema `{name}` has {tables} table(s): drop them first, or force the drop"
                ),
            ));
        }
        sqlx::query("DELETE FROM share_tables WHERE table_id IN (SELECT id FROM tables WHERE catalog_name = $1 AND schema_name = $2)")
            .bind(&name.catalog)
            .bind(&name.schema)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM tables WHERE catalog_name = $1 AND schema_name = $2")
            .bind(&name.catalog)
            .bind(&name.schema)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let changed = |e: sqlx::Error| {
            if is_foreign_key_violation(&e) {
                Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("schema `{name}` gained a table while it was being dropped: try again"),
                )
            } else {
                db(e)
            }
        };
        sqlx::query("DELETE FROM schemas WHERE catalog_name = $1 AND name = $2")
            .bind(&name.catalog)
            .bind(&name.schema)
            .execute(&mut *tx)
            .await
            .map_err(changed)?;
        tx.commit().await.map_err(changed)
    }

    async fn create_table(&self, new: NewTable) -> Result<TableInfo> {
        let db = |e| Error::from_db(e, "table");
        let mut tx = self.write_tx().await.map_err(db)?;
        let info = self.insert_table(&mut tx, new, None).await?;
        tx.commit().await.map_err(db)?;
        Ok(info)
    }

    async fn reserve_table(&self, new: NewTable) -> Result<Box<dyn TableReservation>> {
        let db = |e| Error::from_db(e, "table");
        let id = new.id.clone().unwrap_or_else(new_id);
        let new = NewTable {
            id: Some(id.clone()),
            ..new
        };
        match self.dialect {
            Dialect::Postgres => {
                // The lock is taken before the row exists and held by this connection's
                // session: a row whose holder died (its connection closed) is unlocked. The
                // connection is closed when the reservation ends, never pooled with the lock.
                let mut conn = self.pool.acquire().await.map_err(db)?;
                conn.close_on_drop();
                sqlx::query(HOLD_RESERVATION_SQL)
                    .bind(&id)
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db)?;
                let info = self.insert_table(&mut tx, new, Some("creating")).await?;
                tx.commit().await.map_err(db)?;
                Ok(Box::new(SqlReservation {
                    info,
                    hold: Hold::Postgres(conn),
                    _held: None,
                }))
            }
            Dialect::Sqlite => {
                // In this process, the set of held ids; against other processes, the write
                // lock, held from just after the row is stored until the reservation ends.
                self.held.lock().map_err(|_| poisoned())?.insert(id.clone());
                let held = Held {
                    id: id.clone(),
                    set: self.held.clone(),
                };
                let mut tx = self.write_tx().await.map_err(db)?;
                let info = self.insert_table(&mut tx, new, Some("creating")).await?;
                tx.commit().await.map_err(db)?;
                let mut tx = self.write_tx().await.map_err(db)?;
                let still =
                    sqlx::query("SELECT id FROM tables WHERE id = $1 AND state = 'creating'")
                        .bind(&id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db)?;
                if still.is_none() {
                    return Err(taken_back(&info));
                }
                Ok(Box::new(SqlReservation {
                    info,
                    hold: Hold::Sqlite(tx),
                    _held: Some(held),
                }))
            }
        }
    }

    async fn begin_drop(&self, name: &TableName, id: &str) -> Result<TableInfo> {
        let db = |e| Error::from_db(e, "table");
        let mut tx = self.write_tx().await.map_err(db)?;
        let row = self.locking(&format!("{GET_TABLE_SQL} AND id = $4"), "FOR UPDATE");
        let row = sqlx::query(&row)
            .bind(&name.catalog)
            .bind(&name.schema)
            .bind(&name.table)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| not_found(format!("table `{name}` does not exist")))?;
        let info = table_from_row(&row).map_err(db)?;
        sqlx::query("UPDATE tables SET state = 'dropping', updated_at = $2 WHERE id = $1")
            .bind(&info.id)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(info)
    }

    async fn pending_drops(&self) -> Result<Vec<TableInfo>> {
        let db = |e| Error::from_db(e, "table");
        let mut tx = self.write_tx().await.map_err(db)?;
        // Reservations nobody holds any more (their process died, or lost its connection)
        // become drops: what they made is deleted.
        match self.dialect {
            Dialect::Postgres => {
                sqlx::query(CLAIM_RESERVATIONS_SQL)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            Dialect::Sqlite => {
                // A holder in another process has the write lock, so none is held while this
                // transaction runs; this process's own are in `held`.
                let creating = sqlx::query("SELECT id FROM tables WHERE state = 'creating'")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                let held = self.held.lock().map_err(|_| poisoned())?.clone();
                for row in creating {
                    let id: String = row.try_get("id").map_err(db)?;
                    if !held.contains(&id) {
                        sqlx::query("UPDATE tables SET state = 'dropping' WHERE id = $1")
                            .bind(&id)
                            .execute(&mut *tx)
                            .await
                            .map_err(db)?;
                    }
                }
            }
        }
        let rows = sqlx::query("SELECT * FROM tables WHERE state = 'dropping' ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(table_from_row)
            .collect::<sqlx::Result<_>>()
            .map_err(db)
    }

    async fn finish_drop(&self, id: &str) -> Result<()> {
        let db = |e| Error::from_db(e, "table");
        let mut tx = self.write_tx().await.map_err(db)?;
        sqlx::query("DELETE FROM share_tables WHERE table_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM tables WHERE id = $1 AND state = 'dropping'")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn get_table(&self, name: &TableName) -> Result<TableInfo> {
        if let Some(reads) = &self.sqlite_reads {
            return reads.get_table(name);
        }
        let row = match &self.pg_reads {
            Some(reads) => reads
                .fetch_optional(GET_TABLE_SQL, &[&name.catalog, &name.schema, &name.table])
                .await
                .and_then(|r| r.map(|r| table_from_row(&r)).transpose()),
            None => sqlx::query(GET_TABLE_SQL)
                .bind(&name.catalog)
                .bind(&name.schema)
                .bind(&name.table)
                .fetch_optional(&self.pool)
                .await
                .and_then(|r| r.map(|r| table_from_row(&r)).transpose()),
        };
        row.map_err(|e| Error::from_db(e, "table"))?
            .ok_or_else(|| not_found(format!("table `{name}` does not exist")))
    }

    async fn get_table_by_id(&self, id: &str) -> Result<TableInfo> {
        let db = |e| Error::from_db(e, "table");
        sqlx::query("SELECT * FROM tables WHERE id = $1 AND state IS NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .map(|r| table_from_row(&r))
            .transpose()
            .map_err(db)?
            .ok_or_else(|| not_found(format!("no table has id `{id}`")))
    }

    async fn list_tables(&self, schema: &SchemaName) -> Result<Vec<TableInfo>> {
        if let Some(reads) = &self.sqlite_reads {
            return reads.list_tables(schema);
        }
        self.get_schema(schema).await?;
        let db = |e| Error::from_db(e, "table");
        let rows = sqlx::query(LIST_TABLES_SQL)
            .bind(&schema.catalog)
            .bind(&schema.schema)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(table_from_row)
            .collect::<sqlx::Result<_>>()
            .map_err(db)
    }

    async fn delete_table(&self, name: &TableName) -> Result<TableInfo> {
        let db = |e| Error::from_db(e, "table");
        let mut tx = self.write_tx().await.map_err(db)?;
        let row = sqlx::query(GET_TABLE_SQL)
            .bind(&name.catalog)
            .bind(&name.schema)
            .bind(&name.table)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| not_found(format!("table `{name}` does not exist")))?;
        let info = table_from_row(&row).map_err(db)?;
        sqlx::query("DELETE FROM share_tables WHERE table_id = $1")
            .bind(&info.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM tables WHERE id = $1")
            .bind(&info.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(info)
    }

    async fn create_token(
        &self,
        name: &str,
        secret_hash: &str,
        scope: Scope,
        expires_at: Option<i64>,
    ) -> Result<TokenInfo> {
        validate_name("token", name)?;
        let info = TokenInfo {
            id: new_id(),
            name: name.into(),
            scope,
            created_at: now(),
            expires_at,
        };
        sqlx::query("INSERT INTO tokens (id, name, secret_hash, scope, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&info.id)
            .bind(&info.name)
            .bind(secret_hash)
            .bind(scope.as_str())
            .bind(info.created_at)
            .bind(info.expires_at)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::from_db(e, &format!("token `{name}`")))?;
        Ok(info)
    }

    async fn find_token(&self, secret_hash: &str) -> Result<TokenInfo> {
        if let Some(reads) = &self.sqlite_reads {
            return reads.find_token(secret_hash);
        }
        let row = match &self.pg_reads {
            Some(reads) => {
                let generation = match reads.tokens.recall(secret_hash) {
                    Ok(token) => return Ok(token),
                    Err(generation) => generation,
                };
                let found = reads
                    .fetch_optional(FIND_TOKEN_SQL, &[secret_hash])
                    .await
                    .and_then(|r| r.map(|r| token_from_row(&r)).transpose());
                if let Ok(Some(token)) = &found {
                    reads.tokens.remember(secret_hash, token, generation);
                }
                found
            }
            None => sqlx::query(FIND_TOKEN_SQL)
                .bind(secret_hash)
                .fetch_optional(&self.pool)
                .await
                .and_then(|r| r.map(|r| token_from_row(&r)).transpose()),
        };
        row.map_err(|e| Error::from_db(e, "token"))?
            .ok_or_else(|| not_found("unknown token".into()))
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let db = |e| Error::from_db(e, "token");
        let rows = sqlx::query("SELECT * FROM tokens ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(token_from_row)
            .collect::<sqlx::Result<_>>()
            .map_err(db)
    }

    async fn delete_token(&self, id_or_name: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM tokens WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::from_db(e, "token"))?;
        // Other stores hear of it through the tokens trigger; this one forgets at once.
        if let Some(reads) = &self.pg_reads {
            reads.tokens.forget_all();
        }
        if done.rows_affected() == 0 {
            return Err(not_found(format!("token `{id_or_name}` does not exist")));
        }
        Ok(())
    }

    fn sharing(&self) -> Option<&dyn crate::sharing::SharingStore> {
        Some(self)
    }
}
