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
use crate::store::CatalogStore;
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
];

/// The step that makes PostgreSQL notify `tarn_tokens` (pg_tokens.rs) whenever a
/// token is revoked or changed, so servers drop the tokens they remember (pg_reads.rs).
const TOKENS_TRIGGER_STEP: usize = 2;

/// The statements of migration `step` on `dialect`.
fn migration_statements(dialect: Dialect, step: usize) -> Vec<&'static str> {
    match (step, dialect) {
        (TOKENS_TRIGGER_STEP, Dialect::Sqlite) => Vec::new(),
        // A PL/pgSQL body holds `;`: these are not split.
        (TOKENS_TRIGGER_STEP, Dialect::Postgres) => vec![
            "CREATE OR REPLACE FUNCTION tarn_tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_notify('tarn_tokens', ''); RETURN NULL; END $$",
            "CREATE TRIGGER tarn_tokens_changed AFTER UPDATE OR DELETE OR TRUNCATE ON tokens
             FOR EACH STATEMENT EXECUTE PROCEDURE tarn_tokens_changed()",
        ],
        _ => MIGRATIONS[step]
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .collect(),
    }
}

/// The catalog in an SQL database.
#[derive(Debug, Clone)]
pub struct SqlCatalogStore {
    pub(crate) pool: AnyPool,
    dialect: Dialect,
    /// The per-request reads, on the calling thread, for an SQLite file.
    sqlite_reads: Option<std::sync::Arc<SqliteReads>>,
    /// The per-request reads, without sqlx's pool, for PostgreSQL.
    pg_reads: Option<std::sync::Arc<PgReads>>,
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
        let redacted = redact(url);
        let cannot_open = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot open the catalog at `{redacted}`: {e}"),
            )
        };
        // On PostgreSQL the per-request reads have up to 8 connections of their own
        // (pg_reads.rs): a server opens at most 16 (docs/server.md).
        let pool_options = || {
            AnyPoolOptions::new()
                .max_connections(if dialect == Dialect::Sqlite { 4 } else { 8 })
                .acquire_timeout(std::time::Duration::from_secs(10))
        };
        let (pool, pg_route) = match dialect {
            // Every connection (the pool's, the reads', the token listener's) takes the
            // route the first one settled, TLS as the URL says.
            Dialect::Postgres => {
                let (route, pool) =
                    tarn_pgtls::Route::connect(url, std::time::Duration::from_secs(10), |route| {
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
            _pg_route: pg_route,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a writer waits for another (busy timeout) rather than failing
    /// with "database is locked" when its read snapshot cannot be upgraded.
    pub(crate) async fn write_tx(&self) -> sqlx::Result<sqlx::Transaction<'_, sqlx::Any>> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    /// The database kind.
    pub fn dialect(&self) -> Dialect {
        self.dialect
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
                sqlx::query(statement).execute(&mut *tx).await.map_err(db)?;
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

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
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
    "SELECT * FROM tables WHERE catalog_name = $1 AND schema_name = $2 ORDER BY name";
pub(crate) const SCHEMA_EXISTS_SQL: &str =
    "SELECT 1 FROM schemas WHERE catalog_name = $1 AND name = $2";
pub(crate) const GET_TABLE_SQL: &str =
    "SELECT * FROM tables WHERE catalog_name = $1 AND schema_name = $2 AND name = $3";
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
        let found = sqlx::query("SELECT id FROM catalogs WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if found.is_none() {
            return Err(not_found(format!("catalog `{name}` does not exist")));
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
        sqlx::query("DELETE FROM catalogs WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn create_schema(&self, new: NewSchema) -> Result<SchemaInfo> {
        validate_name("catalog", &new.catalog_name)?;
        validate_name("schema", &new.name)?;
        let what = format!("schema `{}.{}`", new.catalog_name, new.name);
        let db = |e| Error::from_db(e, &what);
        let mut tx = self.write_tx().await.map_err(db)?;
        let catalog = sqlx::query("SELECT id FROM catalogs WHERE name = $1")
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
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
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
        let found = sqlx::query("SELECT id FROM schemas WHERE catalog_name = $1 AND name = $2")
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
        sqlx::query("DELETE FROM schemas WHERE catalog_name = $1 AND name = $2")
            .bind(&name.catalog)
            .bind(&name.schema)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn create_table(&self, new: NewTable) -> Result<TableInfo> {
        let name = TableName::new(&new.catalog_name, &new.schema_name, &new.name)?;
        if new.storage_location.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("table `{name}` needs a storage location"),
            ));
        }
        let what = format!("table `{name}`");
        let db = |e| Error::from_db(e, &what);
        let mut tx = self.write_tx().await.map_err(db)?;
        let schema = sqlx::query("SELECT id FROM schemas WHERE catalog_name = $1 AND name = $2")
            .bind(&name.catalog)
            .bind(&name.schema)
            .fetch_optional(&mut *tx)
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
        sqlx::query(
            "INSERT INTO tables (id, catalog_name, schema_name, name, table_type, data_source_format, storage_location, comment, properties, owner, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(info)
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
        sqlx::query("SELECT * FROM tables WHERE id = $1")
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
